/* Isolation probe: what a sandboxed process sees, one "key value" line each.
 *
 *   isoprobe        (built static: it runs in any peer's root, busybox or empty)
 *
 * bench-build: -static
 *
 * ns:NAME INODE  for user, pid, mnt, net, ipc, uts, cgroup, time (from
 *                /proc/self/ns; "none" when /proc is missing there)
 * uid, gid       real ids as seen inside
 * pid            our pid inside (1 or 2 in a new pid namespace)
 * capeff, capbnd CapEff / CapBnd of /proc/self/status (hex)
 * nnp, seccomp   NoNewPrivs, Seccomp (0 none, 2 filter)
 * root_ro        1 when / is mounted read-only
 * hostname       as seen inside
 * net_ifaces     interfaces listed in /proc/net/dev (lo only when isolated)
 *
 * The bench runs it under each peer with the same options as the timed
 * /bin/true, and compares with the host's values, so that a peer is never
 * timed doing less isolation than it claims. Exits 0. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static void status_field(const char *key, const char *out) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, n) && line[n] == ':') {
            char *v = line + n + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = 0;
            printf("%s %s\n", out, v);
            fclose(f);
            return;
        }
    }
    if (f) fclose(f);
    printf("%s none\n", out);
}

int main(void) {
    const char *ns[] = {"user", "pid", "mnt", "net", "ipc", "uts", "cgroup", "time"};
    for (int i = 0; i < 8; i++) {
        char path[64], link[128];
        snprintf(path, sizeof path, "/proc/self/ns/%s", ns[i]);
        ssize_t r = readlink(path, link, sizeof link - 1);
        if (r <= 0) {
            printf("ns:%s none\n", ns[i]);
            continue;
        }
        link[r] = 0;
        char *a = strchr(link, '['), *b = strchr(link, ']');
        if (a && b) {
            *b = 0;
            printf("ns:%s %s\n", ns[i], a + 1);
        } else {
            printf("ns:%s %s\n", ns[i], link);
        }
    }
    printf("uid %d\ngid %d\npid %d\n", (int)getuid(), (int)getgid(), (int)getpid());
    status_field("CapEff", "capeff");
    status_field("CapBnd", "capbnd");
    status_field("NoNewPrivs", "nnp");
    status_field("Seccomp", "seccomp");
    struct statvfs sv;
    printf("root_ro %d\n", statvfs("/", &sv) == 0 ? (sv.f_flag & ST_RDONLY) != 0 : -1);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    printf("hostname %s\n", host);
    FILE *f = fopen("/proc/net/dev", "r");
    char line[256], ifaces[512] = "";
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (++n <= 2) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        *c = 0;
        char *name = line + strspn(line, " ");
        if (strlen(ifaces) + strlen(name) + 2 < sizeof ifaces) {
            if (*ifaces) strcat(ifaces, ",");
            strcat(ifaces, name);
        }
    }
    if (f) fclose(f);
    printf("net_ifaces %s\n", f ? ifaces : "none");
    return 0;
}
