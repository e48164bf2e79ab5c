/* Kills itself with the signal named by argv[1] through the default action:
 * "abrt" -> abort(), "xfsz" -> write past RLIMIT_FSIZE, "xcpu" -> spin past
 * RLIMIT_CPU, "sys" -> raise(SIGSYS). Used to show the payload is not PID 1. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <fcntl.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "abrt")) abort();
    if (!strcmp(argv[1], "sys")) raise(SIGSYS);
    if (!strcmp(argv[1], "xfsz")) {
        struct rlimit r = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &r);
        int fd = open("/tmp/big", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char buf[8192] = {0};
        for (int i = 0; i < 4; i++)
            if (write(fd, buf, sizeof buf) < 0) return 3;  /* the 2nd write raises SIGXFSZ */
        return 3;
    }
    if (!strcmp(argv[1], "xcpu")) {
        struct rlimit r = {1, 2};
        setrlimit(RLIMIT_CPU, &r);
        for (volatile unsigned long i = 0;; i++) {}
    }
    return 4;
}
