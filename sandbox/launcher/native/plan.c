/* The plan decoder: the only parser of the native launcher (STYLE B10).
 *
 * Format (sandbox/launcher/wire.py writes it; both sides change together):
 * little-endian; header "SBXP", u32 version, u32 total length; then the
 * fields of LaunchPlan in a fixed order. u8/u32/u64 as such; a bool is a u8
 * that must be 0 or 1; a string is u32 length, the bytes, and a NUL that the
 * length does not count (so the launcher uses it in place), with no NUL
 * inside; a list is a u32 count and its items. Every length and count is
 * checked against the bytes left and a fixed bound (sbx.h) before use, and
 * the message must end exactly where the last field does. Storage for lists
 * comes from a caller-supplied arena: no malloc. */
#include "sbx.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int bad(struct sbx_rd *r, struct sbx_err *e, const char *what) {
    return sbx_error(e, EINVAL, "malformed plan: field %s at byte %lu: %s",
                     r->field ? r->field : "?", (unsigned long)r->off, what);
}

static int need(struct sbx_rd *r, size_t n, struct sbx_err *e) {
    if (r->len - r->off < n) return bad(r, e, "truncated");
    return 0;
}

int rd_u8(struct sbx_rd *r, uint8_t *v, struct sbx_err *e) {
    if (need(r, 1, e)) return -1;
    *v = r->p[r->off++];
    return 0;
}

int rd_bool(struct sbx_rd *r, uint8_t *v, struct sbx_err *e) {
    if (rd_u8(r, v, e)) return -1;
    if (*v > 1) return bad(r, e, "boolean is neither 0 nor 1");
    return 0;
}

int rd_u32(struct sbx_rd *r, uint32_t *v, struct sbx_err *e) {
    if (need(r, 4, e)) return -1;
    const uint8_t *p = r->p + r->off;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    r->off += 4;
    return 0;
}

