/* Tests for src/queue/envelope.c: the ID.env and ID.state texts round-trip
 * byte for byte, client bytes cannot inject a line, and every malformed text
 * is refused with the line it is on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/span.h"
#include "queue/envelope.h"

static void set(char **field, const char *value)
{
	struct error err;

	assert_int_equal(queue_envelope_string_set(field, span_from_cstr(value), &err), 0);
}

/* An envelope with every field, every string being `text`. */
static void envelope_fill(struct queue_envelope *env, const char *text, size_t recipients)
{
	struct error err;

	queue_envelope_init(env);
	set(&env->reverse_path, text);
	set(&env->client_address, text);
	set(&env->helo, text);
	set(&env->auth_user, text);
	set(&env->envid, text);
	env->received_at = 1712345678;
	env->is_smtputf8 = true;
	env->body_type = QUEUE_BODY_8BITMIME;
	env->ret = QUEUE_RET_HDRS;
	for (size_t i = 0; i < recipients; i++) {
		struct queue_recipient *r;

		assert_int_equal(queue_envelope_add_recipient(
					 env, span_from_cstr(text[0] ? text : "x"), &r, &err),
				 0);
		set(&r->orcpt, text);
		set(&r->alias, text);
		r->notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY;
	}
}

/* Serialize, check no byte escaped its line, parse back, compare, and check
 * that serializing the parsed value gives the same bytes. */
static void round_trip(const struct queue_envelope *env, size_t want_lines)
{
	struct queue_envelope back;
	struct error err;
	char *text, *again;
	size_t len, again_len, lines = 0;

	assert_int_equal(queue_envelope_serialize(env, &text, &len, &err), 0);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) text[i];

		if (c == '\n')
			lines++;
		else
			assert_true(c >= 0x20 && c <= 0x7e);
	}
	assert_int_equal(lines, want_lines);
	if (queue_envelope_parse(span_make(text, len), &back, &err) != 0)
		fail_msg("parse: %s", err.message);
	assert_true(queue_envelope_equal(env, &back));
	assert_int_equal(queue_envelope_serialize(&back, &again, &again_len, &err), 0);
	assert_int_equal(again_len, len);
	assert_memory_equal(again, text, len);
	queue_envelope_clear(&back);
	free(text);
	free(again);
}

static const struct hostile_case {
	const char *name;
	const char *text;
} hostile_cases[] = {
	{ "plain address", "alice@example.test" },
	{ "empty", "" },
	{ "CR LF then a key", "a\r\nrcpt evil@example.test" },
	{ "bare LF then end", "a\nend\n" },
	{ "bare CR", "a\rb" },
	{ "plus and equals", "a+b=c+2B+3D" },
	{ "spaces and tabs", " a b\tc " },
	{ "UTF-8", "j\xc3\xb6rg@b\xc3\xbc\x63her.example" },
	{ "DEL and high bytes", "\x7f\x80\xff" },
	{ "looks like xtext", "+0A+0D" },
	{ "control bytes", "\x01\x02\x1b[31m" },
};

static void test_envelope_round_trip_hostile(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(hostile_cases); i++) {
		const struct hostile_case *c = &hostile_cases[i];
		struct queue_envelope env;

		print_message("case: %s\n", c->name);
		envelope_fill(&env, c->text, 3);
		/* version, 9 header lines, 4 per recipient, end */
		round_trip(&env, 1 + 9 + 4 * 3 + 1);
		queue_envelope_clear(&env);
	}
}

