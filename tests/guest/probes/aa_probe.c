/* Probe run under an AppArmor profile: the C twin of aa_probe.py.
 *
 * Same operations and the same JSON output (a list of [op, result], result 0
 * or an errno name, the label for "attr"), but it starts in milliseconds
 * where the Python probe needs one to three seconds under TCG. The guest
 * tests build it once per session with the host's gcc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EBADF: return "EBADF";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case ESRCH: return "ESRCH";
	case ENOEXEC: return "ENOEXEC";
	default: {
		static char buf[32];
		snprintf(buf, sizeof buf, "E%d", e);
		return buf;
	}
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int family(const char *name)
{
	if (!strcmp(name, "AF_UNIX")) return AF_UNIX;
	if (!strcmp(name, "AF_INET")) return AF_INET;
	if (!strcmp(name, "AF_INET6")) return AF_INET6;
	if (!strcmp(name, "AF_PACKET")) return AF_PACKET;
	if (!strcmp(name, "AF_NETLINK")) return AF_NETLINK;
	return -1;
}

static int socktype(const char *name)
{
	if (!strcmp(name, "SOCK_STREAM")) return SOCK_STREAM;
	if (!strcmp(name, "SOCK_DGRAM")) return SOCK_DGRAM;
	if (!strcmp(name, "SOCK_RAW")) return SOCK_RAW;
	return -1;
}

/* Returns 0 or an errno; fills label for "attr". */
static int do_op(const char *kind, const char *arg, char *label, size_t len)
{
	int fd;
	char c;

	if (!strcmp(kind, "attr")) {
		fd = open("/proc/self/attr/current", O_RDONLY);
		if (fd < 0)
			return errno;
		ssize_t n = read(fd, label, len - 1);
		close(fd);
		if (n < 0)
			return errno;
		while (n > 0 && label[n - 1] == '\n')
			n--;
		label[n] = 0;
		return -1;
	}
	if (!strcmp(kind, "read")) {
		if ((fd = open(arg, O_RDONLY)) < 0 || read(fd, &c, 1) < 0)
			return errno;
		close(fd);
	} else if (!strcmp(kind, "write")) {
		if ((fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0755)) < 0 || write(fd, "x", 1) < 0)
			return errno;
		close(fd);
	} else if (!strcmp(kind, "deleted")) {
		if ((fd = open(arg, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 || unlink(arg) < 0 ||
		    write(fd, "x", 1) < 0 || lseek(fd, 0, SEEK_SET) < 0 || read(fd, &c, 1) != 1)
			return errno;
		close(fd);
	} else if (!strcmp(kind, "exec")) {
		pid_t pid = fork();
		int st;
		if (pid == 0) {
			char *argv[] = {(char *)arg, NULL};
			execv(arg, argv);
			_exit(errno);
		}
		if (pid < 0 || waitpid(pid, &st, 0) < 0)
			return errno;
		return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	} else if (!strcmp(kind, "mmapx")) {
		if ((fd = open(arg, O_RDONLY)) < 0)
			return errno;
		void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
		int e = p == MAP_FAILED ? errno : 0;
		close(fd);
		if (e)
			return e;
		munmap(p, 4096);
	} else if (!strcmp(kind, "socket")) {
		char fam[32] = "";
		const char *colon = strchr(arg, ':');
		if (!colon || colon - arg >= (long)sizeof fam)
			return EINVAL;
		memcpy(fam, arg, colon - arg);
		if ((fd = socket(family(fam), socktype(colon + 1), 0)) < 0)
			return errno;
		close(fd);
	} else if (!strcmp(kind, "kill")) {
		if (kill(atoi(arg), 0) < 0)
			return errno;
	} else if (!strcmp(kind, "environ")) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%s/environ", arg);
		if ((fd = open(path, O_RDONLY)) < 0 || read(fd, &c, 1) < 0)
			return errno;
		close(fd);
	} else if (!strcmp(kind, "fstat")) {
		struct stat st;
		if (fstat(atoi(arg), &st) < 0)
			return errno;
	} else if (!strcmp(kind, "fdwrite")) {
		if (write(atoi(arg), "probe\n", 6) < 0)
			return errno;
	} else if (!strcmp(kind, "waitfor")) {
		struct timespec tick = {0, 20 * 1000 * 1000};
		for (int i = 0; i < 3000 && access(arg, F_OK) < 0; i++)
			nanosleep(&tick, NULL);
	} else {
		return EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	putchar('[');
	for (int i = 1; i < argc; i++) {
		char kind[32] = "", label[256] = "";
		const char *colon = strchr(argv[i], ':');
		size_t klen = colon ? (size_t)(colon - argv[i]) : strlen(argv[i]);
		if (klen < sizeof kind)
			memcpy(kind, argv[i], klen);
		int r = do_op(kind, colon ? colon + 1 : "", label, sizeof label);
		printf("%s[", i > 1 ? ", " : "");
		json_str(argv[i]);
		printf(", ");
		if (r == -1)
			json_str(label);
		else if (r == 0)
			putchar('0');
		else
			json_str(errname(r));
		putchar(']');
		fflush(stdout);
	}
	printf("]\n");
	return 0;
}
