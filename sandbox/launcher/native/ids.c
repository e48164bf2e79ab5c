/* Identity inside the user namespace: the payload's uid/gid (mapped by the
 * server to the run slot's host ids, or rootless to the caller's own). */
#include "sbx.h"

#include <errno.h>
#include <unistd.h>

int sbx_set_ids(const struct sbx_plan *p, struct sbx_err *e) {
    if (setresgid(p->inside_gid, p->inside_gid, p->inside_gid) < 0)
        return sbx_error(e, errno, "setresgid(%u)", p->inside_gid);
    if (setresuid(p->inside_uid, p->inside_uid, p->inside_uid) < 0)
        return sbx_error(e, errno, "setresuid(%u)", p->inside_uid);
    return 0;
}

int step_ids(struct sbx_ctx *c, struct sbx_err *e) {
    /* Switch to the sandbox ids. */
    return sbx_set_ids(c->plan, e);
}
