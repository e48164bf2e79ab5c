/* The resident launcher server: one per client (a Sandbox, or the CLI),
 * single-threaded, the model of sandbox/launcher/server.py.
 *
 * - spawn: a request with the run's fds (SCM_RIGHTS, fixed order) and its
 *   encoded plan; the server decodes the plan (plan.c), forks the run's outer
 *   process and answers spawned/failed; exited when the outer is reaped;
 * - id maps: the outer asks over its sync socket once it is in its new user
 *   namespace; only the parent namespace may write them (one uid, one gid,
 *   setgroups denied; never an identity map);
 * - kill / release: SIGKILL through the outer's pidfd / forget the run;
 * - hold: what to remove for a run id with no process yet (a cgroup leaf and
 *   run lock made ahead, runner/pool.py), kept like a run's until a spawn of
 *   that id takes it over or a release forgets it;
 * - watchdog: at end-of-file on the client socket (the client exited or was
 *   SIGKILLed) every run is killed and the cgroup leaves and files each run
 *   registered are removed, then the server exits. It uses no PDEATHSIG: that
 *   follows the thread that started it, and a judge may start it from a pool
 *   thread.
 * - network namespaces prepared ahead (root only): each is entered by exactly
 *   one run and never reused; they are only fds of this process, so they
 *   vanish with it, also when it is SIGKILLed.
 *
 * Messages are wire.py's: the same reader as the plan (plan.c). */
#include "sbx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { OP_SPAWN = 1, OP_KILL = 2, OP_RELEASE = 3, OP_PING = 4, OP_HOLD = 5 };
enum { R_HELLO = 100, R_SPAWNED = 101, R_FAILED = 102, R_EXITED = 103, R_PONG = 104 };
#define MAX_RECV_FDS 64

int sbx_loopback_up(struct sbx_err *e);

struct run {
    char id[256];
    pid_t pid;
    int pidfd, sync, exited;
    uint32_t inside[2], host[2];
    char **dirs, **files, **staged;
    uint32_t n_dirs, n_files, n_staged;
};

static int ctl = -1;
static struct run *runs;
static size_t n_runs, cap_runs;
static int last_cap = 40;
static int detached_layers; /* sbx_detached_layers(), once */
static int server_session;  /* setsid() at start succeeded (outer.c step_new_session) */
static char *g_cmdline;
static size_t g_cmdline_len;
static uint8_t msgbuf[SBX_MAX_MSG];
static uint8_t arena_buf[2u << 20];
static struct sbx_ctx g_ctx; /* the run being spawned: copied into its outer by fork */
static int pool[16], n_pool, pool_want, host_netns = -1;

/* ------------------------------------------------------------ replies --- */

