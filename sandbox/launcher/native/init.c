/* Process 2 of 3, the container's init: PID 1 of the run's pid namespace.
 * Builds the root and pivots into it, sets hostname and loopback, forks the
 * payload, reaps everything, reports the payload's wait status, rusage and
 * I/O counters, then forks the collector for the files the caller asked for.
 * The payload is never PID 1: the kernel ignores default-action signals sent
 * to a namespace's init, so abort(), SIGXFSZ and SIGXCPU would not end it. */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int step_outer_alive(struct sbx_ctx *c, struct sbx_err *e) {
    /* PDEATHSIG armed after the outer died would never fire: check the
     * lifeline (PID 1 sees its parent as pid 0, so getppid cannot tell). */
    if (c->lifeline < 0) return 0;
    char b;
    ssize_t n = read(c->lifeline, &b, 1);
    if (n == 0) return sbx_error(e, ESRCH, "the launcher's outer process exited during setup");
    close(c->lifeline);
    c->lifeline = -1;
    return 0; /* EAGAIN: no data, the writer is alive */
}

int step_init_signals(struct sbx_ctx *c, struct sbx_err *e) {
    /* Default dispositions in PID 1: the kernel then drops every signal sent
     * from inside (pid_namespaces(7)). */
    (void)c;
    if (sbx_reset_signals() < 0) return sbx_error(e, errno, "sigprocmask()");
    return 0;
}

int step_init_cmdline(struct sbx_ctx *c, struct sbx_err *e) {
    /* /proc/1/cmdline is readable by the payload: say nothing of the host. */
    (void)e;
    if (!c->cmdline || c->cmdline_len < 2) return 0;
    static const char title[] = "sandbox-init";
    size_t n = sizeof title - 1 < c->cmdline_len - 1 ? sizeof title - 1 : c->cmdline_len - 1;
    memset(c->cmdline, 0, c->cmdline_len);
    memcpy(c->cmdline, title, n);
    return 0;
}

static void put_i32(uint8_t **p, int32_t v) { memcpy(*p, &v, 4); *p += 4; }
static void put_i64(uint8_t **p, int64_t v) { memcpy(*p, &v, 8); *p += 8; }
static void put_f64(uint8_t **p, double v) { memcpy(*p, &v, 8); *p += 8; }

static int64_t field(const char *text, const char *key) {
    /* "key: N" in /proc/PID/io */
    size_t kl = sbx_strlen(key);
    for (const char *s = text; *s; ) {
        if (!strncmp(s, key, kl) && s[kl] == ':') {
            s += kl + 1;
            while (*s == ' ') s++;
            int64_t v = 0;
            if (*s < '0' || *s > '9') return -1;
            while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
            return v;
        }
        while (*s && *s != '\n') s++;
        if (*s) s++;
    }
    return -1;
}

static void io_counters(pid_t pid, int64_t *rchar, int64_t *wchar) {
    /* rchar/wchar of the (zombie) payload; -1 when unreadable. */
    char path[64], buf[4096];
    *rchar = *wchar = -1;
    sbx_fmt(path, sizeof path, "/proc/%d/io", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    *rchar = field(buf, "rchar");
    *wchar = field(buf, "wchar");
}

static double tv(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

__attribute__((noreturn)) void sbx_init_main(struct sbx_ctx *c) {
    c->parent_pid = 0;
    sbx_run_steps(c, SBX_INIT_STEPS, SBX_N_INIT);
    struct sbx_err e = {.step = "fork_payload"};
    int hand[2] = {-1, -1};
    if ((c->plan->console || (c->plan->sec.present && c->plan->sec.notify)) &&
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, hand) < 0) {
        sbx_error(&e, errno, "socketpair() for the handover (console, seccomp listener)");
        sbx_fail(c, &e);
    }
    pid_t pid = fork();
    if (pid < 0) {
        sbx_error(&e, errno, "fork() of the payload");
        sbx_fail(c, &e);
    }
    if (pid == 0) {
        if (hand[0] >= 0) close(hand[0]);
        c->fds.handover = hand[1];
        sbx_payload_main(c);
    }
    if (hand[1] >= 0) close(hand[1]);
    c->fds.handover = hand[0];
    c->payload_pid = pid;
    close(c->fds.sync), close(0), close(1), close(2);
    if (c->fds.gate >= 0) close(c->fds.gate); /* the payload's alone (an OCI create) */
    for (uint32_t i = 0; i < c->fds.n_cgroup; i++) close(c->fds.cgroup[i]);
    /* The errpipe stays open through the handover: a failure there is this
     * run's failure, and its end-of-file then means execve and listener both. */
    sbx_run_steps(c, SBX_HANDOVER_STEPS, SBX_N_HANDOVER);
    close(c->fds.errpipe);
    if (c->fds.notify >= 0) close(c->fds.notify);
    c->fds.errpipe = c->fds.notify = -1;
    /* The payload's exit, then its I/O counters while it is a zombie, then reap. */
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
    sbx_trace("payload_exited");
    int64_t rchar, wchar;
    io_counters(pid, &rchar, &wchar);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {}
    if (c->plan->unshare_flags & CLONE_NEWPID)
        kill(-1, SIGKILL); /* as PID 1: exactly the run's leftovers (ESRCH: none) */
    /* No task under the filter runs user code any more (the payload exited, what
     * it left is SIGKILLed): our copy of the listener may go, and the collector
     * forked below must not inherit it. */
    if (c->listener >= 0) close(c->listener);
    c->listener = -1;
    uint8_t rec[60], *p = rec; /* protocol.py PayloadStatus "=iddqqqqq" */
    put_i32(&p, status);
    put_f64(&p, tv(ru.ru_utime));
    put_f64(&p, tv(ru.ru_stime));
    put_i64(&p, ru.ru_maxrss);
    put_i64(&p, ru.ru_nvcsw);
    put_i64(&p, ru.ru_nivcsw);
    put_i64(&p, rchar);
    put_i64(&p, wchar);
    sbx_write_all(c->fds.status, rec, sizeof rec);
    sbx_trace("status_written");
    if (c->plan->n_collect) {
        /* Collected by a process with no more rights than the payload had
         * (collect.c), never by this one (issue 13 item 1). It must not
         * inherit the upper, so that goes first here. */
        close(c->mnt.upper);
        c->mnt.upper = -1;
        pid_t col = fork();
        if (col == 0) sbx_collect_main(c);
        if (col > 0) {
            int cs;
            while (waitpid(col, &cs, 0) < 0 && errno == EINTR) {}
        }
    }
    /* End-of-file for the supervisor first (it waits for nothing else of
     * ours), then the upper: closing its last fd unmounts it, which waits for
     * an expedited RCU grace period (mounts.c). */
    close(c->fds.status);
    if (c->mnt.upper >= 0) close(c->mnt.upper);
    _exit(sbx_exit_code(status));
}

int step_sysctl(struct sbx_ctx *c, struct sbx_err *e) {
    /* Sysctls of the run's own net/ipc namespaces, through the host's /proc while
     * it is still there (net and ipc entries resolve to the writer's namespaces). */
    for (uint32_t i = 0; i < c->plan->n_sysctl; i++) {
        char path[512] = "/proc/sys/";
        size_t n = sbx_strlen(path);
        for (const char *q = c->plan->sysctl[i].a; *q && n + 1 < sizeof path; q++)
            path[n++] = *q == '.' ? '/' : *q;
        path[n] = 0;
        const char *v = c->plan->sysctl[i].b;
        if (sbx_write_file(path, v, sbx_strlen(v), e)) return -1;
    }
    return 0;
}
