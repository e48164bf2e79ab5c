/* libFuzzer target over the plan decoder (the native launcher's only parser).
 * Built with clang -fsanitize=fuzzer,address,undefined by
 * tests/unit/launcher/test_native_fuzz.py; fuzz_driver.c runs the same target
 * over random mutations where clang is missing. */
#include "sbx.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t arena[2u << 20];
    struct sbx_plan p;
    struct sbx_arena a = {arena, sizeof arena, 0};
    struct sbx_err e = {0};
    if (size > SBX_MAX_MSG) return 0;
    if (sbx_plan_decode(data, size, &p, &a, &e) == 0) {
        /* touch what a launcher would use, so ASan sees any bad pointer */
        volatile size_t sink = strlen(p.run_id) + strlen(p.exec_path) + strlen(p.workdir);
        for (uint32_t i = 0; i < p.argc; i++) sink += strlen(p.argv[i]);
        for (uint32_t i = 0; i < p.envc; i++) sink += strlen(p.envp[i]);
        for (uint32_t i = 0; i < p.m.n_binds; i++) sink += strlen(p.m.binds[i].target);
        for (uint32_t i = 0; i < p.ll.n_rules; i++) sink += strlen(p.ll.rules[i].path);
        for (uint32_t i = 0; i < p.n_collect; i++) sink += strlen(p.collect[i]);
        if (p.sec.present) sink += p.sec.bpf[p.sec.bpf_len - 1];
        (void)sink;
    }
    return 0;
}
