/* The mount plan, in two halves (the Python reference: sandbox/fs/mounts.py).
 *
 * prepare: as root in the initial user namespace (rootless: in the run's own,
 * once the maps exist), the per-run tmpfs upper, the overlay root, /dev and
 * clones of the host binds as detached mounts (fsopen/fsmount/open_tree),
 * flags set recursively with mount_setattr. Before Linux 6.15 overlayfs
 * refuses a detached upper (clone_private_mount), so there the upper is
 * attached on the staging dir of a scratch mount namespace while the overlay
 * is made; from 6.15 on it stays detached: no namespace to copy and tear
 * down, and no umount (each one waits for an expedited RCU grace period).
 * attach: in the container's init: propagation stopped, the detached mounts
 * moved under staging, /proc mounted, the root made read-only except the
 * writable subtrees, pivot_root(".", ".") and the old root detached. The
 * upper's fd stays open in init until the run's status is written: closing
 * the last fd of a detached mount unmounts it (another grace period), which
 * is cheaper to wait for once the supervisor has its answer. */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLONE_TREE (OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
#define SETATTR (AT_EMPTY_PATH | AT_RECURSIVE)

static int tmpfs(uint64_t size, uint64_t inodes, unsigned mode, unsigned attrs, const uint32_t *owner,
                 struct sbx_err *e) {
    int fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return sbx_error(e, errno, "fsopen('tmpfs')");
    char v[32];
    sbx_fmt(v, sizeof v, "%llu", (unsigned long long)size);
    if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "size", v, 0) < 0) goto fail_size;
    sbx_fmt(v, sizeof v, "%llu", (unsigned long long)inodes);
    if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", v, 0) < 0) goto fail_cfg;
    {
        char m[16];
        size_t i = 0, k;
        char d[8];
        unsigned x = mode;
        k = 0;
        do { d[k++] = (char)('0' + (x & 7)); x >>= 3; } while (x);
        while (k) m[i++] = d[--k];
        m[i] = 0;
        if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "mode", m, 0) < 0) goto fail_cfg;
    }
    if (owner) {
        sbx_fmt(v, sizeof v, "%u", owner[0]);
        if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "uid", v, 0) < 0) goto fail_cfg;
        sbx_fmt(v, sizeof v, "%u", owner[1]);
        if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "gid", v, 0) < 0) goto fail_cfg;
    }
    if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) goto fail_cfg;
    int mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, attrs);
    int err = errno;
    close(fs);
    if (mnt < 0) return sbx_error(e, err, "fsmount(tmpfs, FSMOUNT_CLOEXEC, %x)", attrs);
    return mnt;
fail_size:
fail_cfg:
    err = errno;
    close(fs);
    return sbx_error(e, err, "fsconfig(tmpfs, size=%llu, nr_inodes=%llu, mode=%o)",
                     (unsigned long long)size, (unsigned long long)inodes, mode);
}

