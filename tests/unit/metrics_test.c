/* Tests for src/core/metrics.c: label escaping, the exposition format of
 * every line, cumulative histogram buckets with +Inf, _sum and _count. */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "core/metrics.h"
#include "core/span.h"

static const struct escape_case {
	const char *name, *input, *want; /* want NULL: does not fit in 16 bytes */
} escape_cases[] = {
	{ "plain", "submission", "submission" },
	{ "empty", "", "" },
	{ "backslash", "a\\b", "a\\\\b" },
	{ "double quote", "say \"hi\"", "say \\\"hi\\\"" },
	{ "line feed", "a\nb", "a\\nb" },
	{ "other bytes kept", "TLSv1.3 {x}", "TLSv1.3 {x}" },
	{ "exactly fits", "123456789012345", "123456789012345" },
	{ "one too long", "1234567890123456", NULL },
	{ "escape does not fit", "12345678901234\"", NULL },
};

static void test_label_escape(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(escape_cases); i++) {
		const struct escape_case *c = &escape_cases[i];
		char out[16];
		bool ok = metrics_label_escape(c->input, out, sizeof(out));

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->want != NULL);
		if (ok)
			assert_string_equal(out, c->want);
		else
			assert_true(strlen(out) < sizeof(out));
	}
}

/* The rendered text as a NUL-ended string (caller frees). */
static char *render(const struct metrics_counters *c, const struct metrics_gauges *g)
{
	struct evbuffer *out = evbuffer_new();
	size_t len;
	char *text;

	assert_non_null(out);
	assert_int_equal(metrics_render(c, g, out), 0);
	len = evbuffer_get_length(out);
	text = calloc(1, len + 1);
	assert_non_null(text);
	evbuffer_remove(out, text, len);
	evbuffer_free(out);
	return text;
}

/* Every line is HELP, TYPE or a sample; a sample's family was declared by
 * TYPE before it (a histogram's with _bucket, _sum or _count). */
static void assert_exposition_format(char *text)
{
	regex_t help, type, sample;
	char family[128] = "";
	char *save = NULL;

	assert_int_equal(regcomp(&help, "^# HELP [a-z_:][a-z0-9_:]* [^\n]+$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type, "^# TYPE ([a-z_:][a-z0-9_:]*) (counter|gauge|histogram)$",
				 REG_EXTENDED),
			 0);
	assert_int_equal(regcomp(&sample,
				 "^([a-z_:][a-z0-9_:]*)"
				 "(\\{[a-z_]+=\"([^\"\\\\\n]|\\\\.)*\"(,[a-z_]+=\"([^\"\\\\\n]|"
				 "\\\\.)*\")*\\})?"
				 " [0-9]+(\\.[0-9]+)?$",
				 REG_EXTENDED),
			 0);
	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[2];

		if (regexec(&help, line, 0, NULL, 0) == 0)
			continue;
		if (regexec(&type, line, 2, m, 0) == 0) {
			snprintf(family, sizeof(family), "%.*s", (int) (m[1].rm_eo - m[1].rm_so),
				 line + m[1].rm_so);
			continue;
		}
		if (regexec(&sample, line, 2, m, 0) != 0) {
			print_message("bad line: %s\n", line);
			fail();
		}
		assert_true(family[0] != '\0' && strncmp(line, family, strlen(family)) == 0);
	}
	regfree(&help);
	regfree(&type);
	regfree(&sample);
}

static void fill_refused(struct metrics_counters *c)
{
	c->sessions_refused[METRICS_REFUSAL_MAX_SESSIONS_PER_IP] = 3;
}

