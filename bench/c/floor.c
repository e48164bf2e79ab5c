/* The floor: the kernel's own cost of what one fully isolated run needs, timed without us.
 *
 *   floor [-n RUNS] [-r ROUNDS] [-S SYSCALLS_FILE] [-B BPF_FILE] [-c CG_PARENT] [-o ROW,ROW...] [-l]
 *         [-R] [-W BWRAP]
 *
 * A resident C launcher (this process) runs /bin/true many times, each run a
 * combination of steps, and prints one tab-separated line per row:
 *
 *   row  name  n  var_med  var_p10  var_p90  var_p99  base_med  base_p10  diff_med  diff_p90  in_floor  baseline
 *
 * (nanoseconds). Each row pairs a variant with its baseline (the same steps
 * without the one measured): run k of the variant and run k of the baseline
 * alternate, their order flipping each time, rows rotating round by round, so
 * a burst of load hits both; diff is the per-pair difference. A row that
 * cannot run here prints "row NAME failed: WHY" and the others go on. The
 * "floor" rows (in_floor 1) are the steps strict's run needs; their summed
 * medians plus the bare fork+exec is the floor, printed beside the measured
 * "all layers" rows.
 *
 * What a run is: before the clone, the launcher makes what it can in the
 * initial user namespace (the cgroup leaf and its join fds; the per-run tmpfs
 * upper, the overlay root over a small image directory, a read-only clone of
 * /usr and a /dev tmpfs, all detached: fsopen/fsmount/open_tree, as
 * sandbox.fs.mounts does); clone3 creates the namespaces; the launcher writes
 * the id maps; the child (init, PID 1) assembles the root (move_mount, proc
 * subset=pid, read-only remount, pivot_root and detach of the old root), sets
 * the hostname, brings lo up, forks the payload, which joins the leaf through
 * v1 `tasks` (v2: cgroup.procs), drops capabilities, sets no_new_privs,
 * Landlock, seccomp, and execs /bin/true. The launcher waits, checks the exit
 * status (a failing run is never timed as a fast one), closes the detached
 * mounts and removes the leaf. Clock: CLOCK_MONOTONIC, from before the first
 * preparation to after the cleanup. The launcher itself lives in a private
 * mount namespace of its own (one unshare at start), so nothing it attaches
 * is ever visible on the host.
 *
 * -l lists the rows; -R also prints every timed run of the variant ("sample NAME NS"),
 * for a caller that interleaves these runs with its own subjects. -S: syscall numbers (whitespace separated) for the
 * synthetic filters (default: 200 common ones); -B: a raw BPF program (struct
 * sock_filter array, e.g. `sandbox seccomp export --format bpf strict`) for
 * the strict-filter rows. -c: the cgroup parent (default: this process's own
 * cgroup in each hierarchy). -W: bubblewrap's path, for the rows that pair
 * all layers with `bwrap --unshare-all` run by run (the target's ratio with
 * the least drift between the two). Needs root. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- kernel interfaces glibc 2.36's headers lack or spell differently ---- */
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x4
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x2
#endif
#ifndef MOUNT_ATTR_NODEV
#define MOUNT_ATTR_NODEV 0x4
#endif
#ifndef MOUNT_ATTR_NOEXEC
#define MOUNT_ATTR_NOEXEC 0x8
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
struct mnt_attr { uint64_t set, clr, propagation, userns_fd; };
struct clone_args_v0 { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

#define LL_RULE_PATH_BENEATH 1
#define LL_CREATE_RULESET_VERSION 1
struct ll_ruleset_attr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct ll_path_beneath { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));
#define LL_EXECUTE (1ULL << 0)
#define LL_WRITE_FILE (1ULL << 1)
#define LL_READ_FILE (1ULL << 2)
#define LL_READ_DIR (1ULL << 3)
#define LL_MAKE_CHAR (1ULL << 6)
#define LL_MAKE_BLOCK (1ULL << 11)
#define LL_REFER (1ULL << 13)
#define LL_TRUNCATE (1ULL << 14)
#define LL_IOCTL_DEV (1ULL << 15)

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif

static int sys_fsopen(const char *fs) { return (int)syscall(SYS_fsopen, fs, 1 /* CLOEXEC */); }
static int sys_fsconfig(int fd, int cmd, const char *key, const char *val) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, val, 0);
}
static int sys_fsmount(int fd, unsigned attrs) { return (int)syscall(SYS_fsmount, fd, FSMOUNT_CLOEXEC, attrs); }
static int sys_move(int fd, const char *to) {
    return (int)syscall(SYS_move_mount, fd, "", AT_FDCWD, to, MOVE_MOUNT_F_EMPTY_PATH);
}
static int sys_open_tree(const char *path, unsigned flags) { return (int)syscall(SYS_open_tree, AT_FDCWD, path, flags); }
static int sys_setattr(int fd, uint64_t set) {
    struct mnt_attr a = {.set = set};
    return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a);
}

/* ---- steps (features) ---- */
enum {
    X_USER = 1 << 0, X_PID = 1 << 1, X_MNT = 1 << 2, X_NET = 1 << 3, X_IPC = 1 << 4,
    X_UTS = 1 << 5, X_CGNS = 1 << 6, X_TIME = 1 << 7,
    X_MAPS = 1 << 8,     /* uid/gid maps written by the launcher, child waits for them */
    X_LO = 1 << 9,       /* lo up */
    X_SLAVE = 1 << 10,   /* mount("/", MS_REC|MS_SLAVE) */
    X_TMPFS = 1 << 11,   /* one detached tmpfs, moved onto a staging dir */
    X_OVERLAY = 1 << 12, /* per-run tmpfs upper + overlay root (detached), moved onto staging */
    X_USR = 1 << 13,     /* read-only recursive clone of /usr, moved into the root */
    X_DEV = 1 << 14,     /* /dev tmpfs with 6 nodes and 4 links */
    X_PROC = 1 << 15,    /* proc, subset=pid */
    X_RO = 1 << 16,      /* writable binds of /box, /tmp, then the root remounted read-only */
    X_PIVOT = 1 << 17,   /* pivot_root(".", ".") + umount2(".", MNT_DETACH) */
    X_HOST = 1 << 18,    /* sethostname */
    X_INIT = 1 << 19,    /* PID 1 forks the payload and reaps it */
    X_CAPS = 1 << 20,    /* bounding set, setresgid/uid, capset 0, ambient clear */
    X_NNP = 1 << 21,
    X_LANDLOCK = 1 << 22,
    X_SEC_LIN = 1 << 23, X_SEC_TREE = 1 << 24, X_SEC_FILE = 1 << 25,
    X_NOTIFY = 1 << 26,  /* NEW_LISTENER: the listener sent to the launcher, payload waits for its ack */
    X_CGLEAF = 1 << 27,  /* leaf per run: mkdir, limits, join fds; join in the payload; rmdir */
    X_OUTER = 1 << 28,   /* a launcher process per run (fork) in front of the clone */
    X_NETPRE = 1 << 29,  /* network namespace (with lo up) made before the run, entered around clone */
    X_FORK = 1 << 30,    /* plain fork() instead of clone3 (the bare row) */
};
#define X_CGPRE (1ull << 31) /* the leaf (mkdir, limits, join fds) made before the run, removed after */
#define X_BWRAP (1ull << 32) /* not us: Debian's bwrap --unshare-all (-W PATH), the target's yardstick */
#define NS_ALL (X_USER | X_PID | X_MNT | X_NET | X_IPC | X_UTS | X_CGNS | X_TIME)
#define MOUNTS (X_SLAVE | X_OVERLAY | X_USR | X_DEV | X_PROC | X_RO | X_PIVOT)
#define STRICT_SEC (X_SEC_FILE | X_NOTIFY)
#define ALL (NS_ALL | X_MAPS | X_LO | MOUNTS | X_HOST | X_INIT | X_CAPS | X_NNP | X_LANDLOCK | X_CGLEAF)

