/*
 * metrics: the registry and the renderer (see metrics.h). The exposition
 * format: https://prometheus.io/docs/instrumenting/exposition_formats/
 * (text format 0.0.4): `# HELP name text`, `# TYPE name counter|gauge|
 * histogram`, then `name{label="value",...} number` lines, one family's
 * lines together; a histogram has cumulative `_bucket{le="..."}` lines
 * ending with le="+Inf", then `_sum` and `_count`.
 */
#include "core/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/span.h"

static struct metrics_counters registry;

static const char *const listener_names[METRICS_LISTENER_COUNT] = {
	[CONFIG_LISTENER_MX] = "mx",
	[CONFIG_LISTENER_SUBMISSION] = "submission",
	[CONFIG_LISTENER_SUBMISSIONS] = "submissions",
	[CONFIG_LISTENER_POP3] = "pop3",
	[CONFIG_LISTENER_POP3S] = "pop3s",
	[CONFIG_LISTENER_HTTP] = "http",
	[METRICS_LISTENER_LOCAL] = "local",
	[METRICS_LISTENER_OTHER] = "other",
};

static const char *const refusal_names[METRICS_REFUSAL_COUNT] = {
	[METRICS_REFUSAL_MAX_SESSIONS] = "max-sessions",
	[METRICS_REFUSAL_MAX_SESSIONS_PER_IP] = "max-sessions-per-ip",
	[METRICS_REFUSAL_OTHER] = "other",
};

static const char *const mechanism_names[METRICS_MECHANISM_COUNT] = {
	[METRICS_MECHANISM_PLAIN] = "PLAIN",
	[METRICS_MECHANISM_LOGIN] = "LOGIN",
	[METRICS_MECHANISM_CRAM_MD5] = "CRAM-MD5",
	[METRICS_MECHANISM_SCRAM_SHA_256] = "SCRAM-SHA-256",
	[METRICS_MECHANISM_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
	[METRICS_MECHANISM_USER] = "USER",
	[METRICS_MECHANISM_APOP] = "APOP",
	[METRICS_MECHANISM_OTHER] = "other",
};

static const char *const auth_result_names[METRICS_AUTH_RESULT_COUNT] = {
	[METRICS_AUTH_OK] = "ok",
	[METRICS_AUTH_FAILED] = "failed",
	[METRICS_AUTH_THROTTLED] = "throttled",
	[METRICS_AUTH_TEMPFAIL] = "tempfail",
};

static const char *const delivery_result_names[METRICS_DELIVERY_RESULT_COUNT] = {
	[METRICS_DELIVERY_DELIVERED] = "delivered",
	[METRICS_DELIVERY_DEFERRED] = "deferred",
	[METRICS_DELIVERY_FAILED] = "failed",
};

static const char *const via_names[METRICS_VIA_COUNT] = {
	[METRICS_VIA_MAILDIR] = "maildir",
	[METRICS_VIA_SMTP] = "smtp",
	[METRICS_VIA_OTHER] = "other",
};

static const char *const tls_version_names[METRICS_TLS_VERSION_COUNT] = {
	[METRICS_TLS_1_0] = "TLSv1.0", [METRICS_TLS_1_1] = "TLSv1.1", [METRICS_TLS_1_2] = "TLSv1.2",
	[METRICS_TLS_1_3] = "TLSv1.3", [METRICS_TLS_OTHER] = "other",
};

/* From a local delivery (milliseconds) to a message that waited for days
 * of retries (an hour and more). */
static const struct {
	uint64_t ms;
	const char *le;
} delivery_bounds[METRICS_DELIVERY_BUCKET_COUNT] = {
	{ 10, "0.01" },	   { 100, "0.1" },	{ 1000, "1" },	     { 5000, "5" },
	{ 10000, "10" },   { 30000, "30" },	{ 60000, "60" },     { 300000, "300" },
	{ 900000, "900" }, { 1800000, "1800" }, { 3600000, "3600" }, { 86400000, "86400" },
};

/* The index of name in names[0..count-1], else other. */
static size_t lookup(const char *const *names, size_t count, const char *name, size_t other)
{
	if (name == NULL)
		return other;
	for (size_t i = 0; i < count; i++)
		if (i != other && strcmp(names[i], name) == 0)
			return i;
	return other;
}

static size_t listener_index(const char *name)
{
	return lookup(listener_names, METRICS_LISTENER_COUNT, name, METRICS_LISTENER_OTHER);
}

void metrics_session_refused(const char *reason)
{
	registry.sessions_refused[lookup(refusal_names, METRICS_REFUSAL_COUNT, reason,
					 METRICS_REFUSAL_OTHER)]++;
}

void metrics_message_accepted(const char *listener)
{
	registry.messages_accepted[listener_index(listener)]++;
}

void metrics_count_delivery(struct metrics_counters *c, enum metrics_delivery_result result,
			    const char *via, uint64_t latency_ms)
{
	if ((unsigned) result >= METRICS_DELIVERY_RESULT_COUNT)
		return;
	c->deliveries[result][lookup(via_names, METRICS_VIA_COUNT, via, METRICS_VIA_OTHER)]++;
	if (result != METRICS_DELIVERY_DELIVERED)
		return;
	for (size_t i = 0; i < METRICS_DELIVERY_BUCKET_COUNT; i++) {
		if (latency_ms <= delivery_bounds[i].ms) {
			c->delivery_buckets[i]++;
			break;
		}
	}
	c->delivery_count++;
	c->delivery_sum_ms += latency_ms;
}

void metrics_delivery(enum metrics_delivery_result result, const char *via, uint64_t latency_ms)
{
	metrics_count_delivery(&registry, result, via, latency_ms);
}

void metrics_bounce(void)
{
	registry.bounces++;
}

void metrics_auth(const char *listener, const char *mechanism, enum metrics_auth_result result)
{
	if ((unsigned) result >= METRICS_AUTH_RESULT_COUNT)
		return;
	registry.auth[listener_index(listener)][lookup(mechanism_names, METRICS_MECHANISM_COUNT,
						       mechanism, METRICS_MECHANISM_OTHER)]
		     [result]++;
}

void metrics_tls_handshake(const char *listener, const char *version)
{
	registry.tls_handshakes[listener_index(listener)][lookup(
		tls_version_names, METRICS_TLS_VERSION_COUNT, version, METRICS_TLS_OTHER)]++;
}

void metrics_auth_delayed(void)
{
	registry.auth_delayed++;
}

void metrics_snapshot(struct metrics_counters *out)
{
	*out = registry;
}

bool metrics_label_escape(const char *value, char *out, size_t out_cap)
{
	size_t o = 0;

	if (out_cap == 0)
		return false;
	for (const char *p = value; *p != '\0'; p++) {
		const char *put = NULL;
		char one[2] = { *p, '\0' };

		if (*p == '\\')
			put = "\\\\";
		else if (*p == '"')
			put = "\\\"";
		else if (*p == '\n')
			put = "\\n";
		else
			put = one;
		if (o + strlen(put) >= out_cap) {
			out[o] = '\0';
			return false;
		}
		memcpy(out + o, put, strlen(put));
		o += strlen(put);
	}
	out[o] = '\0';
	return true;
}

/* ---- rendering ---- */

#define LABEL_VALUE_CAP 64

struct render {
	struct evbuffer *out;
	int rc;
};

static void put(struct render *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct render *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(r->out, fmt, ap) < 0)
		r->rc = -1;
	va_end(ap);
}

