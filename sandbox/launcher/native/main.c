/* sandbox-launcher: the native launcher's entry point.
 *
 *   sandbox-launcher --server FD [--netns-pool N] [--trace FILE]
 *                                                   serve the client socket at FD
 *   sandbox-launcher --list-steps                   the step tables, "phase name" per line
 *   sandbox-launcher --decode FILE                  decode a plan: "ok" or the error (tests)
 *   sandbox-launcher --version                      plan and protocol versions, build id
 */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sbx_server_main(int fd, int netns_pool, const char *trace, char *cmdline, size_t cmdline_len);

static void list(const char *phase, const struct sbx_step *s, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%s %s\n", phase, s[i].name);
}

static int decode_file(const char *path) {
    static uint8_t buf[SBX_MAX_MSG + 1];
    static uint8_t arena[2u << 20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "sandbox-launcher: %s: %s\n", path, strerror(errno));
        return 2;
    }
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf && (n = read(fd, buf + len, sizeof buf - len)) > 0) len += (size_t)n;
    close(fd);
    struct sbx_plan p;
    struct sbx_arena a = {arena, sizeof arena, 0};
    struct sbx_err e = {0};
    if (len > SBX_MAX_MSG) {
        fprintf(stderr, "plan: larger than %u bytes\n", SBX_MAX_MSG);
        return 1;
    }
    if (sbx_plan_decode(buf, len, &p, &a, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    printf("ok run_id=%s argc=%u envc=%u binds=%u rules=%u bpf=%u collect=%u", p.run_id,
           p.argc, p.envc, p.m.n_binds, p.ll.n_rules, p.sec.bpf_len / 8, p.n_collect);
    if (p.m.devpts.present) {
        const struct sbx_devpts *d = &p.m.devpts;
        printf(" devpts=%o/%o", d->mode, d->ptmxmode);
        if (d->has_gid) printf(",gid=%u", d->gid);
        if (d->has_uid) printf(",uid=%u", d->uid);
        if (d->has_max) printf(",max=%u", d->max);
    }
    if (p.console) printf(" console");
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--server")) {
        int pool = 0;
        const char *trace = NULL;
        for (int i = 3; i + 1 < argc; i += 2) {
            if (!strcmp(argv[i], "--netns-pool")) pool = atoi(argv[i + 1]);
            else if (!strcmp(argv[i], "--trace")) trace = argv[i + 1];
        }
        /* the argv area, so the container's init can overwrite it (init_cmdline) */
        char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
        return sbx_server_main(atoi(argv[2]), pool, trace, argv[0], (size_t)(end - argv[0]));
    }
    if (argc == 2 && !strcmp(argv[1], "--list-steps")) {
        list("outer", SBX_OUTER_STEPS, SBX_N_OUTER);
        list("init", SBX_INIT_STEPS, SBX_N_INIT);
        list("payload", SBX_PAYLOAD_STEPS, SBX_N_PAYLOAD);
        list("handover", SBX_HANDOVER_STEPS, SBX_N_HANDOVER);
        list("collect", SBX_COLLECT_STEPS, SBX_N_COLLECT);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--decode")) return decode_file(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("plan %d protocol %d build %s\n", SBX_PLAN_VERSION, SBX_PROTOCOL_VERSION, SBX_BUILD_ID);
        return 0;
    }
    fprintf(stderr, "usage: sandbox-launcher --server FD [--netns-pool N] | --list-steps | "
                    "--decode FILE | --version\n");
    return 2;
}
