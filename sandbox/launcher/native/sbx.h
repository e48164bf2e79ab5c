/* The native launcher: shared declarations (STYLE B10).
 *
 * The launcher executes a LaunchPlan that the trusted Python side compiled
 * and serialised (sandbox/launcher/wire.py); it decides nothing and compiles
 * nothing. One file per phase (outer.c, init.c, payload.c, collect.c) and per
 * concern (mounts.c, ids.c, caps.c, landlock.c, seccomp.c, cgroup.c, net.c),
 * crun-style: every function returns 0 or -1 with a struct sbx_err naming the
 * step, errno and message; only the phase mains exit. After the fork of a
 * run's outer process nothing allocates or uses stdio (async-signal-safe calls
 * only), so the same code would be correct in a child of a threaded process.
 */
#ifndef SBX_H
#define SBX_H

#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Versions: the plan encoding (must equal sandbox/launcher/wire.py
 * PLAN_VERSION) and the server protocol (wire.py PROTOCOL_VERSION). */
#define SBX_PLAN_VERSION 4
#define SBX_PROTOCOL_VERSION 4
#define SBX_EXIT_SPAWN_FAILED 125
/* The build id nativebuild.py passes with -D (a hash of the sources). */
#ifndef SBX_BUILD_ID
#define SBX_BUILD_ID "dev"
#endif
/* Written on the errpipe once every step before seccomp passed: an end-of-file
 * without it is a launcher that died before execve (protocol.py EXEC_READY). */
#define SBX_EXEC_READY "\x01"

/* Bounds the decoder enforces (wire.py has the same numbers). */
#define SBX_MAX_MSG (1u << 20)
#define SBX_MAX_STR 4096u
#define SBX_MAX_ARG (128u * 1024u) /* MAX_ARG_STRLEN */
#define SBX_MAX_ARGV 4096u
#define SBX_MAX_ENV 4096u
#define SBX_MAX_LOWERS 32u
#define SBX_MAX_ENTRIES 1024u
#define SBX_MAX_BINDS 256u
#define SBX_MAX_TMPFS 64u
#define SBX_MAX_WRITABLE 256u
#define SBX_MAX_DEV 32u
#define SBX_MAX_COPY 1024u
#define SBX_MAX_RLIMITS 32u
#define SBX_MAX_RULES 4096u
#define SBX_MAX_NET_RULES 256u
#define SBX_MAX_BPF_INSNS 4096u
#define SBX_MAX_COLLECT 1024u
#define SBX_MAX_CGROUP_FDS 16u
#define SBX_MAX_CLEANUP 64u

/* ------------------------------------------------------------ errors --- */

struct sbx_err {
    const char *step; /* set by the step runner */
    int err;          /* errno, 0 when none applies */
    char msg[1024];
};

/* Format (a tiny printf: %s %d %u %x %ld %lu %lx %llu %llx %c %%, and %q for
 * a quoted string), append ": strerror" when err != 0; returns -1. */
int sbx_error(struct sbx_err *e, int err, const char *fmt, ...);
size_t sbx_vfmt(char *out, size_t cap, const char *fmt, va_list ap);
size_t sbx_fmt(char *out, size_t cap, const char *fmt, ...);
/* Write "step:hexerrno:message" to fd (one write, as the Python launcher). */
void sbx_report(int fd, const struct sbx_err *e);
const char *sbx_strerror(int err);

/* ------------------------------------------------------------- plan --- */

struct sbx_entry { const char *path; uint32_t mode; uint8_t payload_owned; };
/* idmap: a writable bind idmapped to its source's owner (fstat at mount time);
 * private: a read-only overlay of the run's own over the source (locks stay the run's) */
struct sbx_bind {
    const char *source, *target;
    uint8_t writable, exec;
    uint8_t idmap;
    uint8_t private_;
};
struct sbx_tmpfs { const char *target; uint64_t size; uint32_t mode; };
struct sbx_dev { const char *name; uint32_t major, minor; };
struct sbx_link { const char *name, *target; };
/* a file for /box: a copy of host file src with mode, or a symlink to link (src NULL) */
struct sbx_copy { const char *src, *name, *link; uint32_t mode; };
struct sbx_rlimit { uint32_t resource; uint64_t soft, hard; };
struct sbx_rule {
    const char *path;
    uint64_t access, file_access;
    uint8_t required, is_dir, glob;
};
struct sbx_net_rule { uint64_t port, access; };