static void family(struct render *r, const char *name, const char *type, const char *help)
{
	put(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"} value, with up to three labels (NULL key: none). */
static void sample(struct render *r, const char *name, const char *const keys[3],
		   const char *const values[3], uint64_t value)
{
	char escaped[LABEL_VALUE_CAP];
	size_t n = 0;

	put(r, "%s", name);
	for (size_t i = 0; i < 3 && keys[i] != NULL; i++, n++) {
		(void) metrics_label_escape(values[i], escaped, sizeof(escaped));
		put(r, "%s%s=\"%s\"", i == 0 ? "{" : ",", keys[i], escaped);
	}
	put(r, "%s %" PRIu64 "\n", n > 0 ? "}" : "", value);
}

#define KEYS(...)   ((const char *const[3]){ __VA_ARGS__ })
#define VALUES(...) ((const char *const[3]){ __VA_ARGS__ })

int metrics_render(const struct metrics_counters *c, const struct metrics_gauges *g,
		   struct evbuffer *out)
{
	static const char *const places[3] = { "queue", "deferred", "hold" };
	struct render r = { out, 0 };
	uint64_t cumulative = 0;

	family(&r, "postgate_up", "gauge", "Whether the daemon is serving (always 1).");
	sample(&r, "postgate_up", KEYS(NULL), VALUES(NULL), 1);
	family(&r, "postgate_start_time_seconds", "gauge",
	       "Unix time the daemon started, in seconds.");
	sample(&r, "postgate_start_time_seconds", KEYS(NULL), VALUES(NULL), g->start_time_s);

	family(&r, "postgate_sessions", "gauge", "Sessions open now, by listener.");
	for (size_t i = 0; i < CONFIG_LISTENER_KIND_COUNT; i++)
		sample(&r, "postgate_sessions", KEYS("listener"), VALUES(listener_names[i]),
		       g->sessions[i]);
	family(&r, "postgate_sessions_refused_total", "counter",
	       "Connections refused at accept by a session limit, by reason.");
	for (size_t i = 0; i < METRICS_REFUSAL_COUNT; i++)
		sample(&r, "postgate_sessions_refused_total", KEYS("reason"),
		       VALUES(refusal_names[i]), c->sessions_refused[i]);

	family(&r, "postgate_messages_accepted_total", "counter",
	       "Messages committed to the queue and acknowledged with 250, by listener.");
	for (size_t i = 0; i < METRICS_LISTENER_COUNT; i++)
		if (i != CONFIG_LISTENER_HTTP && i != CONFIG_LISTENER_POP3 &&
		    i != CONFIG_LISTENER_POP3S)
			sample(&r, "postgate_messages_accepted_total", KEYS("listener"),
			       VALUES(listener_names[i]), c->messages_accepted[i]);

	family(&r, "postgate_deliveries_total", "counter",
	       "Delivery attempts per recipient, by outcome and transport.");
	for (size_t i = 0; i < METRICS_DELIVERY_RESULT_COUNT; i++)
		for (size_t v = 0; v < METRICS_VIA_COUNT; v++)
			sample(&r, "postgate_deliveries_total", KEYS("result", "via"),
			       VALUES(delivery_result_names[i], via_names[v]), c->deliveries[i][v]);
	family(&r, "postgate_bounces_total", "counter",
	       "Delivery status notifications (bounces and delay warnings) queued.");
	sample(&r, "postgate_bounces_total", KEYS(NULL), VALUES(NULL), c->bounces);

	family(&r, "postgate_delivery_seconds", "histogram",
	       "Time from receipt to delivery of each delivered recipient.");
	for (size_t i = 0; i < METRICS_DELIVERY_BUCKET_COUNT; i++) {
		cumulative += c->delivery_buckets[i];
		sample(&r, "postgate_delivery_seconds_bucket", KEYS("le"),
		       VALUES(delivery_bounds[i].le), cumulative);
	}
	sample(&r, "postgate_delivery_seconds_bucket", KEYS("le"), VALUES("+Inf"),
	       c->delivery_count);
	put(&r, "postgate_delivery_seconds_sum %" PRIu64 ".%03u\n", c->delivery_sum_ms / 1000,
	    (unsigned) (c->delivery_sum_ms % 1000));
	sample(&r, "postgate_delivery_seconds_count", KEYS(NULL), VALUES(NULL), c->delivery_count);

	family(&r, "postgate_auth_total", "counter",
	       "Authentication attempts, by listener, mechanism and result.");
	for (size_t l = 0; l < METRICS_LISTENER_COUNT; l++)
		for (size_t m = 0; m < METRICS_MECHANISM_COUNT; m++)
			for (size_t a = 0; a < METRICS_AUTH_RESULT_COUNT; a++)
				if (c->auth[l][m][a] != 0)
					sample(&r, "postgate_auth_total",
					       KEYS("listener", "mechanism", "result"),
					       VALUES(listener_names[l], mechanism_names[m],
						      auth_result_names[a]),
					       c->auth[l][m][a]);

	family(&r, "postgate_auth_throttle_delayed_total", "counter",
	       "Failed logins whose reply the login throttle delayed (refused ones are "
	       "counted in postgate_auth_total as result throttled).");
	sample(&r, "postgate_auth_throttle_delayed_total", KEYS(NULL), VALUES(NULL),
	       c->auth_delayed);
	family(&r, "postgate_auth_throttled_clients", "gauge",
	       "Client addresses (IPv6 by /64) the login throttle delays or refuses now.");
	if (g->has_auth)
		sample(&r, "postgate_auth_throttled_clients", KEYS(NULL), VALUES(NULL),
		       g->auth_throttled_clients);

	family(&r, "postgate_queue_messages", "gauge", "Messages in the spool, by place.");
	for (size_t i = 0; g->has_queue && i < ARRAY_LEN(places); i++)
		sample(&r, "postgate_queue_messages", KEYS("place"), VALUES(places[i]),
		       g->queue[i]);

	family(&r, "postgate_spool_sync_waits_total", "counter",
	       "Durable steps (message commits, direct deliveries) that waited for a file "
	       "system sync.");
	sample(&r, "postgate_spool_sync_waits_total", KEYS(NULL), VALUES(NULL),
	       g->spool_sync_waits);
	family(&r, "postgate_spool_syncs_total", "counter",
	       "File system syncs run for them; waits / syncs is the mean group size.");
	sample(&r, "postgate_spool_syncs_total", KEYS(NULL), VALUES(NULL), g->spool_syncs);

	family(&r, "postgate_tls_handshakes_total", "counter",
	       "TLS handshakes completed by SMTP and POP3 sessions, by listener and version.");
	for (size_t l = 0; l < METRICS_LISTENER_COUNT; l++)
		for (size_t v = 0; v < METRICS_TLS_VERSION_COUNT; v++)
			if (c->tls_handshakes[l][v] != 0)
				sample(&r, "postgate_tls_handshakes_total",
				       KEYS("listener", "version"),
				       VALUES(listener_names[l], tls_version_names[v]),
				       c->tls_handshakes[l][v]);
	return r.rc;
}
