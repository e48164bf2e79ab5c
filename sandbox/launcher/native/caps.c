/* Capabilities (caps/drop.py): the bounding set first (that needs
 * CAP_SETPCAP), securebits locking out root-based regain; after the uid
 * switch, ambient cleared and the final sets written with capset, kept
 * capabilities raised into the ambient set (a non-root payload keeps only
 * those across execve). */
#include "sbx.h"

#include <errno.h>
#include <sys/prctl.h>

#define SECUREBITS (0x1 | 0x2 | 0x8) /* NOROOT, NOROOT_LOCKED, NO_SETUID_FIXUP_LOCKED */
#define CAP_SYS_ADMIN 21

int sbx_drop_bounding(uint64_t keep, int last_cap, struct sbx_err *e) {
    if (prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) < 0)
        return sbx_error(e, errno, "prctl(PR_SET_SECUREBITS, %x)", SECUREBITS);
    for (int cap = 0; cap <= last_cap; cap++) {
        if (cap < 64 && keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) /* EINVAL: unknown cap */
            return sbx_error(e, errno, "prctl(PR_CAPBSET_DROP, %d)", cap);
    }
    return 0;
}

int sbx_set_final_caps(uint64_t keep, uint64_t hold, struct sbx_err *e) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return sbx_error(e, errno, "prctl(PR_CAP_AMBIENT, CLEAR_ALL)");
    if (sys_capset(keep | hold, keep | hold, keep) < 0)
        return sbx_error(e, errno, "capset(eff=%llx, prm=%llx, inh=%llx)",
                         (unsigned long long)(keep | hold), (unsigned long long)(keep | hold),
                         (unsigned long long)keep);
    for (int cap = 0; cap < 64; cap++)
        if (keep & (1ULL << cap) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return sbx_error(e, errno, "prctl(PR_CAP_AMBIENT, RAISE, %d)", cap);
    return 0;
}

int step_bounding_set(struct sbx_ctx *c, struct sbx_err *e) {
    /* Bounding set first: dropping it needs CAP_SETPCAP, which the uid switch may take. */
    if (!c->plan->drop_caps) return 0;
    return sbx_drop_bounding(c->plan->caps_keep, c->last_cap, e);
}

int step_capabilities(struct sbx_ctx *c, struct sbx_err *e) {
    /* Ambient cleared, final sets written (normally all empty). Without
     * no_new_privs, Landlock and seccomp need CAP_SYS_ADMIN: held (effective
     * and permitted only) until execve clears it, as runc does. */
    if (!c->plan->drop_caps) return 0;
    uint64_t hold = c->plan->no_new_privs ? 0 : 1ULL << CAP_SYS_ADMIN;
    return sbx_set_final_caps(c->plan->caps_keep, hold, e);
}
