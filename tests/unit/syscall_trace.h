/*
 * syscall_trace: for the durability tests of the spool and the Maildir. Runs
 * a function in a child process under ptrace and writes down, in order, the
 * system calls that decide what survives a power loss — create, mkdir,
 * fsync, rename, link, unlink — with their paths resolved through
 * /proc/PID/fd, so a test can compare the sequence with the one its module's
 * durability argument depends on. Only calls that succeeded are written down
 * (a mkdir of an existing directory is not). A write to a pipe is written
 * down as "report": the moment the function tells its caller it is done.
 *
 * x86-64 Linux only (register layout); elsewhere, and where ptrace is not
 * allowed, syscall_trace_run returns 1 and the test skips.
 */
#ifndef POSTGATE_TESTS_SYSCALL_TRACE_H
#define POSTGATE_TESTS_SYSCALL_TRACE_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void syscall_trace_fn(void *ctx, int report_fd);

struct syscall_trace {
	const char *root; /* paths below it are written relative to it */
	char text[8192];  /* one line per call */
	size_t len;
	char report[512];		 /* what the function wrote to report_fd */
	char pending[PATH_MAX * 2 + 16]; /* the call being made, kept if it succeeds */
};

#if defined(__x86_64__)

static void syscall_trace_line(struct syscall_trace *t, const char *fmt, const char *a,
			       const char *b)
{
	snprintf(t->pending, sizeof(t->pending), fmt, a, b);
}

/* At the exit of the call: keep its line when it returned no error. */
static void syscall_trace_exit(struct syscall_trace *t, pid_t pid)
{
	struct user_regs_struct r;
	size_t n = strlen(t->pending);

	if (n > 0 && ptrace(PTRACE_GETREGS, pid, NULL, &r) == 0 && (long long) r.rax >= 0 &&
	    n < sizeof(t->text) - t->len) {
		memcpy(t->text + t->len, t->pending, n + 1);
		t->len += n;
	}
	t->pending[0] = '\0';
}

static void syscall_trace_string(pid_t pid, unsigned long long addr, char *out, size_t cap)
{
	char mem_path[64];
	int fd;
	ssize_t n;

	snprintf(mem_path, sizeof(mem_path), "/proc/%d/mem", (int) pid);
	out[0] = '\0';
	fd = open(mem_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = pread(fd, out, cap - 1, (off_t) addr);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
}

/* The path of dirfd (AT_FDCWD: the working directory) joined with name,
 * relative to t->root when below it. */
static void syscall_trace_path(struct syscall_trace *t, pid_t pid, long long dirfd,
			       const char *name, char *out, size_t cap)
{
	char link[64], base[PATH_MAX], full[PATH_MAX * 2];
	size_t root_len = strlen(t->root);
	ssize_t n;

	if (name != NULL && name[0] == '/') {
		snprintf(full, sizeof(full), "%s", name);
	} else {
		if ((int) dirfd == AT_FDCWD)
			snprintf(link, sizeof(link), "/proc/%d/cwd", (int) pid);
		else
			snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int) pid, (int) dirfd);
		n = readlink(link, base, sizeof(base) - 1);
		base[n > 0 ? n : 0] = '\0';
		if (name == NULL || name[0] == '\0' || strcmp(name, ".") == 0)
			snprintf(full, sizeof(full), "%s", base);
		else
			snprintf(full, sizeof(full), "%s/%s", base, name);
	}
	if (strncmp(full, t->root, root_len) == 0 && full[root_len] == '/')
		snprintf(out, cap, "%s", full + root_len + 1);
	else if (strcmp(full, t->root) == 0)
		snprintf(out, cap, ".");
	else
		snprintf(out, cap, "%s", full);
}

