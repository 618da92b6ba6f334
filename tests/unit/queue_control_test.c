/* Tests for src/queue/control.c: the control socket's request and reply
 * lines — what parses, what is refused (always ERROR_USAGE for a request),
 * the length bound, and that a reply can carry no byte that would break the
 * line protocol or a terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/span.h"
#include "queue/control.h"

#define ID "1k1cd88a818e6"

struct request_case {
	const char *name;
	const char *line; /* without the LF */
	bool is_ok;
	enum queue_control_verb verb;
	const char *id; /* NULL: no ID */
};

// clang-format off
static const struct request_case request_cases[] = {
	{ "flush all",            "flush",               true,  QUEUE_CONTROL_FLUSH,   NULL },
	{ "flush one",            "flush " ID,           true,  QUEUE_CONTROL_FLUSH,   ID },
	{ "delete",               "delete " ID,          true,  QUEUE_CONTROL_DELETE,  ID },
	{ "hold",                 "hold " ID,            true,  QUEUE_CONTROL_HOLD,    ID },
	{ "release",              "release " ID,         true,  QUEUE_CONTROL_RELEASE, ID },
	{ "final CR dropped",     "hold " ID "\r",       true,  QUEUE_CONTROL_HOLD,    ID },
	{ "empty",                "",                    false, 0, NULL },
	{ "CR alone",             "\r",                  false, 0, NULL },
	{ "upper-case verb",      "FLUSH",               false, 0, NULL },
	{ "unknown verb",         "frob " ID,            false, 0, NULL },
	{ "delete needs an ID",   "delete",              false, 0, NULL },
	{ "hold needs an ID",     "hold",                false, 0, NULL },
	{ "release needs an ID",  "release",             false, 0, NULL },
	{ "trailing space",       "flush ",              false, 0, NULL },
	{ "two spaces",           "hold  " ID,           false, 0, NULL },
	{ "two arguments",        "hold " ID " " ID,     false, 0, NULL },
	{ "not an ID: path",      "hold ../../etc/passwd", false, 0, NULL },
	{ "not an ID: short",     "hold 1k1cd88a818e",   false, 0, NULL },
	{ "not an ID: letter u",  "hold 1k1cd88a818eu",  false, 0, NULL },
	{ "tab",                  "hold\t" ID,           false, 0, NULL },
	{ "NUL",                  "hold \0" ID,          false, 0, NULL },
	{ "8-bit",                "hold \xc3\xa9",       false, 0, NULL },
	{ "escape sequence",      "\x1b[2J",             false, 0, NULL },
	{ "CR inside",            "flush\r" ID,          false, 0, NULL },
};
// clang-format on

static void test_request_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(request_cases); i++) {
		const struct request_case *c = &request_cases[i];
		/* "NUL" holds a NUL: its length is the literal's, not strlen. */
		size_t len = strcmp(c->name, "NUL") == 0 ? 5 + 1 + strlen(ID) : strlen(c->line);
		struct queue_control_request got;
		struct error err;
		int rc;

		print_message("case: %s\n", c->name);
		rc = queue_control_request_parse(span_make(c->line, len), &got, &err);
		assert_int_equal(rc, c->is_ok ? 0 : -1);
		if (!c->is_ok) {
			assert_int_equal(err.kind, ERROR_USAGE);
			assert_false(got.has_id);
			continue;
		}
		assert_int_equal(got.verb, c->verb);
		assert_int_equal(got.has_id, c->id != NULL);
		assert_string_equal(got.id, c->id ? c->id : "");
	}
}