static int move_to(int fd, const char *target, struct sbx_err *e) {
    if (sys_move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return sbx_error(e, errno, "move_mount(%d, '', AT_FDCWD, %q)", fd, target);
    return 0;
}

static int open_source(const char *path, uint64_t flags, struct sbx_err *e) {
    /* O_PATH of a host source, no symlink followed at all (mounts.py _open_source). */
    int fd = sys_openat2(AT_FDCWD, path, O_PATH | O_CLOEXEC | flags, 0,
                         SBX_RESOLVE_NO_SYMLINKS | SBX_RESOLVE_NO_MAGICLINKS);
    if (fd < 0) return sbx_error(e, errno, "openat2(AT_FDCWD, %q, O_PATH, NO_SYMLINKS)", path);
    return fd;
}

#define BENEATH_BOX \
    (SBX_RESOLVE_BENEATH | SBX_RESOLVE_NO_SYMLINKS | SBX_RESOLVE_NO_MAGICLINKS | SBX_RESOLVE_NO_XDEV)

static int copy_into(const char *src, int box, const char *dst, unsigned mode, const uint32_t *owner,
                     struct sbx_err *e) {
    /* As LinuxSyscalls.copy_into: the source may have been shaped by a payload (a
     * file in a writable bind an earlier run had), so no symlink or magic link is
     * followed and only a regular file is read (O_NONBLOCK: a FIFO never blocks);
     * the destination is created beneath the /box fd, nothing followed or crossed. */
    int s = sys_openat2(AT_FDCWD, src, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0,
                        SBX_RESOLVE_NO_SYMLINKS | SBX_RESOLVE_NO_MAGICLINKS);
    if (s < 0) return sbx_error(e, errno, "openat2(%q, NO_SYMLINKS|NO_MAGICLINKS)", src);
    struct stat st;
    if (fstat(s, &st) < 0) {
        int err = errno;
        close(s);
        return sbx_error(e, err, "fstat(%q)", src);
    }
    if (!S_ISREG(st.st_mode)) {
        close(s);
        return sbx_error(e, EINVAL, "copy %q into the sandbox: not a regular file", src);
    }
    int d = sys_openat2(box, dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode, BENEATH_BOX);
    if (d < 0) {
        int err = errno;
        close(s);
        return sbx_error(e, err, "openat2(box, %q, O_CREAT|O_EXCL, BENEATH)", dst);
    }
    int rc = 0;
    off_t done = 0;
    while (done < st.st_size) {
        ssize_t n = sendfile(d, s, NULL, (size_t)(st.st_size - done));
        if (n < 0) { rc = -1; break; }
        if (n == 0) break;
        done += n;
    }
    if (rc == 0) rc = fchmod(d, mode);
    if (rc == 0 && owner) rc = fchown(d, owner[0], owner[1]);
    int err = errno;
    close(d);
    close(s);
    if (rc < 0) return sbx_error(e, err, "copy %q into the sandbox", src);
    return 0;
}

/* Idmap a detached writable bind (fs/mounts.py _idmap): the run's host ids act
 * there as the source's owner. A child unshares a user namespace, we write
 * "owner host 1" as its maps, keep a handle on it and let the child go. A file
 * system that cannot idmap (EINVAL, EOPNOTSUPP) keeps the run's own ids: the
 * one tolerated failure, which changes ownership, not what the payload may do. */
static int mount_setattr_idmap(int fd, int userns_fd) {
    uint64_t attr[4] = {MOUNT_ATTR_IDMAP, 0, 0, (uint64_t)userns_fd};
    return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr,
                        sizeof attr);
}

