/* Tests for src/http/query.c (query strings, path segments, the
 * Autodiscover request), src/http/render.c's escaping and
 * src/http/settings.c's derivation from the listeners. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "http/limits.h"
#include "http/query.h"
#include "http/render.h"
#include "http/settings.h"

#define ARRAY_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct query_case {
	const char *name, *query, *key;
	enum http_query_result want;
	const char *want_value;
} query_cases[] = {
	{ "plain", "emailaddress=alice%40example.test", "emailaddress", HTTP_QUERY_FOUND,
	  "alice@example.test" },
	{ "literal at", "email=bob@example.test", "email", HTTP_QUERY_FOUND, "bob@example.test" },
	{ "among others", "a=1&email=x%40y.test&b=2", "email", HTTP_QUERY_FOUND, "x@y.test" },
	{ "plus is space", "q=a+b", "q", HTTP_QUERY_FOUND, "a b" },
	{ "escaped key", "e%6Dail=z@y.test", "email", HTTP_QUERY_FOUND, "z@y.test" },
	{ "empty pairs", "&&email=a@b&&", "email", HTTP_QUERY_FOUND, "a@b" },
	{ "empty value", "email=", "email", HTTP_QUERY_FOUND, "" },
	{ "name only", "email", "email", HTTP_QUERY_FOUND, "" },
	{ "absent", "emailaddress=a@b", "email", HTTP_QUERY_ABSENT, "" },
	{ "empty query", "", "email", HTTP_QUERY_ABSENT, "" },
	{ "prefix is not the name", "emails=a@b", "email", HTTP_QUERY_ABSENT, "" },
	{ "short escape", "email=a%4", "email", HTTP_QUERY_MALFORMED, "" },
	{ "bad hex", "email=a%zz", "email", HTTP_QUERY_MALFORMED, "" },
	{ "escaped newline", "email=a%0Ab", "email", HTTP_QUERY_MALFORMED, "" },
	{ "escaped NUL", "email=a%00b", "email", HTTP_QUERY_MALFORMED, "" },
	{ "DEL", "email=a%7Fb", "email", HTTP_QUERY_MALFORMED, "" },
	{ "given twice", "email=a@b&email=c@d", "email", HTTP_QUERY_MALFORMED, "" },
	{ "bad pair elsewhere", "x=%g0&email=a@b", "email", HTTP_QUERY_MALFORMED, "" },
};

static void test_query_find(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_COUNT(query_cases); i++) {
		const struct query_case *c = &query_cases[i];
		char value[HTTP_VALUE_MAX + 1];

		print_message("case: %s\n", c->name);
		assert_int_equal(
			http_query_find(span_from_cstr(c->query), c->key, value, sizeof(value)),
			c->want);
		assert_string_equal(value, c->want_value);
	}
}

static void test_query_bounds(void **state)
{
	char query[HTTP_QUERY_MAX + 64], value[HTTP_VALUE_MAX + 1], small[4];
	size_t n = 0;

	(void) state;
	/* A value of exactly HTTP_VALUE_MAX bytes fits, one more does not. */
	n = (size_t) snprintf(query, sizeof(query), "v=");
	memset(query + n, 'a', HTTP_VALUE_MAX);
	query[n + HTTP_VALUE_MAX] = '\0';
	assert_int_equal(http_query_find(span_from_cstr(query), "v", value, sizeof(value)),
			 HTTP_QUERY_FOUND);
	assert_int_equal(strlen(value), HTTP_VALUE_MAX);
	query[n + HTTP_VALUE_MAX] = 'a';
	query[n + HTTP_VALUE_MAX + 1] = '\0';
	assert_int_equal(http_query_find(span_from_cstr(query), "v", value, sizeof(value)),
			 HTTP_QUERY_MALFORMED);
	/* The caller's buffer: too small is MALFORMED, not truncated. */
	assert_int_equal(http_query_find(span_from_cstr("v=abcd"), "v", small, sizeof(small)),
			 HTTP_QUERY_MALFORMED);
	/* HTTP_QUERY_PARAMS_MAX pairs, then one more. */
	n = 0;
	for (int i = 0; i < HTTP_QUERY_PARAMS_MAX; i++)
		n += (size_t) snprintf(query + n, sizeof(query) - n, "%sa=1", i ? "&" : "");
	assert_int_equal(http_query_find(span_make(query, n), "b", value, sizeof(value)),
			 HTTP_QUERY_ABSENT);
	n += (size_t) snprintf(query + n, sizeof(query) - n, "&a=1");
	assert_int_equal(http_query_find(span_make(query, n), "b", value, sizeof(value)),
			 HTTP_QUERY_MALFORMED);
	/* The whole query: HTTP_QUERY_MAX bytes at most. */
	memset(query, 'a', HTTP_QUERY_MAX + 1);
	assert_int_equal(
		http_query_find(span_make(query, HTTP_QUERY_MAX + 1), "b", value, sizeof(value)),
		HTTP_QUERY_MALFORMED);
}