struct row {
    const char *name;
    uint64_t var, base;
    int in_floor;     /* part of strict's sum */
    int absolute;     /* base unused: the variant's own time */
    int need_file;    /* needs -B */
    const char *what; /* the baseline, in words */
};

/* ALL uses strict's own filter (with its listener) when -B is given, else the tree. */
static struct row ROWS[] = {
    {"bare", X_FORK, 0, 0, 1, 0, "fork+exec+wait, no errpipe"},
    {"clone3", 0, 0, 1, 1, 0, "clone3(SIGCHLD)+errpipe+exec+wait"},
    {"ns:user", X_USER, 0, 0, 0, 0, "clone3"},
    {"ns:pid", X_PID, 0, 0, 0, 0, "clone3"},
    {"ns:mount", X_MNT, 0, 0, 0, 0, "clone3"},
    {"ns:net", X_NET, 0, 0, 0, 0, "clone3"},
    {"ns:ipc", X_IPC, 0, 0, 0, 0, "clone3"},
    {"ns:uts", X_UTS, 0, 0, 0, 0, "clone3"},
    {"ns:cgroup", X_CGNS, 0, 0, 0, 0, "clone3"},
    {"ns:time", X_TIME, 0, 0, 0, 0, "clone3"},
    {"ns:all8+maps", NS_ALL | X_MAPS, 0, 1, 0, 0, "clone3"},
    {"idmaps", X_USER | X_MAPS, X_USER, 0, 0, 0, "user ns"},
    {"net+lo", X_NET | X_LO, 0, 0, 0, 0, "clone3"},
    {"lo-up", X_NET | X_LO, X_NET, 1, 0, 0, "net ns"},
    {"mount-slave", X_MNT | X_SLAVE, X_MNT, 1, 0, 0, "mount ns"},
    {"tmpfs", X_MNT | X_SLAVE | X_TMPFS, X_MNT | X_SLAVE, 0, 0, 0, "mount ns, slave"},
    {"overlay", X_MNT | X_SLAVE | X_OVERLAY, X_MNT | X_SLAVE, 1, 0, 0, "mount ns, slave"},
    {"usr-bind", X_MNT | X_SLAVE | X_OVERLAY | X_USR, X_MNT | X_SLAVE | X_OVERLAY, 1, 0, 0, "+overlay"},
    {"dev", X_MNT | X_SLAVE | X_OVERLAY | X_DEV, X_MNT | X_SLAVE | X_OVERLAY, 1, 0, 0, "+overlay"},
    {"proc", X_PID | X_MNT | X_SLAVE | X_OVERLAY | X_PROC, X_PID | X_MNT | X_SLAVE | X_OVERLAY, 1, 0, 0,
     "pid+mount ns, overlay"},
    {"root-ro", X_MNT | X_SLAVE | X_OVERLAY | X_RO, X_MNT | X_SLAVE | X_OVERLAY, 1, 0, 0, "+overlay"},
    {"pivot", X_MNT | X_SLAVE | X_OVERLAY | X_USR | X_PIVOT, X_MNT | X_SLAVE | X_OVERLAY | X_USR, 1, 0, 0,
     "+overlay, /usr"},
    {"hostname", X_UTS | X_HOST, X_UTS, 1, 0, 0, "uts ns"},
    {"caps", X_USER | X_MAPS | X_CAPS, X_USER | X_MAPS, 1, 0, 0, "user ns+maps"},
    {"nnp", X_NNP, 0, 1, 0, 0, "clone3"},
    {"seccomp:linear", X_NNP | X_SEC_LIN, X_NNP, 0, 0, 0, "nnp"},
    {"seccomp:tree", X_NNP | X_SEC_TREE, X_NNP, 0, 0, 0, "nnp"},
    {"seccomp:strict", X_NNP | X_SEC_FILE, X_NNP, 0, 0, 1, "nnp"},
    {"seccomp:strict+listener", X_NNP | STRICT_SEC, X_NNP, 1, 0, 1, "nnp"},
    {"landlock", X_NNP | X_LANDLOCK, X_NNP, 1, 0, 0, "nnp"},
    {"cgroup-leaf", X_CGLEAF, 0, 1, 0, 0, "clone3"},
    {"init+payload", X_PID | X_INIT, X_PID, 1, 0, 0, "pid ns"},
    {"all", ALL, 0, 0, 1, 0, "all layers, resident launcher"},
    {"all:netpre", (ALL & ~(X_NET | X_LO)) | X_NETPRE, 0, 0, 1, 0, "net ns prepared ahead"},
    {"all:outer", ALL | X_OUTER, 0, 0, 1, 0, "a launcher process per run"},
    {"all:ahead", (ALL & ~(X_NET | X_LO)) | X_NETPRE | X_CGPRE, 0, 0, 1, 0, "net ns and cgroup leaf made ahead"},
    /* all layers against bwrap, run by run: the target's ratio with the least drift between them */
    {"bwrap", X_BWRAP, 0, 0, 1, 0, "bwrap --unshare-all, ro /usr (-W)"},
    {"all/bwrap", ALL, X_BWRAP, 0, 0, 0, "bwrap, run by run"},
    {"all:ahead/bwrap", (ALL & ~(X_NET | X_LO)) | X_NETPRE | X_CGPRE, X_BWRAP, 0, 0, 0, "bwrap, run by run"},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

/* ---- configuration gathered at start ---- */
static char g_dir[128], g_image[160], g_staging[160], g_tstage[160];
static int g_imagefd = -1;
static struct sock_fprog g_lin, g_tree, g_file;
static int g_have_file;
static int g_ll_abi;
static int g_last_cap;
static const uint32_t HOST_ID = 1999000000u; /* the run's host uid/gid (unused by anyone here) */
static const uint32_t INNER_ID = 1000;
static int g_cg_v2;
static char g_cg_dirs[16][256];
static int g_ncg;
static char g_cpuset_cpus[256], g_cpuset_mems[256];
static int g_cg_cpuset = -1;
static char g_err[512];
static unsigned long g_seq;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void seterr(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t len = (ssize_t)strlen(text), w = write(fd, text, len);
    int e = errno;
    close(fd);
    errno = e;
    return w == len ? 0 : -1;
}

static int read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t r = read(fd, buf, size - 1);
    close(fd);
    if (r < 0) return -1;
    buf[r] = 0;
    while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == ' ')) buf[--r] = 0;
    return 0;
}

