/* Process 1 of 3, the outer (monitor): forked by the server, root in the
 * initial namespaces. Parent-death signal, new session, detached mounts,
 * unshare of every namespace (the user namespace first: it owns the others),
 * the id maps written by the server, then it forks the container's init and
 * stays outside as a monitor that relays its exit status (bwrap's monitor). */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int step_parent_death(struct sbx_ctx *c, struct sbx_err *e) {
    /* Die with our parent (cleared by fork and by credential changes: re-armed). */
    (void)c;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return sbx_error(e, errno, "prctl(PR_SET_PDEATHSIG, SIGKILL)");
    return 0;
}

int step_check_parent(struct sbx_ctx *c, struct sbx_err *e) {
    /* If the parent died before PDEATHSIG was armed, nobody would kill us. */
    if (getppid() != c->parent_pid)
        return sbx_error(e, ESRCH, "parent exited before the launcher was armed");
    return 0;
}

int step_stdio(struct sbx_ctx *c, struct sbx_err *e) {
    /* The payload's streams become 0, 1, 2; the received fds are closed (a copy
     * left here would delay the supervisor's end-of-file on the output). */
    int src[3] = {c->fds.in, c->fds.out, c->fds.err_};
    /* Move every source above 2 first, so dup2 never overwrites a later source. */
    for (int i = 0; i < 3; i++) {
        if (src[i] >= 0 && src[i] <= 2 && src[i] != i) {
            int moved = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0) return sbx_error(e, errno, "fcntl(%d, F_DUPFD_CLOEXEC)", src[i]);
            src[i] = moved;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (src[i] == i) {
            int fl = fcntl(i, F_GETFD);
            if (fl >= 0) fcntl(i, F_SETFD, fl & ~FD_CLOEXEC);
            continue;
        }
        if (dup2(src[i], i) < 0) return sbx_error(e, errno, "dup2(%d, %d)", src[i], i);
        if (src[i] > 2) close(src[i]);
    }
    c->fds.in = 0, c->fds.out = 1, c->fds.err_ = 2;
    return 0;
}

int step_new_session(struct sbx_ctx *c, struct sbx_err *e) {
    /* No controlling terminal (TIOCSTI needs one), own process group. The
     * server made a session of its own at start, which never has a terminal
     * (it opens none; only a session leader acquires one): then a process
     * group of ours in it is all that is left to do. setsid here would also
     * make a scheduler autogroup per run (sched_autogroup_create_attach:
     * 7 us median, tails of 0.05-0.25 ms under load), freed again at its end. */
    if (c->server_session) {
        if (setpgid(0, 0) < 0) return sbx_error(e, errno, "setpgid(0, 0)");
        return 0;
    }
    if (setsid() < 0) return sbx_error(e, errno, "setsid()");
    return 0;
}

int step_drop_groups(struct sbx_ctx *c, struct sbx_err *e) {
    /* No supplementary groups: they would count on host-owned files. Rootless,
     * setgroups is not ours to call (denied in the new user namespace). */
    if (c->plan->rootless_ids) return 0;
    if (setgroups(0, NULL) < 0) return sbx_error(e, errno, "setgroups([])");
    return 0;
}

int step_join_netns(struct sbx_ctx *c, struct sbx_err *e) {
    /* A network namespace the server prepared ahead (lo already up), entered
     * while still in the initial user namespace; it serves this run only. */
    if (c->fds.netns < 0) return 0;
    if (setns(c->fds.netns, CLONE_NEWNET) < 0)
        return sbx_error(e, errno, "setns(prepared netns, CLONE_NEWNET)");
    close(c->fds.netns);
    c->fds.netns = -1;
    c->netns_joined = 1;
    return 0;
}