static const struct segment_case {
	const char *name, *input, *want; /* want NULL: refused */
} segment_cases[] = {
	{ "domain", "example.test", "example.test" },
	{ "escaped", "b%C3%BCcher.example",
	  "b\xC3\xBC"
	  "cher.example" },
	{ "plus stays", "a+b", "a+b" },
	{ "escaped slash", "a%2Fb", NULL },
	{ "bad escape", "a%2", NULL },
	{ "control", "a%09b", NULL },
};

static void test_segment_decode(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_COUNT(segment_cases); i++) {
		const struct segment_case *c = &segment_cases[i];
		char out[64];
		bool ok = http_segment_decode(span_from_cstr(c->input), out, sizeof(out));

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->want != NULL);
		if (ok)
			assert_string_equal(out, c->want);
	}
}

#define OUTLOOK "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

static const struct autodiscover_case {
	const char *name, *body, *want; /* want NULL: refused */
	bool is_outlook;
} autodiscover_cases[] = {
	{ "outlook",
	  "<Request><EMailAddress>a@b.test</EMailAddress><AcceptableResponseSchema>" OUTLOOK
	  "</AcceptableResponseSchema></Request>",
	  "a@b.test", true },
	{ "no schema", "<EMailAddress>\r\n  a@b.test \n</EMailAddress>", "a@b.test", true },
	{ "mobilesync",
	  "<EMailAddress>a@b.test</EMailAddress><AcceptableResponseSchema>"
	  "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/"
	  "responseschema/2006</AcceptableResponseSchema>",
	  "a@b.test", false },
	{ "missing", "<Request></Request>", NULL, true },
	{ "unclosed", "<EMailAddress>a@b.test", NULL, true },
	{ "empty", "<EMailAddress> </EMailAddress>", NULL, true },
	{ "markup inside", "<EMailAddress><x/>a@b</EMailAddress>", NULL, true },
	{ "entity inside", "<EMailAddress>a&amp;b@c</EMailAddress>", NULL, true },
};

static void test_autodiscover_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_COUNT(autodiscover_cases); i++) {
		const struct autodiscover_case *c = &autodiscover_cases[i];
		char out[HTTP_VALUE_MAX + 1];
		bool is_outlook = false;
		bool ok = http_autodiscover_parse(span_from_cstr(c->body), out, sizeof(out),
						  &is_outlook);

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->want != NULL);
		if (ok) {
			assert_string_equal(out, c->want);
			assert_int_equal(is_outlook, c->is_outlook);
		}
	}
}

static void test_escape(void **state)
{
	struct evbuffer *out = evbuffer_new();
	char text[128];
	size_t len;

	(void) state;
	http_escape_add(out, "<a href=\"x\">Tom & Jerry's</a>");
	len = evbuffer_get_length(out);
	assert_true(len < sizeof(text));
	evbuffer_remove(out, text, len);
	text[len] = '\0';
	assert_string_equal(text, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
	evbuffer_free(out);
}

static void test_settings_follow_listeners(void **state)
{
	struct config config;
	struct store_domain domain = { .name = "example.test",
				       .smtp_name = "smtp-server.example.test",
				       .pop3_name = "pop.example.test" };
	struct http_settings s;

	(void) state;
	config_init_defaults(&config);
	/* Only submission (STARTTLS) and pop3 without STLS but with plaintext_auth. */
	config.listeners[CONFIG_LISTENER_SUBMISSION] =
		(struct config_listener){ .is_enabled = true,
					  .listen_count = 1,
					  .listen = { { "127.0.0.1", 10587 } },
					  .starttls = true };
	config.listeners[CONFIG_LISTENER_POP3] =
		(struct config_listener){ .is_enabled = true,
					  .listen_count = 1,
					  .listen = { { "127.0.0.1", 10110 } },
					  .tls_profile = CONFIG_TLS_PROFILE_LEGACY,
					  .plaintext_auth = true };
	/* mx is never offered to customers. */
	config.listeners[CONFIG_LISTENER_MX] =
		(struct config_listener){ .is_enabled = true,
					  .listen_count = 1,
					  .listen = { { "127.0.0.1", 25 } },
					  .tls_profile = CONFIG_TLS_PROFILE_LEGACY,
					  .plaintext_auth = true };
	http_settings_build(&config, &domain, &s);
	assert_int_equal(s.smtp_count, 1);
	assert_string_equal(s.smtp[0].host, "smtp-server.example.test");
	assert_int_equal(s.smtp[0].port, 10587);
	assert_int_equal(s.smtp[0].security, HTTP_SECURITY_STARTTLS);
	assert_int_equal(s.pop3_count, 1);
	assert_int_equal(s.pop3[0].port, 10110);
	assert_int_equal(s.pop3[0].security, HTTP_SECURITY_NONE);
	/* A plain listener without STARTTLS and without plaintext_auth: nothing. */
	config.listeners[CONFIG_LISTENER_POP3].plaintext_auth = false;
	http_settings_build(&config, &domain, &s);
	assert_int_equal(s.pop3_count, 0);
	assert_null(http_settings_preferred(&s, HTTP_SERVICE_POP3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_find),
		cmocka_unit_test(test_query_bounds),
		cmocka_unit_test(test_segment_decode),
		cmocka_unit_test(test_autodiscover_parse),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_settings_follow_listeners),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