int rd_u64(struct sbx_rd *r, uint64_t *v, struct sbx_err *e) {
    uint32_t lo, hi;
    if (rd_u32(r, &lo, e) || rd_u32(r, &hi, e)) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

int rd_str(struct sbx_rd *r, const char **s, uint32_t max, struct sbx_err *e) {
    uint32_t n;
    if (rd_u32(r, &n, e)) return -1;
    if (n > max) return bad(r, e, "string longer than its bound");
    if (need(r, (size_t)n + 1, e)) return -1;
    const char *p = (const char *)r->p + r->off;
    if (p[n] != 0) return bad(r, e, "string not NUL-terminated");
    if (memchr(p, 0, n)) return bad(r, e, "NUL inside a string");
    *s = p;
    r->off += (size_t)n + 1;
    return 0;
}

int rd_blob(struct sbx_rd *r, const uint8_t **b, uint32_t *len, uint32_t max, struct sbx_err *e) {
    if (rd_u32(r, len, e)) return -1;
    if (*len > max) return bad(r, e, "blob longer than its bound");
    if (need(r, *len, e)) return -1;
    *b = r->p + r->off;
    r->off += *len;
    return 0;
}

int rd_count(struct sbx_rd *r, uint32_t *n, uint32_t max, struct sbx_err *e) {
    if (rd_u32(r, n, e)) return -1;
    if (*n > max) return bad(r, e, "count above its bound");
    /* every item takes at least one byte: a count beyond the bytes left is a lie */
    if (*n > r->len - r->off) return bad(r, e, "count larger than the bytes left");
    return 0;
}

static void *arena_get(struct sbx_arena *a, size_t n, size_t count) {
    size_t align = 8, start = (a->used + align - 1) & ~(align - 1);
    if (count && n > (a->size - start) / count) return NULL;
    size_t bytes = n * count;
    if (start > a->size || bytes > a->size - start) return NULL;
    a->used = start + bytes;
    return a->base + start;
}

#define ALLOC(a, type, count) ((type *)arena_get((a), sizeof(type), (count)))
#define F(name) (r->field = (name))
#define TRY(x) do { if (x) return -1; } while (0)

static int nomem(struct sbx_rd *r, struct sbx_err *e) { return bad(r, e, "decoder arena exhausted"); }

static int rd_pairs(struct sbx_rd *r, struct sbx_pair **out, uint32_t *n, uint32_t maxn,
                    struct sbx_arena *a, struct sbx_err *e);

static int rd_strs(struct sbx_rd *r, const char ***out, uint32_t *n, uint32_t maxn,
                   uint32_t maxlen, struct sbx_arena *a, struct sbx_err *e) {
    TRY(rd_count(r, n, maxn, e));
    const char **v = ALLOC(a, const char *, (size_t)*n + 1);
    if (!v) return nomem(r, e);
    for (uint32_t i = 0; i < *n; i++) TRY(rd_str(r, &v[i], maxlen, e));
    v[*n] = NULL;
    *out = v;
    return 0;
}

static int rd_pairs(struct sbx_rd *r, struct sbx_pair **out, uint32_t *n, uint32_t maxn,
                    struct sbx_arena *a, struct sbx_err *e) {
    TRY(rd_count(r, n, maxn, e));
    struct sbx_pair *v = ALLOC(a, struct sbx_pair, (size_t)*n + 1);
    if (!v) return nomem(r, e);
    for (uint32_t i = 0; i < *n; i++) {
        TRY(rd_str(r, &v[i].a, 255, e));
        TRY(rd_str(r, &v[i].b, SBX_MAX_STR, e));
    }
    *out = v;
    return 0;
}

static int absolute(struct sbx_rd *r, const char *s, struct sbx_err *e) {
    if (s[0] != '/') return bad(r, e, "path is not absolute");
    return 0;
}

static int rd_mounts(struct sbx_rd *r, struct sbx_mounts *m, struct sbx_arena *a,
                     struct sbx_err *e) {
    F("mounts.lowers");
    TRY(rd_strs(r, &m->lowers, &m->n_lowers, SBX_MAX_LOWERS, SBX_MAX_STR, a, e));
    for (uint32_t i = 0; i < m->n_lowers; i++) TRY(absolute(r, m->lowers[i], e));
    F("mounts.upper_size");
    TRY(rd_u64(r, &m->upper_size, e));
    F("mounts.upper_inodes");
    TRY(rd_u64(r, &m->upper_inodes, e));
    F("mounts.upper_entries");
    TRY(rd_count(r, &m->n_entries, SBX_MAX_ENTRIES, e));
    if (!(m->entries = ALLOC(a, struct sbx_entry, m->n_entries))) return nomem(r, e);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        struct sbx_entry *x = &m->entries[i];
        TRY(rd_str(r, &x->path, SBX_MAX_STR, e));
        if (!x->path[0] || x->path[0] == '/') return bad(r, e, "upper entry must be relative");
        TRY(rd_u32(r, &x->mode, e));
        /* Permission bits, and S_IFREG for a file (a single-file bind's mount point). */
        if ((x->mode & ~(uint32_t)(S_IFREG | 07777)) != 0)
            return bad(r, e, "mode above 07777 (or a type other than S_IFREG)");
        TRY(rd_bool(r, &x->payload_owned, e));
    }
    F("mounts.binds");
    TRY(rd_count(r, &m->n_binds, SBX_MAX_BINDS, e));
    if (!(m->binds = ALLOC(a, struct sbx_bind, m->n_binds))) return nomem(r, e);
    for (uint32_t i = 0; i < m->n_binds; i++) {
        struct sbx_bind *b = &m->binds[i];
        TRY(rd_str(r, &b->source, SBX_MAX_STR, e));
        TRY(absolute(r, b->source, e));
        TRY(rd_str(r, &b->target, SBX_MAX_STR, e));
        TRY(absolute(r, b->target, e));
        TRY(rd_bool(r, &b->writable, e));
        TRY(rd_bool(r, &b->exec, e));
        TRY(rd_bool(r, &b->idmap, e));
        if (b->idmap && !b->writable) return bad(r, e, "an idmap on a read-only bind");
        TRY(rd_bool(r, &b->private_, e));
        if (b->private_ && b->writable) return bad(r, e, "a private bind is read-only");
    }
    F("mounts.tmpfs");
    TRY(rd_count(r, &m->n_tmpfs, SBX_MAX_TMPFS, e));
    if (!(m->tmpfs = ALLOC(a, struct sbx_tmpfs, m->n_tmpfs))) return nomem(r, e);
    for (uint32_t i = 0; i < m->n_tmpfs; i++) {
        struct sbx_tmpfs *t = &m->tmpfs[i];
        TRY(rd_str(r, &t->target, SBX_MAX_STR, e));
        TRY(absolute(r, t->target, e));
        TRY(rd_u64(r, &t->size, e));
        TRY(rd_u32(r, &t->mode, e));
        if (t->mode > 07777) return bad(r, e, "mode above 07777");
    }
    F("mounts.writable");
    TRY(rd_strs(r, &m->writable, &m->n_writable, SBX_MAX_WRITABLE, SBX_MAX_STR, a, e));
    for (uint32_t i = 0; i < m->n_writable; i++) TRY(absolute(r, m->writable[i], e));
    F("mounts.proc_subset_pid");
    TRY(rd_bool(r, &m->proc_subset_pid, e));
    F("mounts.dev_nodes");
    TRY(rd_count(r, &m->n_dev_nodes, SBX_MAX_DEV, e));
    if (!(m->dev_nodes = ALLOC(a, struct sbx_dev, m->n_dev_nodes))) return nomem(r, e);
    for (uint32_t i = 0; i < m->n_dev_nodes; i++) {
        struct sbx_dev *d = &m->dev_nodes[i];
        TRY(rd_str(r, &d->name, 255, e));
        if (!d->name[0] || strchr(d->name, '/')) return bad(r, e, "device name must be one component");
        TRY(rd_u32(r, &d->major, e));
        TRY(rd_u32(r, &d->minor, e));
    }
    F("mounts.dev_links");
    TRY(rd_count(r, &m->n_dev_links, SBX_MAX_DEV, e));
    if (!(m->dev_links = ALLOC(a, struct sbx_link, m->n_dev_links))) return nomem(r, e);
    for (uint32_t i = 0; i < m->n_dev_links; i++) {
        TRY(rd_str(r, &m->dev_links[i].name, 255, e));
        if (!m->dev_links[i].name[0] || strchr(m->dev_links[i].name, '/'))
            return bad(r, e, "link name must be one component");
        TRY(rd_str(r, &m->dev_links[i].target, SBX_MAX_STR, e));
    }
    F("mounts.program");
    uint8_t has;
    TRY(rd_bool(r, &has, e));
    m->program_src = m->program_name = NULL;
    if (has) {
        TRY(rd_str(r, &m->program_src, SBX_MAX_STR, e));
        TRY(absolute(r, m->program_src, e));
        TRY(rd_str(r, &m->program_name, 255, e));
        if (!m->program_name[0] || strchr(m->program_name, '/'))
            return bad(r, e, "program name must be one component");
    }
    F("mounts.copy_in");
    TRY(rd_count(r, &m->n_copy_in, SBX_MAX_COPY, e));
    if (!(m->copy_in = ALLOC(a, struct sbx_copy, m->n_copy_in))) return nomem(r, e);
    for (uint32_t i = 0; i < m->n_copy_in; i++) {
        struct sbx_copy *x = &m->copy_in[i];
        uint8_t is_link;
        TRY(rd_str(r, &x->name, SBX_MAX_STR, e));
        if (!x->name[0] || x->name[0] == '/') return bad(r, e, "copy_in name must be relative");
        TRY(rd_u32(r, &x->mode, e));
        if (x->mode > 0777) return bad(r, e, "copy_in mode above 0777");
        TRY(rd_bool(r, &is_link, e));
        TRY(rd_str(r, is_link ? &x->link : &x->src, SBX_MAX_STR, e));
        if (is_link) {
            x->src = NULL;
            if (!x->link[0]) return bad(r, e, "copy_in link target is empty");
        } else {
            x->link = NULL;
            TRY(absolute(r, x->src, e));
        }
    }
    F("mounts.overlay");
    TRY(rd_bool(r, &m->overlay, e));
    F("mounts.nosuid");
    TRY(rd_bool(r, &m->nosuid, e));
    F("mounts.proc_masks");
    TRY(rd_bool(r, &m->proc_masks, e));
    F("mounts.staging");
    TRY(rd_str(r, &m->staging, SBX_MAX_STR - 256, e));
    TRY(absolute(r, m->staging, e));
    F("mounts.rootless");
    TRY(rd_bool(r, &m->rootless, e));
    F("mounts.read_only_root");
    TRY(rd_bool(r, &m->read_only_root, e));
    F("mounts.devpts");
    TRY(rd_bool(r, &m->devpts.present, e));
    if (m->devpts.present) {
        TRY(rd_u32(r, &m->devpts.mode, e));
        TRY(rd_u32(r, &m->devpts.ptmxmode, e));
        if (m->devpts.mode > 0777 || m->devpts.ptmxmode > 0777)
            return bad(r, e, "a mode is at most 0777");
        TRY(rd_bool(r, &m->devpts.has_gid, e));
        TRY(rd_u32(r, &m->devpts.gid, e));
        TRY(rd_bool(r, &m->devpts.has_uid, e));
        TRY(rd_u32(r, &m->devpts.uid, e));
        TRY(rd_bool(r, &m->devpts.has_max, e));
        TRY(rd_u32(r, &m->devpts.max, e));
    }
    if (m->n_lowers == 0) return bad(r, e, "no lower layer");
    return 0;
}