/* Optional fields absent, null reverse-path, each enumeration value. */
static void test_envelope_round_trip_values(void **state)
{
	static const unsigned notifies[] = {
		0,
		QUEUE_NOTIFY_NEVER,
		QUEUE_NOTIFY_SUCCESS,
		QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY,
		QUEUE_NOTIFY_DELAY,
	};
	struct queue_envelope env;
	struct error err;

	(void) state;
	for (int body = QUEUE_BODY_7BIT; body <= QUEUE_BODY_BINARYMIME; body++) {
		for (int ret = QUEUE_RET_NONE; ret <= QUEUE_RET_HDRS; ret++) {
			queue_envelope_init(&env);
			set(&env.reverse_path, "");
			set(&env.client_address, "2001:db8::1");
			set(&env.helo, "client.example");
			env.body_type = (enum queue_body_type) body;
			env.ret = (enum queue_ret) ret;
			env.received_at = (uint64_t) body * 1000 + (uint64_t) ret;
			for (size_t n = 0; n < ARRAY_LEN(notifies); n++) {
				struct queue_recipient *r;
				char address[32];

				snprintf(address, sizeof(address), "r%zu@example.test", n);
				assert_int_equal(queue_envelope_add_recipient(
							 &env, span_from_cstr(address), &r, &err),
						 0);
				r->notify = notifies[n];
			}
			/* version, 7 header lines, rcpt + notify except for notify 0, end */
			round_trip(&env, 1 + 7 + ARRAY_LEN(notifies) * 2 - 1 + 1);
			queue_envelope_clear(&env);
		}
	}
}

/* The format, pinned: a change here is a change of the on-disk format. */
static void test_envelope_exact_text(void **state)
{
	static const char want[] = "postgate-envelope 1\n"
				   "received-at 1712345678\n"
				   "client-address 192.0.2.7\n"
				   "helo [192.0.2.7]\n"
				   "auth-user alice@example.test\n"
				   "reverse-path alice+2Btag@example.test\n"
				   "smtputf8 no\n"
				   "body 7bit\n"
				   "ret full\n"
				   "envid QQ+2B1\n"
				   "rcpt bob@example.test\n"
				   "orcpt rfc822;bob@example.test\n"
				   "notify success,failure\n"
				   "rcpt carol@example.test\n"
				   "alias team@example.test\n"
				   "end\n";
	struct queue_envelope env;
	struct queue_recipient *r;
	struct error err;
	char *text;
	size_t len;

	(void) state;
	queue_envelope_init(&env);
	env.received_at = 1712345678;
	set(&env.client_address, "192.0.2.7");
	set(&env.helo, "[192.0.2.7]");
	set(&env.auth_user, "alice@example.test");
	set(&env.reverse_path, "alice+tag@example.test");
	env.ret = QUEUE_RET_FULL;
	set(&env.envid, "QQ+1");
	assert_int_equal(
		queue_envelope_add_recipient(&env, span_from_cstr("bob@example.test"), &r, &err),
		0);
	set(&r->orcpt, "rfc822;bob@example.test");
	r->notify = QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE;
	assert_int_equal(
		queue_envelope_add_recipient(&env, span_from_cstr("carol@example.test"), &r, &err),
		0);
	set(&r->alias, "team@example.test");
	assert_int_equal(queue_envelope_serialize(&env, &text, &len, &err), 0);
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(text, want, len);
	free(text);
	queue_envelope_clear(&env);
}

#define HEAD                                                                                  \
	"postgate-envelope 1\nreceived-at 1\nclient-address 192.0.2.1\nhelo h\nreverse-path " \
	"a@b\nsmtputf8 no\nbody 7bit\nret none\n"

