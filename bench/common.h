/*
 * bench common: what every load tool in bench/ shares — the clock, number
 * parsing for command lines, a client TLS context, latency samples and their
 * percentiles, error counters keyed by a short label, raising the open-file
 * limit, non-blocking connects from a chosen loopback source address, and the
 * resident memory of a set of server processes read from /proc.
 *
 * These are measuring instruments: nothing here is linked into the server,
 * and nothing here may become the bottleneck of what it measures (no locks on
 * the hot path; each thread keeps its own counters and they are merged at the
 * end).
 */
#ifndef POSTGATE_BENCH_COMMON_H
#define POSTGATE_BENCH_COMMON_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Seconds on the monotonic clock. */
double bench_now(void);

/* CPU seconds (user + system) this process has used so far, all threads. */
double bench_cpu_seconds(void);

/* Whole decimal number, no sign, no trailing garbage; false on anything else. */
bool bench_parse_u64(const char *s, uint64_t *value_out);
/* A non-negative decimal number such as "2.5". */
bool bench_parse_seconds(const char *s, double *value_out);
/* Print "PROG: MESSAGE" and exit 64 (EX_USAGE). */
void bench_usage_fail(const char *prog, const char *message, const char *value);

/*
 * A client TLS context that verifies nothing (the servers under test use
 * self-signed certificates) and speaks exactly one version: "1.2" or "1.3".
 * NULL version: both. Exits on failure.
 */
SSL_CTX *bench_tls_ctx_new(const char *version);

/* Latency samples in microseconds; grows as needed. */
struct bench_latency {
	uint32_t *us;
	size_t count;
	size_t cap;
};
void bench_latency_add(struct bench_latency *l, double seconds);
/* Appends src to dst (src is left as is). */
void bench_latency_merge(struct bench_latency *dst, const struct bench_latency *src);
/* Sorts, then the q-quantile (0..1) in milliseconds; 0 when empty. */
double bench_latency_ms(struct bench_latency *l, double q);
void bench_latency_clear(struct bench_latency *l);

/* Counters keyed by a short label such as "RCPT 450" or "connect: Connection refused". */
#define BENCH_ERROR_LABEL_MAX 64
#define BENCH_ERROR_KINDS_MAX 64
struct bench_errors {
	struct {
		char label[BENCH_ERROR_LABEL_MAX];
		uint64_t count;
	} kinds[BENCH_ERROR_KINDS_MAX];
	size_t kind_count;
	uint64_t total;
};
void bench_errors_add(struct bench_errors *e, const char *label, uint64_t count);
void bench_errors_merge(struct bench_errors *dst, const struct bench_errors *src);
/* One line per label, "  LABEL: COUNT", to stdout. */
void bench_errors_print(const struct bench_errors *e);

/* Raise RLIMIT_NOFILE so that at least want descriptors fit; returns the new soft limit. */
uint64_t bench_fd_limit_raise(uint64_t want);

/*
 * Resolve HOST:PORT (IPv4 dotted quad or "localhost") into dst_out; false on
 * a bad address.
 */
bool bench_addr_parse(const char *host, const char *port, struct sockaddr_in *dst_out);

/*
 * A non-blocking TCP socket with TCP_NODELAY, bound to source (port chosen at
 * connect time, IP_BIND_ADDRESS_NO_PORT) when source is not INADDR_ANY, and
 * connect() started. Returns the fd, or -1 with errno set.
 */
int bench_connect_start(const struct sockaddr_in *dst, struct in_addr source);

/*
 * The i-th of count source addresses 127.0.0.1, 127.0.0.2, ... for spreading
 * many connections over several (source address, port) spaces; count 0 gives
 * INADDR_ANY (the kernel picks).
 */
struct in_addr bench_source_addr(size_t i, size_t count);

/*
 * Which server processes to measure: by name (the comm in /proc/PID/stat),
 * by pid, or a pid and all its descendants.
 */
#define BENCH_PROC_SELECT_MAX 32
struct bench_proc_select {
	const char *names[BENCH_PROC_SELECT_MAX];
	size_t name_count;
	pid_t pids[BENCH_PROC_SELECT_MAX];
	size_t pid_count;
	pid_t trees[BENCH_PROC_SELECT_MAX];
	size_t tree_count;
};
/* Adds one selector; false when the table is full or the pid is not a number. */
bool bench_proc_select_add(struct bench_proc_select *s, char kind, const char *value);
bool bench_proc_select_empty(const struct bench_proc_select *s);

struct bench_memory {
	size_t processes;
	uint64_t rss_kib; /* sum of VmRSS: counts shared pages once per process */
	uint64_t pss_kib; /* sum of Pss: shared pages divided among their users */
};
/* Scan /proc now and sum the memory of every selected process. */
void bench_memory_measure(const struct bench_proc_select *s, struct bench_memory *out);

#endif