static int idmap(int fd, uint32_t uid, uint32_t gid, const uint32_t *host, struct sbx_err *e) {
    int ready[2], hold[2];
    if (pipe2(ready, O_CLOEXEC) < 0) return sbx_error(e, errno, "pipe2 (idmap)");
    if (pipe2(hold, O_CLOEXEC) < 0) {
        int err = errno;
        close(ready[0]), close(ready[1]);
        return sbx_error(e, err, "pipe2 (idmap)");
    }
    pid_t pid = fork();
    if (pid == 0) {
        char b;
        close(ready[0]), close(hold[1]);
        if (unshare(CLONE_NEWUSER) == 0 && write(ready[1], "r", 1) == 1)
            while (read(hold[0], &b, 1) < 0 && errno == EINTR) {}
        _exit(0);
    }
    int err = errno;
    close(ready[1]), close(hold[0]);
    int ns = -1, rc = 0;
    char b = 0, path[64], line[64];
    if (pid < 0) {
        rc = sbx_error(e, err, "fork (idmap helper)");
        goto out;
    }
    ssize_t n;
    while ((n = read(ready[0], &b, 1)) < 0 && errno == EINTR) {}
    if (n != 1) {
        rc = sbx_error(e, EPROTO, "idmap helper: no user namespace");
        goto out;
    }
    size_t len;
    sbx_fmt(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    len = sbx_fmt(line, sizeof line, "%u %u 1\n", uid, host[0]);
    if ((rc = sbx_write_file(path, line, len, e))) goto out;
    sbx_fmt(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    if ((rc = sbx_write_file(path, "deny", 4, e))) goto out;
    sbx_fmt(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    len = sbx_fmt(line, sizeof line, "%u %u 1\n", gid, host[1]);
    if ((rc = sbx_write_file(path, line, len, e))) goto out;
    sbx_fmt(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    if ((ns = open(path, O_RDONLY | O_CLOEXEC)) < 0) rc = sbx_error(e, errno, "open(%q)", path);
out:
    close(ready[0]), close(hold[1]);
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    if (rc) {
        if (ns >= 0) close(ns);
        return rc;
    }
    if (mount_setattr_idmap(fd, ns) < 0 && errno != EINVAL && errno != EOPNOTSUPP) {
        err = errno;
        close(ns);
        return sbx_error(e, err, "mount_setattr(MOUNT_ATTR_IDMAP)");
    }
    close(ns);
    return 0;
}

static int mkdir_payload(int box, const char *name, const uint32_t *owner, struct sbx_err *e) {
    /* A directory a staged name needs (mounts.py _mkdir_payload); made before any
     * symlink is, so no link of ours lies on the way. */
    if (mkdirat(box, name, 0755) < 0) {
        if (errno == EEXIST) return 0; /* /box/sub made by the plan's own entries */
        return sbx_error(e, errno, "mkdirat(box, %q)", name);
    }
    if (fchmodat(box, name, 0755, 0) < 0) return sbx_error(e, errno, "fchmodat(box, %q)", name);
    if (owner && fchownat(box, name, owner[0], owner[1], AT_SYMLINK_NOFOLLOW) < 0)
        return sbx_error(e, errno, "fchownat(box, %q)", name);
    return 0;
}

static int stage_box(const struct sbx_mounts *m, int upper, const uint32_t *owner,
                     struct sbx_err *e) {
    /* The program copy and the staged files (mounts.py _stage_box): every source
     * opened without following a symlink, every destination beneath a /box fd;
     * directories first, files next, symlinks last (the plan's order). */
    int box = sys_openat2(upper, "upper/box", O_PATH | O_DIRECTORY | O_CLOEXEC, 0, BENEATH_BOX);
    if (box < 0) return sbx_error(e, errno, "openat2(upper, 'upper/box', BENEATH)");
    int rc = 0;
    if (m->program_src) rc = copy_into(m->program_src, box, m->program_name, 0555, NULL, e);
    char dir[SBX_MAX_STR + 1];
    for (uint32_t i = 0; rc == 0 && i < m->n_copy_in; i++) {
        const struct sbx_copy *f = &m->copy_in[i];
        for (size_t k = 0; rc == 0 && f->name[k] && k < SBX_MAX_STR; k++) {
            if (f->name[k] != '/') continue;
            memcpy(dir, f->name, k);
            dir[k] = 0;
            rc = mkdir_payload(box, dir, owner, e);
        }
        if (rc) break;
        if (!f->link) {
            rc = copy_into(f->src, box, f->name, f->mode, owner, e);
        } else if (symlinkat(f->link, box, f->name) < 0) {
            rc = sbx_error(e, errno, "symlinkat(%q, box, %q)", f->link, f->name);
        } else if (owner && fchownat(box, f->name, owner[0], owner[1], AT_SYMLINK_NOFOLLOW) < 0) {
            rc = sbx_error(e, errno, "fchownat(box, %q, AT_SYMLINK_NOFOLLOW)", f->name);
        }
    }
    close(box);
    return rc;
}

static int private_overlay(const char *source, const char *empty, uint64_t attrs, int rootless,
                           struct sbx_err *e) {
    /* A read-only overlay over host dir `source` alone (mounts.py _private_overlay):
     * the same files, inodes of the run's own, so a lock taken on them reaches no
     * other run and not the host (issue 13 item 7). Overlayfs wants two layers
     * without an upper: the second is an empty dir of the run's upper tmpfs. */
    int src = open_source(source, O_DIRECTORY, e);
    if (src < 0) return -1;
    char lowers[96];
    sbx_fmt(lowers, sizeof lowers, "/proc/self/fd/%d:%s", src, empty);
    int ovl = sys_fsopen("overlay", FSOPEN_CLOEXEC);
    if (ovl < 0) {
        int err = errno;
        close(src);
        return sbx_error(e, err, "fsopen('overlay')");
    }
    if (sys_fsconfig(ovl, FSCONFIG_SET_STRING, "source", source, 0) < 0 ||
        sys_fsconfig(ovl, FSCONFIG_SET_STRING, "lowerdir", lowers, 0) < 0 ||
        (rootless && sys_fsconfig(ovl, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0) ||
        sys_fsconfig(ovl, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int err = errno;
        close(ovl), close(src);
        return sbx_error(e, err, "fsconfig(overlay, source=%q, lowerdir=%q)", source, lowers);
    }
    int fd = sys_fsmount(ovl, FSMOUNT_CLOEXEC, attrs);
    int err = errno;
    close(ovl), close(src);
    if (fd < 0) return sbx_error(e, err, "fsmount(overlay of %q, %lx)", source, (unsigned long)attrs);
    return fd;
}

static void path_join(char *out, size_t cap, const char *a, const char *b) {
    sbx_fmt(out, cap, "%s%s", a, b);
}

static int prepare(struct sbx_ctx *c, struct sbx_err *e) {
    const struct sbx_mounts *m = &c->plan->m;
    struct sbx_detached *out = &c->mnt;
    uint32_t host_ids[2] = {c->plan->host_uid, c->plan->host_gid};
    char p[SBX_MAX_STR + 64];
    int scratch = !c->detached_layers; /* before 6.15: the upper attached meanwhile */
    if (scratch && !m->rootless && unshare(CLONE_NEWNS) < 0)
        return sbx_error(e, errno, "unshare(CLONE_NEWNS) (scratch mount namespace)");
    if (scratch && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return sbx_error(e, errno, "mount(None, '/', MS_REC|MS_PRIVATE)");
    int upper = tmpfs(m->upper_size, m->upper_inodes, 0755, 0, NULL, e);
    if (upper < 0) return -1;
    out->upper = upper;
    if (scratch && move_to(upper, m->staging, e)) return -1;
    if (mkdirat(upper, "upper", 0755) < 0) return sbx_error(e, errno, "mkdirat(upper, 'upper')");
    if (mkdirat(upper, "work", 0700) < 0) return sbx_error(e, errno, "mkdirat(upper, 'work')");
    int sgid_seen = 0;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct sbx_entry *x = &m->entries[i];
        path_join(p, sizeof p, "upper/", x->path);
        mode_t perm = x->mode & 07777;
        if ((x->mode & S_IFMT) == S_IFREG) { /* a single-file bind lands on a file */
            int f = openat(upper, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm);
            if (f < 0) return sbx_error(e, errno, "openat(upper, %q, O_CREAT|O_EXCL)", p);
            close(f);
        } else if (mkdirat(upper, p, perm) < 0) {
            return sbx_error(e, errno, "mkdirat(upper, %q)", p);
        }
        /* With the umask cleared (prepare_mounts) the mode is already exact,
         * but for bits mkdir/open drop or inherit: set-id bits (a set-group-id
         * dir also hands its bit to what is made under it, from then on). */
        int exact = (perm & ~(mode_t)01777) == 0 && !sgid_seen;
        if ((x->mode & S_IFMT) == S_IFREG && (perm & S_ISVTX)) exact = 0;
        sgid_seen |= (perm & S_ISGID) != 0;
        if (!exact && fchmodat(upper, p, perm, 0) < 0)
            return sbx_error(e, errno, "fchmodat(upper, %q)", p);
        if (x->payload_owned && !m->rootless &&
            fchownat(upper, p, host_ids[0], host_ids[1], AT_SYMLINK_NOFOLLOW) < 0)
            return sbx_error(e, errno, "fchownat(upper, %q)", p);
    }
    if ((m->program_src || m->n_copy_in) && stage_box(m, upper, m->rootless ? NULL : host_ids, e))
        return -1;
    /* lowerdir=/proc/self/fd/N:... (no escaping needed: the names are ours) */
    char lowers[SBX_MAX_LOWERS * 32];
    size_t ln = 0;
    for (uint32_t i = 0; i < m->n_lowers; i++) {
        int fd = open_source(m->lowers[i], O_DIRECTORY, e);
        if (fd < 0) return -1;
        out->others[out->n_others++] = fd;
        ln += sbx_fmt(lowers + ln, sizeof lowers - ln, "%s/proc/self/fd/%d", i ? ":" : "", fd);
    }
    if (m->overlay) {
        int ovl = sys_fsopen("overlay", FSOPEN_CLOEXEC);
        if (ovl < 0) return sbx_error(e, errno, "fsopen('overlay')");
        char up[64], wk[64];
        sbx_fmt(up, sizeof up, "/proc/self/fd/%d/upper", upper);
        sbx_fmt(wk, sizeof wk, "/proc/self/fd/%d/work", upper);
        if (sys_fsconfig(ovl, FSCONFIG_SET_STRING, "lowerdir", lowers, 0) < 0 ||
            sys_fsconfig(ovl, FSCONFIG_SET_STRING, "upperdir", up, 0) < 0 ||
            sys_fsconfig(ovl, FSCONFIG_SET_STRING, "workdir", wk, 0) < 0 ||
            (m->rootless && sys_fsconfig(ovl, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0) ||
            sys_fsconfig(ovl, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
            int err = errno;
            close(ovl);
            return sbx_error(e, err, "fsconfig(overlay, lowerdir=%q)", lowers);
        }
        out->root = sys_fsmount(ovl, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        int err = errno;
        close(ovl);
        if (out->root < 0) return sbx_error(e, err, "fsmount(overlay)");
    } else { /* test hook only: the lower layer itself, read-write */
        out->root = sys_open_tree(AT_FDCWD, m->lowers[0], CLONE_TREE);
        if (out->root < 0) return sbx_error(e, errno, "open_tree(%q)", m->lowers[0]);
        if (sys_mount_setattr(out->root, "", SETATTR, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0) < 0)
            return sbx_error(e, errno, "mount_setattr(root, nosuid|nodev)");
    }
    char empty[64] = "";
    for (uint32_t i = 0; i < m->n_binds; i++) {
        const struct sbx_bind *b = &m->binds[i];
        uint64_t attrs = MOUNT_ATTR_NODEV | (m->nosuid ? MOUNT_ATTR_NOSUID : 0);
        if (!b->writable) attrs |= MOUNT_ATTR_RDONLY;
        if (!b->exec) attrs |= MOUNT_ATTR_NOEXEC;
        if (b->private_) {
            if (!empty[0]) { /* beside upper/ and work/: never seen */
                if (mkdirat(upper, "empty", 0555) < 0)
                    return sbx_error(e, errno, "mkdirat(upper, 'empty')");
                sbx_fmt(empty, sizeof empty, "/proc/self/fd/%d/empty", upper);
            }
            int fd = private_overlay(b->source, empty, attrs, m->rootless, e);
            if (fd < 0) return -1;
            out->binds[out->n_binds++] = fd;
            continue;
        }
        int src = open_source(b->source, 0, e);
        if (src < 0) return -1;
        int fd = sys_open_tree(src, "", CLONE_TREE | AT_EMPTY_PATH);
        int err = errno;
        struct stat st; /* the owner of what is bound, as it is now (for the idmap) */
        if (fd >= 0 && fstat(src, &st) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
        close(src);
        if (fd < 0) return sbx_error(e, err, "open_tree(%q, OPEN_TREE_CLONE|AT_RECURSIVE)", b->source);
        out->binds[out->n_binds++] = fd;
        if (sys_mount_setattr(fd, "", SETATTR, attrs, 0) < 0)
            return sbx_error(e, errno, "mount_setattr(%q, AT_RECURSIVE, %lx)", b->target,
                             (unsigned long)attrs);
        if (b->idmap && b->writable && !m->rootless &&
            (st.st_uid != host_ids[0] || st.st_gid != host_ids[1]) &&
            idmap(fd, st.st_uid, st.st_gid, host_ids, e))
            return -1;
    }
    for (uint32_t i = 0; i < m->n_tmpfs; i++) {
        int fd = tmpfs(m->tmpfs[i].size, 1 << 16, m->tmpfs[i].mode,
                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, host_ids, e);
        if (fd < 0) return -1;
        out->tmpfs[out->n_tmpfs++] = fd;
    }
    out->dev = tmpfs(1 << 16, 64, 0755, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, NULL, e);
    if (out->dev < 0) return -1;
    for (uint32_t i = 0; i < m->n_dev_nodes; i++) {
        const struct sbx_dev *d = &m->dev_nodes[i];
        if (m->rootless) {
            /* No mknod outside the initial user namespace: an empty file to
             * bind the host's node onto (bwrap does the same). */
            int f = openat(out->dev, d->name, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
            if (f < 0) return sbx_error(e, errno, "openat(dev, %q, O_CREAT)", d->name);
            close(f);
            sbx_fmt(p, sizeof p, "/dev/%s", d->name);
            int node = open_source(p, 0, e);
            if (node < 0) return -1;
            int t = sys_open_tree(node, "", CLONE_TREE | AT_EMPTY_PATH);
            int err = errno;
            close(node);
            if (t < 0) return sbx_error(e, err, "open_tree(%q)", p);
            out->dev_nodes[out->n_dev_nodes++] = t;
            /* A device bind keeps the host /dev's flags: set ours (it must stay
             * a device, so no nodev; never set-id, never executable). */
            if (sys_mount_setattr(t, "", SETATTR, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0) < 0)
                return sbx_error(e, errno, "mount_setattr(%q, nosuid|noexec)", p);
            continue;
        }
        /* 0666 exactly: the umask is cleared (prepare_mounts) */
        if (mknodat(out->dev, d->name, S_IFCHR | 0666, makedev(d->major, d->minor)) < 0)
            return sbx_error(e, errno, "mknodat(dev, %q)", d->name);
    }
    for (uint32_t i = 0; i < m->n_dev_links; i++)
        if (symlinkat(m->dev_links[i].target, out->dev, m->dev_links[i].name) < 0)
            return sbx_error(e, errno, "symlinkat(%q, dev, %q)", m->dev_links[i].target,
                             m->dev_links[i].name);
    if (m->devpts.present && mkdirat(out->dev, "pts", 0755) < 0)
        return sbx_error(e, errno, "mkdirat(dev, 'pts')"); /* init mounts devpts here */
    /* The overlay holds its own private clone of the upper: detach ours. */
    if (scratch && umount2(m->staging, MNT_DETACH) < 0)
        return sbx_error(e, errno, "umount2(%q, MNT_DETACH)", m->staging);
    return 0;
}

int sbx_detached_layers(void) {
    struct utsname u;
    if (uname(&u) < 0) return 0;
    const char *s = u.release;
    int major = 0, minor = 0;
    while (*s >= '0' && *s <= '9') major = major * 10 + (*s++ - '0');
    if (*s++ != '.') return 0;
    while (*s >= '0' && *s <= '9') minor = minor * 10 + (*s++ - '0');
    return major > 6 || (major == 6 && minor >= 15);
}

static int prepare_exact(struct sbx_ctx *c, struct sbx_err *e) {
    /* With no umask what mkdirat and mknodat make has the mode asked for, so
     * most need no fchmodat after (prepare says which still do). The caller's
     * umask is back before anything else runs: the payload inherits it. */
    mode_t old = umask(0);
    int rc = prepare(c, e);
    umask(old);
    return rc;
}

int step_prepare_mounts(struct sbx_ctx *c, struct sbx_err *e) {
    /* Detached overlay root, /dev, binds and tmpfs, made in the initial user namespace. */
    return c->plan->m.rootless ? 0 : prepare_exact(c, e);
}

int step_prepare_mounts_in_userns(struct sbx_ctx *c, struct sbx_err *e) {
    /* Rootless: the same, in the run's own user namespace (after the maps). */
    return c->plan->m.rootless ? prepare_exact(c, e) : 0;
}

/* ----------------------------------------------------------- attach --- */

static const char *const PROC_MASKED[] = {
    "kcore", "keys", "timer_list", "sched_debug", "sysrq-trigger", "latency_stats",
    "kmsg", "kallsyms", "acpi", "scsi", "asound",
};
static const char *const PROC_READ_ONLY[] = {"sys", "bus", "fs", "irq"};
#define RO_REMOUNT (MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

static int mask_proc(const char *proc, const char *null, struct sbx_err *e) {
    char p[SBX_MAX_STR + 64];
    for (size_t i = 0; i < sizeof PROC_MASKED / sizeof *PROC_MASKED; i++) {
        sbx_fmt(p, sizeof p, "%s/%s", proc, PROC_MASKED[i]);
        struct stat st;
        if (lstat(p, &st) < 0) {
            if (errno == ENOENT) continue; /* not on this kernel */
            return sbx_error(e, errno, "lstat(%q)", p);
        }
        if (S_ISDIR(st.st_mode)) {
            if (mount(p, p, NULL, MS_BIND, NULL) < 0 || mount(NULL, p, NULL, RO_REMOUNT, NULL) < 0 ||
                mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0") < 0)
                return sbx_error(e, errno, "mask %q", p);
        } else if (mount(null, p, NULL, MS_BIND, NULL) < 0 || mount(NULL, p, NULL, RO_REMOUNT, NULL) < 0) {
            return sbx_error(e, errno, "mount(%q, %q, MS_BIND)", null, p);
        }
    }
    for (size_t i = 0; i < sizeof PROC_READ_ONLY / sizeof *PROC_READ_ONLY; i++) {
        sbx_fmt(p, sizeof p, "%s/%s", proc, PROC_READ_ONLY[i]);
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT) continue;
            return sbx_error(e, errno, "mount(%q, %q, MS_BIND|MS_REC)", p, p);
        }
        if (mount(NULL, p, NULL, RO_REMOUNT, NULL) < 0)
            return sbx_error(e, errno, "mount(None, %q, MS_REMOUNT|MS_RDONLY)", p);
    }
    return 0;
}

static size_t octal(char *out, uint32_t v) {
    /* four octal digits, as Python's f"{v:04o}" for v <= 0777 */
    for (int i = 3; i >= 0; i--, v >>= 3) out[i] = (char)('0' + (v & 7));
    return 4;
}

static int mount_devpts(const struct sbx_mounts *m, struct sbx_err *e) {
    /* The run's own devpts instance (sandbox/fs/mounts.py mount_devpts): always
     * newinstance, nosuid, noexec; then it must not be the host's /dev/pts. */
    const struct sbx_devpts *d = &m->devpts;
    char opts[160], p[SBX_MAX_STR + 64];
    size_t n = sbx_fmt(opts, sizeof opts, "newinstance,ptmxmode=");
    n += octal(opts + n, d->ptmxmode);
    n += sbx_fmt(opts + n, sizeof opts - n, ",mode=");
    n += octal(opts + n, d->mode);
    opts[n] = 0;
    if (d->has_gid) n += sbx_fmt(opts + n, sizeof opts - n, ",gid=%u", d->gid);
    if (d->has_uid) n += sbx_fmt(opts + n, sizeof opts - n, ",uid=%u", d->uid);
    if (d->has_max) n += sbx_fmt(opts + n, sizeof opts - n, ",max=%u", d->max);
    sbx_fmt(p, sizeof p, "%s/dev/pts", m->staging);
    if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, opts) < 0)
        return sbx_error(e, errno, "mount('devpts', %q, 'devpts', %q)", p, opts);
    struct stat ours, host;
    if (lstat(p, &ours) < 0) return sbx_error(e, errno, "lstat(%q)", p);
    if (lstat("/dev/pts", &host) < 0) {
        if (errno == ENOENT) return 0; /* the host has none in our view */
        return sbx_error(e, errno, "lstat('/dev/pts')");
    }
    if (ours.st_dev == host.st_dev)
        return sbx_error(e, EEXIST, "devpts: the mount is the host's instance, not a new one");
    return 0;
}

static int attach(struct sbx_ctx *c, struct sbx_err *e) {
    const struct sbx_mounts *m = &c->plan->m;
    struct sbx_detached *d = &c->mnt;
    const char *st = m->staging;
    char p[SBX_MAX_STR + 320], q[SBX_MAX_STR + 320];
    /* Stop propagation both ways before anything is mounted (youki, runc). */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return sbx_error(e, errno, "mount(None, '/', MS_REC|MS_SLAVE)");
    if (move_to(d->root, st, e)) return -1;
    /* The root becomes read-only below; the writable trees are binds of the
     * same overlay without MS_RDONLY, so writes land in the per-run upper. */
    if (m->overlay)
        for (uint32_t i = 0; i < m->n_writable; i++) {
            sbx_fmt(p, sizeof p, "%s%s", st, m->writable[i]);
            if (mount(p, p, NULL, MS_BIND, NULL) < 0)
                return sbx_error(e, errno, "mount(%q, %q, MS_BIND)", p, p);
        }
    /* binds and tmpfs by depth of their target (the Python reference sorts the
     * concatenation with a stable sort on the count of '/') */
    for (int depth = 0; depth < 512; depth++) {
        int more = 0;
        for (uint32_t i = 0; i < m->n_binds + m->n_tmpfs; i++) {
            const char *t = i < m->n_binds ? m->binds[i].target : m->tmpfs[i - m->n_binds].target;
            int fd = i < m->n_binds ? d->binds[i] : d->tmpfs[i - m->n_binds];
            int k = 0;
            for (const char *s = t; *s; s++) k += *s == '/';
            if (k > depth) more = 1;
            if (k != depth) continue;
            sbx_fmt(p, sizeof p, "%s%s", st, t);
            if (move_to(fd, p, e)) return -1;
        }
        if (!more) break;
    }
    sbx_fmt(p, sizeof p, "%s/dev", st);
    if (move_to(d->dev, p, e)) return -1;
    for (uint32_t i = 0; i < d->n_dev_nodes; i++) {
        sbx_fmt(p, sizeof p, "%s/dev/%s", st, m->dev_nodes[i].name);
        if (move_to(d->dev_nodes[i], p, e)) return -1;
    }
    if (m->devpts.present && mount_devpts(m, e)) return -1;
    sbx_fmt(p, sizeof p, "%s/proc", st);
    if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              m->proc_subset_pid ? "subset=pid" : NULL) < 0)
        return sbx_error(e, errno, "mount('proc', %q, 'proc', subset=pid)", p);
    if (!m->proc_subset_pid && m->proc_masks) {
        sbx_fmt(q, sizeof q, "%s/dev/null", st);
        if (mask_proc(p, q, e)) return -1;
    }
    if (m->overlay && m->read_only_root &&
        mount(NULL, st, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        return sbx_error(e, errno, "mount(None, %q, MS_REMOUNT|MS_BIND|MS_RDONLY)", st);
    /* close every detached fd but the upper's (see the top of this file) */
    if (d->root >= 0) close(d->root);
    if (d->dev >= 0) close(d->dev);
    for (uint32_t i = 0; i < d->n_binds; i++) close(d->binds[i]);
    for (uint32_t i = 0; i < d->n_tmpfs; i++) close(d->tmpfs[i]);
    for (uint32_t i = 0; i < d->n_others; i++) close(d->others[i]);
    for (uint32_t i = 0; i < d->n_dev_nodes; i++) close(d->dev_nodes[i]);
    d->root = d->dev = -1;
    d->n_binds = d->n_tmpfs = d->n_others = d->n_dev_nodes = 0;
    /* pivot_root(".", ".") stacks the old root under the new one; detaching it
     * leaves the host tree unreachable (runc pivotRoot, bwrap, nsjail). */
    if (chdir(st) < 0) return sbx_error(e, errno, "chdir(%q)", st);
    if (sys_pivot_root(".", ".") < 0) return sbx_error(e, errno, "pivot_root('.', '.')");
    if (umount2(".", MNT_DETACH) < 0) return sbx_error(e, errno, "umount2('.', MNT_DETACH)");
    if (chdir("/") < 0) return sbx_error(e, errno, "chdir('/')");
    return 0;
}

int step_mounts(struct sbx_ctx *c, struct sbx_err *e) {
    /* nested_userns off: the per-namespace limit, written through the host
     * /proc before it goes away; then the root is assembled and pivoted into. */
    if (!c->plan->nested_userns &&
        sbx_write_file("/proc/sys/user/max_user_namespaces", "0", 1, e))
        return -1;
    return attach(c, e);
}
