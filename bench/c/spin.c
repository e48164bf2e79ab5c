/* Known CPU work for the accounting benchmark. Prints the CPU time this
 * process used (ns, CLOCK_PROCESS_CPUTIME_ID) and exits 0.
 *
 *   spin ms MS          burn until the process has used MS ms of CPU
 *   spin work N [CPU]   a fixed amount of work: N million loop iterations
 *                       (pinned to CPU first when given): its CPU time
 *                       varies only with the machine, so its spread over
 *                       runs is the accounting's reproducibility */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    volatile unsigned long x = 0;
    if (argc >= 3 && strcmp(argv[1], "ms") == 0) {
        long long want = atoll(argv[2]) * 1000000LL;
        while (cpu_ns() < want)
            for (int i = 0; i < 10000; i++) x += i;
    } else if (argc >= 3 && strcmp(argv[1], "work") == 0) {
        if (argc >= 4) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(atoi(argv[3]), &set);
            if (sched_setaffinity(0, sizeof set, &set)) { perror("sched_setaffinity"); return 3; }
        }
        long n = atol(argv[2]);
        for (long j = 0; j < n; j++)
            for (int i = 0; i < 1000000; i++) x += i;
    } else {
        fprintf(stderr, "usage: spin ms MS | spin work N [CPU]\n");
        return 64;
    }
    printf("%lld\n", cpu_ns());
    return 0;
}