int step_join_namespaces(struct sbx_ctx *c, struct sbx_err *e) {
    /* Namespaces an engine hands over by path (podman's network namespace),
     * joined before unshare: they belong to the initial user namespace and
     * setns needs CAP_SYS_ADMIN over their owner, which only this process has.
     * Their CLONE_NEW* flags are not in the plan's unshare_flags. */
    for (uint32_t i = 0; i < c->plan->n_join_ns; i++) {
        const struct sbx_pair *j = &c->plan->join_ns[i];
        int flag = !strcmp(j->a, "network") ? CLONE_NEWNET
                   : !strcmp(j->a, "ipc")   ? CLONE_NEWIPC
                                            : CLONE_NEWUTS;
        int fd = open(j->b, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return sbx_error(e, errno, "open(%q)", j->b);
        if (setns(fd, flag) < 0) {
            int err = errno;
            close(fd);
            return sbx_error(e, err, "setns(%q)", j->b);
        }
        close(fd);
    }
    return 0;
}

static uint64_t ns_flags(const struct sbx_ctx *c) {
    uint64_t f = c->plan->unshare_flags;
    /* A prepared network namespace replaces a new one (see join_netns). */
    if (c->netns_joined) f &= ~(uint64_t)CLONE_NEWNET;
    return f;
}

int step_unshare(struct sbx_ctx *c, struct sbx_err *e) {
    /* All namespaces in one call; the kernel creates the user namespace first. */
    if (unshare((int)ns_flags(c)) < 0)
        return sbx_error(e, errno, "unshare(%lx)", (unsigned long)ns_flags(c));
    return 0;
}

int step_wait_idmaps(struct sbx_ctx *c, struct sbx_err *e) {
    /* Only the parent namespace may write our maps: ask the server, wait. */
    char b = 'U';
    if (sbx_write_all(c->fds.sync, &b, 1) < 0) return sbx_error(e, errno, "write(sync, 'U')");
    ssize_t n;
    do n = read(c->fds.sync, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1 || b != 'M') return sbx_error(e, EPROTO, "the id maps could not be written");
    return 0;
}

int step_time_offsets(struct sbx_ctx *c, struct sbx_err *e) {
    /* The run's CLOCK_MONOTONIC and CLOCK_BOOTTIME start near zero, not at the
     * host's uptime. Offsets can be written only before the first process
     * enters the time namespace (our init, forked next) (time_namespaces(7)).
     * The kernel refuses a clock that would go negative, so the offset is the
     * whole seconds elapsed: the run starts within a second of zero. */
    if (!(c->plan->unshare_flags & CLONE_NEWTIME)) return 0;
    struct timespec mono, boot;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_BOOTTIME, &boot);
    char buf[128];
    size_t n = sbx_fmt(buf, sizeof buf, "monotonic -%ld 0\nboottime -%ld 0\n",
                       (long)mono.tv_sec, (long)boot.tv_sec);
    return sbx_write_file("/proc/self/timens_offsets", buf, n, e);
}

__attribute__((noreturn)) void sbx_outer_main(struct sbx_ctx *c) {
    sbx_run_steps(c, SBX_OUTER_STEPS, SBX_N_OUTER);
    int life[2];
    struct sbx_err e = {.step = "fork_init"};
    if (pipe2(life, O_CLOEXEC | O_NONBLOCK) < 0) {
        sbx_error(&e, errno, "pipe2()");
        sbx_fail(c, &e);
    }
    pid_t pid = fork();
    if (pid < 0) {
        sbx_error(&e, errno, "fork() of the container's init");
        sbx_fail(c, &e);
    }
    if (pid == 0) {
        close(life[1]);
        c->lifeline = life[0];
        sbx_init_main(c);
    }
    close(life[0]); /* life[1] stays open until the outer exits */
    /* The monitor keeps nothing of the run's but the lifeline: a pipe writer
     * held here would delay the supervisor's EOF. */
    if (life[1] > 3) sys_close_range(3, (unsigned)life[1] - 1, 0);
    sys_close_range((unsigned)life[1] + 1, ~0u, 0);
    close(0), close(1), close(2);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) _exit(255);
    _exit(sbx_exit_code(status));
}