/* ---- child-side error reporting: a message down the errpipe, then exit 111 ---- */
static int g_errfd = -1;
static void __attribute__((noreturn)) child_fail(const char *step) {
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%s: %s", step, strerror(errno));
    if (g_errfd >= 0 && write(g_errfd, msg, n) < 0) {}
    _exit(111);
}
#define CHK(expr, step) do { if ((expr) < 0) child_fail(step); } while (0)

/* ---- seccomp programs ---- */
static uint32_t g_nrs[1024];
static int g_nnrs;

static struct sock_filter *emit;
static int emit_n, emit_cap;
static void put(struct sock_filter f) {
    if (emit_n == emit_cap) {
        emit_cap = emit_cap ? emit_cap * 2 : 512;
        emit = realloc(emit, emit_cap * sizeof *emit);
        if (!emit) { perror("realloc"); exit(3); }
    }
    emit[emit_n++] = f;
}
static void prologue(void) {
    put((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
    put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    put((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1)); /* x32 */
    put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
}
static struct sock_fprog finish(void) {
    struct sock_fprog p = {.len = (unsigned short)emit_n, .filter = emit};
    emit = NULL;
    emit_n = emit_cap = 0;
    return p;
}
/* Linear: one JEQ and one RET ALLOW per syscall, in ascending order. */
static struct sock_fprog build_linear(void) {
    prologue();
    for (int i = 0; i < g_nnrs; i++) {
        put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, g_nrs[i], 0, 1));
        put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    return finish();
}
/* Binary search over the sorted numbers: JGE splits with a JA to the upper half
 * (32-bit offset, so any size works), a short JEQ chain at the leaves. */
static void tree(int lo, int hi) {
    if (hi - lo <= 4) {
        for (int i = lo; i < hi; i++) {
            put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, g_nrs[i], 0, 1));
            put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        }
        put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
        return;
    }
    int mid = (lo + hi) / 2;
    put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, g_nrs[mid], 0, 1));
    int ja = emit_n;
    put((struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0));
    tree(lo, mid);
    emit[ja].k = (uint32_t)(emit_n - ja - 1);
    tree(mid, hi);
}
static struct sock_fprog build_tree(void) {
    prologue();
    tree(0, g_nnrs);
    return finish();
}
static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- a run ---- */
struct prep {
    int upper, root, usr, dev, tmpfs;
    int cg_join[16];
    char cg_leaf[16][300];
    int ncg;
    int netns, hostnet;
    int cg_borrowed; /* the leaf belongs to g_cgpre: made before the run, removed after it */
};
static struct prep g_cgpre;

static int make_tmpfs(const char *size, const char *inodes, const char *mode, unsigned attrs) {
    int fs = sys_fsopen("tmpfs");
    if (fs < 0) return -1;
    if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "size", size) < 0 ||
        sys_fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", inodes) < 0 ||
        sys_fsconfig(fs, FSCONFIG_SET_STRING, "mode", mode) < 0 ||
        sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL) < 0) {
        int e = errno;
        close(fs);
        errno = e;
        return -1;
    }
    int m = sys_fsmount(fs, attrs);
    int e = errno;
    close(fs);
    errno = e;
    return m;
}

/* The run's leaf in each hierarchy: mkdir, cpuset copied, limits, join fds. */
static int cg_make(struct prep *p) {
    char buf[400];
    g_seq++;
    {
        for (int i = 0; i < g_ncg; i++) {
            snprintf(p->cg_leaf[i], sizeof p->cg_leaf[i], "%s/floor-%d-%lu", g_cg_dirs[i], getpid(), g_seq);
            if (mkdir(p->cg_leaf[i], 0755) < 0) { seterr("mkdir %s: %s", p->cg_leaf[i], strerror(errno)); return -1; }
            p->ncg = i + 1;
            if (i == g_cg_cpuset) {
                snprintf(buf, sizeof buf, "%s/cpuset.cpus", p->cg_leaf[i]);
                if (write_file(buf, g_cpuset_cpus) < 0) { seterr("%s: %s", buf, strerror(errno)); return -1; }
                snprintf(buf, sizeof buf, "%s/cpuset.mems", p->cg_leaf[i]);
                if (write_file(buf, g_cpuset_mems) < 0) { seterr("%s: %s", buf, strerror(errno)); return -1; }
            }
            /* limits, where this hierarchy has them (strict: 256M, 64 tasks) */
            const char *lim[][2] = {{"memory.limit_in_bytes", "268435456"}, {"memory.memsw.limit_in_bytes", "268435456"},
                                    {"memory.max", "268435456"}, {"memory.swap.max", "0"}, {"pids.max", "64"}};
            for (size_t k = 0; k < sizeof lim / sizeof lim[0]; k++) {
                snprintf(buf, sizeof buf, "%s/%s", p->cg_leaf[i], lim[k][0]);
                if (access(buf, F_OK) == 0 && write_file(buf, lim[k][1]) < 0) {
                    seterr("%s: %s", buf, strerror(errno));
                    return -1;
                }
            }
            snprintf(buf, sizeof buf, "%s/%s", p->cg_leaf[i], g_cg_v2 ? "cgroup.procs" : "tasks");
            p->cg_join[i] = open(buf, O_WRONLY | O_CLOEXEC);
            if (p->cg_join[i] < 0) { seterr("%s: %s", buf, strerror(errno)); return -1; }
        }
    }
    return 0;
}

