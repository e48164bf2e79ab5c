/* Syscall-bound loops under a seccomp filter loaded from raw BPF bytes.
 *
 *   seccomp_loop FILTER ITERS [CPU]   FILTER: a file of struct sock_filter[] or "none";
 *                                     CPU: pin the process to that CPU first
 *
 * Sets no_new_privs, loads the filter with seccomp(SECCOMP_SET_MODE_FILTER, 0)
 * (flags 0 for every filter, so only the program differs), then times ITERS
 * getppid() and ITERS/10 open("/dev/null")+close() through syscall(2), not
 * libc wrappers that could cache. Prints ns per iteration:
 *   getppid_ns X
 *   openclose_ns Y
 * A filter whose default is a user notification returns ENOSYS without a
 * listener; both loops fail loudly (status 4) if a call does not succeed. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(3); }
    static struct sock_filter insns[BPF_MAXINSNS];
    size_t n = fread(insns, sizeof insns[0], BPF_MAXINSNS, f);
    fclose(f);
    if (n == 0) { fprintf(stderr, "%s: empty filter\n", path); exit(3); }
    struct sock_fprog prog = { .len = (unsigned short)n, .filter = insns };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) { perror("prctl(NNP)"); exit(3); }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) { perror("seccomp"); exit(3); }
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: seccomp_loop FILTER|none ITERS [CPU]\n");
        return 64;
    }
    long iters = atol(argv[2]);
    if (argc == 4) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(argv[3]), &set);
        if (sched_setaffinity(0, sizeof set, &set)) { perror("sched_setaffinity"); return 3; }
    }
    if (strcmp(argv[1], "none") != 0) load(argv[1]);
    for (long i = 0; i < 1000; i++) syscall(SYS_getppid);  /* warm caches */
    long long t0 = now_ns();
    for (long i = 0; i < iters; i++)
        if (syscall(SYS_getppid) <= 0) return 4;
    long long t1 = now_ns();
    long oc = iters / 10;
    for (long i = 0; i < oc; i++) {
        long fd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_close, fd)) return 4;
    }
    long long t2 = now_ns();
    printf("getppid_ns %.2f\nopenclose_ns %.2f\n", (double)(t1 - t0) / iters, (double)(t2 - t1) / oc);
    return 0;
}
