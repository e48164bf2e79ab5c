/* Landlock (landlock/restrict.py): after every mount and pivot_root (a
 * restricted process may not change its mount topology), after NNP. Rules
 * refer to paths inside the new root, opened O_PATH; a "*" glob in a rule's
 * last component is expanded by listing its directory (getdents64 into a
 * stack buffer: no allocation). A missing path is skipped unless the rule is
 * required (skipping can only deny more). */
#include "sbx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int absent(int err) { return err == ENOENT || err == ENOTDIR; }

/* landlock/rules.py glob_match: "*" alone is special. */
int sbx_glob_match(const char *pat, const char *name) {
    const char *star = NULL, *resume = NULL;
    while (*name) {
        if (*pat == '*') {
            star = ++pat;
            resume = name;
        } else if (*pat == *name) {
            pat++, name++;
        } else if (star) {
            pat = star;
            name = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*') pat++;
    return *pat == 0;
}

/* One rule: its fd and the rights that fit its type; 1 when skipped. */
static int add_rule(int ruleset, const char *path, const struct sbx_rule *r, int required,
                    struct sbx_err *e) {
    int fd = -1;
    uint64_t access = 0;
    if (r->is_dir) {
        fd = open(path, O_PATH | O_CLOEXEC | O_DIRECTORY);
        if (fd >= 0) access = r->access;
        else if (errno != ENOTDIR) goto fail;
    }
    if (fd < 0) {
        if (!r->file_access) return 1; /* a file with no file right gets no rule */
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0) goto fail;
        access = r->file_access;
    }
    if (sys_ll_add_path_rule(ruleset, fd, access) < 0) {
        int err = errno;
        close(fd);
        return sbx_error(e, err, "landlock_add_rule(%d, PATH_BENEATH, {allowed=%llx, %q})",
                         ruleset, (unsigned long long)access, path);
    }
    close(fd);
    return 0;
fail:
    if (absent(errno) && !required) return 1;
    return sbx_error(e, errno, "openat(AT_FDCWD, %q, O_PATH|O_CLOEXEC) for a %sLandlock rule",
                     path, required ? "required " : "");
}

static int add_glob(int ruleset, const struct sbx_rule *r, struct sbx_err *e) {
    char parent[SBX_MAX_STR], path[SBX_MAX_STR + 256];
    const char *slash = strrchr(r->path, '/');
    size_t pl = (size_t)(slash - r->path);
    memcpy(parent, r->path, pl);
    parent[pl] = 0;
    const char *pattern = slash + 1;
    int dfd = open(pl ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (absent(errno)) return 0;
        return sbx_error(e, errno, "getdents64(%q)", pl ? parent : "/");
    }
    char buf[8192] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
        if (n < 0) {
            int err = errno;
            close(dfd);
            return sbx_error(e, err, "getdents64(%q)", parent);
        }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
            if (!sbx_glob_match(pattern, d->d_name)) continue;
            sbx_fmt(path, sizeof path, "%s/%s", parent, d->d_name);
            if (add_rule(ruleset, path, r, 0, e) < 0) {
                close(dfd);
                return -1;
            }
        }
    }
    close(dfd);
    return 0;
}

int sbx_landlock_apply(const struct sbx_landlock *l, struct sbx_err *e) {
    if (!l->present || !l->enforce) return 0;
    int rs = sys_ll_create_ruleset(l->handled_fs, l->handled_net, l->scoped);
    if (rs < 0)
        return sbx_error(e, errno, "landlock_create_ruleset(fs=%llx, net=%llx, scoped=%llx)",
                         (unsigned long long)l->handled_fs, (unsigned long long)l->handled_net,
                         (unsigned long long)l->scoped);
    for (uint32_t i = 0; i < l->n_rules; i++) {
        const struct sbx_rule *r = &l->rules[i];
        int rc = r->glob ? add_glob(rs, r, e) : add_rule(rs, r->path, r, r->required, e);
        if (rc < 0) {
            close(rs);
            return -1;
        }
    }
    for (uint32_t i = 0; i < l->n_net_rules; i++)
        if (sys_ll_add_net_rule(rs, l->net_rules[i].port, l->net_rules[i].access) < 0) {
            int err = errno;
            close(rs);
            return sbx_error(e, err, "landlock_add_rule(%d, NET_PORT, port=%llu)", rs,
                             (unsigned long long)l->net_rules[i].port);
        }
    if (sys_ll_restrict_self(rs) < 0) {
        int err = errno;
        close(rs);
        return sbx_error(e, err, "landlock_restrict_self(%d, 0)", rs);
    }
    close(rs);
    return 0;
}

int step_landlock(struct sbx_ctx *c, struct sbx_err *e) {
    /* After every mount and pivot_root, after NNP (or CAP_SYS_ADMIN held). */
    return sbx_landlock_apply(&c->plan->ll, e);
}