/* Before the clone, in the initial user namespace: leaf, detached mounts. */
static int prepare(uint64_t f, struct prep *p) {
    memset(p, 0, sizeof *p);
    p->upper = p->root = p->usr = p->dev = p->tmpfs = p->netns = p->hostnet = -1;
    if ((f & X_CGLEAF) && (f & X_CGPRE)) {
        memcpy(p->cg_join, g_cgpre.cg_join, sizeof p->cg_join);
        memcpy(p->cg_leaf, g_cgpre.cg_leaf, sizeof p->cg_leaf);
        p->ncg = g_cgpre.ncg;
        p->cg_borrowed = 1;
    } else if ((f & X_CGLEAF) && cg_make(p) < 0) {
        return -1;
    }
    if (f & X_OVERLAY) {
        p->upper = make_tmpfs("64m", "16384", "755", 0);
        if (p->upper < 0) { seterr("upper tmpfs: %s", strerror(errno)); return -1; }
        const char *dirs[] = {"upper", "work", "upper/box", "upper/tmp", "upper/proc", "upper/dev"};
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
            if (mkdirat(p->upper, dirs[i], 0755) < 0) { seterr("mkdirat %s: %s", dirs[i], strerror(errno)); return -1; }
        if (fchmodat(p->upper, "upper/tmp", 01777, 0) < 0 || fchownat(p->upper, "upper/box", HOST_ID, HOST_ID, 0) < 0) {
            seterr("upper: %s", strerror(errno));
            return -1;
        }
        int ovl = sys_fsopen("overlay");
        char lower[64], upper[64], work[64];
        snprintf(lower, sizeof lower, "/proc/self/fd/%d", g_imagefd);
        snprintf(upper, sizeof upper, "/proc/self/fd/%d/upper", p->upper);
        snprintf(work, sizeof work, "/proc/self/fd/%d/work", p->upper);
        if (ovl < 0 || sys_fsconfig(ovl, FSCONFIG_SET_STRING, "lowerdir", lower) < 0 ||
            sys_fsconfig(ovl, FSCONFIG_SET_STRING, "upperdir", upper) < 0 ||
            sys_fsconfig(ovl, FSCONFIG_SET_STRING, "workdir", work) < 0) {
            seterr("overlay config: %s", strerror(errno));
            return -1;
        }
        if (sys_fsconfig(ovl, FSCONFIG_CMD_CREATE, NULL, NULL) < 0) {
            seterr("overlay create (detached upper): %s", strerror(errno));
            close(ovl);
            return -1;
        }
        p->root = sys_fsmount(ovl, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        close(ovl);
        if (p->root < 0) { seterr("overlay fsmount: %s", strerror(errno)); return -1; }
    }
    if (f & X_USR) {
        p->usr = sys_open_tree("/usr", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (p->usr < 0 || sys_setattr(p->usr, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) < 0) {
            seterr("/usr clone: %s", strerror(errno));
            return -1;
        }
    }
    if (f & X_DEV) {
        p->dev = make_tmpfs("64k", "64", "755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        if (p->dev < 0) { seterr("/dev tmpfs: %s", strerror(errno)); return -1; }
        static const struct { const char *n; int ma, mi; } nodes[] = {
            {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
        for (size_t i = 0; i < 6; i++) {
            if (mknodat(p->dev, nodes[i].n, S_IFCHR | 0666, makedev(nodes[i].ma, nodes[i].mi)) < 0 ||
                fchmodat(p->dev, nodes[i].n, 0666, 0) < 0) {
                seterr("mknod %s: %s", nodes[i].n, strerror(errno));
                return -1;
            }
        }
        static const char *links[][2] = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
                                         {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
        for (size_t i = 0; i < 4; i++)
            if (symlinkat(links[i][0], p->dev, links[i][1]) < 0) { seterr("symlink: %s", strerror(errno)); return -1; }
    }
    if (f & X_TMPFS) {
        p->tmpfs = make_tmpfs("64m", "16384", "1777", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (p->tmpfs < 0) { seterr("tmpfs: %s", strerror(errno)); return -1; }
    }
    return 0;
}

static void cg_remove(struct prep *p);

static void release(struct prep *p) {
    int fds[] = {p->upper, p->root, p->usr, p->dev, p->tmpfs};
    for (size_t i = 0; i < 5; i++)
        if (fds[i] >= 0) close(fds[i]);
    if (!p->cg_borrowed) cg_remove(p);
}

static void cg_remove(struct prep *p) {
    for (int i = 0; i < p->ncg; i++) {
        if (p->cg_join[i] > 0) close(p->cg_join[i]);
        if (rmdir(p->cg_leaf[i]) < 0 && errno != ENOENT) {
            /* a leaf still busy: try again shortly (the task's exit is being accounted) */
            for (int k = 0; k < 100 && rmdir(p->cg_leaf[i]) < 0 && errno == EBUSY; k++) usleep(100);
        }
    }
}

static void lo_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHK(s, "socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    CHK(ioctl(s, SIOCGIFFLAGS, &ifr), "SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    CHK(ioctl(s, SIOCSIFFLAGS, &ifr), "SIOCSIFFLAGS lo");
    close(s);
}

static void send_fd(int sock, int fd) {
    char c = 'L';
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c1 = CMSG_FIRSTHDR(&m);
    c1->cmsg_level = SOL_SOCKET;
    c1->cmsg_type = SCM_RIGHTS;
    c1->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c1), &fd, sizeof fd);
    CHK(sendmsg(sock, &m, 0), "sendmsg listener");
}

static int recv_fd(int sock) {
    char c;
    struct iovec iov = {.iov_base = &c, .iov_len = 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) <= 0) return -1;
    struct cmsghdr *c1 = CMSG_FIRSTHDR(&m);
    if (!c1 || c1->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c1), sizeof fd);
    return fd;
}

static void landlock(uint64_t f) {
    uint64_t fs = (1ULL << 13) - 1; /* ABI 1: 13 rights */
    if (g_ll_abi >= 2) fs |= LL_REFER;
    if (g_ll_abi >= 3) fs |= LL_TRUNCATE;
    if (g_ll_abi >= 5) fs |= LL_IOCTL_DEV;
    struct ll_ruleset_attr attr = {.handled_access_fs = fs};
    if (g_ll_abi >= 4) attr.handled_access_net = 3;   /* bind, connect TCP */
    if (g_ll_abi >= 6) attr.scoped = 3;               /* abstract unix sockets, signals */
    size_t size = g_ll_abi >= 6 ? sizeof attr : g_ll_abi >= 4 ? 16 : 8;
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    CHK(rs, "landlock_create_ruleset");
    uint64_t file = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | (g_ll_abi >= 3 ? LL_TRUNCATE : 0);
    struct { const char *path; uint64_t access; } rules[] = {
        {"/", LL_EXECUTE | LL_READ_FILE | LL_READ_DIR},
        {"/box", fs & ~(LL_MAKE_CHAR | LL_MAKE_BLOCK | LL_IOCTL_DEV)},
        {"/tmp", fs & ~(LL_MAKE_CHAR | LL_MAKE_BLOCK | LL_IOCTL_DEV)},
        {"/dev/null", file | (g_ll_abi >= 5 ? LL_IOCTL_DEV : 0)},
        {"/dev/zero", LL_READ_FILE},
        {"/dev/urandom", LL_READ_FILE},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (!(f & X_PIVOT) && (i == 1)) continue; /* no /box on the host */
        int fd = open(rules[i].path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT) continue;
            child_fail("landlock open");
        }
        struct ll_path_beneath pb = {.allowed_access = rules[i].access, .parent_fd = fd};
        CHK(syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0), "landlock_add_rule");
        close(fd);
    }
    CHK(syscall(SYS_landlock_restrict_self, rs, 0), "landlock_restrict_self");
    close(rs);
}

/* The payload: the last steps, then execve. */
static void __attribute__((noreturn)) payload(uint64_t f, struct prep *p, int sock) {
    static char *const argv[] = {"/bin/true", NULL};
    static char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
    if (f & X_NNP) CHK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
    if (f & X_CAPS)
        for (int c = 0; c <= g_last_cap; c++) CHK(prctl(PR_CAPBSET_DROP, c, 0, 0, 0), "capbset_drop");
    if (f & X_CGLEAF) {
        for (int i = 0; i < p->ncg; i++) CHK(write(p->cg_join[i], "0", 1), "cgroup join");
        if (f & X_CGNS) CHK(unshare(CLONE_NEWCGROUP), "unshare cgroupns");
    }
    if (f & X_CAPS) {
        uint32_t id = (f & X_MAPS) ? INNER_ID : HOST_ID;
        CHK(setresgid(id, id, id), "setresgid");
        CHK(setresuid(id, id, id), "setresuid");
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof d);
        CHK(syscall(SYS_capset, &h, d), "capset");
        CHK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient");
    }
    if (f & X_LANDLOCK) landlock(f);
    if (f & (X_SEC_LIN | X_SEC_TREE | X_SEC_FILE)) {
        struct sock_fprog *prog = (f & X_SEC_LIN) ? &g_lin : (f & X_SEC_TREE) ? &g_tree : &g_file;
        unsigned flags = (f & X_NOTIFY) ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
        int r = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
        CHK(r, "seccomp");
        if (f & X_NOTIFY) {
            send_fd(sock, r);
            close(r);
            char ack;
            if (read(sock, &ack, 1) != 1) child_fail("listener ack");
        }
    }
    execve(argv[0], argv, envp);
    child_fail("execve /bin/true");
}