/* activity ADDRESS: the address is kept as sent; only its shape is checked. */
static const struct activity_case {
	const char *name;
	size_t local_len, domain_len; /* 0, 0: line is used as it is */
	const char *line;
	bool is_ok;
} activity_cases[] = {
	{ "plain", 0, 0, "activity alice@example.test", true },
	{ "case kept", 0, 0, "activity Alice@Example.Test", true },
	{ "final CR", 0, 0, "activity alice@example.test\r", true },
	{ "254 octets", 64, 189, NULL, true },
	{ "255 octets", 64, 190, NULL, false },
	{ "no argument", 0, 0, "activity", false },
	{ "no @", 0, 0, "activity alice", false },
	{ "empty local part", 0, 0, "activity @example.test", false },
	{ "empty domain", 0, 0, "activity alice@", false },
	{ "two arguments", 0, 0, "activity alice@example.test bob@example.test", false },
	{ "8-bit", 0, 0, "activity \xc3\xa9@example.test", false },
	{ "status takes none", 0, 0, "status alice@example.test", false },
};

static void test_activity_request(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(activity_cases); i++) {
		const struct activity_case *c = &activity_cases[i];
		char line[QUEUE_CONTROL_REQUEST_MAX + 16], again[QUEUE_CONTROL_REQUEST_MAX + 1];
		struct queue_control_request got;
		struct error err;
		size_t len, want_len;
		int rc;

		print_message("case: %s\n", c->name);
		if (c->line != NULL) {
			len = (size_t) snprintf(line, sizeof(line), "%s", c->line);
		} else {
			len = (size_t) snprintf(line, sizeof(line), "activity ");
			memset(line + len, 'a', c->local_len);
			len += c->local_len;
			line[len++] = '@';
			memset(line + len, 'b', c->domain_len);
			len += c->domain_len;
			line[len++] = '\r'; /* the longest line a client may send */
			line[len] = '\0';
			assert_true(len + 1 <= QUEUE_CONTROL_REQUEST_MAX || !c->is_ok);
		}
		rc = queue_control_request_parse(span_make(line, len), &got, &err);
		assert_int_equal(rc, c->is_ok ? 0 : -1);
		if (!c->is_ok) {
			assert_int_equal(err.kind, ERROR_USAGE);
			assert_string_equal(got.address, "");
			continue;
		}
		assert_int_equal(got.verb, QUEUE_CONTROL_ACTIVITY);
		assert_false(got.has_id);
		want_len = len - (line[len - 1] == '\r');
		assert_int_equal(strlen(got.address), want_len - strlen("activity "));
		assert_memory_equal(got.address, line + strlen("activity "),
				    want_len - strlen("activity "));
		len = queue_control_request_format(&got, again, sizeof(again));
		assert_int_equal(len, want_len + 1);
		assert_memory_equal(again, line, want_len);
		assert_int_equal(again[len - 1], '\n');
	}
}

static void test_request_length_bound(void **state)
{
	char line[QUEUE_CONTROL_REQUEST_MAX + 8];
	struct queue_control_request got;
	struct error err;

	(void) state;
	/* QUEUE_CONTROL_REQUEST_MAX counts the LF: one byte less is read as
	 * a request (and refused as unknown), the limit itself is too long. */
	memset(line, 'x', sizeof(line));
	assert_int_equal(queue_control_request_parse(span_make(line, QUEUE_CONTROL_REQUEST_MAX - 1),
						     &got, &err),
			 -1);
	assert_non_null(strstr(err.message, "unknown request"));
	assert_int_equal(
		queue_control_request_parse(span_make(line, QUEUE_CONTROL_REQUEST_MAX), &got, &err),
		-1);
	assert_non_null(strstr(err.message, "longer than"));
}

static void test_request_format_round_trip(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(request_cases); i++) {
		const struct request_case *c = &request_cases[i];
		struct queue_control_request request = { .verb = c->verb, .has_id = c->id != NULL },
					     got;
		char line[QUEUE_CONTROL_REQUEST_MAX + 1];
		struct error err;
		size_t len;

		if (!c->is_ok)
			continue;
		print_message("case: %s\n", c->name);
		snprintf(request.id, sizeof(request.id), "%s", c->id ? c->id : "");
		len = queue_control_request_format(&request, line, sizeof(line));
		assert_true(len > 1 && line[len - 1] == '\n');
		assert_int_equal(queue_control_request_parse(span_make(line, len - 1), &got, &err),
				 0);
		assert_int_equal(got.verb, request.verb);
		assert_string_equal(got.id, request.id);
	}
}