static void fill_deliveries(struct metrics_counters *c)
{
	metrics_count_delivery(c, METRICS_DELIVERY_DELIVERED, "maildir", 5);
	metrics_count_delivery(c, METRICS_DELIVERY_DELIVERED, "maildir", 10); /* le is inclusive */
	metrics_count_delivery(c, METRICS_DELIVERY_DELIVERED, "smtp", 2000);
	metrics_count_delivery(c, METRICS_DELIVERY_DELIVERED, "smtp", 100000000); /* past 86400 */
	metrics_count_delivery(c, METRICS_DELIVERY_DEFERRED, "smtp", 7);	  /* not timed */
	metrics_count_delivery(c, METRICS_DELIVERY_FAILED, "carrier-pigeon", 7);
}

static void fill_auth(struct metrics_counters *c)
{
	c->auth[CONFIG_LISTENER_SUBMISSION][METRICS_MECHANISM_PLAIN][METRICS_AUTH_OK] = 2;
	c->auth[CONFIG_LISTENER_POP3][METRICS_MECHANISM_USER][METRICS_AUTH_FAILED] = 1;
	c->tls_handshakes[CONFIG_LISTENER_SUBMISSIONS][METRICS_TLS_1_3] = 4;
}

static void fill_throttle(struct metrics_counters *c)
{
	c->auth_delayed = 5;
}

static const struct render_case {
	const char *name;
	void (*fill)(struct metrics_counters *c);
	bool has_queue;
	const char *want[16]; /* whole lines that must appear */
	const char *absent[4];
	bool has_auth; /* the throttled-clients gauge is known (3) */
} render_cases[] = {
	{ "all zero",
	  NULL,
	  false,
	  { "# TYPE postgate_up gauge", "postgate_up 1", "postgate_start_time_seconds 1700000000",
	    "postgate_sessions{listener=\"mx\"} 7", "postgate_sessions{listener=\"http\"} 0",
	    "postgate_delivery_seconds_bucket{le=\"+Inf\"} 0",
	    "postgate_delivery_seconds_sum 0.000", "postgate_delivery_seconds_count 0",
	    "postgate_bounces_total 0" },
	  { "postgate_queue_messages{place=\"queue\"} 0", "postgate_auth_total{",
	    "postgate_tls_handshakes_total{", "\npostgate_auth_throttled_clients " },
	  false },
	{ "throttle",
	  fill_throttle,
	  false,
	  { "# TYPE postgate_auth_throttled_clients gauge", "postgate_auth_throttled_clients 3",
	    "# TYPE postgate_auth_throttle_delayed_total counter",
	    "postgate_auth_throttle_delayed_total 5" },
	  { NULL },
	  true },
	{ "queue gauges",
	  NULL,
	  true,
	  { "# TYPE postgate_queue_messages gauge", "postgate_queue_messages{place=\"queue\"} 1",
	    "postgate_queue_messages{place=\"deferred\"} 2",
	    "postgate_queue_messages{place=\"hold\"} 3" },
	  { NULL },
	  false },
	{ "refusals",
	  fill_refused,
	  false,
	  { "postgate_sessions_refused_total{reason=\"max-sessions-per-ip\"} 3",
	    "postgate_sessions_refused_total{reason=\"max-sessions\"} 0" },
	  { NULL },
	  false },
	{ "histogram cumulative",
	  fill_deliveries,
	  false,
	  { "# TYPE postgate_delivery_seconds histogram",
	    "postgate_delivery_seconds_bucket{le=\"0.01\"} 2",
	    "postgate_delivery_seconds_bucket{le=\"0.1\"} 2",
	    "postgate_delivery_seconds_bucket{le=\"1\"} 2",
	    "postgate_delivery_seconds_bucket{le=\"5\"} 3",
	    "postgate_delivery_seconds_bucket{le=\"86400\"} 3",
	    "postgate_delivery_seconds_bucket{le=\"+Inf\"} 4",
	    "postgate_delivery_seconds_sum 100002.015", "postgate_delivery_seconds_count 4",
	    "postgate_deliveries_total{result=\"delivered\",via=\"maildir\"} 2",
	    "postgate_deliveries_total{result=\"delivered\",via=\"smtp\"} 2",
	    "postgate_deliveries_total{result=\"deferred\",via=\"smtp\"} 1",
	    "postgate_deliveries_total{result=\"failed\",via=\"other\"} 1" },
	  { NULL },
	  false },
	{ "auth and tls",
	  fill_auth,
	  false,
	  { "postgate_auth_total{listener=\"submission\",mechanism=\"PLAIN\",result=\"ok\"} 2",
	    "postgate_auth_total{listener=\"pop3\",mechanism=\"USER\",result=\"failed\"} 1",
	    "postgate_tls_handshakes_total{listener=\"submissions\",version=\"TLSv1.3\"} 4" },
	  { "result=\"throttled\"" },
	  false },
};