static const struct bad_case {
	const char *name;
	const char *text;
	size_t len;	 /* 0: strlen(text) */
	const char *say; /* a part of the error message */
} bad_cases[] = {
	{ "empty", "", 0, "line 1" },
	{ "wrong version", "postgate-envelope 2\n" HEAD "rcpt c@d\nend\n", 0, "line 1" },
	{ "no end", HEAD "rcpt c@d\n", 0, "end missing" },
	{ "cut short", HEAD "rcpt c@d\nen", 0, "cut short" },
	{ "no LF after end", HEAD "rcpt c@d\nend", 0, "cut short" },
	{ "text after end", HEAD "rcpt c@d\nend\nx", 0, "after end" },
	{ "value after end", HEAD "rcpt c@d\nend x\n", 0, "value after end" },
	{ "unknown key", HEAD "color blue\nrcpt c@d\nend\n", 0, "unknown key" },
	{ "key twice", HEAD "helo h\nrcpt c@d\nend\n", 0, "repeated or out of order" },
	{ "out of order",
	  "postgate-envelope 1\nclient-address x\nreceived-at 1\nhelo h\nreverse-path "
	  "a@b\nsmtputf8 no\nbody 7bit\nret none\nrcpt c@d\nend\n",
	  0, "received-at missing before client-address" },
	{ "required key missing",
	  "postgate-envelope 1\nreceived-at 1\nclient-address x\nreverse-path a@b\nsmtputf8 "
	  "no\nbody 7bit\nret none\nrcpt c@d\nend\n",
	  0, "helo missing" },
	{ "no recipient", HEAD "end\n", 0, "rcpt missing" },
	{ "empty recipient", HEAD "rcpt\nend\n", 0, "empty recipient" },
	{ "header after recipient", HEAD "rcpt c@d\nenvid x\nend\n", 0,
	  "line 10: envid after a rcpt" },
	{ "recipient key before recipient", HEAD "orcpt x\nrcpt c@d\nend\n", 0, "unknown key" },
	{ "recipient key twice", HEAD "rcpt c@d\nalias x\nalias y\nend\n", 0, "repeated" },
	{ "recipient keys out of order", HEAD "rcpt c@d\nalias x\norcpt y\nend\n", 0, "order" },
	{ "space but no value", HEAD "rcpt c@d\nalias \nend\n", 0, "no value" },
	{ "two spaces", HEAD "rcpt c@d\nalias  x\nend\n", 0, "bad xtext" },
	{ "space inside value", HEAD "rcpt c d\nend\n", 0, "bad xtext" },
	{ "raw CR", HEAD "rcpt c@d\r\nend\n", 0, "bad xtext" },
	{ "raw NUL", HEAD "rcpt c\0d\nend\n", sizeof(HEAD "rcpt c\0d\nend\n") - 1, "bad xtext" },
	{ "escaped NUL", HEAD "rcpt c+00d\nend\n", 0, "bad xtext" },
	{ "needless escape", HEAD "rcpt +41@d\nend\n", 0, "bad xtext" },
	{ "lower-case hex", HEAD "rcpt c+0ad\nend\n", 0, "bad xtext" },
	{ "escape cut short", HEAD "rcpt c+2\nend\n", 0, "bad xtext" },
	{ "raw plus", HEAD "rcpt c+d\nend\n", 0, "bad xtext" },
	{ "raw equals", HEAD "rcpt c=d\nend\n", 0, "bad xtext" },
	{ "raw high byte", HEAD "rcpt c\xc3\xb6\nend\n", 0, "bad xtext" },
	{ "leading zero", "postgate-envelope 1\nreceived-at 01\n", 0, "leading zero" },
	{ "negative time", "postgate-envelope 1\nreceived-at -1\n", 0, "bad number" },
	{ "time overflows", "postgate-envelope 1\nreceived-at 18446744073709551616\n", 0,
	  "bad number" },
	{ "empty time", "postgate-envelope 1\nreceived-at\n", 0, "bad number" },
	{ "smtputf8 not yes or no",
	  "postgate-envelope 1\nreceived-at 1\nclient-address x\nhelo h\nreverse-path "
	  "a@b\nsmtputf8 true\nbody 7bit\nret none\nrcpt c@d\nend\n",
	  0, "unknown value" },
	{ "unknown body",
	  "postgate-envelope 1\nreceived-at 1\nclient-address x\nhelo h\nreverse-path "
	  "a@b\nsmtputf8 no\nbody 8BITMIME\nret none\nrcpt c@d\nend\n",
	  0, "unknown value" },
	{ "unknown ret",
	  "postgate-envelope 1\nreceived-at 1\nclient-address x\nhelo h\nreverse-path "
	  "a@b\nsmtputf8 no\nbody 7bit\nret all\nrcpt c@d\nend\n",
	  0, "unknown value" },
	{ "notify never combined", HEAD "rcpt c@d\nnotify never,delay\nend\n", 0, "NOTIFY" },
	{ "notify out of order", HEAD "rcpt c@d\nnotify delay,success\nend\n", 0, "NOTIFY" },
	{ "notify twice", HEAD "rcpt c@d\nnotify success,success\nend\n", 0, "NOTIFY" },
	{ "notify empty word", HEAD "rcpt c@d\nnotify success,\nend\n", 0, "NOTIFY" },
	{ "notify upper case", HEAD "rcpt c@d\nnotify SUCCESS\nend\n", 0, "NOTIFY" },
	{ "CRLF line ends", "postgate-envelope 1\r\n", 0, "line 1" },
};