/* The container's first process (PID 1 with X_PID): mounts, hostname, lo, then the payload. */
static void __attribute__((noreturn)) init(uint64_t f, struct prep *p, int syncfd, int sock) {
    if (f & X_MAPS) {
        char c;
        if (read(syncfd, &c, 1) != 1) child_fail("wait for id maps");
    }
    if (syncfd >= 0) close(syncfd);
    if (f & X_SLAVE) CHK(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL), "mount / rslave");
    if (f & X_TMPFS) CHK(sys_move(p->tmpfs, g_tstage), "move tmpfs");
    if (f & X_OVERLAY) {
        char path[300];
        CHK(sys_move(p->root, g_staging), "move overlay root");
        if (f & X_RO) {
            const char *w[] = {"/box", "/tmp"};
            for (int i = 0; i < 2; i++) {
                snprintf(path, sizeof path, "%s%s", g_staging, w[i]);
                CHK(mount(path, path, NULL, MS_BIND, NULL), "bind writable");
            }
        }
        if (f & X_USR) {
            snprintf(path, sizeof path, "%s/usr", g_staging);
            CHK(sys_move(p->usr, path), "move /usr");
        }
        if (f & X_DEV) {
            snprintf(path, sizeof path, "%s/dev", g_staging);
            CHK(sys_move(p->dev, path), "move /dev");
        }
        if (f & X_PROC) {
            snprintf(path, sizeof path, "%s/proc", g_staging);
            CHK(mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid"), "mount proc");
        }
        if (f & X_RO)
            CHK(mount(NULL, g_staging, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
                "remount root ro");
        if (f & X_PIVOT) {
            CHK(chdir(g_staging), "chdir staging");
            CHK(syscall(SYS_pivot_root, ".", "."), "pivot_root");
            CHK(umount2(".", MNT_DETACH), "umount old root");
            CHK(chdir("/"), "chdir /");
        }
    }
    if (f & X_HOST) CHK(sethostname("sandbox", 7), "sethostname");
    if (f & X_LO) lo_up();
    if (!(f & X_INIT)) payload(f, p, sock);
    pid_t pid = fork();
    CHK(pid, "fork payload");
    if (pid == 0) payload(f, p, sock);
    close(g_errfd); /* EOF for the launcher once the payload has exec'd */
    g_errfd = -1;
    int st;
    if (waitpid(pid, &st, 0) < 0) _exit(112);
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static int write_maps(pid_t pid) {
    char path[64], map[64];
    snprintf(map, sizeof map, "%u %u 1\n", INNER_ID, HOST_ID);
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    if (write_file(path, map) < 0) return -1;
    snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
    if (write_file(path, "deny") < 0) return -1;
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    return write_file(path, map);
}

static int g_netpre = -1, g_hostnet = -1;

/* A fresh network namespace with lo up, for one run (X_NETPRE): made by a helper
 * process that unshares, brings lo up and is killed once we hold the fd. */
static int netpre(uint64_t f) {
    if (!(f & X_NETPRE)) return 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) { seterr("pipe: %s", strerror(errno)); return -1; }
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNET) < 0) _exit(1);
        g_errfd = -1;
        lo_up();
        if (write(p[1], "r", 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    close(p[1]);
    char c, path[64];
    int ok = read(p[0], &c, 1) == 1;
    close(p[0]);
    snprintf(path, sizeof path, "/proc/%d/ns/net", pid);
    if (ok) g_netpre = open(path, O_RDONLY | O_CLOEXEC);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (g_netpre < 0) { seterr("prepared net namespace failed"); return -1; }
    return 0;
}

static void netpre_done(void) {
    if (g_netpre >= 0) close(g_netpre);
    g_netpre = -1;
}

/* What a run with X_NETPRE / X_CGPRE finds made ahead of it, outside the timed
 * part (a real launcher makes these while no run waits; each serves one run). */
static int ahead(uint64_t f) {
    memset(&g_cgpre, 0, sizeof g_cgpre);
    if ((f & X_CGPRE) && cg_make(&g_cgpre) < 0) return -1;
    return netpre(f);
}

static void ahead_done(void) {
    netpre_done();
    cg_remove(&g_cgpre);
    g_cgpre.ncg = 0;
}

static const char *g_bwrap; /* -W */

/* One run; 0 when /bin/true ran and exited 0, else -1 with g_err set. */
static int run_once(uint64_t f) {
    static char *const argv[] = {"/bin/true", NULL};
    char *bw[] = {(char *)g_bwrap, "--unshare-all", "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
                  "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "/usr/bin/true", NULL};
    if (f & (X_FORK | X_BWRAP)) {
        pid_t pid = fork();
        if (pid < 0) { seterr("fork: %s", strerror(errno)); return -1; }
        if (pid == 0) {
            if (f & X_BWRAP) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 2);
                execv(bw[0], bw);
            } else {
                execv(argv[0], argv);
            }
            _exit(127);
        }
        int st;
        if (waitpid(pid, &st, 0) < 0 || st != 0) {
            seterr("%s: status 0x%x", (f & X_BWRAP) ? "bwrap" : "bare run", st);
            return -1;
        }
        return 0;
    }
    if (f & X_OUTER) {
        int ep[2];
        if (pipe2(ep, O_CLOEXEC) < 0) { seterr("pipe: %s", strerror(errno)); return -1; }
        pid_t pid = fork();
        if (pid < 0) { seterr("fork: %s", strerror(errno)); return -1; }
        if (pid == 0) {
            close(ep[0]);
            int rc = run_once(f & ~X_OUTER);
            if (rc < 0 && write(ep[1], g_err, strlen(g_err)) < 0) {}
            _exit(rc < 0 ? 1 : 0);
        }
        close(ep[1]);
        ssize_t n = read(ep[0], g_err, sizeof g_err - 1);
        close(ep[0]);
        int st;
        if (waitpid(pid, &st, 0) < 0 || st != 0) {
            if (n > 0) g_err[n] = 0; else seterr("outer: status %d", st);
            return -1;
        }
        return 0;
    }
    struct prep p;
    int rc = -1, sync[2] = {-1, -1}, ep[2] = {-1, -1}, sp[2] = {-1, -1}, listener = -1;
    if (prepare(f, &p) < 0) goto out;
    if (pipe2(ep, O_CLOEXEC) < 0 || ((f & X_MAPS) && pipe2(sync, O_CLOEXEC) < 0) ||
        ((f & X_NOTIFY) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)) {
        seterr("pipes: %s", strerror(errno));
        goto out;
    }
    if ((f & X_NETPRE) && setns(g_netpre, CLONE_NEWNET) < 0) { seterr("setns net: %s", strerror(errno)); goto out; }
    uint64_t nsflags = f & NS_ALL;
    uint64_t cf = 0;
    if (nsflags & X_USER) cf |= CLONE_NEWUSER;
    if (nsflags & X_PID) cf |= CLONE_NEWPID;
    if (nsflags & X_MNT) cf |= CLONE_NEWNS;
    if (nsflags & X_NET) cf |= CLONE_NEWNET;
    if (nsflags & X_IPC) cf |= CLONE_NEWIPC;
    if (nsflags & X_UTS) cf |= CLONE_NEWUTS;
    if ((nsflags & X_CGNS) && !(f & X_CGLEAF)) cf |= CLONE_NEWCGROUP; /* else after the join */
    if (nsflags & X_TIME) cf |= CLONE_NEWTIME;
    struct clone_args_v0 ca = {.flags = cf, .exit_signal = SIGCHLD};
    pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
    if (pid == 0) {
        g_errfd = ep[1];
        if (sync[1] >= 0) close(sync[1]);
        if (sp[0] >= 0) close(sp[0]);
        init(f, &p, sync[0], sp[1]);
    }
    int clone_errno = errno;
    if ((f & X_NETPRE) && setns(g_hostnet, CLONE_NEWNET) < 0) {
        perror("setns back to the host's net namespace");
        exit(3);
    }
    if (pid < 0) { seterr("clone3: %s", strerror(clone_errno)); goto out; }
    close(ep[1]);
    ep[1] = -1;
    if (f & X_MAPS) {
        close(sync[0]);
        sync[0] = -1;
        if (write_maps(pid) < 0) seterr("id maps: %s", strerror(errno));
        else if (write(sync[1], "m", 1) != 1) seterr("sync: %s", strerror(errno));
        close(sync[1]);
        sync[1] = -1;
    }
    if (f & X_NOTIFY) {
        close(sp[1]);
        sp[1] = -1;
        listener = recv_fd(sp[0]);
        if (listener >= 0 && write(sp[0], "k", 1) != 1) {}
    }
    char msg[256];
    ssize_t n = -1;
    struct pollfd pfd = {.fd = ep[0], .events = POLLIN};
    if (poll(&pfd, 1, 10000) == 1) n = read(ep[0], msg, sizeof msg - 1); /* EOF: exec'd (or died) */
    else kill(pid, SIGKILL); /* e.g. a syscall waiting on a listener nobody answers */
    int st;
    if (waitpid(pid, &st, 0) < 0) { seterr("waitpid: %s", strerror(errno)); goto out; }
    if (n < 0) {
        seterr("timed out (10 s) before the exec");
    } else if (n > 0) {
        msg[n] = 0;
        seterr("%s", msg);
    } else if (st != 0) {
        seterr("run: status 0x%x", st);
    } else if ((f & X_NOTIFY) && listener < 0) {
        seterr("no listener received");
    } else {
        rc = 0;
    }
out:;
    int fds[] = {sync[0], sync[1], ep[0], ep[1], sp[0], sp[1], listener};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) close(fds[i]);
    release(&p);
    return rc;
}

