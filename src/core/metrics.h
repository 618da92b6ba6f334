/*
 * metrics: the daemon's counters (docs/http.md, "Metrics") and their
 * rendering in the Prometheus text exposition format, version 0.0.4.
 *
 * One process-wide registry of plain uint64_t counters, each a small fixed
 * table indexed by enums, so the memory is constant and no label can come
 * from a client (no per-user or per-address label: cardinality). Modules
 * increment it where the event happens; http/ renders a snapshot. Names a
 * caller passes in (a listener, a mechanism, a TLS version) that are not in
 * the tables are counted under "other".
 *
 * Every increment and metrics_snapshot run on the event-loop thread only:
 * that is what lets the counters be plain integers. The renderer is pure
 * (no clock, no globals) so the unit tests call it with made-up values.
 */
#ifndef POSTGATE_CORE_METRICS_H
#define POSTGATE_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct evbuffer;

/* The config's listener kinds, then the local submission socket. */
enum metrics_listener {
	METRICS_LISTENER_LOCAL = CONFIG_LISTENER_KIND_COUNT,
	METRICS_LISTENER_OTHER,
	METRICS_LISTENER_COUNT,
};

enum metrics_refusal {
	METRICS_REFUSAL_MAX_SESSIONS = 0,
	METRICS_REFUSAL_MAX_SESSIONS_PER_IP,
	METRICS_REFUSAL_OTHER,
	METRICS_REFUSAL_COUNT,
};

enum metrics_mechanism {
	METRICS_MECHANISM_PLAIN = 0,
	METRICS_MECHANISM_LOGIN,
	METRICS_MECHANISM_CRAM_MD5,
	METRICS_MECHANISM_SCRAM_SHA_256,
	METRICS_MECHANISM_SCRAM_SHA_256_PLUS,
	METRICS_MECHANISM_USER, /* POP3 USER/PASS */
	METRICS_MECHANISM_APOP,
	METRICS_MECHANISM_OTHER,
	METRICS_MECHANISM_COUNT,
};

enum metrics_auth_result {
	METRICS_AUTH_OK = 0,
	METRICS_AUTH_FAILED,
	METRICS_AUTH_THROTTLED,
	METRICS_AUTH_TEMPFAIL,
	METRICS_AUTH_RESULT_COUNT,
};

enum metrics_delivery_result {
	METRICS_DELIVERY_DELIVERED = 0,
	METRICS_DELIVERY_DEFERRED,
	METRICS_DELIVERY_FAILED,
	METRICS_DELIVERY_RESULT_COUNT,
};

enum metrics_via {
	METRICS_VIA_MAILDIR = 0,
	METRICS_VIA_SMTP,
	METRICS_VIA_OTHER,
	METRICS_VIA_COUNT,
};

enum metrics_tls_version {
	METRICS_TLS_1_0 = 0,
	METRICS_TLS_1_1,
	METRICS_TLS_1_2,
	METRICS_TLS_1_3,
	METRICS_TLS_OTHER,
	METRICS_TLS_VERSION_COUNT,
};

/* Upper bounds of postgate_delivery_seconds, in milliseconds; +Inf follows. */
#define METRICS_DELIVERY_BUCKET_COUNT 12

struct metrics_counters {
	uint64_t sessions_refused[METRICS_REFUSAL_COUNT];
	uint64_t messages_accepted[METRICS_LISTENER_COUNT];
	uint64_t deliveries[METRICS_DELIVERY_RESULT_COUNT][METRICS_VIA_COUNT];
	uint64_t bounces;
	/* Delivered outcomes by latency: [i] counts those <= bound i alone
	 * (the renderer makes the buckets cumulative); over the last bound
	 * only in delivery_count. */
	uint64_t delivery_buckets[METRICS_DELIVERY_BUCKET_COUNT];
	uint64_t delivery_count;
	uint64_t delivery_sum_ms;
	uint64_t auth[METRICS_LISTENER_COUNT][METRICS_MECHANISM_COUNT][METRICS_AUTH_RESULT_COUNT];
	uint64_t tls_handshakes[METRICS_LISTENER_COUNT][METRICS_TLS_VERSION_COUNT];
	uint64_t auth_delayed; /* failed logins whose reply the throttle delayed */
};

/* What is read at the moment of the request rather than counted. */
struct metrics_gauges {
	size_t sessions[CONFIG_LISTENER_KIND_COUNT];
	bool has_queue;	       /* false: the spool could not be read; no queue lines */
	size_t queue[3];       /* queue/, deferred/, hold/ */
	uint64_t start_time_s; /* Unix time the daemon started */
	/* The spool's group commit (core/groupsync.h): counters kept there */
	uint64_t spool_sync_waits; /* commits that waited for a sync */
	uint64_t spool_syncs;	   /* syncs run for them */
	bool has_auth;		   /* false: no auth service; no throttled-clients line */
	size_t auth_throttled_clients;
};

/* Increments (event-loop thread). Strings are matched exactly against the
 * names the tables use ("mx", "local", "PLAIN", "TLSv1.3", "maildir"). */
void metrics_session_refused(const char *reason); /* "max-sessions", "max-sessions-per-ip" */
void metrics_message_accepted(const char *listener);
void metrics_delivery(enum metrics_delivery_result result, const char *via, uint64_t latency_ms);
void metrics_bounce(void);
void metrics_auth(const char *listener, const char *mechanism, enum metrics_auth_result result);
void metrics_tls_handshake(const char *listener, const char *version);
void metrics_auth_delayed(void);

/* A copy of the registry (event-loop thread). */
void metrics_snapshot(struct metrics_counters *out);

/* Add to counters directly: the registry's own increments, exposed so the
 * unit tests can build counters without the global. */
void metrics_count_delivery(struct metrics_counters *counters, enum metrics_delivery_result result,
			    const char *via, uint64_t latency_ms);

/* A label value escaped as the exposition format wants (backslash, double
 * quote and line feed as \\, \" and \n), NUL-ended; false (out holds a
 * prefix) when it does not fit in out_cap. */
bool metrics_label_escape(const char *value, char *out, size_t out_cap);

/* Append every metric, HELP and TYPE lines first, to out. Returns 0, or -1
 * when out could not grow. */
int metrics_render(const struct metrics_counters *counters, const struct metrics_gauges *gauges,
		   struct evbuffer *out);

#endif