struct reply_case {
	const char *name;
	const char *line;
	int rc;
	enum error_kind kind; /* when rc is -1 */
	const char *text;     /* the ok text, or the error message */
};

// clang-format off
static const struct reply_case reply_cases[] = {
	{ "ok with text",     "ok hold " ID,                     0,  ERROR_NONE,      "hold " ID },
	{ "ok alone",         "ok",                              0,  ERROR_NONE,      "" },
	{ "ok with CR",       "ok\r",                            0,  ERROR_NONE,      "" },
	{ "error not-found",  "error not-found no message here", -1, ERROR_NOT_FOUND, "no message here" },
	{ "error usage",      "error usage bad",                 -1, ERROR_USAGE,     "bad" },
	{ "error data",       "error data message is held",      -1, ERROR_DATA,      "message is held" },
	{ "error no message", "error usage",                     -1, ERROR_SOFTWARE,  NULL },
	{ "error bad kind",   "error frob x",                    -1, ERROR_SOFTWARE,  NULL },
	{ "error none",       "error none x",                    -1, ERROR_SOFTWARE,  NULL },
	{ "neither",          "maybe",                           -1, ERROR_SOFTWARE,  NULL },
	{ "okay is not ok",   "okay",                            -1, ERROR_SOFTWARE,  NULL },
	{ "control byte",     "ok \x1b[2J",                      -1, ERROR_SOFTWARE,  NULL },
};
// clang-format on

static void test_reply_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		char text[QUEUE_CONTROL_REPLY_MAX + 1];
		struct error err;
		int rc;

		print_message("case: %s\n", c->name);
		error_clear(&err);
		rc = queue_control_reply_parse(span_from_cstr(c->line), text, sizeof(text), &err);
		assert_int_equal(rc, c->rc);
		if (rc == 0) {
			assert_string_equal(text, c->text);
			continue;
		}
		assert_int_equal(err.kind, c->kind);
		if (c->text != NULL)
			assert_string_equal(err.message, c->text);
	}
}

static void test_reply_format(void **state)
{
	char line[QUEUE_CONTROL_REPLY_MAX + 1], text[QUEUE_CONTROL_REPLY_MAX + 1];
	char long_text[QUEUE_CONTROL_REPLY_MAX + 1000];
	struct error err;
	size_t len;

	(void) state;
	assert_int_equal(queue_control_reply_format(NULL, "hold " ID, line, sizeof(line)),
			 strlen("ok hold " ID "\n"));
	assert_string_equal(line, "ok hold " ID "\n");
	error_set(&err, ERROR_NOT_FOUND, "no message\n%s\x1b", ID);
	queue_control_reply_format(&err, NULL, line, sizeof(line));
	assert_string_equal(line, "error not-found no message?" ID "?\n");
	/* Every error kind survives the trip. */
	for (int kind = ERROR_USAGE; kind <= ERROR_UNAVAILABLE; kind++) {
		struct error back;

		error_set(&err, (enum error_kind) kind, "x");
		len = queue_control_reply_format(&err, NULL, line, sizeof(line));
		assert_int_equal(queue_control_reply_parse(span_make(line, len - 1), text,
							   sizeof(text), &back),
				 -1);
		assert_int_equal(back.kind, kind);
	}
	/* A long text is cut to the bound and stays one line. */
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	len = queue_control_reply_format(NULL, long_text, line, sizeof(line));
	assert_int_equal(len, QUEUE_CONTROL_REPLY_MAX);
	assert_int_equal(line[len - 1], '\n');
	assert_int_equal(
		queue_control_reply_parse(span_make(line, len - 1), text, sizeof(text), &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_parse),
		cmocka_unit_test(test_request_length_bound),
		cmocka_unit_test(test_activity_request),
		cmocka_unit_test(test_request_format_round_trip),
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
