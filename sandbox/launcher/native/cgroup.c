/* Joining the run's leaf (cgroups/join.py): the payload writes "0" ("the
 * writer", in any pid namespace) to each fd the supervisor opened (v2
 * cgroup.procs, v1 tasks), just before execve, so the launcher's pages stay
 * charged elsewhere. Permission is checked against the opener's credentials
 * (CVE-2021-4197 fix), so this works after nothing else would. */
#include "sbx.h"

#include <errno.h>
#include <unistd.h>

int step_join_cgroup(struct sbx_ctx *c, struct sbx_err *e) {
    if (!c->plan->join_cgroup) return 0;
    for (uint32_t i = 0; i < c->fds.n_cgroup; i++)
        if (write(c->fds.cgroup[i], "0", 1) < 0)
            return sbx_error(e, errno, "write(cgroup join fd %u, '0')", i);
    for (uint32_t i = 0; i < c->fds.n_cgroup; i++) close(c->fds.cgroup[i]);
    c->fds.n_cgroup = 0;
    return 0;
}