/* ---- set-up ---- */
/* Everything setup_image made under DIR (only names we make; unlink/rmdir, never recursive). */
static void remove_dir_tree(const char *dir) {
    char path[300];
    const char *top[] = {"t", "root"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, top[i]);
        rmdir(path);
    }
    const char *names[] = {"bin", "sbin", "lib", "lib64", "lib32", "libx32"};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/image/%s", dir, names[i]);
        unlink(path);
    }
    const char *dirs[] = {"usr", "proc", "dev", "box", "tmp", "etc"};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/image/%s", dir, dirs[i]);
        rmdir(path);
    }
    snprintf(path, sizeof path, "%s/image", dir);
    rmdir(path);
    rmdir(dir);
}

static void cleanup_dirs(void) { remove_dir_tree(g_dir); }

static int dead(long pid) { return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH; }

/* What an earlier harness killed mid-run left: its /run directory and its leaves
 * (its mounts lived in its own mount namespace and went with it). */
static void sweep_stale(void) {
    DIR *d = opendir("/run");
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d))) {
        long pid;
        char tail;
        if (sscanf(e->d_name, "sbxbench-floor-%ld%c", &pid, &tail) == 1 && dead(pid)) {
            snprintf(path, sizeof path, "/run/%s", e->d_name);
            remove_dir_tree(path);
        }
    }
    if (d) closedir(d);
    for (int i = 0; i < g_ncg; i++) {
        d = opendir(g_cg_dirs[i]);
        while (d && (e = readdir(d))) {
            long pid;
            unsigned long seq;
            char tail;
            if (sscanf(e->d_name, "floor-%ld-%lu%c", &pid, &seq, &tail) == 2 && dead(pid))
                unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        }
        if (d) closedir(d);
    }
}