static void syscall_trace_entry(struct syscall_trace *t, pid_t pid)
{
	struct user_regs_struct r;
	char s1[PATH_MAX], s2[PATH_MAX], p1[PATH_MAX], p2[PATH_MAX];

	if (ptrace(PTRACE_GETREGS, pid, NULL, &r) != 0)
		return;
	switch (r.orig_rax) {
	case SYS_fsync:
	case SYS_fdatasync:
		syscall_trace_path(t, pid, (long long) r.rdi, NULL, p1, sizeof(p1));
		syscall_trace_line(t, "fsync %s%s\n", p1, "");
		break;
	case SYS_syncfs:
		/* The whole file system of the descriptor (core/groupsync.h). */
		syscall_trace_path(t, pid, (long long) r.rdi, NULL, p1, sizeof(p1));
		syscall_trace_line(t, "syncfs %s%s\n", p1, "");
		break;
	case SYS_open:
	case SYS_openat: {
		bool is_at = r.orig_rax == SYS_openat;
		unsigned long long flags = is_at ? r.rdx : r.rsi;

		if (!(flags & O_CREAT))
			break;
		syscall_trace_string(pid, is_at ? r.rsi : r.rdi, s1, sizeof(s1));
		syscall_trace_path(t, pid, is_at ? (long long) r.rdi : AT_FDCWD, s1, p1,
				   sizeof(p1));
		syscall_trace_line(t, "create %s%s\n", p1, "");
		break;
	}
	case SYS_mkdir:
		syscall_trace_string(pid, r.rdi, s1, sizeof(s1));
		syscall_trace_path(t, pid, AT_FDCWD, s1, p1, sizeof(p1));
		syscall_trace_line(t, "mkdir %s%s\n", p1, "");
		break;
	case SYS_mkdirat:
		syscall_trace_string(pid, r.rsi, s1, sizeof(s1));
		syscall_trace_path(t, pid, (long long) r.rdi, s1, p1, sizeof(p1));
		syscall_trace_line(t, "mkdir %s%s\n", p1, "");
		break;
	case SYS_unlink:
		syscall_trace_string(pid, r.rdi, s1, sizeof(s1));
		syscall_trace_path(t, pid, AT_FDCWD, s1, p1, sizeof(p1));
		syscall_trace_line(t, "unlink %s%s\n", p1, "");
		break;
	case SYS_unlinkat:
		syscall_trace_string(pid, r.rsi, s1, sizeof(s1));
		syscall_trace_path(t, pid, (long long) r.rdi, s1, p1, sizeof(p1));
		syscall_trace_line(t, "unlink %s%s\n", p1, "");
		break;
	case SYS_rename:
	case SYS_link:
		syscall_trace_string(pid, r.rdi, s1, sizeof(s1));
		syscall_trace_string(pid, r.rsi, s2, sizeof(s2));
		syscall_trace_path(t, pid, AT_FDCWD, s1, p1, sizeof(p1));
		syscall_trace_path(t, pid, AT_FDCWD, s2, p2, sizeof(p2));
		syscall_trace_line(t, r.orig_rax == SYS_link ? "link %s %s\n" : "rename %s %s\n",
				   p1, p2);
		break;
	case SYS_renameat:
	case SYS_renameat2:
	case SYS_linkat:
		syscall_trace_string(pid, r.rsi, s1, sizeof(s1));
		syscall_trace_string(pid, r.r10, s2, sizeof(s2));
		syscall_trace_path(t, pid, (long long) r.rdi, s1, p1, sizeof(p1));
		syscall_trace_path(t, pid, (long long) r.rdx, s2, p2, sizeof(p2));
		syscall_trace_line(t, r.orig_rax == SYS_linkat ? "link %s %s\n" : "rename %s %s\n",
				   p1, p2);
		break;
	case SYS_write: {
		char link[64], target[64];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int) pid, (int) r.rdi);
		n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		if (strncmp(target, "pipe:", 5) == 0)
			syscall_trace_line(t, "report%s%s\n", "", "");
		break;
	}
	default:
		break;
	}
}

/* 0 when fn ran to its end, 1 when tracing is not possible here, -1 when
 * the child failed (exit status not 0). */
static int syscall_trace_run(struct syscall_trace *t, syscall_trace_fn *fn, void *ctx)
{
	int pipe_fds[2], status, signal_to_pass = 0;
	bool is_in_call = false;
	ssize_t got;
	pid_t pid;

	t->len = 0;
	t->text[0] = '\0';
	t->pending[0] = '\0';
	if (pipe(pipe_fds) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(pipe_fds[0]);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
			_exit(3);
		raise(SIGSTOP);
		fn(ctx, pipe_fds[1]);
		_exit(0); /* no atexit handlers, no leak check in the child */
	}
	close(pipe_fds[1]);
	if (waitpid(pid, &status, 0) != pid || (WIFEXITED(status) && WEXITSTATUS(status) == 3)) {
		close(pipe_fds[0]);
		return 1;
	}
	ptrace(PTRACE_SETOPTIONS, pid, NULL,
	       (void *) (long) (PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));
	for (;;) {
		if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *) (long) signal_to_pass) != 0)
			break;
		signal_to_pass = 0;
		if (waitpid(pid, &status, 0) != pid)
			break;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			break;
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			if (!is_in_call)
				syscall_trace_entry(t, pid);
			else
				syscall_trace_exit(t, pid);
			is_in_call = !is_in_call;
		} else {
			signal_to_pass = WSTOPSIG(status);
		}
	}
	got = read(pipe_fds[0], t->report, sizeof(t->report) - 1);
	t->report[got > 0 ? got : 0] = '\0';
	close(pipe_fds[0]);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

#else

static int syscall_trace_run(struct syscall_trace *t, syscall_trace_fn *fn, void *ctx)
{
	(void) t;
	(void) fn;
	(void) ctx;
	return 1;
}

#endif

/* Replace every `from` in text with `to` (to no longer than from). */
static void syscall_trace_replace(char *text, const char *from, const char *to)
{
	size_t from_len = strlen(from), to_len = strlen(to);
	char *p;

	if (from_len == 0 || to_len > from_len)
		return;
	while ((p = strstr(text, from)) != NULL) {
		memcpy(p, to, to_len);
		memmove(p + to_len, p + from_len, strlen(p + from_len) + 1);
	}
}

#endif