static bool has_line(const char *text, const char *line)
{
	size_t len = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return true;
	return false;
}

static void test_render(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(render_cases); i++) {
		const struct render_case *c = &render_cases[i];
		struct metrics_counters counters = { 0 };
		struct metrics_gauges gauges = { .sessions = { [CONFIG_LISTENER_MX] = 7 },
						 .has_queue = c->has_queue,
						 .queue = { 1, 2, 3 },
						 .start_time_s = 1700000000,
						 .has_auth = c->has_auth,
						 .auth_throttled_clients = 3 };
		char *text;

		print_message("case: %s\n", c->name);
		if (c->fill != NULL)
			c->fill(&counters);
		text = render(&counters, &gauges);
		for (size_t w = 0; w < ARRAY_LEN(c->want) && c->want[w] != NULL; w++) {
			if (!has_line(text, c->want[w]))
				print_message("missing: %s\n", c->want[w]);
			assert_true(has_line(text, c->want[w]));
		}
		for (size_t a = 0; a < ARRAY_LEN(c->absent) && c->absent[a] != NULL; a++)
			assert_null(strstr(text, c->absent[a]));
		assert_exposition_format(text);
		free(text);
	}
}

static void test_registry_counts_and_names_other(void **state)
{
	struct metrics_counters before, after;

	(void) state;
	metrics_snapshot(&before);
	metrics_message_accepted("submission");
	metrics_message_accepted("no-such-listener");
	metrics_auth("submission", "PLAIN", METRICS_AUTH_FAILED);
	metrics_auth("pop3", "XOAUTH2", METRICS_AUTH_OK);
	metrics_tls_handshake("mx", "TLSv1.2");
	metrics_tls_handshake("mx", "SSLv3");
	metrics_session_refused("max-sessions");
	metrics_bounce();
	metrics_delivery(METRICS_DELIVERY_DELIVERED, "maildir", 0);
	metrics_snapshot(&after);
	assert_true(after.messages_accepted[CONFIG_LISTENER_SUBMISSION] ==
		    before.messages_accepted[CONFIG_LISTENER_SUBMISSION] + 1);
	assert_true(after.messages_accepted[METRICS_LISTENER_OTHER] ==
		    before.messages_accepted[METRICS_LISTENER_OTHER] + 1);
	assert_true(after.auth[CONFIG_LISTENER_SUBMISSION][METRICS_MECHANISM_PLAIN]
			      [METRICS_AUTH_FAILED] == 1);
	assert_true(after.auth[CONFIG_LISTENER_POP3][METRICS_MECHANISM_OTHER][METRICS_AUTH_OK] ==
		    1);
	assert_true(after.tls_handshakes[CONFIG_LISTENER_MX][METRICS_TLS_1_2] == 1);
	assert_true(after.tls_handshakes[CONFIG_LISTENER_MX][METRICS_TLS_OTHER] == 1);
	assert_true(after.sessions_refused[METRICS_REFUSAL_MAX_SESSIONS] == 1);
	assert_true(after.bounces == 1);
	assert_true(after.delivery_buckets[0] == 1 && after.delivery_count == 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_label_escape),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_registry_counts_and_names_other),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
