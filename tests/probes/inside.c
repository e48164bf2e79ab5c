/* Inside-out probe: prints what the sandbox looks like from inside, as JSON.
 * Built by tests/sbxtest.py; runs under the strictest profile, so it only
 * uses read/open/getdents/uname-class syscalls. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void jstr(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void file_field(const char *key, const char *path) {
    char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    printf("\"%s\": ", key);
    if (fd < 0) { printf("{\"errno\": %d}", errno); return; }
    ssize_t n, off = 0;
    while ((n = read(fd, buf + off, sizeof buf - 1 - off)) > 0) off += n;
    buf[off] = 0;
    close(fd);
    jstr(buf);
}

static void dir_field(const char *key, const char *path, int numeric_only) {
    printf("\"%s\": ", key);
    DIR *d = opendir(path);
    if (!d) { printf("{\"errno\": %d}", errno); return; }
    printf("[");
    int first = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (numeric_only && (e->d_name[0] < '0' || e->d_name[0] > '9')) continue;
        if (!first) printf(", ");
        first = 0;
        jstr(e->d_name);
    }
    closedir(d);
    printf("]");
}

int main(void) {
    uid_t ru, eu, su; gid_t rg, eg, sg;
    getresuid(&ru, &eu, &su);
    getresgid(&rg, &eg, &sg);
    gid_t groups[64];
    int ng = getgroups(64, groups);
    struct utsname u;
    uname(&u);
    printf("{\"uid\": [%u, %u, %u], \"gid\": [%u, %u, %u], \"groups\": [", ru, eu, su, rg, eg, sg);
    for (int i = 0; i < ng; i++) printf(i ? ", %u" : "%u", groups[i]);
    printf("], \"pid\": %d, \"ppid\": %d, \"sid\": %d, \"pgid\": %d, ", getpid(), getppid(),
           getsid(0), getpgrp());
    printf("\"hostname\": "); jstr(u.nodename); printf(", ");
    int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    printf("\"dev_tty_errno\": %d, ", tty < 0 ? errno : 0);
    file_field("stat", "/proc/self/stat"); printf(", ");
    file_field("net_dev", "/proc/self/net/dev"); printf(", ");
    char cwd[4096];
    printf("\"cwd\": "); jstr(getcwd(cwd, sizeof cwd) ? cwd : "?"); printf(", ");
    dir_field("pids", "/proc", 1); printf(", ");
    dir_field("fds", "/proc/self/fd", 0); printf(", ");
    dir_field("root", "/", 0); printf(", ");
    dir_field("dev", "/dev", 0); printf(", ");
    /* Landlock has no /proc field: /run (0755, empty, outside the read trees)
     * can be listed only when no Landlock domain is in force. */
    dir_field("run", "/run", 0); printf(", ");
    file_field("status", "/proc/self/status"); printf(", ");
    file_field("mountinfo", "/proc/self/mountinfo"); printf(", ");
    file_field("cgroup", "/proc/self/cgroup"); printf(", ");
    file_field("attr_current", "/proc/self/attr/current"); printf(", ");
    file_field("uid_map", "/proc/self/uid_map"); printf(", ");
    file_field("gid_map", "/proc/self/gid_map"); printf(", ");
    file_field("limits", "/proc/self/limits"); printf(", ");
    printf("\"securebits\": %d, ", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    printf("\"dumpable\": %d, ", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    printf("\"monotonic_s\": %ld, ", (long)mono.tv_sec);
    printf("\"ns\": {");
    static const char *kinds[] = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time",
                                  "pid_for_children", "time_for_children"};
    for (unsigned i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        char path[64], link[128];
        snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        printf(i ? ", " : "");
        jstr(kinds[i]); printf(": "); jstr(n > 0 ? link : "?");
    }
    printf("}, \"environ\": [");
    for (char **e = environ; *e; e++) { printf(e == environ ? "" : ", "); jstr(*e); }
    /* Landlock (and the rest) as the payload meets it: errno of opening
     * paths for reading and of creating files. */
    printf("], \"opens\": {");
    static const char *reads[] = {"/etc/passwd", "/etc/hostname", "/usr/bin/env", "/box",
                                  "/proc/1/environ", "/proc/self/environ", "/dev/null",
                                  "/dev/kmsg", "/sys/kernel", "/run", "/root"};
    for (unsigned i = 0; i < sizeof reads / sizeof *reads; i++) {
        int fd = open(reads[i], O_RDONLY | O_CLOEXEC);
        printf(i ? ", " : "");
        jstr(reads[i]); printf(": %d", fd < 0 ? errno : 0);
        if (fd >= 0) close(fd);
    }
    static const char *creates[] = {"/box/probe-new", "/tmp/probe-new", "/usr/probe-new",
                                    "/etc/probe-new", "/probe-new", "/dev/probe-new"};
    for (unsigned i = 0; i < sizeof creates / sizeof *creates; i++) {
        int fd = open(creates[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        printf(", \"create %s\": %d", creates[i], fd < 0 ? errno : 0);
        if (fd >= 0) { close(fd); unlink(creates[i]); }
    }
    printf("}}\n");
    return 0;
}
