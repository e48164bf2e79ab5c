/* Checked helpers: async-signal-safe formatting, error reports, raw syscalls.
 *
 * Nothing here allocates or touches stdio, so the children of the launcher
 * may call all of it (STYLE B10). */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

size_t sbx_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

const char *sbx_strerror(int err) {
    /* strerrordesc_np: a static string, no locale, no allocation. */
    const char *s = strerrordesc_np(err);
    return s ? s : "Unknown error";
}

struct out { char *p; size_t cap, n; };

static void put(struct out *o, char c) {
    if (o->n + 1 < o->cap) o->p[o->n] = c;
    o->n++;
}

static void puts_(struct out *o, const char *s) {
    for (; s && *s; s++) put(o, *s);
}

static void putnum(struct out *o, unsigned long long v, unsigned base, int neg) {
    char tmp[24];
    int i = 0;
    if (neg) put(o, '-');
    do {
        tmp[i++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (i) put(o, tmp[--i]);
}

size_t sbx_vfmt(char *out, size_t cap, const char *fmt, va_list ap) {
    struct out o = {out, cap, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') { put(&o, *fmt); continue; }
        fmt++;
        int l = 0;
        while (*fmt == 'l') { l++; fmt++; }
        switch (*fmt) {
        case 's': puts_(&o, va_arg(ap, const char *)); break;
        case 'q': {
            const char *s = va_arg(ap, const char *);
            put(&o, '\'');
            for (; s && *s; s++) {
                if (*s == '\'' || *s == '\\') put(&o, '\\');
                put(&o, *s);
            }
            put(&o, '\'');
            break;
        }
        case 'c': put(&o, (char)va_arg(ap, int)); break;
        case 'd': {
            long long v = l >= 2 ? va_arg(ap, long long) : l ? va_arg(ap, long) : va_arg(ap, int);
            putnum(&o, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, 10, v < 0);
            break;
        }
        case 'u': case 'x': {
            unsigned long long v = l >= 2 ? va_arg(ap, unsigned long long)
                                 : l ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            if (*fmt == 'x') puts_(&o, "0x");
            putnum(&o, v, *fmt == 'x' ? 16 : 10, 0);
            break;
        }
        case '%': put(&o, '%'); break;
        case 0: fmt--; break;
        default: put(&o, '?');
        }
    }
    if (cap) out[o.n < cap ? o.n : cap - 1] = 0;
    return o.n < cap ? o.n : cap - 1;
}

size_t sbx_fmt(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = sbx_vfmt(out, cap, fmt, ap);
    va_end(ap);
    return n;
}

int sbx_error(struct sbx_err *e, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = sbx_vfmt(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->err = err;
    if (err) sbx_fmt(e->msg + n, sizeof e->msg - n, ": %s", sbx_strerror(err));
    return -1;
}

int sbx_write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void sbx_report(int fd, const struct sbx_err *e) {
    char buf[1200];
    size_t n = sbx_fmt(buf, sizeof buf, "%s:%x:%s", e->step ? e->step : "unknown",
                       (unsigned)e->err, e->msg);
    if (fd >= 0) sbx_write_all(fd, buf, n);
}

int sbx_write_file(const char *path, const char *data, size_t len, struct sbx_err *e) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return sbx_error(e, errno, "open(%q, O_WRONLY)", path);
    ssize_t n = write(fd, data, len);
    int err = errno;
    close(fd);
    if (n < 0) return sbx_error(e, err, "write(%q)", path);
    return 0;
}

/* Which signals may have a non-default disposition in the server's children:
 * every one until sbx_note_signals() has looked (then those it found). */
static unsigned char sig_touched[NSIG];
static int sig_noted;

void sbx_note_signals(void) {
    /* The server, once its own dispositions are set (it never changes them
     * again): what it inherited ignored from its caller, and what it ignores
     * itself. Its children then reset only those, not all 64 (~20 us each). */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &old) < 0) continue;
        sig_touched[sig] = old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO);
    }
    sig_noted = 1;
}

int sbx_reset_signals(void) {
    /* Default dispositions and an empty mask: an ignored signal would stay
     * ignored across execve, and the server ignores SIGPIPE. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || (sig_noted && !sig_touched[sig])) continue;
        sigaction(sig, &sa, NULL); /* EINVAL for the signals glibc reserves: harmless */
    }
    sigset_t none;
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}

int sbx_exit_code(int status) {
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

/* ------------------------------------------------------------- raw --- */

int sys_pidfd_open(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }
int sys_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int sys_pidfd_getfd(int pidfd, int targetfd) {
    return (int)syscall(SYS_pidfd_getfd, pidfd, targetfd, 0);
}

int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    uint64_t how[3] = {flags, mode, resolve};
    return (int)syscall(SYS_openat2, dirfd, path, how, sizeof how);
}

int sys_fsopen(const char *fstype, unsigned flags) { return (int)syscall(SYS_fsopen, fstype, flags); }
int sys_fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
int sys_fsmount(int fd, unsigned flags, unsigned attrs) {
    return (int)syscall(SYS_fsmount, fd, flags, attrs);
}
int sys_open_tree(int dirfd, const char *path, unsigned flags) {
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}
int sys_move_mount(int from_dirfd, const char *from, int to_dirfd, const char *to, unsigned flags) {
    return (int)syscall(SYS_move_mount, from_dirfd, from, to_dirfd, to, flags);
}
int sys_mount_setattr(int dirfd, const char *path, unsigned flags, uint64_t set, uint64_t clr) {
    uint64_t attr[4] = {set, clr, 0, 0};
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, attr, sizeof attr);
}
int sys_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
int sys_close_range(unsigned first, unsigned last, unsigned flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}
int sys_seccomp(unsigned op, unsigned flags, void *args) {
    return (int)syscall(SYS_seccomp, op, flags, args);
}
int sys_capset(uint64_t eff, uint64_t prm, uint64_t inh) {
    struct { uint32_t version; int pid; } hdr = {0x20080522, 0}; /* _LINUX_CAPABILITY_VERSION_3 */
    struct { uint32_t eff, prm, inh; } data[2] = {
        {(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
        {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)},
    };
    return (int)syscall(SYS_capset, &hdr, data);
}
int sys_ll_create_ruleset(uint64_t fs, uint64_t net, uint64_t scoped) {
    uint64_t attr[3] = {fs, net, scoped};
    /* An older kernel accepts the larger struct while its tail is zero. */
    return (int)syscall(SYS_landlock_create_ruleset, attr, sizeof attr, 0);
}
int sys_ll_add_path_rule(int ruleset, int parent_fd, uint64_t allowed) {
    struct __attribute__((packed)) { uint64_t allowed; int32_t parent_fd; } a = {allowed, parent_fd};
    return (int)syscall(SYS_landlock_add_rule, ruleset, 1, &a, 0);
}
int sys_ll_add_net_rule(int ruleset, uint64_t port, uint64_t allowed) {
    uint64_t a[2] = {allowed, port};
    return (int)syscall(SYS_landlock_add_rule, ruleset, 2, a, 0);
}
int sys_ll_restrict_self(int ruleset) {
    return (int)syscall(SYS_landlock_restrict_self, ruleset, 0);
}
