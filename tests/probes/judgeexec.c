/*
 * judgeexec: a submission that tries to run something after its own execve,
 * for the judge profiles (tests/escape/test_judge_exec.py). Exit status:
 *
 *   0        the attack worked: another program ran
 *   1..199   it failed: the errno of the refused call
 *   200+     the probe itself went wrong
 *
 *   exec-sh       execve("/bin/sh", "-c", "exit 0")
 *   exec-copy     write a copy of /bin/true into /box and execve it
 *   exec-loader   execve the ELF loader with /bin/true as its argument
 *   rewrite-self  open the running program for writing (then it could exec it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BAD 200

static int copy(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out;
    char buf[65536];
    ssize_t n;
    if (in < 0)
        return BAD + 1;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (out < 0)
        return errno;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            return BAD + 2;
    close(in);
    close(out);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "exec-sh")) {
        execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
        return errno;
    }
    if (!strcmp(cmd, "exec-copy")) {
        int r = copy("/bin/true", "/box/copied");
        if (r)
            return r;
        execl("/box/copied", "copied", (char *)NULL);
        return errno;
    }
    if (!strcmp(cmd, "exec-loader")) {
        execl("/lib64/ld-linux-x86-64.so.2", "ld.so", "/bin/true", (char *)NULL);
        return errno;
    }
    if (!strcmp(cmd, "rewrite-self")) {
        int fd = open("/proc/self/exe", O_WRONLY);
        return fd < 0 ? errno : 0;
    }
    fprintf(stderr, "usage: judgeexec exec-sh|exec-copy|exec-loader|rewrite-self\n");
    return BAD;
}