/* The run's own devpts at /dev/pts (always newinstance, nosuid, noexec). */
struct sbx_devpts {
    uint8_t present;
    uint32_t mode, ptmxmode;
    uint8_t has_gid, has_uid, has_max;
    uint32_t gid, uid, max;
};

struct sbx_mounts {
    const char **lowers; uint32_t n_lowers;
    uint64_t upper_size, upper_inodes;
    struct sbx_entry *entries; uint32_t n_entries;
    struct sbx_bind *binds; uint32_t n_binds;
    struct sbx_tmpfs *tmpfs; uint32_t n_tmpfs;
    const char **writable; uint32_t n_writable;
    uint8_t proc_subset_pid;
    struct sbx_dev *dev_nodes; uint32_t n_dev_nodes;
    struct sbx_link *dev_links; uint32_t n_dev_links;
    const char *program_src, *program_name; /* NULL when none */
    struct sbx_copy *copy_in; uint32_t n_copy_in;
    uint8_t overlay, nosuid, proc_masks;
    const char *staging;
    uint8_t rootless;
    uint8_t read_only_root; /* 0: the root stays writable (an OCI root.readonly = false) */
    struct sbx_devpts devpts;
};

struct sbx_pair { const char *a, *b; }; /* (kind, path) of join_ns; (name, value) of sysctl */

struct sbx_landlock {
    uint8_t present, enforce; /* enforce: the artifact's state is not "off" */
    uint64_t handled_fs, handled_net, scoped;
    struct sbx_rule *rules; uint32_t n_rules;
    struct sbx_net_rule *net_rules; uint32_t n_net_rules;
};

struct sbx_seccomp {
    uint8_t present;
    const uint8_t *bpf; uint32_t bpf_len; /* bytes, a multiple of 8 */
    uint32_t flags;
    uint8_t notify;
};

struct sbx_plan {
    const char *run_id, *policy_digest;
    uint32_t inside_uid, inside_gid, host_uid, host_gid;
    uint8_t rootless_ids; /* id_mode == "rootless" */
    const char *hostname;
    uint64_t unshare_flags;
    uint8_t cgroupns, nested_userns;
    struct sbx_mounts m;
    const char *exec_path;
    char **argv; uint32_t argc;   /* NULL-terminated */
    char **envp; uint32_t envc;   /* "K=V", NULL-terminated */
    const char *workdir;
    const char *apparmor;         /* NULL when none */
    uint8_t no_new_privs, drop_caps;
    uint64_t caps_keep;
    struct sbx_rlimit *rlimits; uint32_t n_rlimits;
    struct sbx_landlock ll;
    struct sbx_seccomp sec;
    uint8_t join_cgroup;
    const char **collect; uint32_t n_collect;
    uint64_t collect_limit;
    uint8_t prepared_netns_ok; /* the encoder's decision (wire.py prepared_netns_ok) */
    struct sbx_pair *join_ns; uint32_t n_join_ns; /* namespaces joined by path */
    struct sbx_pair *sysctl; uint32_t n_sysctl;   /* of the run's own net/ipc namespaces */
    uint8_t console; /* the payload's stdio is a pty of the run's devpts (an OCI terminal) */
};

/* A bump arena the decoder allocates from (no malloc: the fuzzer and the
 * children see the same code). */
struct sbx_arena { uint8_t *base; size_t size, used; };

/* Decode a plan from buf (which must stay alive: strings point into it).
 * Returns 0, or -1 with e naming the field and the problem. */
int sbx_plan_decode(const uint8_t *buf, size_t len, struct sbx_plan *p,
                    struct sbx_arena *a, struct sbx_err *e);

/* A reader over a wire message: every get is bounds-checked. */
struct sbx_rd { const uint8_t *p; size_t len, off; const char *field; };
int rd_u8(struct sbx_rd *r, uint8_t *v, struct sbx_err *e);
int rd_u32(struct sbx_rd *r, uint32_t *v, struct sbx_err *e);
int rd_u64(struct sbx_rd *r, uint64_t *v, struct sbx_err *e);
int rd_bool(struct sbx_rd *r, uint8_t *v, struct sbx_err *e);
int rd_str(struct sbx_rd *r, const char **s, uint32_t max, struct sbx_err *e);
int rd_blob(struct sbx_rd *r, const uint8_t **b, uint32_t *len, uint32_t max, struct sbx_err *e);
int rd_count(struct sbx_rd *r, uint32_t *n, uint32_t max, struct sbx_err *e);

