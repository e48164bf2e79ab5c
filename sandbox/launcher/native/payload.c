/* Process 3 of 3, the payload: every restriction in order, seccomp last,
 * then execve. Reasons for the order: sandbox/launcher/steps.py (the
 * readable reference) and STYLE B5. */
#include "sbx.h"

#include <errno.h>
#include <linux/close_range.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

int step_signals(struct sbx_ctx *c, struct sbx_err *e) {
    /* Default dispositions and an empty mask: ignored signals survive execve. */
    (void)c;
    if (sbx_reset_signals() < 0) return sbx_error(e, errno, "sigprocmask()");
    return 0;
}

int step_apparmor(struct sbx_ctx *c, struct sbx_err *e) {
    /* Change-on-exec: after the new /proc exists, before NNP, caps, seccomp.
     * The LSM-specific file first (several LSMs may be stacked), the generic
     * one on kernels before 5.8 (apparmor/onexec.py). */
    if (!c->plan->apparmor) return 0;
    char buf[300];
    size_t n = sbx_fmt(buf, sizeof buf, "exec %s", c->plan->apparmor);
    struct sbx_err first = {0};
    if (sbx_write_file("/proc/thread-self/attr/apparmor/exec", buf, n, &first) == 0) return 0;
    if (first.err != ENOENT) {
        *e = first;
        return -1;
    }
    return sbx_write_file("/proc/self/attr/exec", buf, n, e);
}

int step_no_new_privs(struct sbx_ctx *c, struct sbx_err *e) {
    /* NNP before Landlock and seccomp: both need it without CAP_SYS_ADMIN. */
    if (!c->plan->no_new_privs) return 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return sbx_error(e, errno, "prctl(PR_SET_NO_NEW_PRIVS, 1)");
    return 0;
}

int step_cgroupns(struct sbx_ctx *c, struct sbx_err *e) {
    /* A cgroup namespace rooted at the leaf just joined: the payload sees '/'. */
    if (!c->plan->cgroupns) return 0;
    if (unshare(CLONE_NEWCGROUP) < 0) return sbx_error(e, errno, "unshare(CLONE_NEWCGROUP)");
    return 0;
}

int step_rlimits(struct sbx_ctx *c, struct sbx_err *e) {
    /* Limits the payload sets on itself (RLIMIT_CORE=0 always, the profile's). */
    for (uint32_t i = 0; i < c->plan->n_rlimits; i++) {
        const struct sbx_rlimit *r = &c->plan->rlimits[i];
        struct rlimit rl = {(rlim_t)r->soft, (rlim_t)r->hard};
        if (setrlimit((__rlimit_resource_t)r->resource, &rl) < 0)
            return sbx_error(e, errno, "setrlimit(%u, %lu, %lu)", r->resource,
                             (unsigned long)r->soft, (unsigned long)r->hard);
    }
    return 0;
}

int step_close_fds(struct sbx_ctx *c, struct sbx_err *e) {
    /* No host fd reaches the payload (CVE-2024-21626): all but 0-2 close at execve. */
    (void)c;
    if (sys_close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
        return sbx_error(e, errno, "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)");
    return 0;
}

int step_exec_ready(struct sbx_ctx *c, struct sbx_err *e) {
    /* Every step before seccomp passed: an errpipe end-of-file without this mark is
     * a launcher that died before execve, never a good start (issue 13 item 6).
     * Before the filter, which need not allow the write; a failure of seccomp or
     * execve still comes after it as a record. */
    if (sbx_write_all(c->fds.errpipe, SBX_EXEC_READY, 1) < 0)
        return sbx_error(e, errno, "write(errpipe, EXEC_READY)");
    return 0;
}

int step_chdir(struct sbx_ctx *c, struct sbx_err *e) {
    /* Working directory inside the new root. */
    if (chdir(c->plan->workdir) < 0) return sbx_error(e, errno, "chdir(%q)", c->plan->workdir);
    return 0;
}

int step_wait_gate(struct sbx_ctx *c, struct sbx_err *e) {
    /* Start barrier (an OCI create): set up, execve waits for start. Before seccomp,
     * after the fds are close-on-exec. Only an OCI create passes a gate. */
    if (c->fds.gate < 0) return 0;
    char b = 0;
    if (sbx_write_all(c->fds.gate, "R", 1) < 0) return sbx_error(e, errno, "write(gate)");
    if (read(c->fds.gate, &b, 1) != 1 || b != 'G')
        return sbx_error(e, ECANCELED, "the container was deleted before it started");
    return 0;
}

__attribute__((noreturn)) void sbx_payload_main(struct sbx_ctx *c) {
    sbx_run_steps(c, SBX_PAYLOAD_STEPS, SBX_N_PAYLOAD);
    sbx_trace("execve");
    execve(c->plan->exec_path, c->plan->argv, c->plan->envp);
    struct sbx_err e = {.step = "exec"};
    sbx_error(&e, errno, "execve(%q)", c->plan->exec_path);
    sbx_fail(c, &e);
}
