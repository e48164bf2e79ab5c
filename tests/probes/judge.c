/* Judge probe: behaviours with a known verdict, selected by argv[1].
 *   hog MIB       allocate and touch MIB MiB, then exit 0
 *   spin          burn CPU forever
 *   sleep SECS    sleep
 *   flood         write to stdout forever
 *   ptrace        ptrace(PTRACE_TRACEME): a denied syscall under strict
 *   alloc MIB     allocate and touch MIB MiB once, print "done", exit 0
 *   cpus          print the CPUs sched_getaffinity allows, try to widen, print again
 *   count         print a counter every 50 ms (for freeze/thaw)
 *   sigsys        raise(SIGSYS): a forged "security violation"
 *   forkbomb N    fork N sleeping children; print how many forks worked and the errno */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <time.h>
#include <unistd.h>

static void touch(long mib) {
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p) exit(3);
        memset(p, 1, 1 << 20);
    }
}

static void print_cpus(const char *label) {
    cpu_set_t s;
    CPU_ZERO(&s);
    sched_getaffinity(0, sizeof s, &s);
    printf("%s", label);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &s)) printf(" %d", i);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *m = argv[1];
    if (!strcmp(m, "hog") || !strcmp(m, "alloc")) {
        touch(argc > 2 ? atol(argv[2]) : 1024);
        printf("done\n");
        return 0;
    }
    if (!strcmp(m, "spin")) for (volatile unsigned long i = 0;; i++) {}
    if (!strcmp(m, "sleep")) { sleep(argc > 2 ? atoi(argv[2]) : 60); return 0; }
    if (!strcmp(m, "flood")) {
        static char buf[65536];
        memset(buf, 'x', sizeof buf);
        for (;;) if (write(1, buf, sizeof buf) < 0) return 4;
    }
    if (!strcmp(m, "ptrace")) { ptrace(PTRACE_TRACEME, 0, 0, 0); return 0; }
    if (!strcmp(m, "cpus")) {
        print_cpus("before");
        cpu_set_t all;
        CPU_ZERO(&all);
        for (int i = 0; i < 64; i++) CPU_SET(i, &all);
        int r = sched_setaffinity(0, sizeof all, &all);
        printf("setaffinity %d\n", r);
        print_cpus("after");
        return 0;
    }
    if (!strcmp(m, "count")) {
        for (int i = 0;; i++) {
            printf("%d\n", i);
            fflush(stdout);
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, 0);
        }
    }
    if (!strcmp(m, "sigsys")) { raise(SIGSYS); return 5; }
    if (!strcmp(m, "forkbomb")) {
        int n = argc > 2 ? atoi(argv[2]) : 100, ok = 0, err = 0;
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) { sleep(30); _exit(0); }
            if (p < 0) { err = errno; break; }
            ok++;
        }
        printf("forked %d errno %d\n", ok, err);
        return 0;
    }
    return 2;
}
