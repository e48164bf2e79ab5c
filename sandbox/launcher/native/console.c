/* The console of an OCI process.terminal: a pty of the container's own devpts
 * instance (mounted by init, mounts.c) becomes the payload's stdio and
 * controlling terminal; its master goes payload -> init -> supervisor over
 * the handover channels and is closed on the way, so the payload never holds
 * it at execve. Reasons: sandbox/launcher/steps.py step_console and
 * step_take_console (the readable reference). */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

#define CONSOLE_TAG 'C' /* protocol.py CONSOLE_TAG */

static int is_ptmx(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(5, 2);
}

int step_console(struct sbx_ctx *c, struct sbx_err *e) {
    /* After the uid switch (the pty is the payload's own), before Landlock and
     * seccomp; the master is sent to init and closed here. */
    if (!c->plan->console) return 0;
    int master = sys_openat2(AT_FDCWD, "/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC, 0,
                             SBX_RESOLVE_NO_SYMLINKS | SBX_RESOLVE_NO_MAGICLINKS);
    if (master < 0) return sbx_error(e, errno, "openat2('/dev/pts/ptmx')");
    int slave = -1, err = 0;
    const char *what = NULL;
    int unlock = 0;
    if (!is_ptmx(master)) err = ENOTTY, what = "/dev/pts/ptmx is not a pty multiplexer";
    else if (ioctl(master, TIOCSPTLCK, &unlock) < 0) err = errno, what = "ioctl(TIOCSPTLCK)";
    else if ((slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
        err = errno, what = "ioctl(TIOCGPTPEER)";
    else if (sbx_send_fd(c->fds.handover, master, CONSOLE_TAG) < 0)
        err = errno, what = "sendmsg(handover, SCM_RIGHTS [console])";
    close(master);
    if (what) {
        if (slave >= 0) close(slave);
        return sbx_error(e, err, "%s", what);
    }
    if (setsid() < 0) return sbx_error(e, errno, "setsid()");
    for (int n = 0; n < 3; n++)
        if (dup2(slave, n) < 0) return sbx_error(e, errno, "dup2(console, %d)", n);
    close(slave);
    if (ioctl(0, TIOCSCTTY, 0) < 0) return sbx_error(e, errno, "ioctl(0, TIOCSCTTY)");
    return 0;
}

int step_take_console(struct sbx_ctx *c, struct sbx_err *e) {
    /* Init: the master from the payload, checked, passed to the supervisor, closed. */
    if (!c->plan->console || c->fds.handover < 0) return 0;
    char tag = 0;
    struct iovec iov = {&tag, 1};
    union { struct cmsghdr h; char buf[CMSG_SPACE(2 * sizeof(int))]; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    ssize_t n;
    do n = recvmsg(c->fds.handover, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    int fds[2] = {-1, -1}, nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (nfds > 2) nfds = 2;
            memcpy(fds, CMSG_DATA(cm), (size_t)nfds * sizeof(int));
        }
    if (n == 0 && nfds == 0) return 0; /* the payload ended first and reported why */
    int err = 0;
    const char *what = NULL;
    if (n < 0) err = errno, what = "recvmsg(handover)";
    else if (tag != CONSOLE_TAG || nfds != 1) err = EPROTO, what = "the payload sent no console";
    else if (!is_ptmx(fds[0])) err = ENOTTY, what = "the payload's console is not a pty master";
    else if (sbx_send_fd(c->fds.notify, fds[0], CONSOLE_TAG) < 0)
        err = errno, what = "sendmsg(notify, SCM_RIGHTS [console])";
    for (int i = 0; i < nfds; i++) close(fds[i]);
    if (!what) return 0;
    /* The payload goes before we report (one report, not two garbled). */
    kill(c->payload_pid, SIGKILL);
    siginfo_t si;
    while (waitid(P_PID, (id_t)c->payload_pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
    return sbx_error(e, err, "%s", what);
}
