/*
 * errno_probe: load a seccomp filter, then make many system calls and
 * report what each returned, to compare the kernel with the BPF interpreter.
 *
 *   errno_probe FILTER CASES > RESULTS
 *
 * FILTER is the raw struct sock_filter array. CASES holds records of
 * 7 little-endian u64: nr, args[0..5]. RESULTS gets one u32 per case:
 * errno when the call returned -1, else 0. All input is read and all memory
 * is allocated before the filter is loaded; afterwards only the probed
 * syscalls, one write() and exit_group() run, so the filter must allow
 * write and exit_group and the cases must avoid them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    void *buf = malloc(*len ? *len : 1);
    if (buf && fread(buf, 1, *len, f) != *len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    size_t flen, clen;
    if (argc != 3)
        return 255;
    struct sock_filter *filter = slurp(argv[1], &flen);
    uint64_t *cases = slurp(argv[2], &clen);
    if (!filter || !cases || flen % 8 || clen % 56)
        return 254;
    size_t n = clen / 56;
    uint32_t *out = calloc(n ? n : 1, sizeof(*out));
    if (!out)
        return 253;
    struct sock_fprog prog = {.len = (unsigned short)(flen / 8), .filter = filter};

    /* NNP before seccomp: unprivileged SECCOMP_SET_MODE_FILTER needs it (seccomp(2)). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return 252;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return 251;
    for (size_t i = 0; i < n; i++) {
        const uint64_t *c = cases + 7 * i;
        long r = syscall((long)c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
        out[i] = r == -1 ? (uint32_t)errno : 0;
    }
    /* write() is allowed by every filter this probe is given; loop on short writes. */
    size_t left = n * sizeof(*out);
    const char *p = (const char *)out;
    while (left) {
        ssize_t w = write(1, p, left);
        if (w <= 0)
            return 250;
        p += w;
        left -= (size_t)w;
    }
    return 0;
}