/* ---------------------------------------------------------- context --- */

struct sbx_fds {
    int in, out, err_, errpipe, status, sync, notify;
    /* The seccomp listener's handover between the payload and its init: a
     * socket pair init makes before the fork (each keeps its end), or -1. */
    int handover;
    int cgroup[SBX_MAX_CGROUP_FDS]; uint32_t n_cgroup;
    int netns; /* a network namespace prepared ahead, or -1 */
    int gate;  /* start barrier (an OCI create's supervisor passes one), or -1 */
};

struct sbx_detached {
    int root, dev;
    int upper; /* the per-run upper tmpfs: kept by init until the run is over */
    int binds[SBX_MAX_BINDS];
    int tmpfs[SBX_MAX_TMPFS];
    int others[SBX_MAX_LOWERS + 2]; uint32_t n_others;
    int dev_nodes[SBX_MAX_DEV]; uint32_t n_dev_nodes;
    uint32_t n_binds, n_tmpfs;
};

struct sbx_ctx {
    const struct sbx_plan *plan;
    struct sbx_fds fds;
    pid_t parent_pid;
    int last_cap;
    struct sbx_detached mnt;
    int netns_joined; /* a prepared network namespace was entered */
    int detached_layers; /* overlayfs takes detached layers (Linux 6.15+): no scratch mntns */
    int server_session;  /* the server leads a session it made, with no terminal (new_session) */
    int lifeline; /* init: read end of a pipe only the outer writes */
    pid_t payload_pid; /* init: its child, the payload (0 before the fork) */
    int listener;      /* init: its copy of the payload's seccomp listener, or -1 */
    char *cmdline; size_t cmdline_len; /* the process's argv area (init_cmdline) */
    const char *step; /* the step being run, for errors */
};

typedef int (*sbx_step_fn)(struct sbx_ctx *c, struct sbx_err *e);
struct sbx_step { const char *name; sbx_step_fn fn; };

extern const struct sbx_step SBX_OUTER_STEPS[];
extern const struct sbx_step SBX_INIT_STEPS[];
extern const struct sbx_step SBX_PAYLOAD_STEPS[];
extern const struct sbx_step SBX_HANDOVER_STEPS[];
extern const struct sbx_step SBX_COLLECT_STEPS[];
extern const size_t SBX_N_OUTER, SBX_N_INIT, SBX_N_PAYLOAD, SBX_N_HANDOVER, SBX_N_COLLECT;

/* Run steps in order; on failure report on the errpipe and _exit(125). */
void sbx_run_steps(struct sbx_ctx *c, const struct sbx_step *steps, size_t n);
__attribute__((noreturn)) void sbx_fail(struct sbx_ctx *c, struct sbx_err *e);

/* Whether this kernel's overlayfs takes a detached mount as a layer (6.15+,
 * db04662e2f4f "fs: allow detached mounts in clone_private_mount()"). */
int sbx_detached_layers(void);

/* phase mains (never return) */
__attribute__((noreturn)) void sbx_outer_main(struct sbx_ctx *c);
__attribute__((noreturn)) void sbx_init_main(struct sbx_ctx *c);
__attribute__((noreturn)) void sbx_payload_main(struct sbx_ctx *c);
__attribute__((noreturn)) void sbx_collect_main(struct sbx_ctx *c);

