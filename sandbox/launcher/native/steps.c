/* The step order as data (STYLE B4/B5): the same lists, by name, as
 * sandbox/launcher/steps.py's OUTER_STEPS, INIT_STEPS, PAYLOAD_STEPS and
 * COLLECT_STEPS. tests/unit/launcher/test_native_parity.py compares them
 * (`sandbox-launcher --list-steps`). Each step's reasons are in the function
 * that implements it and in the Python reference. */
#include "sbx.h"

#include <time.h>
#include <unistd.h>

#define S(name) {#name, step_##name}

const struct sbx_step SBX_OUTER_STEPS[] = {
    S(parent_death), S(check_parent), S(stdio), S(new_session), S(drop_groups),
    S(prepare_mounts), S(join_netns), S(join_namespaces), S(unshare), S(wait_idmaps), S(time_offsets),
    S(prepare_mounts_in_userns),
};
const struct sbx_step SBX_INIT_STEPS[] = {
    S(parent_death), S(outer_alive), S(init_signals), S(init_cmdline), S(sysctl), S(mounts),
    S(hostname), S(loopback),
};
const struct sbx_step SBX_PAYLOAD_STEPS[] = {
    S(parent_death), S(signals), S(apparmor), S(no_new_privs), S(bounding_set),
    S(join_cgroup), S(cgroupns), S(ids), S(console), S(parent_death), S(capabilities), S(landlock),
    S(rlimits), S(close_fds), S(chdir), S(wait_gate), S(exec_ready), S(seccomp),
};
const struct sbx_step SBX_HANDOVER_STEPS[] = {
    S(take_console), S(take_listener),
};
const struct sbx_step SBX_COLLECT_STEPS[] = {
    S(parent_death), S(collector_privileges), S(landlock), S(collect),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
const size_t SBX_N_OUTER = N(SBX_OUTER_STEPS), SBX_N_INIT = N(SBX_INIT_STEPS),
             SBX_N_PAYLOAD = N(SBX_PAYLOAD_STEPS), SBX_N_HANDOVER = N(SBX_HANDOVER_STEPS),
             SBX_N_COLLECT = N(SBX_COLLECT_STEPS);

__attribute__((noreturn)) void sbx_fail(struct sbx_ctx *c, struct sbx_err *e) {
    if (!e->step) e->step = c->step;
    sbx_report(c->fds.errpipe, e);
    _exit(SBX_EXIT_SPAWN_FAILED);
}

int sbx_trace_fd = -1;

void sbx_trace(const char *name) {
    if (sbx_trace_fd < 0) return;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    char line[128];
    size_t n = sbx_fmt(line, sizeof line, "%d %s %lld\n", (int)getpid(), name,
                       (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    sbx_write_all(sbx_trace_fd, line, n);
}

void sbx_run_steps(struct sbx_ctx *c, const struct sbx_step *steps, size_t n) {
    for (size_t i = 0; i < n; i++) {
        struct sbx_err e = {0};
        sbx_trace(steps[i].name);
        c->step = steps[i].name;
        if (steps[i].fn(c, &e) != 0) {
            e.step = steps[i].name;
            sbx_fail(c, &e);
        }
    }
    sbx_trace("steps_done");
}