static void test_envelope_parse_refuses(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct queue_envelope env;
		struct error err = { 0 };
		size_t len = c->len ? c->len : strlen(c->text);
		int rc;

		print_message("case: %s\n", c->name);
		rc = queue_envelope_parse(span_make(c->text, len), &env, &err);
		queue_envelope_clear(&env);
		assert_int_equal(rc, -1);
		assert_int_equal(err.kind, ERROR_DATA);
		if (strstr(err.message, c->say) == NULL)
			fail_msg("error \"%s\" does not say \"%s\"", err.message, c->say);
	}
	{
		/* The text the refusals are built on is itself good. */
		struct queue_envelope env;
		struct error err;
		const char *good = HEAD "rcpt c@d\nend\n";

		assert_int_equal(queue_envelope_parse(span_from_cstr(good), &env, &err), 0);
		queue_envelope_clear(&env);
	}
}

static char *repeat(const char *piece, size_t times)
{
	size_t n = strlen(piece);
	char *s = malloc(n * times + 1);

	assert_non_null(s);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * n, piece, n);
	s[n * times] = '\0';
	return s;
}

/* Bounds: recipients, string length, line length, each at and past it. */
static void test_envelope_limits(void **state)
{
	struct queue_envelope env;
	struct queue_recipient *r;
	struct error err;
	char *at_limit = repeat("\n", QUEUE_ENVELOPE_STRING_MAX);
	char *past_limit = repeat("x", QUEUE_ENVELOPE_STRING_MAX + 1);
	char *field = NULL;

	(void) state;
	/* The most recipients, each string the longest and all escaped. */
	envelope_fill(&env, at_limit, QUEUE_ENVELOPE_RECIPIENTS_MAX);
	round_trip(&env, 1 + 9 + 4 * QUEUE_ENVELOPE_RECIPIENTS_MAX + 1);
	assert_int_equal(queue_envelope_add_recipient(&env, span_from_cstr("x@y"), &r, &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	queue_envelope_clear(&env);

	assert_int_equal(queue_envelope_string_set(&field, span_from_cstr(past_limit), &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	assert_null(field);
	assert_int_equal(queue_envelope_string_set(&field, span_make("a\0b", 3), &err), -1);
	assert_null(field);

	{
		/* 1001 recipient lines in a text. */
		size_t cap = 1000 + 12 * (QUEUE_ENVELOPE_RECIPIENTS_MAX + 1);
		char *text = malloc(cap);
		size_t len;

		assert_non_null(text);
		len = (size_t) snprintf(text, cap, "%s", HEAD);
		for (size_t i = 0; i <= QUEUE_ENVELOPE_RECIPIENTS_MAX; i++)
			len += (size_t) snprintf(text + len, cap - len, "rcpt r%zu@x\n", i);
		len += (size_t) snprintf(text + len, cap - len, "end\n");
		assert_int_equal(queue_envelope_parse(span_make(text, len), &env, &err), -1);
		assert_non_null(strstr(err.message, "more than 1000 recipients"));
		queue_envelope_clear(&env);
		free(text);
	}
	{
		/* A decoded string one byte too long, and a line one byte too long. */
		char *escaped = repeat("+0A", QUEUE_ENVELOPE_STRING_MAX + 1);
		char *text = malloc(strlen(HEAD) + 3 * QUEUE_ENVELOPE_LINE_MAX);
		size_t len;

		assert_non_null(text);
		len = (size_t) snprintf(text, strlen(HEAD) + 3 * QUEUE_ENVELOPE_LINE_MAX,
					"%srcpt %s\nend\n", HEAD, escaped);
		assert_int_equal(queue_envelope_parse(span_make(text, len), &env, &err), -1);
		assert_non_null(strstr(err.message, "value longer than 1024"));
		queue_envelope_clear(&env);

		/* "rcpt " + value + LF: exactly QUEUE_ENVELOPE_LINE_MAX is read (the
		 * value is then refused for its decoded length, not the line)... */
		len = (size_t) snprintf(text, strlen(HEAD) + 3 * QUEUE_ENVELOPE_LINE_MAX, "%srcpt ",
					HEAD);
		memset(text + len, 'x', QUEUE_ENVELOPE_LINE_MAX - 6);
		len += QUEUE_ENVELOPE_LINE_MAX - 6;
		memcpy(text + len, "\nend\n", 5);
		assert_int_equal(queue_envelope_parse(span_make(text, len + 5), &env, &err), -1);
		assert_non_null(strstr(err.message, "value longer than"));
		queue_envelope_clear(&env);
		/* ...one byte more and the line itself is refused. */
		len = (size_t) snprintf(text, strlen(HEAD) + 3 * QUEUE_ENVELOPE_LINE_MAX, "%srcpt ",
					HEAD);
		memset(text + len, 'x', QUEUE_ENVELOPE_LINE_MAX - 5);
		len += QUEUE_ENVELOPE_LINE_MAX - 5;
		memcpy(text + len, "\nend\n", 5);
		assert_int_equal(queue_envelope_parse(span_make(text, len + 5), &env, &err), -1);
		if (strstr(err.message, "line 9: longer than 4096") == NULL)
			fail_msg("%s", err.message);
		queue_envelope_clear(&env);
		free(text);
		free(escaped);
	}
	free(at_limit);
	free(past_limit);
}

static const struct unwritable_case {
	const char *name;
	int what; /* which field to break */
} unwritable_cases[] = {
	{ "no recipients", 0 },	     { "no reverse-path", 1 },	  { "no HELO", 2 },
	{ "never with success", 3 }, { "unknown NOTIFY bit", 4 },
};

static void test_envelope_serialize_refuses(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(unwritable_cases); i++) {
		const struct unwritable_case *c = &unwritable_cases[i];
		struct queue_envelope env;
		struct error err = { 0 };
		char *text = NULL;
		size_t len;

		print_message("case: %s\n", c->name);
		envelope_fill(&env, "x", c->what == 0 ? 0 : 1);
		if (c->what == 1) {
			free(env.reverse_path);
			env.reverse_path = NULL;
		} else if (c->what == 2) {
			free(env.helo);
			env.helo = NULL;
		} else if (c->what == 3) {
			env.recipients[0].notify = QUEUE_NOTIFY_NEVER | QUEUE_NOTIFY_SUCCESS;
		} else if (c->what == 4) {
			env.recipients[0].notify = 0x10;
		}
		assert_int_equal(queue_envelope_serialize(&env, &text, &len, &err), -1);
		assert_int_equal(err.kind, ERROR_DATA);
		assert_null(text);
		queue_envelope_clear(&env);
	}
}

/* --- ID.state ----------------------------------------------------------- */

static void test_state_round_trip(void **state)
{
	static const char want[] =
		"postgate-state 1\n"
		"attempts 3\n"
		"next-attempt 1712349999\n"
		"rcpt 0 delivered 250+202.0.0+20Ok\n"
		"rcpt 1 failed 550+205.1.1+20No+20such+20user+0D+0Arcpt+202+20x\n"
		"rcpt 2 pending\n"
		"end\n";
	struct queue_state s, back;
	struct error err;
	char *text;
	size_t len;

	(void) state;
	assert_int_equal(queue_state_init(&s, 3, &err), 0);
	assert_false(queue_state_is_done(&s));
	s.attempt_count = 3;
	s.next_attempt_at = 1712349999;
	assert_int_equal(queue_state_set(&s, 0, QUEUE_RECIPIENT_DELIVERED, "250 2.0.0 Ok", &err),
			 0);
	assert_int_equal(queue_state_set(&s, 1, QUEUE_RECIPIENT_FAILED,
					 "550 5.1.1 No such user\r\nrcpt 2 x", &err),
			 0);
	assert_int_equal(queue_state_set(&s, 3, QUEUE_RECIPIENT_FAILED, NULL, &err), -1);
	assert_false(queue_state_is_done(&s));
	assert_int_equal(queue_state_serialize(&s, &text, &len, &err), 0);
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(text, want, len);
	assert_int_equal(queue_state_parse(span_make(text, len), &back, &err), 0);
	assert_true(queue_state_equal(&s, &back));
	free(text);
	queue_state_clear(&back);

	/* An empty reply is no reply. */
	assert_int_equal(queue_state_set(&s, 2, QUEUE_RECIPIENT_FAILED, "", &err), 0);
	assert_null(s.recipients[2].reply);
	assert_true(queue_state_is_done(&s));
	queue_state_clear(&s);

	assert_int_equal(queue_state_init(&s, 0, &err), -1);
	assert_int_equal(queue_state_init(&s, QUEUE_ENVELOPE_RECIPIENTS_MAX + 1, &err), -1);
	assert_int_equal(queue_state_init(&s, QUEUE_ENVELOPE_RECIPIENTS_MAX, &err), 0);
	queue_state_clear(&s);
}

#define STATE_HEAD "postgate-state 1\nattempts 0\nnext-attempt 0\n"

static const struct bad_case state_bad_cases[] = {
	{ "wrong version", "postgate-state 2\n", 0, "line 1" },
	{ "no recipients", STATE_HEAD "end\n", 0, "rcpt missing" },
	{ "index skipped", STATE_HEAD "rcpt 1 pending\nend\n", 0, "where 0 was due" },
	{ "index repeated", STATE_HEAD "rcpt 0 pending\nrcpt 0 pending\nend\n", 0, "where 1" },
	{ "unknown status", STATE_HEAD "rcpt 0 sent\nend\n", 0, "unknown value" },
	{ "no status", STATE_HEAD "rcpt 0\nend\n", 0, "no status" },
	{ "space but no reply", STATE_HEAD "rcpt 0 failed \nend\n", 0, "no reply" },
	{ "raw space in reply", STATE_HEAD "rcpt 0 failed 550 x\nend\n", 0, "bad xtext" },
	{ "attempts too large", "postgate-state 1\nattempts 4294967296\n", 0, "bad number" },
	{ "attempts after recipients", STATE_HEAD "rcpt 0 pending\nattempts 1\nend\n", 0,
	  "out of order" },
	{ "no end", STATE_HEAD "rcpt 0 pending\n", 0, "end missing" },
	{ "text after end", STATE_HEAD "rcpt 0 pending\nend\n\n", 0, "after end" },
};

static void test_state_parse_refuses(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(state_bad_cases); i++) {
		const struct bad_case *c = &state_bad_cases[i];
		struct queue_state s;
		struct error err = { 0 };
		int rc;

		print_message("case: %s\n", c->name);
		rc = queue_state_parse(span_from_cstr(c->text), &s, &err);
		queue_state_clear(&s);
		assert_int_equal(rc, -1);
		if (strstr(err.message, c->say) == NULL)
			fail_msg("error \"%s\" does not say \"%s\"", err.message, c->say);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_round_trip_hostile),
		cmocka_unit_test(test_envelope_round_trip_values),
		cmocka_unit_test(test_envelope_exact_text),
		cmocka_unit_test(test_envelope_parse_refuses),
		cmocka_unit_test(test_envelope_limits),
		cmocka_unit_test(test_envelope_serialize_refuses),
		cmocka_unit_test(test_state_round_trip),
		cmocka_unit_test(test_state_parse_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
