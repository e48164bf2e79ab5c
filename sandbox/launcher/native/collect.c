/* The collector: files of /box the caller asked for, read after the payload
 * ended by a process with no more rights than the payload had (issue 13
 * item 1): the payload's uid/gid, empty capability sets, no_new_privs and
 * the payload's Landlock domain. Each name is opened beneath a /box dir fd
 * with RESOLVE_BENEATH|NO_SYMLINKS|NO_MAGICLINKS|NO_XDEV, regular files
 * only, size-capped; every name gets a record, contents or why not
 * (protocol.py encode_file / the codes below), so nothing is dropped
 * silently. Records go to the status pipe after init's status record. */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* protocol.py: MISSING, NOT_REGULAR, TOO_BIG, REFUSED, DENIED, COLLECTOR_FAILED;
 * any other errno e as -(1000 + e). */
enum { C_MISSING = -1, C_NOT_REGULAR = -2, C_TOO_BIG = -3, C_REFUSED = -4, C_DENIED = -5,
       C_COLLECTOR_FAILED = -6 };

int sbx_drop_bounding(uint64_t keep, int last_cap, struct sbx_err *e);
int sbx_set_final_caps(uint64_t keep, uint64_t hold, struct sbx_err *e);
int sbx_set_ids(const struct sbx_plan *p, struct sbx_err *e);

static void record(int fd, const char *name, int64_t size, const void *data) {
    uint8_t hdr[12];
    uint32_t nl = (uint32_t)sbx_strlen(name);
    memcpy(hdr, &nl, 4);
    memcpy(hdr + 4, &size, 8);
    sbx_write_all(fd, hdr, sizeof hdr);
    sbx_write_all(fd, name, nl);
    if (size > 0) sbx_write_all(fd, data, (size_t)size);
}

int step_collector_privileges(struct sbx_ctx *c, struct sbx_err *e) {
    /* No more than the payload: NNP (always: this process never execs, and
     * Landlock needs it), bounding set, the payload's ids, no capability. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return sbx_error(e, errno, "prctl(PR_SET_NO_NEW_PRIVS, 1)");
    if (sbx_drop_bounding(0, c->last_cap, e)) return -1;
    if (sbx_set_ids(c->plan, e)) return -1;
    return sbx_set_final_caps(0, 0, e);
}

static int64_t code(int err) {
    switch (err) {
    case ENOENT: case ENOTDIR: return C_MISSING;
    case ELOOP: case EXDEV: case EAGAIN: return C_REFUSED; /* a symlink, another mount, an escape */
    case EACCES: case EPERM: return C_DENIED;
    default: return -(1000 + (int64_t)err);
    }
}

static void collect_one(int box, const char *name, uint64_t limit, uint8_t *buf, int out) {
    int fd = sys_openat2(box, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0,
                         SBX_RESOLVE_BENEATH | SBX_RESOLVE_NO_SYMLINKS |
                             SBX_RESOLVE_NO_MAGICLINKS | SBX_RESOLVE_NO_XDEV);
    if (fd < 0) {
        record(out, name, code(errno), NULL);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        record(out, name, code(errno), NULL);
    } else if (!S_ISREG(st.st_mode)) {
        record(out, name, C_NOT_REGULAR, NULL);
    } else if ((uint64_t)st.st_size > limit) {
        record(out, name, C_TOO_BIG, NULL);
    } else {
        uint64_t got = 0;
        int err = 0;
        while (got <= limit) {
            ssize_t n = read(fd, buf + got, (size_t)(limit + 1 - got));
            if (n < 0) {
                if (errno == EINTR) continue;
                err = errno;
                break;
            }
            if (n == 0) break;
            got += (uint64_t)n;
        }
        if (err) record(out, name, code(err), NULL);
        else if (got > limit) record(out, name, C_TOO_BIG, NULL);
        else record(out, name, (int64_t)got, buf);
    }
    close(fd);
}

int step_collect(struct sbx_ctx *c, struct sbx_err *e) {
    const struct sbx_plan *p = c->plan;
    /* /box is a directory of the read-only root (never replaceable by the
     * payload); opened without following anything all the same. */
    int box = sys_openat2(AT_FDCWD, "/box", O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                          SBX_RESOLVE_NO_SYMLINKS | SBX_RESOLVE_NO_MAGICLINKS);
    if (box < 0) return sbx_error(e, errno, "openat2('/box', O_PATH|O_DIRECTORY)");
    uint8_t *buf = mmap(NULL, (size_t)p->collect_limit + 1, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return sbx_error(e, errno, "mmap(%llu)", (unsigned long long)p->collect_limit + 1);
    for (uint32_t i = 0; i < p->n_collect; i++) collect_one(box, p->collect[i], p->collect_limit, buf, c->fds.status);
    close(box);
    return 0;
}

__attribute__((noreturn)) void sbx_collect_main(struct sbx_ctx *c) {
    for (size_t i = 0; i < SBX_N_COLLECT; i++) {
        struct sbx_err e = {0};
        c->step = SBX_COLLECT_STEPS[i].name;
        if (SBX_COLLECT_STEPS[i].fn(c, &e) != 0) {
            /* Nobody reads an errpipe now: every name says the collector failed. */
            for (uint32_t k = 0; k < c->plan->n_collect; k++)
                record(c->fds.status, c->plan->collect[k], C_COLLECTOR_FAILED, NULL);
            _exit(SBX_EXIT_SPAWN_FAILED);
        }
    }
    _exit(0);
}
