/* cgprobe: turns cgroup decisions into output lines for tests/cgkit.py.
 *
 *   alloc MIB             malloc and touch MIB MiB, print "allocated"
 *   forkbomb N            fork up to N children that pause(); print "forked K errno E",
 *                         then pause() (the test kills the leaf)
 *   spin SECONDS          burn CPU for SECONDS of wall time, print "spun"
 *   burn SECONDS          burn SECONDS of CPU time after exec (whatever the load),
 *                         print "burnt"
 *   affinity              print the allowed CPUs, widen to all, print them again
 *   open PATH...          open each O_RDONLY, print "PATH ok" or "PATH errno E"
 *   counter FILE          write an increasing counter to FILE about every ms, forever
 *   forkloop              fork, parent exits, child repeats (pids keep moving), forever
 *   dio DEV r|w BYTES     O_DIRECT read/write BYTES at offset 0 in 64 KiB blocks,
 *                         print "dio BYTES NS" (bytes done, elapsed ns)
 *   hugetlb PAGES         mmap PAGES 2 MiB huge pages and touch them, print "huge ok"
 *                         or "huge errno E"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void print_affinity(const char *label) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        printf("%s errno %d\n", label, errno);
        return;
    }
    printf("%s", label);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set)) printf(" %d", i);
    printf("\n");
}

static int dio(const char *dev, const char *mode, long long bytes) {
    int wr = mode[0] == 'w';
    int fd = open(dev, (wr ? O_WRONLY : O_RDONLY) | O_DIRECT);
    if (fd < 0) { printf("dio open errno %d\n", errno); return 1; }
    const size_t bs = 64 * 1024;
    void *buf;
    if (posix_memalign(&buf, 4096, bs) != 0) return 1;
    memset(buf, 0x5a, bs);
    long long done = 0, t0 = now_ns();
    while (done < bytes) {
        ssize_t n = wr ? pwrite(fd, buf, bs, done) : pread(fd, buf, bs, done);
        if (n <= 0) { printf("dio io errno %d at %lld\n", errno, done); return 1; }
        done += n;
    }
    printf("dio %lld %lld\n", done, now_ns() - t0);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "alloc") && argc == 3) {
        size_t n = (size_t)atol(argv[2]) << 20;
        char *p = malloc(n);
        if (!p) { printf("malloc failed\n"); return 1; }
        for (size_t i = 0; i < n; i += 4096) p[i] = 1;
        printf("allocated\n");
        return 0;
    }
    if (!strcmp(cmd, "forkbomb") && argc == 3) {
        int n = atoi(argv[2]), k = 0, err = 0;
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) { pause(); _exit(0); }
            if (pid < 0) { err = errno; break; }
            k++;
        }
        printf("forked %d errno %d\n", k, err);
        for (;;) pause();
    }
    if (!strcmp(cmd, "spin") && argc == 3) {
        long long end = now_ns() + (long long)(atof(argv[2]) * 1e9);
        volatile unsigned long x = 0;
        while (now_ns() < end) x++;
        printf("spun\n");
        return 0;
    }
    if (!strcmp(cmd, "burn") && argc == 3) {
        /* The process CPU clock survives execve: count from here, not from fork. */
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        long long want = ts.tv_sec * 1000000000LL + ts.tv_nsec + (long long)(atof(argv[2]) * 1e9);
        volatile unsigned long x = 0;
        do {
            for (int i = 0; i < 10000; i++) x++;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        } while (ts.tv_sec * 1000000000LL + ts.tv_nsec < want);
        printf("burnt\n");
        return 0;
    }
    if (!strcmp(cmd, "affinity")) {
        print_affinity("before");
        cpu_set_t all;
        CPU_ZERO(&all);
        for (int i = 0; i < 64; i++) CPU_SET(i, &all);
        int rc = sched_setaffinity(0, sizeof all, &all);
        printf("setaffinity %d errno %d\n", rc, rc ? errno : 0);
        print_affinity("after");
        return 0;
    }
    if (!strcmp(cmd, "open")) {
        for (int i = 2; i < argc; i++) {
            int fd = open(argv[i], O_RDONLY);
            if (fd >= 0) { printf("%s ok\n", argv[i]); close(fd); }
            else printf("%s errno %d\n", argv[i], errno);
        }
        return 0;
    }
    if (!strcmp(cmd, "counter") && argc == 3) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return 1;
        char buf[32];
        struct timespec ms = {0, 1000000};
        for (unsigned long i = 0;; i++) {
            int len = snprintf(buf, sizeof buf, "%020lu\n", i);
            if (pwrite(fd, buf, len, 0) != len) return 1;
            nanosleep(&ms, NULL);
        }
    }
    if (!strcmp(cmd, "forkloop")) {
        for (;;) {
            pid_t pid = fork();
            if (pid > 0) _exit(0);
            if (pid < 0) { struct timespec ms = {0, 1000000}; nanosleep(&ms, NULL); }
        }
    }
    if (!strcmp(cmd, "dio") && argc == 5) return dio(argv[2], argv[3], atoll(argv[4]));
    if (!strcmp(cmd, "hugetlb") && argc == 3) {
        size_t n = (size_t)atol(argv[2]) << 21;
        char *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (p == MAP_FAILED) { printf("huge errno %d\n", errno); return 1; }
        for (size_t i = 0; i < n; i += 4096) p[i] = 1;
        printf("huge ok\n");
        return 0;
    }
    fprintf(stderr, "cgprobe: bad arguments\n");
    return 2;
}