static int rd_landlock(struct sbx_rd *r, struct sbx_landlock *l, struct sbx_arena *a,
                       struct sbx_err *e) {
    F("landlock");
    TRY(rd_bool(r, &l->present, e));
    if (!l->present) return 0;
    TRY(rd_bool(r, &l->enforce, e));
    F("landlock.handled");
    TRY(rd_u64(r, &l->handled_fs, e));
    TRY(rd_u64(r, &l->handled_net, e));
    TRY(rd_u64(r, &l->scoped, e));
    F("landlock.rules");
    TRY(rd_count(r, &l->n_rules, SBX_MAX_RULES, e));
    if (!(l->rules = ALLOC(a, struct sbx_rule, l->n_rules))) return nomem(r, e);
    for (uint32_t i = 0; i < l->n_rules; i++) {
        struct sbx_rule *x = &l->rules[i];
        TRY(rd_str(r, &x->path, SBX_MAX_STR - 256, e));
        TRY(absolute(r, x->path, e));
        TRY(rd_u64(r, &x->access, e));
        TRY(rd_u64(r, &x->file_access, e));
        TRY(rd_bool(r, &x->required, e));
        TRY(rd_bool(r, &x->is_dir, e));
        TRY(rd_bool(r, &x->glob, e));
    }
    F("landlock.net_rules");
    TRY(rd_count(r, &l->n_net_rules, SBX_MAX_NET_RULES, e));
    if (!(l->net_rules = ALLOC(a, struct sbx_net_rule, l->n_net_rules))) return nomem(r, e);
    for (uint32_t i = 0; i < l->n_net_rules; i++) {
        TRY(rd_u64(r, &l->net_rules[i].port, e));
        TRY(rd_u64(r, &l->net_rules[i].access, e));
    }
    return 0;
}

