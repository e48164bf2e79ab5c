/* A small mutation driver for fuzz_plan.c where libFuzzer is not available:
 * reads seed plans, applies random byte flips, inserts, deletions, splices and
 * length-field edits for a bounded number of iterations (deterministic seed),
 * under AddressSanitizer and UBSan.
 *   fuzz_driver ITERATIONS SEED_FILE... */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long iters = atol(argv[1]);
    int nseeds = argc - 2;
    uint8_t *seeds[64];
    size_t lens[64];
    for (int i = 0; i < nseeds && i < 64; i++) {
        FILE *f = fopen(argv[2 + i], "rb");
        if (!f) return 2;
        seeds[i] = malloc(1 << 20);
        lens[i] = fread(seeds[i], 1, 1 << 20, f);
        fclose(f);
    }
    uint8_t *buf = malloc(1 << 21);
    for (long it = 0; it < iters; it++) {
        int s = (int)(rnd() % (uint64_t)nseeds);
        size_t len = lens[s];
        memcpy(buf, seeds[s], len);
        int muts = 1 + (int)(rnd() % 8);
        for (int k = 0; k < muts; k++) {
            size_t pos = len ? rnd() % len : 0;
            switch (rnd() % 6) {
            case 0: if (len) buf[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;
            case 1: if (len) buf[pos] = (uint8_t)rnd(); break;
            case 2: if (len > 1) { size_t n = 1 + rnd() % (len - pos); memmove(buf + pos, buf + pos + n, len - pos - n); len -= n; } break;
            case 3: if (len < (1 << 20)) { memmove(buf + pos + 1, buf + pos, len - pos); buf[pos] = (uint8_t)rnd(); len++; } break;
            case 4: if (len >= 4 && pos + 4 <= len) { uint32_t v = (uint32_t)(rnd() % 4 == 0 ? rnd() : rnd() % 64); memcpy(buf + pos, &v, 4); } break;
            case 5: len = pos; break; /* truncate */
            }
        }
        /* Mostly keep the header's length right, so inputs get past it. */
        if (len >= 12 && rnd() % 8) {
            uint32_t l = (uint32_t)len;
            memcpy(buf + 8, &l, 4);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("%ld iterations\n", iters);
    for (int i = 0; i < nseeds && i < 64; i++) free(seeds[i]);
    free(buf);
    return 0;
}
