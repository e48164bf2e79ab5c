/* Seccomp, last before execve (bwrap, nsjail, runc): the precompiled filter
 * from the plan, loaded as it is (no libseccomp in the child).
 *
 * With a notifying filter somebody must hold the listener before the payload
 * runs, or a denied syscall would fail with ENOSYS unrecorded (seccomp_unotify(2):
 * a listener nobody holds answers every notification that way). The holder is
 * the payload's own init, idle in C a fork away, never the Python supervisor:
 * the payload writes the listener's fd number to init over their socket pair
 * and waits; init copies the fd (pidfd_getfd: init has CAP_SYS_PTRACE in the
 * run's user namespace), passes the copy to the supervisor over the notify
 * channel (SCM_RIGHTS), then acknowledges. Init keeps its copy until the
 * payload has exited, so the listener is held for the payload's whole life
 * whenever the supervisor takes its copy; if any of it fails, init reports
 * and exits before the acknowledgement, and the payload never reaches execve
 * (it dies with init's pid namespace). The same path as root and rootless. */
#include "sbx.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define LISTENER_TAKEN 'K' /* protocol.py NOTIFY_TAKEN */

int step_seccomp(struct sbx_ctx *c, struct sbx_err *e) {
    const struct sbx_seccomp *s = &c->plan->sec;
    if (!s->present) return 0;
    /* The uid switch made us non-dumpable, and our mm belongs to the initial
     * user namespace, where init has no CAP_SYS_PTRACE: without this its
     * pidfd_getfd is refused. execve sets dumpability anew a moment later. */
    if (s->notify && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        return sbx_error(e, errno, "prctl(PR_SET_DUMPABLE, 1)");
    struct sock_fprog prog = {(unsigned short)(s->bpf_len / 8),
                              (struct sock_filter *)(uintptr_t)s->bpf};
    int listener = sys_seccomp(SECCOMP_SET_MODE_FILTER, s->flags, &prog);
    if (listener < 0)
        return sbx_error(e, errno, "seccomp(SECCOMP_SET_MODE_FILTER, %x, {len=%u})", s->flags,
                         s->bpf_len / 8);
    if (!s->notify) return 0;
    /* From here on only what the filter allows: write, read. */
    char num[16];
    size_t n = sbx_fmt(num, sizeof num, "%d", listener);
    if (sbx_write_all(c->fds.handover, num, n) < 0)
        return sbx_error(e, errno, "write(handover, %d)", listener);
    char ack = 0;
    ssize_t r;
    do r = read(c->fds.handover, &ack, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1 || ack != LISTENER_TAKEN)
        return sbx_error(e, EPROTO, "init did not take the seccomp listener");
    return 0;
}

int sbx_send_fd(int sock, int fd, char tag) {
    char data = tag;
    struct iovec iov = {&data, 1};
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    ssize_t r;
    do r = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

static int parse_fd(const char *s, ssize_t n) {
    int v = 0;
    if (n <= 0 || n > 7) return -1;
    for (ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int take(struct sbx_ctx *c, int sock, const char *num, ssize_t n, struct sbx_err *e) {
    int target = parse_fd(num, n);
    if (target < 0) return sbx_error(e, EPROTO, "the payload sent no listener fd number");
    int pidfd = sys_pidfd_open(c->payload_pid, 0);
    if (pidfd < 0) return sbx_error(e, errno, "pidfd_open(payload %d)", (int)c->payload_pid);
    c->listener = sys_pidfd_getfd(pidfd, target);
    int err = errno;
    close(pidfd);
    if (c->listener < 0) return sbx_error(e, err, "pidfd_getfd(payload, %d)", target);
    if (sbx_send_fd(c->fds.notify, c->listener, 'F') < 0)
        return sbx_error(e, errno, "sendmsg(notify, SCM_RIGHTS [listener])");
    char ack = LISTENER_TAKEN;
    if (sbx_write_all(sock, &ack, 1) < 0) return sbx_error(e, errno, "write(handover, 'K')");
    return 0;
}

int step_take_listener(struct sbx_ctx *c, struct sbx_err *e) {
    /* Init: copy the payload's listener, hand it to the supervisor, then let
     * the payload go on (see the top of this file). */
    int sock = c->fds.handover;
    if (sock < 0) return 0;
    if (!c->plan->sec.present || !c->plan->sec.notify) { /* the channel was the console's */
        close(sock);
        c->fds.handover = -1;
        return 0;
    }
    char num[16];
    ssize_t n;
    do n = read(sock, num, sizeof num);
    while (n < 0 && errno == EINTR);
    if (n == 0) { /* the payload ended before its filter: it reported why itself */
        close(sock);
        c->fds.handover = -1;
        return 0;
    }
    if (n > 0 && take(c, sock, num, n, e) == 0) {
        close(sock);
        c->fds.handover = -1;
        return 0;
    }
    if (n < 0) sbx_error(e, errno, "read(handover)");
    /* The payload, still waiting for the ack, goes before we report: it would
     * report the missing ack too, and two reports make one garbled message. */
    kill(c->payload_pid, SIGKILL);
    siginfo_t si;
    while (waitid(P_PID, (id_t)c->payload_pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
    return -1;
}
