/* Bare baseline: fork + exec + wait of a command, timed from the parent.
 *
 *   forkexec [-q] -n N -- PROG ARGS...    one line per run: nanoseconds
 *   forkexec [-q] -j W -t SECS -- PROG... W workers loop for SECS; prints "runs N secs S"
 *   forkexec -r -- PROG ARGS...           one run; after its output, a last line
 *                                         "rusage MAXRSS_KIB UTIME_NS STIME_NS" (wait4)
 *   forkexec -n N -- A ARGS ::: B ARGS    each timed run is A, then B (then ...), in order:
 *                                         a peer's whole cycle (isolate's init, run, cleanup)
 *
 * -q sends the child's stdout/stderr to /dev/null. A run whose exit status is
 * not 0 (any command of a sequence) stops the loop with status 2 and "failed:
 * status S" on stderr, so a broken command (bwrap without a loader, say) is
 * never timed as a fast one.
 * Clock: CLOCK_MONOTONIC, the same clock Python's time.monotonic() reads. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int quiet;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int rusage_once(char **argv) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(3); }
    if (pid == 0) { execv(argv[0], argv); _exit(127); }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) { perror("wait4"); exit(3); }
    printf("rusage %ld %lld %lld\n", ru.ru_maxrss,
           ru.ru_utime.tv_sec * 1000000000LL + ru.ru_utime.tv_usec * 1000LL,
           ru.ru_stime.tv_sec * 1000000000LL + ru.ru_stime.tv_usec * 1000LL);
    return status == 0 ? 0 : 2;
}

static char **cmds[64];
static int ncmds;

static int run_one(char **argv) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(3); }
    if (pid == 0) {
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); exit(3); }
    return status;
}

/* One timed run: every command of the sequence, stopping at the first failure. */
static int run_once(char **argv) {
    (void)argv;
    for (int i = 0; i < ncmds; i++) {
        int st = run_one(cmds[i]);
        if (st != 0) {
            if (ncmds > 1) fprintf(stderr, "command %d of %d (%s) ", i + 1, ncmds, cmds[i][0]);
            return st;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    long n = 0, workers = 0;
    double secs = 0;
    int opt, rusage = 0;
    while ((opt = getopt(argc, argv, "+qrn:j:t:")) != -1) {
        switch (opt) {
        case 'q': quiet = 1; break;
        case 'r': rusage = 1; break;
        case 'n': n = atol(optarg); break;
        case 'j': workers = atol(optarg); break;
        case 't': secs = atof(optarg); break;
        default: return 64;
        }
    }
    if (optind >= argc || (!rusage && n <= 0 && (workers <= 0 || secs <= 0))) {
        fprintf(stderr, "usage: forkexec [-q] (-n N | -j W -t SECS | -r) -- PROG ARGS...\n");
        return 64;
    }
    char **cmd = argv + optind;
    if (rusage) return rusage_once(cmd);
    cmds[ncmds++] = cmd;
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], ":::") == 0) {
            argv[i] = NULL;
            if (i + 1 >= argc || ncmds == 64) { fprintf(stderr, "forkexec: empty command after :::\n"); return 64; }
            cmds[ncmds++] = argv + i + 1;
        }
    }
    if (n > 0) {
        long long *t = calloc(n, sizeof *t);
        for (long i = 0; i < n; i++) {
            long long t0 = now_ns();
            int st = run_once(cmd);
            t[i] = now_ns() - t0;
            if (st != 0) { fprintf(stderr, "failed: status %d\n", st); return 2; }
        }
        for (long i = 0; i < n; i++) printf("%lld\n", t[i]);
        return 0;
    }
    int pipes[2];
    if (pipe(pipes) < 0) { perror("pipe"); return 3; }
    long long start = now_ns(), end = start + (long long)(secs * 1e9);
    for (long w = 0; w < workers; w++) {
        if (fork() == 0) {
            long count = 0;
            while (now_ns() < end) {
                if (run_once(cmd) != 0) { count = -1; break; }
                count++;
            }
            if (write(pipes[1], &count, sizeof count) != sizeof count) _exit(3);
            _exit(0);
        }
    }
    close(pipes[1]);
    long total = 0, c;
    int failed = 0;
    while (read(pipes[0], &c, sizeof c) == sizeof c) {
        if (c < 0) failed = 1; else total += c;
    }
    while (wait(NULL) > 0) {}
    double elapsed = (now_ns() - start) / 1e9;
    if (failed) { fprintf(stderr, "failed: a run exited non-zero\n"); return 2; }
    printf("runs %ld secs %.6f\n", total, elapsed);
    return 0;
}
