/* UTS and network namespaces, from the container's init: hostname, lo up. */
#include "sbx.h"

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int step_hostname(struct sbx_ctx *c, struct sbx_err *e) {
    /* Hostname of the new UTS namespace (needs CAP_SYS_ADMIN there). */
    if (!(c->plan->unshare_flags & CLONE_NEWUTS)) return 0;
    if (sethostname(c->plan->hostname, sbx_strlen(c->plan->hostname)) < 0)
        return sbx_error(e, errno, "sethostname(%q)", c->plan->hostname);
    return 0;
}

int sbx_loopback_up(struct sbx_err *e) {
    /* SIOCGIFFLAGS / SIOCSIFFLAGS on "lo": IFF_UP|IFF_RUNNING (bwrap loopback_setup). */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return sbx_error(e, errno, "socket(AF_INET, SOCK_DGRAM)");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int err = errno;
    close(s);
    if (rc < 0) return sbx_error(e, err, "ioctl(SIOCSIFFLAGS, 'lo', IFF_UP)");
    return 0;
}

int step_loopback(struct sbx_ctx *c, struct sbx_err *e) {
    /* Bring up lo in the new network namespace; nothing else exists there.
     * A namespace the server prepared ahead already has it up. */
    if (!(c->plan->unshare_flags & CLONE_NEWNET) || c->netns_joined) return 0;
    return sbx_loopback_up(e);
}