int sbx_plan_decode(const uint8_t *buf, size_t len, struct sbx_plan *p, struct sbx_arena *a,
                    struct sbx_err *e) {
    struct sbx_rd rd = {buf, len, 0, "header"}, *r = &rd;
    memset(p, 0, sizeof *p);
    e->step = "plan";
    if (len < 12 || memcmp(buf, "SBXP", 4) != 0) return bad(r, e, "not a plan (magic)");
    r->off = 4;
    uint32_t version, total;
    TRY(rd_u32(r, &version, e));
    if (version != SBX_PLAN_VERSION)
        return sbx_error(e, EPROTO, "plan version %u, this launcher reads %u: rebuild it "
                         "(./scripts/setup.sh or pip install .)", version, SBX_PLAN_VERSION);
    TRY(rd_u32(r, &total, e));
    if (total != len) return bad(r, e, "length in the header differs from the message's");
    F("run_id");
    TRY(rd_str(r, &p->run_id, 255, e));
    F("policy_digest");
    TRY(rd_str(r, &p->policy_digest, 255, e));
    F("ids");
    TRY(rd_u32(r, &p->inside_uid, e));
    TRY(rd_u32(r, &p->inside_gid, e));
    TRY(rd_u32(r, &p->host_uid, e));
    TRY(rd_u32(r, &p->host_gid, e));
    F("id_mode");
    TRY(rd_bool(r, &p->rootless_ids, e));
    F("hostname");
    TRY(rd_str(r, &p->hostname, 64, e));
    F("unshare_flags");
    TRY(rd_u64(r, &p->unshare_flags, e));
    F("cgroupns");
    TRY(rd_bool(r, &p->cgroupns, e));
    F("nested_userns");
    TRY(rd_bool(r, &p->nested_userns, e));
    TRY(rd_mounts(r, &p->m, a, e));
    F("exec_path");
    TRY(rd_str(r, &p->exec_path, SBX_MAX_STR, e));
    TRY(absolute(r, p->exec_path, e));
    F("argv");
    TRY(rd_strs(r, (const char ***)&p->argv, &p->argc, SBX_MAX_ARGV, SBX_MAX_ARG, a, e));
    if (p->argc == 0) return bad(r, e, "empty argv");
    F("env");
    TRY(rd_strs(r, (const char ***)&p->envp, &p->envc, SBX_MAX_ENV, SBX_MAX_ARG, a, e));
    for (uint32_t i = 0; i < p->envc; i++)
        if (!strchr(p->envp[i], '=') || p->envp[i][0] == '=') return bad(r, e, "env entry is not NAME=VALUE");
    F("workdir");
    TRY(rd_str(r, &p->workdir, SBX_MAX_STR, e));
    TRY(absolute(r, p->workdir, e));
    F("apparmor_profile");
    uint8_t has;
    TRY(rd_bool(r, &has, e));
    p->apparmor = NULL;
    if (has) TRY(rd_str(r, &p->apparmor, 255, e));
    F("no_new_privs");
    TRY(rd_bool(r, &p->no_new_privs, e));
    F("drop_caps");
    TRY(rd_bool(r, &p->drop_caps, e));
    F("caps_keep");
    TRY(rd_u64(r, &p->caps_keep, e));
    F("rlimits");
    TRY(rd_count(r, &p->n_rlimits, SBX_MAX_RLIMITS, e));
    if (!(p->rlimits = ALLOC(a, struct sbx_rlimit, p->n_rlimits))) return nomem(r, e);
    for (uint32_t i = 0; i < p->n_rlimits; i++) {
        TRY(rd_u32(r, &p->rlimits[i].resource, e));
        if (p->rlimits[i].resource >= 16) return bad(r, e, "unknown resource");
        TRY(rd_u64(r, &p->rlimits[i].soft, e));
        TRY(rd_u64(r, &p->rlimits[i].hard, e));
    }
    TRY(rd_landlock(r, &p->ll, a, e));
    F("seccomp");
    TRY(rd_bool(r, &p->sec.present, e));
    if (p->sec.present) {
        TRY(rd_blob(r, &p->sec.bpf, &p->sec.bpf_len, SBX_MAX_BPF_INSNS * 8, e));
        if (p->sec.bpf_len == 0 || p->sec.bpf_len % 8)
            return bad(r, e, "BPF length is not a positive multiple of 8");
        TRY(rd_u32(r, &p->sec.flags, e));
        TRY(rd_bool(r, &p->sec.notify, e));
    }
    F("join_cgroup");
    TRY(rd_bool(r, &p->join_cgroup, e));
    F("collect");
    TRY(rd_strs(r, &p->collect, &p->n_collect, SBX_MAX_COLLECT, 255, a, e));
    for (uint32_t i = 0; i < p->n_collect; i++)
        if (!p->collect[i][0] || p->collect[i][0] == '/') return bad(r, e, "collect name must be relative");
    F("collect_limit");
    TRY(rd_u64(r, &p->collect_limit, e));
    F("prepared_netns_ok");
    TRY(rd_bool(r, &p->prepared_netns_ok, e));
    F("join_ns");
    TRY(rd_pairs(r, &p->join_ns, &p->n_join_ns, 3, a, e));
    for (uint32_t i = 0; i < p->n_join_ns; i++) {
        const char *k = p->join_ns[i].a;
        if (strcmp(k, "network") && strcmp(k, "ipc") && strcmp(k, "uts"))
            return bad(r, e, "join_ns: only network, ipc and uts namespaces are joined");
        TRY(absolute(r, p->join_ns[i].b, e));
    }
    F("sysctl");
    TRY(rd_pairs(r, &p->sysctl, &p->n_sysctl, 64, a, e));
    for (uint32_t i = 0; i < p->n_sysctl; i++)
        for (const char *q = p->sysctl[i].a; *q; q++)
            if (*q == '/' || (q[0] == '.' && q[1] == '.')) return bad(r, e, "sysctl: bad name");
    F("console");
    TRY(rd_bool(r, &p->console, e));
    if (p->console && !p->m.devpts.present)
        return bad(r, e, "a console needs the run's own devpts (mounts.devpts)");
    F("end");
    if (r->off != len) return bad(r, e, "trailing bytes after the last field");
    return 0;
}
