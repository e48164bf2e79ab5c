/* Inside a container: what its terminal is, and whether it can make ptys of its own.
 * Built static (the busybox image has no libc) by tests/integration/test_oci_devpts.py.
 *
 * Prints, one per line:
 *   stdin <ttyname(0) or "not-a-tty">
 *   ctty <1 if /dev/tty opens (a controlling terminal), else 0>
 *   pts <st_dev of /dev/pts>
 *   list <names in /dev/pts before this probe opens anything, sorted by readdir order>
 *   own <ptsname of a pty opened through /dev/ptmx> <1 if bytes pass master->slave>
 *   same <1 if that pty's slave lives in /dev/pts's instance (st_dev equal)>
 *   master <1 if any fd of this process is a ptmx (it must hold none but its own)>
 * Exit status: 0, or the step number that failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int is_ptmx(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 &&
           minor(st.st_rdev) == 2;
}

int main(void) {
    /* any master inherited? (checked before we open one) */
    int inherited = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (is_ptmx(fd)) inherited = 1;
    const char *name = ttyname(0);
    printf("stdin %s\n", name ? name : "not-a-tty");
    int t = open("/dev/tty", O_RDWR | O_NOCTTY);
    printf("ctty %d\n", t >= 0);
    if (t >= 0) close(t);
    struct stat pts;
    if (stat("/dev/pts", &pts) < 0) return 1;
    printf("pts %lu\n", (unsigned long)pts.st_dev);
    DIR *d = opendir("/dev/pts");
    if (!d) return 2;
    printf("list");
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') printf(" %s", e->d_name);
    printf("\n");
    closedir(d);
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) { perror("posix_openpt"); return 3; }
    if (grantpt(m) < 0 || unlockpt(m) < 0) { perror("grantpt/unlockpt"); return 4; }
    char *sn = ptsname(m);
    if (!sn) return 5;
    int s = open(sn, O_RDWR | O_NOCTTY);
    if (s < 0) { perror(sn); return 6; }
    int ok = write(m, "ping\n", 5) == 5;
    char buf[16] = {0};
    ok = ok && read(s, buf, sizeof buf - 1) > 0 && !strncmp(buf, "ping", 4);
    printf("own %s %d\n", sn, ok);
    struct stat ss;
    if (fstat(s, &ss) < 0) return 7;
    printf("same %d\n", ss.st_dev == pts.st_dev);
    printf("master %d\n", inherited);
    return 0;
}
