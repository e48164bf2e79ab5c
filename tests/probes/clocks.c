/* Clocks as the run sees them: CLOCK_MONOTONIC, CLOCK_BOOTTIME, sysinfo().
 * Prints "monotonic S boottime S sysinfo_uptime S totalram BYTES procs N". */
#include <stdio.h>
#include <sys/sysinfo.h>
#include <time.h>

int main(void) {
    struct timespec m, b;
    struct sysinfo si;
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_BOOTTIME, &b);
    if (sysinfo(&si) != 0) return 1;
    printf("monotonic %.3f boottime %.3f sysinfo_uptime %ld totalram %llu procs %u\n",
           m.tv_sec + m.tv_nsec / 1e9, b.tv_sec + b.tv_nsec / 1e9, si.uptime,
           (unsigned long long)si.totalram * si.mem_unit, (unsigned)si.procs);
    return 0;
}