static int setup_image(void) {
    snprintf(g_dir, sizeof g_dir, "/run/sbxbench-floor-%d", getpid());
    snprintf(g_image, sizeof g_image, "%s/image", g_dir);
    snprintf(g_staging, sizeof g_staging, "%s/root", g_dir);
    snprintf(g_tstage, sizeof g_tstage, "%s/t", g_dir);
    if (mkdir(g_dir, 0700) < 0 || mkdir(g_image, 0755) < 0 || mkdir(g_staging, 0755) < 0 || mkdir(g_tstage, 0755) < 0)
        return -1;
    const char *dirs[] = {"usr", "proc", "dev", "box", "tmp", "etc"};
    char path[200], target[200];
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", g_image, dirs[i]);
        if (mkdir(path, 0755) < 0) return -1;
    }
    /* merged-usr links as the host has them (e.g. /lib64 -> usr/lib64) */
    const char *names[] = {"bin", "sbin", "lib", "lib64", "lib32", "libx32"};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "/%s", names[i]);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        snprintf(path, sizeof path, "%s/%s", g_image, names[i]);
        if (symlink(target, path) < 0) return -1;
    }
    g_imagefd = open(g_image, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return g_imagefd < 0 ? -1 : 0;
}

/* The leaves' parents: this process's own cgroup in each v1 hierarchy with a
 * controller (name=systemd skipped), or the v2 one when there are none. */
static void setup_cgroups(const char *parent) {
    FILE *fp = fopen("/proc/self/cgroup", "r");
    char line[512];
    char v2path[400] = "";
    while (fp && fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c1 = *c2 = 0;
        const char *ctrls = c1 + 1, *path = parent ? parent : c2 + 1;
        if (!*ctrls) {
            snprintf(v2path, sizeof v2path, "%s", path);
            continue;
        }
        if (!strncmp(ctrls, "name=", 5) || g_ncg >= 16) continue;
        char first[64];
        snprintf(first, sizeof first, "%s", ctrls);
        first[strcspn(first, ",")] = 0;
        snprintf(g_cg_dirs[g_ncg], sizeof g_cg_dirs[g_ncg], "/sys/fs/cgroup/%s%s", first,
                 strcmp(path, "/") ? path : "");
        struct stat sb;
        if (stat(g_cg_dirs[g_ncg], &sb) < 0) {
            /* hierarchies mounted as cpu,cpuacct: try the combined name */
            snprintf(g_cg_dirs[g_ncg], sizeof g_cg_dirs[g_ncg], "/sys/fs/cgroup/%s%s", ctrls,
                     strcmp(path, "/") ? path : "");
            if (stat(g_cg_dirs[g_ncg], &sb) < 0) continue;
        }
        if (strstr(ctrls, "cpuset")) {
            char buf[400];
            g_cg_cpuset = g_ncg;
            snprintf(buf, sizeof buf, "%s/cpuset.cpus", g_cg_dirs[g_ncg]);
            read_file(buf, g_cpuset_cpus, sizeof g_cpuset_cpus);
            snprintf(buf, sizeof buf, "%s/cpuset.mems", g_cg_dirs[g_ncg]);
            read_file(buf, g_cpuset_mems, sizeof g_cpuset_mems);
        }
        g_ncg++;
    }
    if (fp) fclose(fp);
    if (g_ncg == 0 && v2path[0]) {
        g_cg_v2 = 1;
        snprintf(g_cg_dirs[0], sizeof g_cg_dirs[0], "/sys/fs/cgroup%s", strcmp(v2path, "/") ? v2path : "");
        g_ncg = 1;
    }
}

static int load_nrs(const char *file) {
    if (!file) {
        for (uint32_t i = 0; i < 192; i++) g_nrs[g_nnrs++] = i;
        const uint32_t more[] = {218, 231, 257, 262, 273, 302, 318, 334};
        for (size_t i = 0; i < 8; i++) g_nrs[g_nnrs++] = more[i];
        return 0;
    }
    FILE *fp = fopen(file, "r");
    if (!fp) return -1;
    unsigned v;
    while (g_nnrs < 1024 && fscanf(fp, "%u", &v) == 1) g_nrs[g_nnrs++] = v;
    fclose(fp);
    qsort(g_nrs, g_nnrs, sizeof g_nrs[0], cmp_u32);
    return g_nnrs ? 0 : -1;
}

static int load_bpf(const char *file) {
    FILE *fp = fopen(file, "rb");
    if (!fp) return -1;
    static struct sock_filter prog[4096];
    size_t n = fread(prog, sizeof prog[0], 4096, fp);
    fclose(fp);
    if (n == 0) return -1;
    g_file.len = (unsigned short)n;
    g_file.filter = prog;
    g_have_file = 1;
    return 0;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}