/* steps, by concern */
int step_parent_death(struct sbx_ctx *, struct sbx_err *);
int step_check_parent(struct sbx_ctx *, struct sbx_err *);
int step_stdio(struct sbx_ctx *, struct sbx_err *);
int step_new_session(struct sbx_ctx *, struct sbx_err *);
int step_drop_groups(struct sbx_ctx *, struct sbx_err *);
int step_prepare_mounts(struct sbx_ctx *, struct sbx_err *);
int step_join_netns(struct sbx_ctx *, struct sbx_err *);
int step_join_namespaces(struct sbx_ctx *, struct sbx_err *);
int step_sysctl(struct sbx_ctx *, struct sbx_err *);
int step_wait_gate(struct sbx_ctx *, struct sbx_err *);
int step_unshare(struct sbx_ctx *, struct sbx_err *);
int step_wait_idmaps(struct sbx_ctx *, struct sbx_err *);
int step_time_offsets(struct sbx_ctx *, struct sbx_err *);
int step_prepare_mounts_in_userns(struct sbx_ctx *, struct sbx_err *);
int step_outer_alive(struct sbx_ctx *, struct sbx_err *);
int step_init_signals(struct sbx_ctx *, struct sbx_err *);
int step_init_cmdline(struct sbx_ctx *, struct sbx_err *);
int step_mounts(struct sbx_ctx *, struct sbx_err *);
int step_hostname(struct sbx_ctx *, struct sbx_err *);
int step_loopback(struct sbx_ctx *, struct sbx_err *);
int step_signals(struct sbx_ctx *, struct sbx_err *);
int step_apparmor(struct sbx_ctx *, struct sbx_err *);
int step_no_new_privs(struct sbx_ctx *, struct sbx_err *);
int step_bounding_set(struct sbx_ctx *, struct sbx_err *);
int step_join_cgroup(struct sbx_ctx *, struct sbx_err *);
int step_cgroupns(struct sbx_ctx *, struct sbx_err *);
int step_ids(struct sbx_ctx *, struct sbx_err *);
int step_capabilities(struct sbx_ctx *, struct sbx_err *);
int step_rlimits(struct sbx_ctx *, struct sbx_err *);
int step_landlock(struct sbx_ctx *, struct sbx_err *);
int step_close_fds(struct sbx_ctx *, struct sbx_err *);
int step_chdir(struct sbx_ctx *, struct sbx_err *);
int step_exec_ready(struct sbx_ctx *, struct sbx_err *);
int step_seccomp(struct sbx_ctx *, struct sbx_err *);
int step_take_listener(struct sbx_ctx *, struct sbx_err *);
int step_console(struct sbx_ctx *, struct sbx_err *);
int step_take_console(struct sbx_ctx *, struct sbx_err *);
/* SCM_RIGHTS: one byte (the tag) and one fd (seccomp.c). */
int sbx_send_fd(int sock, int fd, char tag);
int step_collector_privileges(struct sbx_ctx *, struct sbx_err *);
int step_collect(struct sbx_ctx *, struct sbx_err *);

/* Step timing for measurements (sandbox-launcher --server FD --trace FILE):
 * one "pid name monotonic_ns" line per mark, write(2) only; off when fd < 0. */
extern int sbx_trace_fd;
void sbx_trace(const char *name);

/* helpers shared across files */
int sbx_write_file(const char *path, const char *data, size_t len, struct sbx_err *e);
int sbx_write_all(int fd, const void *data, size_t len);
int sbx_reset_signals(void);
void sbx_note_signals(void); /* the server, once its dispositions are final */
int sbx_exit_code(int status);
size_t sbx_strlen(const char *s);

/* -------------------------------------------------------- syscalls --- */

int sys_pidfd_open(pid_t pid, unsigned flags);
int sys_pidfd_send_signal(int pidfd, int sig);
int sys_pidfd_getfd(int pidfd, int targetfd);
int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int sys_fsopen(const char *fstype, unsigned flags);
int sys_fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux);
int sys_fsmount(int fd, unsigned flags, unsigned attrs);
int sys_open_tree(int dirfd, const char *path, unsigned flags);
int sys_move_mount(int from_dirfd, const char *from, int to_dirfd, const char *to, unsigned flags);
int sys_mount_setattr(int dirfd, const char *path, unsigned flags, uint64_t set, uint64_t clr);
int sys_pivot_root(const char *new_root, const char *put_old);
int sys_close_range(unsigned first, unsigned last, unsigned flags);
int sys_seccomp(unsigned op, unsigned flags, void *args);
int sys_capset(uint64_t eff, uint64_t prm, uint64_t inh);
int sys_ll_create_ruleset(uint64_t fs, uint64_t net, uint64_t scoped);
int sys_ll_add_path_rule(int ruleset, int parent_fd, uint64_t allowed);
int sys_ll_add_net_rule(int ruleset, uint64_t port, uint64_t allowed);
int sys_ll_restrict_self(int ruleset);

#define SBX_RESOLVE_NO_XDEV 0x01
#define SBX_RESOLVE_NO_MAGICLINKS 0x02
#define SBX_RESOLVE_NO_SYMLINKS 0x04
#define SBX_RESOLVE_BENEATH 0x08

#endif