struct wr { uint8_t b[1400]; size_t n; };
static void w_u32(struct wr *w, uint32_t v) {
    if (w->n + 4 <= sizeof w->b) memcpy(w->b + w->n, &v, 4), w->n += 4;
}
static void w_str(struct wr *w, const char *s) {
    size_t n = strlen(s);
    if (n > 1000) n = 1000;
    w_u32(w, (uint32_t)n);
    if (w->n + n + 1 <= sizeof w->b) memcpy(w->b + w->n, s, n), w->b[w->n + n] = 0, w->n += n + 1;
}
static void send_reply(struct wr *w) {
    if (send(ctl, w->b, w->n, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
        fprintf(stderr, "sandbox-launcher: reply: %s\n", strerror(errno));
}
static void reply_failed(const char *id, const char *msg) {
    struct wr w = {.n = 0};
    w_u32(&w, R_FAILED), w_str(&w, id), w_str(&w, msg);
    send_reply(&w);
}

/* --------------------------------------------------------------- runs --- */

static struct run *find(const char *id) {
    for (size_t i = 0; i < n_runs; i++)
        if (!strcmp(runs[i].id, id)) return &runs[i];
    return NULL;
}

static void forget(struct run *r) {
    if (r->sync >= 0) close(r->sync);
    if (!r->exited) {
        sys_pidfd_send_signal(r->pidfd, SIGKILL);
        while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (r->pidfd >= 0) close(r->pidfd); /* a hold has none */
    for (uint32_t i = 0; i < r->n_dirs; i++) free(r->dirs[i]);
    for (uint32_t i = 0; i < r->n_files; i++) free(r->files[i]);
    for (uint32_t i = 0; i < r->n_staged; i++) free(r->staged[i]);
    free(r->dirs), free(r->files), free(r->staged);
    *r = runs[--n_runs];
}

static int write_maps(const struct run *r) {
    char path[64], line[64];
    struct sbx_err e = {0};
    size_t n;
    sbx_fmt(path, sizeof path, "/proc/%d/uid_map", (int)r->pid);
    n = sbx_fmt(line, sizeof line, "%u %u 1\n", r->inside[0], r->host[0]);
    if (sbx_write_file(path, line, n, &e)) goto fail;
    sbx_fmt(path, sizeof path, "/proc/%d/setgroups", (int)r->pid);
    if (sbx_write_file(path, "deny", 4, &e)) goto fail;
    sbx_fmt(path, sizeof path, "/proc/%d/gid_map", (int)r->pid);
    n = sbx_fmt(line, sizeof line, "%u %u 1\n", r->inside[1], r->host[1]);
    if (sbx_write_file(path, line, n, &e)) goto fail;
    return 0;
fail:
    fprintf(stderr, "sandbox-launcher: id maps for %s: %s\n", r->id, e.msg);
    return -1;
}

static void on_sync(struct run *r) {
    char b[16];
    ssize_t n = recv(r->sync, b, sizeof b, 0);
    if (n <= 0) {
        close(r->sync);
        r->sync = -1;
        return;
    }
    if (n == 1 && b[0] == 'U') {
        sbx_trace("server_maps");
        char ans = write_maps(r) ? 'F' : 'M';
        send(r->sync, &ans, 1, MSG_NOSIGNAL);
    }
}

static void on_exit_(struct run *r) {
    int status = 0;
    if (waitpid(r->pid, &status, WNOHANG) <= 0) return;
    r->exited = 1;
    sbx_trace("server_reaped");
    struct wr w = {.n = 0};
    w_u32(&w, R_EXITED), w_str(&w, r->id), w_u32(&w, (uint32_t)status);
    send_reply(&w);
}

/* -------------------------------------------------------- netns pool --- */

static void pool_fill_one(void) {
    /* unshare(CLONE_NEWNET) moves this process into a fresh namespace: keep a
     * handle on it, bring lo up there, and come back. */
    struct sbx_err e = {0};
    if (unshare(CLONE_NEWNET) < 0) {
        pool_want = 0; /* not allowed here: stop trying */
        return;
    }
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && sbx_loopback_up(&e) == 0;
    if (setns(host_netns, CLONE_NEWNET) < 0) {
        fprintf(stderr, "sandbox-launcher: cannot return to the host network namespace\n");
        _exit(70);
    }
    if (ok) pool[n_pool++] = fd;
    else if (fd >= 0) close(fd), pool_want = 0;
}

/* ---------------------------------------------------------- cleanup --- */

static int safe_path(const char *p, const char *prefix) {
    if (strncmp(p, prefix, strlen(prefix)) != 0) return 0;
    return !strstr(p, "/../") && !strstr(p, "/./") &&
           strcmp(p + strlen(p) - (strlen(p) >= 3 ? 3 : 0), "/..") != 0;
}

static void remove_cgroup_dir(const char *d) {
    /* Kill what is left in the leaf and rmdir it; 5 s at most (server.py). */
    struct timespec t0, now, nap = {0, 5 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char path[SBX_MAX_STR + 32];
    /* A paused container's v1 freezer leaf: its tasks die only once thawed. */
    sbx_fmt(path, sizeof path, "%s/freezer.state", d);
    int frz = open(path, O_WRONLY | O_CLOEXEC);
    if (frz >= 0) (void)!write(frz, "THAWED", 6), close(frz);
    for (;;) {
        if (rmdir(d) == 0 || errno == ENOENT) return;
        sbx_fmt(path, sizeof path, "%s/cgroup.kill", d);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) (void)!write(fd, "1", 1), close(fd);
        sbx_fmt(path, sizeof path, "%s/cgroup.procs", d);
        FILE *f = fopen(path, "re");
        if (f) {
            int pid;
            while (fscanf(f, "%d", &pid) == 1) kill(pid, SIGKILL);
            fclose(f);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 5) return;
        nanosleep(&nap, NULL);
    }
}

static void remove_staged_dir(const char *d) {
    /* A run's private copies of staged bytes: a flat directory of files only
     * (acquire.py), emptied without following anything, then removed. */
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dir)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlinkat(dirfd(dir), de->d_name, 0);
    closedir(dir);
    rmdir(d);
}

static int depth(const char *s) {
    int k = 0;
    for (; *s; s++) k += *s == '/';
    return k;
}

static void shutdown_all(void) {
    /* The client is gone: kill every run, then remove what each registered. */
    for (size_t i = 0; i < n_runs; i++)
        if (!runs[i].exited) sys_pidfd_send_signal(runs[i].pidfd, SIGKILL);
    while (n_runs) {
        struct run *r = &runs[n_runs - 1];
        /* deepest first */
        for (int pass = 64; pass >= 0; pass--)
            for (uint32_t i = 0; i < r->n_dirs; i++)
                if (depth(r->dirs[i]) == pass && safe_path(r->dirs[i], "/sys/fs/cgroup/"))
                    remove_cgroup_dir(r->dirs[i]);
        for (uint32_t i = 0; i < r->n_staged; i++) /* before the lock: the sweep keys on it */
            if (safe_path(r->staged[i], "/")) remove_staged_dir(r->staged[i]);
        for (uint32_t i = 0; i < r->n_files; i++)
            if (safe_path(r->files[i], "/")) unlink(r->files[i]);
        forget(r);
    }
}

/* ------------------------------------------------------------- spawn --- */

static char **copy_strs(const char **v, uint32_t n) {
    char **out = calloc(n ? n : 1, sizeof *out);
    for (uint32_t i = 0; out && i < n; i++) out[i] = strdup(v[i]);
    return out;
}

static void close_fds(const int *fds, int n) {
    for (int i = 0; i < n; i++) close(fds[i]);
}

static void spawn(struct sbx_rd *r, const int *fds, int nfds) {
    struct sbx_err e = {0};
    static struct sbx_plan plan;
    const char *id = "";
    uint8_t has_notify, has_gate;
    uint32_t n_cgroup, n_dirs, n_staged, n_files, plan_len;
    const char *dirs[SBX_MAX_CLEANUP + 1], *staged[SBX_MAX_CLEANUP + 1],
        *files[SBX_MAX_CLEANUP + 1];
    const uint8_t *plan_buf;
    r->field = "spawn";
    if (rd_str(r, &id, 255, &e) || rd_bool(r, &has_notify, &e) || rd_bool(r, &has_gate, &e) ||
        rd_count(r, &n_cgroup, SBX_MAX_CGROUP_FDS, &e) ||
        rd_count(r, &n_dirs, SBX_MAX_CLEANUP, &e))
        goto bad;
    for (uint32_t i = 0; i < n_dirs; i++)
        if (rd_str(r, &dirs[i], SBX_MAX_STR, &e)) goto bad;
    if (rd_count(r, &n_staged, SBX_MAX_CLEANUP, &e)) goto bad;
    for (uint32_t i = 0; i < n_staged; i++)
        if (rd_str(r, &staged[i], SBX_MAX_STR, &e)) goto bad;
    if (rd_count(r, &n_files, SBX_MAX_CLEANUP, &e)) goto bad;
    for (uint32_t i = 0; i < n_files; i++)
        if (rd_str(r, &files[i], SBX_MAX_STR, &e)) goto bad;
    if (rd_blob(r, &plan_buf, &plan_len, SBX_MAX_MSG, &e)) goto bad;
    if (r->off != r->len) {
        sbx_error(&e, EINVAL, "malformed spawn request: trailing bytes");
        goto bad;
    }
    if ((uint32_t)nfds != 5u + has_notify + has_gate + n_cgroup) {
        sbx_error(&e, EINVAL, "spawn request with %d fds, expected %u", nfds,
                  5u + has_notify + has_gate + n_cgroup);
        goto bad;
    }
    sbx_trace("spawn_request");
    struct sbx_arena a = {arena_buf, sizeof arena_buf, 0};
    if (sbx_plan_decode(plan_buf, plan_len, &plan, &a, &e)) goto bad;
    if (strcmp(plan.run_id, id)) {
        sbx_error(&e, EINVAL, "spawn request for %q carries the plan of %q", id, plan.run_id);
        goto bad;
    }
    struct run *held = find(id);
    if (held && held->pid) {
        sbx_error(&e, EEXIST, "run %q is already in flight", id);
        goto bad;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        sbx_error(&e, errno, "socketpair()");
        goto bad;
    }
    struct sbx_ctx *c = &g_ctx;
    memset(c, 0, sizeof *c);
    c->plan = &plan;
    c->fds = (struct sbx_fds){.in = fds[0], .out = fds[1], .err_ = fds[2], .errpipe = fds[3],
                              .status = fds[4], .sync = sv[1],
                              .notify = has_notify ? fds[5] : -1, .handover = -1,
                              .netns = -1,
                              .gate = has_gate ? fds[5 + has_notify] : -1};
    c->fds.n_cgroup = n_cgroup;
    for (uint32_t i = 0; i < n_cgroup; i++) c->fds.cgroup[i] = fds[5 + has_notify + has_gate + i];
    c->parent_pid = getpid();
    c->last_cap = last_cap;
    c->lifeline = -1;
    c->listener = -1;
    c->mnt.root = c->mnt.dev = c->mnt.upper = -1;
    c->detached_layers = detached_layers;
    c->server_session = server_session;
    c->cmdline = g_cmdline, c->cmdline_len = g_cmdline_len;
    if (plan.prepared_netns_ok && (plan.unshare_flags & CLONE_NEWNET) && n_pool)
        c->fds.netns = pool[--n_pool]; /* this run's alone: closed here after the fork */
    if (n_runs == cap_runs) {
        cap_runs = cap_runs ? cap_runs * 2 : 16;
        runs = realloc(runs, cap_runs * sizeof *runs);
        if (!runs) abort();
    }
    pid_t pid = fork();
    if (pid < 0) {
        sbx_error(&e, errno, "fork()");
        close(sv[0]), close(sv[1]);
        if (c->fds.netns >= 0) close(c->fds.netns);
        goto bad;
    }
    if (pid == 0) {
        /* Nothing of other runs, of the client socket or of the pool here. */
        close(ctl), close(sv[0]);
        for (size_t i = 0; i < n_runs; i++) {
            if (runs[i].sync >= 0) close(runs[i].sync);
            if (runs[i].pidfd >= 0) close(runs[i].pidfd);
        }
        for (int i = 0; i < n_pool; i++) close(pool[i]);
        if (host_netns >= 0) close(host_netns);
        sbx_outer_main(c);
    }
    close(sv[1]);
    if (c->fds.netns >= 0) close(c->fds.netns);
    close_fds(fds, nfds);
    /* The run takes over its hold: its own cleanup list replaces the hold's. */
    if ((held = find(id)) && !held->pid) forget(held);
    struct run *run = &runs[n_runs++];
    memset(run, 0, sizeof *run);
    snprintf(run->id, sizeof run->id, "%s", id);
    run->pid = pid;
    run->pidfd = sys_pidfd_open(pid, 0);
    run->sync = sv[0];
    run->inside[0] = plan.inside_uid, run->inside[1] = plan.inside_gid;
    run->host[0] = plan.host_uid, run->host[1] = plan.host_gid;
    run->dirs = copy_strs(dirs, n_dirs), run->n_dirs = n_dirs;
    run->files = copy_strs(files, n_files), run->n_files = n_files;
    run->staged = copy_strs(staged, n_staged), run->n_staged = n_staged;
    if (run->pidfd < 0) abort(); /* pidfd_open of our own unreaped child cannot fail */
    struct wr w = {.n = 0};
    w_u32(&w, R_SPAWNED), w_str(&w, id), w_u32(&w, (uint32_t)pid);
    send_reply(&w);
    return;
bad:
    close_fds(fds, nfds);
    reply_failed(id, e.msg);
}

static void hold(struct sbx_rd *r) {
    /* A run id with resources but no process yet: only its cleanup list. */
    struct sbx_err e = {0};
    const char *id = "", *dirs[SBX_MAX_CLEANUP + 1], *files[SBX_MAX_CLEANUP + 1];
    uint32_t n_dirs, n_files;
    r->field = "hold";
    if (rd_str(r, &id, 255, &e) || rd_count(r, &n_dirs, SBX_MAX_CLEANUP, &e)) goto bad;
    for (uint32_t i = 0; i < n_dirs; i++)
        if (rd_str(r, &dirs[i], SBX_MAX_STR, &e)) goto bad;
    if (rd_count(r, &n_files, SBX_MAX_CLEANUP, &e)) goto bad;
    for (uint32_t i = 0; i < n_files; i++)
        if (rd_str(r, &files[i], SBX_MAX_STR, &e)) goto bad;
    if (r->off != r->len) {
        sbx_error(&e, EINVAL, "malformed hold request: trailing bytes");
        goto bad;
    }
    if (!*id || find(id)) {
        sbx_error(&e, EEXIST, "run %q is already known", id);
        goto bad;
    }
    if (n_runs == cap_runs) {
        cap_runs = cap_runs ? cap_runs * 2 : 16;
        runs = realloc(runs, cap_runs * sizeof *runs);
        if (!runs) abort();
    }
    struct run *run = &runs[n_runs++];
    memset(run, 0, sizeof *run);
    snprintf(run->id, sizeof run->id, "%s", id);
    run->pidfd = run->sync = -1;
    run->exited = 1;
    run->dirs = copy_strs(dirs, n_dirs), run->n_dirs = n_dirs;
    run->files = copy_strs(files, n_files), run->n_files = n_files;
    run->staged = copy_strs(NULL, 0);
    return;
bad:
    reply_failed(id, e.msg);
}

static void handle(size_t len, const int *fds, int nfds, int truncated) {
    struct sbx_rd rd = {msgbuf, len, 0, "op"};
    struct sbx_err e = {0};
    uint32_t op;
    if (truncated || rd_u32(&rd, &op, &e)) {
        close_fds(fds, nfds);
        reply_failed("", truncated ? "request truncated (too large or too many fds)" : e.msg);
        return;
    }
    if (op == OP_SPAWN) {
        spawn(&rd, fds, nfds);
        return;
    }
    if (op == OP_HOLD) {
        close_fds(fds, nfds);
        hold(&rd);
        return;
    }
    close_fds(fds, nfds);
    const char *id = "";
    if (rd_str(&rd, &id, 255, &e)) {
        reply_failed("", e.msg);
        return;
    }
    struct run *r = find(id);
    if (op == OP_KILL) {
        if (r && !r->exited) sys_pidfd_send_signal(r->pidfd, SIGKILL);
    } else if (op == OP_RELEASE) {
        if (r) forget(r);
    } else if (op == OP_PING) {
        struct wr w = {.n = 0};
        w_u32(&w, R_PONG);
        send_reply(&w);
    } else {
        reply_failed(id, "unknown request");
    }
}

static int read_last_cap(void) {
    char b[16] = {0};
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 40;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    return n > 0 ? atoi(b) : 40;
}

int sbx_server_main(int fd, int netns_pool, const char *trace, char *cmdline, size_t cmdline_len) {
    ctl = fd;
    /* A session of our own, without a terminal, for us and every run (see
     * step_new_session); nothing here opens a terminal, so it never gets one
     * (O_NOCTTY besides, where a path comes from outside). Refused when we
     * lead a process group already: then each run makes its own session. */
    server_session = setsid() >= 0;
    if (trace)
        sbx_trace_fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    g_cmdline = cmdline, g_cmdline_len = cmdline_len;
    last_cap = read_last_cap();
    detached_layers = sbx_detached_layers();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* the client decides when runs end */
    sbx_note_signals();      /* no disposition changes after this line */
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    if (geteuid() == 0 && netns_pool > 0) {
        host_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        pool_want = host_netns >= 0 ? (netns_pool > 16 ? 16 : netns_pool) : 0;
    }
    struct wr w = {.n = 0};
    w_u32(&w, R_HELLO), w_u32(&w, SBX_PROTOCOL_VERSION), w_u32(&w, SBX_PLAN_VERSION);
    w_str(&w, SBX_BUILD_ID);
    send_reply(&w);
    struct pollfd *pfd = NULL;
    size_t pcap = 0;
    for (;;) {
        size_t need = 1 + 2 * n_runs;
        if (need > pcap) {
            pcap = need * 2;
            pfd = realloc(pfd, pcap * sizeof *pfd);
            if (!pfd) abort();
        }
        size_t k = 0;
        pfd[k++] = (struct pollfd){ctl, POLLIN, 0};
        for (size_t i = 0; i < n_runs; i++) {
            pfd[k++] = (struct pollfd){runs[i].sync, runs[i].sync >= 0 ? POLLIN : 0, 0};
            /* Not the pidfd of a reaped run: it reports POLLHUP whatever the
             * events asked (pidfd_poll), which made this loop spin until the
             * client released the run, a CPU taken from the next run's setup. */
            pfd[k++] = (struct pollfd){runs[i].exited ? -1 : runs[i].pidfd, POLLIN, 0};
        }
        /* The pool is filled only while no run is alive: making a namespace
         * takes a CPU for ~0.5 ms, which a run in setup would wait for. */
        int busy = 0;
        for (size_t i = 0; i < n_runs; i++) busy |= !runs[i].exited;
        int timeout = n_pool < pool_want && !busy ? 0 : -1;
        int n = poll(pfd, k, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("sandbox-launcher: poll");
            shutdown_all();
            return 70;
        }
        if (n == 0) {
            pool_fill_one();
            continue;
        }
        /* runs first (their events refer to this snapshot), by run id */
        char ids[64][256];
        short sev[64], xev[64];
        size_t m = 0;
        for (size_t i = 0; i < n_runs && m < 64; i++) {
            if (!(pfd[1 + 2 * i].revents | pfd[2 + 2 * i].revents)) continue;
            snprintf(ids[m], sizeof ids[m], "%s", runs[i].id);
            sev[m] = pfd[1 + 2 * i].revents, xev[m] = pfd[2 + 2 * i].revents;
            m++;
        }
        short cev = pfd[0].revents;
        for (size_t i = 0; i < m; i++) {
            struct run *r = find(ids[i]);
            if (r && sev[i] && r->sync >= 0) on_sync(r);
            r = find(ids[i]);
            if (r && xev[i] && !r->exited) on_exit_(r);
        }
        if (cev) {
            union { struct cmsghdr h; char buf[CMSG_SPACE(MAX_RECV_FDS * sizeof(int))]; } u;
            struct iovec iov = {msgbuf, sizeof msgbuf};
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                                 .msg_controllen = sizeof u.buf};
            ssize_t len = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
            if (len < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            int fds[MAX_RECV_FDS], nfds = 0;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
                int cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int i = 0; i < cnt && nfds < MAX_RECV_FDS; i++)
                    memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            }
            if (len <= 0) { /* EOF (or an error): the client is gone */
                close_fds(fds, nfds);
                shutdown_all();
                return 0;
            }
            handle((size_t)len, fds, nfds, (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0);
        }
    }
}
