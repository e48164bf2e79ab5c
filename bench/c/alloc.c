/* alloc MIB: allocate MIB MiB in one block, write every byte, exit 0.
 * A known memory peak for the accounting benchmark (alloc 0 is the baseline). */
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    if (mib == 0) return 0;
    char *p = malloc(mib << 20);
    if (!p) return 3;
    memset(p, 1, mib << 20);
    __asm__ volatile("" : : "r"(p) : "memory");
    return 0;
}
