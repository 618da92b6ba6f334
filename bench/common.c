/*
 * bench common: shared helpers of the load tools (see common.h). Plain libc,
 * OpenSSL and /proc; no libevent here.
 */
#include "common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

double bench_cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
	       (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

bool bench_parse_u64(const char *s, uint64_t *value_out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char) *s))
			return false;
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t) (*s - '0');
	}
	*value_out = v;
	return true;
}

bool bench_parse_seconds(const char *s, double *value_out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0' || !(isdigit((unsigned char) *s) || *s == '.'))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || v < 0)
		return false;
	*value_out = v;
	return true;
}

void bench_usage_fail(const char *prog, const char *message, const char *value)
{
	if (value != NULL)
		fprintf(stderr, "%s: %s: %s (try --help)\n", prog, message, value);
	else
		fprintf(stderr, "%s: %s (try --help)\n", prog, message);
	exit(64);
}

SSL_CTX *bench_tls_ctx_new(const char *version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int v = 0;

	if (ctx == NULL) {
		fprintf(stderr, "bench: SSL_CTX_new failed\n");
		exit(1);
	}
	if (version != NULL) {
		if (strcmp(version, "1.2") == 0)
			v = TLS1_2_VERSION;
		else if (strcmp(version, "1.3") == 0)
			v = TLS1_3_VERSION;
		else
			bench_usage_fail("bench", "TLS version must be 1.2 or 1.3", version);
		SSL_CTX_set_min_proto_version(ctx, v);
		SSL_CTX_set_max_proto_version(ctx, v);
	} else {
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* Every connection pays a full handshake, as a client without a session cache does. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	return ctx;
}

void bench_latency_add(struct bench_latency *l, double seconds)
{
	double us = seconds * 1e6;

	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		uint32_t *p = realloc(l->us, cap * sizeof(*p));
		if (p == NULL) {
			fprintf(stderr, "bench: out of memory\n");
			exit(1);
		}
		l->us = p;
		l->cap = cap;
	}
	if (us < 0)
		us = 0;
	if (us > 4e9)
		us = 4e9;
	l->us[l->count++] = (uint32_t) us;
}

void bench_latency_merge(struct bench_latency *dst, const struct bench_latency *src)
{
	for (size_t i = 0; i < src->count; i++)
		bench_latency_add(dst, src->us[i] / 1e6);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

	return (x > y) - (x < y);
}

double bench_latency_ms(struct bench_latency *l, double q)
{
	size_t i;

	if (l->count == 0)
		return 0;
	qsort(l->us, l->count, sizeof(*l->us), cmp_u32);
	/* Nearest rank: the smallest sample with at least q of the samples at or below it. */
	i = (size_t) (q * (double) l->count + 0.999999);
	if (i > 0)
		i--;
	if (i >= l->count)
		i = l->count - 1;
	return l->us[i] / 1000.0;
}

void bench_latency_clear(struct bench_latency *l)
{
	free(l->us);
	l->us = NULL;
	l->count = l->cap = 0;
}

void bench_errors_add(struct bench_errors *e, const char *label, uint64_t count)
{
	size_t i;

	e->total += count;
	for (i = 0; i < e->kind_count; i++)
		if (strcmp(e->kinds[i].label, label) == 0)
			break;
	if (i == e->kind_count) {
		if (e->kind_count == BENCH_ERROR_KINDS_MAX) {
			label = "(other)";
			for (i = 0; i < e->kind_count; i++)
				if (strcmp(e->kinds[i].label, label) == 0)
					break;
			if (i == e->kind_count)
				i = e->kind_count - 1;
		} else {
			snprintf(e->kinds[i].label, sizeof(e->kinds[i].label), "%s", label);
			e->kinds[i].count = 0;
			e->kind_count++;
		}
	}
	e->kinds[i].count += count;
}

void bench_errors_merge(struct bench_errors *dst, const struct bench_errors *src)
{
	for (size_t i = 0; i < src->kind_count; i++)
		bench_errors_add(dst, src->kinds[i].label, src->kinds[i].count);
}

void bench_errors_print(const struct bench_errors *e)
{
	for (size_t i = 0; i < e->kind_count; i++)
		printf("  %s: %llu\n", e->kinds[i].label, (unsigned long long) e->kinds[i].count);
}

uint64_t bench_fd_limit_raise(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		if (rl.rlim_max < want)
			rl.rlim_max = want; /* root may raise the hard limit too */
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			getrlimit(RLIMIT_NOFILE, &rl);
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

bool bench_addr_parse(const char *host, const char *port, struct sockaddr_in *dst_out)
{
	uint64_t p;

	memset(dst_out, 0, sizeof(*dst_out));
	dst_out->sin_family = AF_INET;
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &dst_out->sin_addr) != 1)
		return false;
	if (!bench_parse_u64(port, &p) || p == 0 || p > 65535)
		return false;
	dst_out->sin_port = htons((uint16_t) p);
	return true;
}