static long long pct(long long *v, int n, int p) {
    qsort(v, n, sizeof *v, cmp_ll);
    int i = (int)((p / 100.0) * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int main(int argc, char **argv) {
    int runs = 100, rounds = 5, opt, list = 0, raw = 0;
    const char *nrs_file = NULL, *bpf_file = NULL, *cg_parent = NULL, *only = NULL;
    while ((opt = getopt(argc, argv, "n:r:S:B:c:o:lRW:")) != -1) {
        switch (opt) {
        case 'n': runs = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'S': nrs_file = optarg; break;
        case 'B': bpf_file = optarg; break;
        case 'c': cg_parent = optarg; break;
        case 'o': only = optarg; break;
        case 'l': list = 1; break;
        case 'R': raw = 1; break;
        case 'W': g_bwrap = optarg; break;
        default:
            fprintf(stderr, "usage: floor [-n RUNS] [-r ROUNDS] [-S NRS] [-B BPF] [-c CGPARENT] [-o ROWS] [-l] [-R] [-W BWRAP]\n");
            return 64;
        }
    }
    if (list) {
        for (size_t i = 0; i < NROWS; i++) printf("%s\t%s\n", ROWS[i].name, ROWS[i].what);
        return 0;
    }
    if (runs < 2 || rounds < 1) { fprintf(stderr, "floor: -n >= 2, -r >= 1\n"); return 64; }
    if (geteuid() != 0) { fprintf(stderr, "floor: needs root\n"); return 2; }
    if (load_nrs(nrs_file) < 0) { fprintf(stderr, "floor: no syscall numbers in %s\n", nrs_file); return 2; }
    if (bpf_file && load_bpf(bpf_file) < 0) { fprintf(stderr, "floor: cannot read BPF from %s\n", bpf_file); return 2; }
    g_lin = build_linear();
    g_tree = build_tree();
    g_ll_abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    char buf[64];
    g_last_cap = read_file("/proc/sys/kernel/cap_last_cap", buf, sizeof buf) == 0 ? atoi(buf) : 40;
    /* A private mount namespace of our own: nothing attached here reaches the host. */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        perror("floor: private mount namespace");
        return 2;
    }
    if (setup_image() < 0) {
        perror("floor: image directory");
        cleanup_dirs();
        return 2;
    }
    setup_cgroups(cg_parent);
    sweep_stale();
    g_hostnet = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    printf("info\tseccomp\tlinear %u instructions, tree %u, strict %u (%d syscalls)\n", g_lin.len, g_tree.len,
           g_have_file ? g_file.len : 0, g_nnrs);
    printf("info\tlandlock\tABI %d\n", g_ll_abi);
    printf("info\tcgroup\t%s, %d hierarch%s:", g_cg_v2 ? "v2" : "v1", g_ncg, g_ncg == 1 ? "y" : "ies");
    for (int i = 0; i < g_ncg; i++) printf(" %s", g_cg_dirs[i]);
    printf("\n");
    fflush(stdout);

    /* which rows, and a first run of each (a row that cannot run here is dropped) */
    int use[NROWS];
    int nuse = 0;
    for (size_t i = 0; i < NROWS; i++) {
        use[i] = 0;
        if (only) {
            char want[512];
            snprintf(want, sizeof want, ",%s,", only);
            char key[80];
            snprintf(key, sizeof key, ",%s,", ROWS[i].name);
            if (!strstr(want, key)) continue;
        }
        if (((ROWS[i].var | ROWS[i].base) & X_BWRAP) && !g_bwrap) {
            printf("row\t%s\tfailed: no -W bwrap given\n", ROWS[i].name);
            continue;
        }
        if (ROWS[i].need_file && !g_have_file) {
            printf("row\t%s\tfailed: no -B strict BPF given\n", ROWS[i].name);
            continue;
        }
        uint64_t v = ROWS[i].var;
        if (!strncmp(ROWS[i].name, "all", 3)) /* strict's own filter when given */
            ROWS[i].var = v | (g_have_file ? STRICT_SEC : X_SEC_TREE);
        int ok = ahead(ROWS[i].var) == 0 && run_once(ROWS[i].var) == 0;
        ahead_done();
        ok = ok && (ROWS[i].absolute || run_once(ROWS[i].base) == 0);
        if (!ok) {
            printf("row\t%s\tfailed: %s\n", ROWS[i].name, g_err);
            fflush(stdout);
            continue;
        }
        use[i] = 1;
        nuse++;
    }
    long long *var[NROWS], *base[NROWS], *diff[NROWS];
    int got[NROWS];
    for (size_t i = 0; i < NROWS; i++) {
        var[i] = calloc((size_t)runs * rounds, sizeof(long long));
        base[i] = calloc((size_t)runs * rounds, sizeof(long long));
        diff[i] = calloc((size_t)runs * rounds, sizeof(long long));
        got[i] = 0;
    }
    for (int r = 0; r < rounds; r++) {
        for (size_t k = 0; k < NROWS; k++) {
            size_t i = (k + (size_t)r) % NROWS;
            if (!use[i]) continue;
            for (int j = 0; j < runs; j++) {
                long long tv = 0, tb = 0;
                int first_var = (j + r) % 2;
                for (int side = 0; side < 2; side++) {
                    int is_var = side == 0 ? first_var : !first_var;
                    if (!is_var && ROWS[i].absolute) continue;
                    uint64_t f = is_var ? ROWS[i].var : ROWS[i].base;
                    int rc = ahead(f); /* outside the timed part: made ahead in a real launcher */
                    long long t0 = now_ns();
                    if (rc == 0) rc = run_once(f);
                    long long t = now_ns() - t0;
                    ahead_done();
                    if (rc < 0) {
                        printf("row\t%s\tfailed: %s\n", ROWS[i].name, g_err);
                        use[i] = 0;
                        break;
                    }
                    if (is_var) tv = t; else tb = t;
                }
                if (!use[i]) break;
                var[i][got[i]] = tv;
                base[i][got[i]] = tb;
                diff[i][got[i]] = tv - tb;
                got[i]++;
            }
        }
    }
    for (size_t i = 0; i < NROWS; i++) {
        if (!use[i] || got[i] < 2) continue;
        int n = got[i];
        for (int k = 0; raw && k < n; k++) printf("sample\t%s\t%lld\n", ROWS[i].name, var[i][k]);
        long long vm = pct(var[i], n, 50), v10 = pct(var[i], n, 10), v90 = pct(var[i], n, 90);
        long long v99 = pct(var[i], n, 99);
        long long bm = ROWS[i].absolute ? 0 : pct(base[i], n, 50);
        long long b10 = ROWS[i].absolute ? 0 : pct(base[i], n, 10);
        long long dm = ROWS[i].absolute ? vm : pct(diff[i], n, 50);
        long long d90 = ROWS[i].absolute ? v90 : pct(diff[i], n, 90);
        printf("row\t%s\t%d\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%d\t%s\n", ROWS[i].name, n, vm, v10,
               v90, v99, bm, b10, dm, d90, ROWS[i].in_floor, ROWS[i].what);
    }
    cleanup_dirs();
    return nuse ? 0 : 1;
}
