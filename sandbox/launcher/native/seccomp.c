/* Seccomp, last before execve (bwrap, nsjail, runc): the precompiled filter
 * from the plan, loaded as it is (no libseccomp in the child). With a
 * notifying filter the supervisor must hold the listener before the payload
 * runs: as root we send the fd's number (the supervisor copies it out with
 * pidfd_getfd); rootless an unprivileged supervisor may not, so the fd itself
 * goes over SCM_RIGHTS (the filter allows sendmsg on AF_UNIX sockets). */
#include "sbx.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_fd(int sock, int fd) {
    char data = 'F';
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
    return sendmsg(sock, &msg, 0) < 0 ? -1 : 0;
}

int step_seccomp(struct sbx_ctx *c, struct sbx_err *e) {
    const struct sbx_seccomp *s = &c->plan->sec;
    if (!s->present) return 0;
    struct sock_fprog prog = {(unsigned short)(s->bpf_len / 8),
                              (struct sock_filter *)(uintptr_t)s->bpf};
    int listener = sys_seccomp(SECCOMP_SET_MODE_FILTER, s->flags, &prog);
    if (listener < 0)
        return sbx_error(e, errno, "seccomp(SECCOMP_SET_MODE_FILTER, %x, {len=%u})", s->flags,
                         s->bpf_len / 8);
    if (!s->notify) return 0;
    /* From here on only what the filter allows: write/sendmsg, read. */
    if (c->plan->rootless_ids) {
        if (send_fd(c->fds.notify, listener) < 0)
            return sbx_error(e, errno, "sendmsg(%d, SCM_RIGHTS [%d])", c->fds.notify, listener);
    } else {
        char num[16];
        size_t n = sbx_fmt(num, sizeof num, "%d", listener);
        if (sbx_write_all(c->fds.notify, num, n) < 0)
            return sbx_error(e, errno, "write(notify, %d)", listener);
    }
    char ack = 0;
    ssize_t n;
    do n = read(c->fds.notify, &ack, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1 || ack != 'K')
        return sbx_error(e, EPROTO, "the supervisor did not take the seccomp listener");
    return 0;
}