int bench_connect_start(const struct sockaddr_in *dst, struct in_addr source)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	/*
	 * Requests and replies are small: without TCP_NODELAY, Nagle's algorithm
	 * holds a second small segment until the peer's delayed ACK (~40 ms).
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (source.s_addr != htonl(INADDR_ANY)) {
		struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr = source };
		/* Let connect() pick the port for the full 4-tuple, not bind() for the address
		 * alone. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *) &src, sizeof(src)) != 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	if (connect(fd, (const struct sockaddr *) dst, sizeof(*dst)) != 0 && errno != EINPROGRESS) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

struct in_addr bench_source_addr(size_t i, size_t count)
{
	struct in_addr a;

	if (count == 0) {
		a.s_addr = htonl(INADDR_ANY);
		return a;
	}
	a.s_addr = htonl(0x7f000001u + (uint32_t) (i % count));
	return a;
}

bool bench_proc_select_add(struct bench_proc_select *s, char kind, const char *value)
{
	uint64_t pid;

	if (kind == 'n') {
		if (s->name_count == BENCH_PROC_SELECT_MAX)
			return false;
		s->names[s->name_count++] = value;
		return true;
	}
	if (!bench_parse_u64(value, &pid) || pid == 0 || pid > INT32_MAX)
		return false;
	if (kind == 'p' && s->pid_count < BENCH_PROC_SELECT_MAX) {
		s->pids[s->pid_count++] = (pid_t) pid;
		return true;
	}
	if (kind == 't' && s->tree_count < BENCH_PROC_SELECT_MAX) {
		s->trees[s->tree_count++] = (pid_t) pid;
		return true;
	}
	return false;
}

bool bench_proc_select_empty(const struct bench_proc_select *s)
{
	return s->name_count == 0 && s->pid_count == 0 && s->tree_count == 0;
}

struct proc_entry {
	pid_t pid;
	pid_t ppid;
	char comm[32];
};

/* "PID (COMM) S PPID ...": the name may hold spaces and parentheses, so split at the last ')'. */
static bool proc_stat_read(pid_t pid, struct proc_entry *out)
{
	char path[64], buf[512], *open_paren, *close_paren;
	ssize_t n;
	int fd, ppid;
	char state;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (open_paren == NULL || close_paren == NULL || close_paren < open_paren)
		return false;
	if (sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2)
		return false;
	out->pid = pid;
	out->ppid = (pid_t) ppid;
	snprintf(out->comm, sizeof(out->comm), "%.*s", (int) (close_paren - open_paren - 1),
		 open_paren + 1);
	return true;
}

static bool proc_selected(const struct bench_proc_select *s, const struct proc_entry *all,
			  size_t count, const struct proc_entry *p)
{
	for (size_t i = 0; i < s->name_count; i++)
		if (strcmp(p->comm, s->names[i]) == 0)
			return true;
	for (size_t i = 0; i < s->pid_count; i++)
		if (p->pid == s->pids[i])
			return true;
	if (s->tree_count == 0)
		return false;
	/* Walk up the parents (bounded: a cycle cannot happen, but a reused pid could mislead). */
	pid_t cur = p->pid;
	for (int depth = 0; depth < 64 && cur > 1; depth++) {
		size_t j;
		for (size_t i = 0; i < s->tree_count; i++)
			if (cur == s->trees[i])
				return true;
		for (j = 0; j < count; j++)
			if (all[j].pid == cur)
				break;
		if (j == count)
			return false;
		cur = all[j].ppid;
	}
	return false;
}

/* Rss and Pss from /proc/PID/smaps_rollup, falling back to VmRSS of /proc/PID/status. */
static void proc_memory_add(pid_t pid, struct bench_memory *out)
{
	char path[64], line[256];
	unsigned long long kib;
	bool have_rss = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int) pid);
	if ((f = fopen(path, "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (sscanf(line, "Rss: %llu kB", &kib) == 1) {
				out->rss_kib += kib;
				have_rss = true;
			} else if (sscanf(line, "Pss: %llu kB", &kib) == 1) {
				out->pss_kib += kib;
			}
		}
		fclose(f);
	}
	if (have_rss)
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) {
			out->rss_kib += kib;
			out->pss_kib += kib;
		}
	fclose(f);
}

void bench_memory_measure(const struct bench_proc_select *s, struct bench_memory *out)
{
	struct proc_entry *all = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	memset(out, 0, sizeof(*out));
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		uint64_t pid;
		if (!bench_parse_u64(de->d_name, &pid) || pid > INT32_MAX)
			continue;
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			struct proc_entry *p = realloc(all, ncap * sizeof(*p));
			if (p == NULL)
				break;
			all = p;
			cap = ncap;
		}
		if (proc_stat_read((pid_t) pid, &all[count]))
			count++;
	}
	closedir(d);
	for (size_t i = 0; i < count; i++) {
		if (all[i].pid == getpid() || !proc_selected(s, all, count, &all[i]))
			continue;
		out->processes++;
		proc_memory_add(all[i].pid, out);
	}
	free(all);
}
