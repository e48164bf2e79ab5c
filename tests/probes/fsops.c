/* File-access probe: performs each operation named on the command line and
 * prints one JSON object {"op": result}, result 0 or the errno's name
 * ("EACCES"), or the text for "attr" and "say". The access matrix tests run
 * it under AppArmor alone, Landlock alone, both and neither, and compare the
 * decisions. Only syscalls strict's seccomp allows (open/read/write,
 * getdents, truncate, rename, link, mkdir, unlink, fork/execve/wait, mmap).
 *
 * Operations (P, Q: paths inside the sandbox):
 *   read:P      open O_RDONLY and read a byte      list:P     opendir + readdir
 *   write:P     open O_WRONLY|O_APPEND, write       create:P   O_CREAT|O_EXCL, 0755
 *   copy:P:Q    create Q (0755) with P's bytes       truncate:P truncate(2) to 0
 *   rename:P:Q  rename(2)                            link:P:Q   link(2)
 *   mkdir:P  rmdir:P  unlink:P
 *   exec:P      fork, execve(P) with no arguments: 0 when it ran and exited 0
 *               (run copies of true), the errno when execve failed, "EXIT<n>"
 *               or "SIG<n>" when the program ran and failed
 *   ldso:P      the same through the dynamic loader: ld.so P (mmap PROT_EXEC
 *               of P instead of execve)
 *   mmapx:P     mmap(PROT_READ|PROT_EXEC, MAP_PRIVATE) of P
 *   signal:PID  kill(PID, SIGWINCH) (ignored by default: harmless)
 *   fstat:FD    fstat(FD)         fdread:FD  read a byte from FD
 *   attr        /proc/self/attr/current
 *   say:TEXT    print TEXT on stderr at once (a "ready" mark for the caller)
 *   stdin       wait for one byte (or EOF) on stdin
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LDSO "/lib64/ld-linux-x86-64.so.2"

static char label[256];

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int fail(void) { return errno ? errno : EIO; }

/* Exec failures come back through a CLOEXEC pipe (CPython's errpipe), so a
 * program that runs and fails is told apart: 0, the errno, or 2000 + its exit
 * status, 1000 + a signal. */
static int run(char *const argv[])
{
	int p[2], status, err = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return fail();
	pid = fork();
	if (pid < 0)
		return fail();
	if (pid == 0) {
		char *envp[] = { "PATH=/usr/bin", NULL };
		close(p[0]);
		execve(argv[0], argv, envp);
		err = errno;
		if (write(p[1], &err, sizeof err) < 0)
			_exit(126);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], &err, sizeof err) != sizeof err)
		err = 0;
	close(p[0]);
	if (waitpid(pid, &status, 0) < 0)
		return fail();
	if (err)
		return err;
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return WEXITSTATUS(status) ? 2000 + WEXITSTATUS(status) : 0;
}

static int copy(const char *src, const char *dst)
{
	char buf[65536];
	ssize_t n;
	int in = open(src, O_RDONLY | O_CLOEXEC), out;

	if (in < 0)
		return fail();
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0) {
		int e = fail();
		close(in);
		return e;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, n) != n)
			break;
	close(in);
	close(out);
	return n < 0 ? fail() : 0;
}

/* 0 or an errno (exec and ldso: the child's status; > 1000 for a signal). */
static int do_op(char *kind, char *a, char *b)
{
	int fd;
	char c;

	errno = 0;
	if (!strcmp(kind, "read")) {
		fd = open(a, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail();
		int r = read(fd, &c, 1) < 0 ? fail() : 0;
		close(fd);
		return r;
	}
	if (!strcmp(kind, "list")) {
		DIR *d = opendir(a);
		if (!d)
			return fail();
		errno = 0;
		int r = readdir(d) || !errno ? 0 : fail();
		closedir(d);
		return r;
	}
	if (!strcmp(kind, "write")) {
		fd = open(a, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0)
			return fail();
		int r = write(fd, "x", 1) < 0 ? fail() : 0;
		close(fd);
		return r;
	}
	if (!strcmp(kind, "create")) {
		fd = open(a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
		if (fd < 0)
			return fail();
		close(fd);
		return 0;
	}
	if (!strcmp(kind, "copy"))
		return copy(a, b);
	if (!strcmp(kind, "truncate"))
		return truncate(a, 0) ? fail() : 0;
	if (!strcmp(kind, "rename"))
		return rename(a, b) ? fail() : 0;
	if (!strcmp(kind, "link"))
		return link(a, b) ? fail() : 0;
	if (!strcmp(kind, "mkdir"))
		return mkdir(a, 0755) ? fail() : 0;
	if (!strcmp(kind, "rmdir"))
		return rmdir(a) ? fail() : 0;
	if (!strcmp(kind, "unlink"))
		return unlink(a) ? fail() : 0;
	if (!strcmp(kind, "exec")) {
		char *argv[] = { a, NULL };
		return run(argv);
	}
	if (!strcmp(kind, "ldso")) {
		char *argv[] = { LDSO, a, NULL };
		return run(argv);
	}
	if (!strcmp(kind, "mmapx")) {
		fd = open(a, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail();
		void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
		int r = p == MAP_FAILED ? fail() : 0;
		if (p != MAP_FAILED)
			munmap(p, 4096);
		close(fd);
		return r;
	}
	if (!strcmp(kind, "fstat")) {
		struct stat st;
		return fstat(atoi(a), &st) ? fail() : 0;
	}
	if (!strcmp(kind, "fdread"))
		return read(atoi(a), &c, 1) < 0 ? fail() : 0;
	if (!strcmp(kind, "signal"))
		return kill(atoi(a), SIGWINCH) ? fail() : 0;
	if (!strcmp(kind, "attr")) {
		fd = open("/proc/self/attr/current", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail();
		ssize_t n = read(fd, label, sizeof label - 1);
		int r = n < 0 ? fail() : 0;
		close(fd);
		label[n > 0 ? n : 0] = 0;
		label[strcspn(label, "\n")] = 0;
		return r ? r : -1;
	}
	if (!strcmp(kind, "say")) {
		fprintf(stderr, "%s\n", a);
		fflush(stderr);
		snprintf(label, sizeof label, "%s", a);
		return -1;
	}
	if (!strcmp(kind, "stdin"))
		return read(0, &c, 1) < 0 ? fail() : 0;
	return EINVAL;
}

int main(int argc, char **argv)
{
	printf("{");
	for (int i = 1; i < argc; i++) {
		char op[4096];
		snprintf(op, sizeof op, "%s", argv[i]);
		char *kind = op, *a = strchr(op, ':'), *b = NULL;
		if (a) {
			*a++ = 0;
			b = strchr(a, ':');
			if (b)
				*b++ = 0;
		}
		int r = do_op(kind, a ? a : "", b ? b : "");
		if (i > 1)
			printf(", ");
		json_str(argv[i]);
		printf(": ");
		if (r == -1)
			json_str(label);
		else if (r == 0)
			printf("0");
		else if (r > 2000)
			printf("\"EXIT%d\"", r - 2000);
		else if (r > 1000)
			printf("\"SIG%d\"", r - 1000);
		else if (strerrorname_np(r))
			json_str(strerrorname_np(r));
		else
			printf("\"E%d\"", r);
		fflush(stdout);
	}
	printf("}\n");
	return 0;
}
