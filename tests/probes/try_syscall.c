/*
 * try_syscall: make one system call and exit with its errno (0 on success),
 * so a test can read the kernel's (and the seccomp filter's) decision from
 * the exit status. In the style of bubblewrap's tests/try-syscall.c.
 *
 *   try_syscall native NR [ARG...]   syscall(NR, ARG...) via the x86_64 ABI
 *   try_syscall int80 NR [ARG...]    the same through the i386 ABI (int $0x80)
 *   try_syscall x32 NR [ARG...]      NR | 0x40000000 via the x86_64 ABI
 *   try_syscall thread-int80 NR      int $0x80 from a second thread; the main
 *                                    thread exits 0 after joining it, so only
 *                                    a KILL_PROCESS verdict ends everything
 *
 * Arguments are parsed with strtoull(..., 0): 0x prefixes and full 64-bit
 * values work. A clone/fork-like call that returns 0 in a child makes the
 * child exit 0 at once; the parent reaps it. Killed by seccomp => SIGSYS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long int80(long nr, const unsigned long *a)
{
    long ret;
    /* i386 ABI: eax = nr, ebx, ecx, edx, esi, edi, ebp = args (32-bit). */
    __asm__ volatile("push %%rbp\n\tmov %7, %%rbp\n\tint $0x80\n\tpop %%rbp"
                     : "=a"(ret)
                     : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4]),
                       "g"(a[5])
                     : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

static void *thread_int80(void *arg)
{
    static const unsigned long zero[6];
    int80((long)(intptr_t)arg, zero);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long a[6] = {0};
    long nr, ret;
    pid_t self = getpid();

    if (argc < 3) {
        fprintf(stderr, "usage: %s native|int80|x32|thread-int80 NR [ARG...]\n", argv[0]);
        return 255;
    }
    nr = (long)strtoull(argv[2], NULL, 0);
    for (int i = 3; i < argc && i < 9; i++)
        a[i - 3] = strtoull(argv[i], NULL, 0);

    if (strcmp(argv[1], "thread-int80") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_int80, (void *)(intptr_t)nr) != 0)
            return 254;
        pthread_join(t, NULL);
        return 0;
    }
    if (strcmp(argv[1], "int80") == 0) {
        ret = int80(nr, a);
        if (ret < 0 && ret > -4096) {
            errno = (int)-ret;
            ret = -1;
        }
    } else {
        if (strcmp(argv[1], "x32") == 0)
            nr |= 0x40000000L;
        ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    if (ret == 0 && getpid() != self)
        _exit(0); /* the child of a fork-like call */
    if (ret > 0 && (nr == SYS_clone || nr == SYS_fork || nr == SYS_vfork))
        waitpid((pid_t)ret, NULL, __WALL);
    return ret == -1 ? errno : 0;
}
