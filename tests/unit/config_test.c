/* Tests for src/core/config.c and config_parse.c: syntax, the key table,
 * errors with FILE:LINE, includes, printing, and that docs/configuration.md
 * documents every key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

static const struct load_case {
	const char *name, *text;
	const char *want_error; /* NULL: must load; else a substring of the message */
} load_cases[] = {
	{ "empty file", "", NULL },
	{ "comments and blanks", "# comment\n\n   # indented\n\t\n", NULL },
	{ "top keys", "hostname = Mail.Example.TEST\nuser = mail\nlog_level = debug\n", NULL },
	{ "crlf lines", "hostname = mail.example.test\r\nlog_level = warning\r\n", NULL },
	{ "listener", "[listener mx]\nlisten = 127.0.0.1:25, [::1]:25\n", NULL },
	{ "all listeners",
	  "[listener mx]\nlisten=127.0.0.1:1\n[listener submission]\nlisten=127.0.0.1:2\n"
	  "[listener submissions]\nlisten=127.0.0.1:3\n[listener pop3]\nlisten=127.0.0.1:4\n"
	  "[listener pop3s]\nlisten=127.0.0.1:5\n[listener http]\nlisten=127.0.0.1:6\n",
	  NULL },
	{ "durations", "shutdown_timeout = 250ms\n", NULL },
	{ "tls keys", "[listener mx]\nlisten = 127.0.0.1:25\ntls_profile = legacy\nstarttls = no\n",
	  NULL },
	{ "bad tls profile", "[listener mx]\nlisten = 127.0.0.1:25\ntls_profile = old\n",
	  "test.conf:3: tls_profile: must be modern or legacy" },
	{ "bad bool", "[listener mx]\nlisten = 127.0.0.1:25\nstarttls = maybe\n",
	  "test.conf:3: starttls: must be yes or no" },
	{ "tls key at top level", "starttls = no\n", "test.conf:1: unknown key 'starttls'" },
	{ "plaintext auth with legacy",
	  "[listener mx]\nlisten = 127.0.0.1:25\ntls_profile = legacy\nplaintext_auth = yes\n",
	  NULL },
	{ "plaintext auth needs legacy",
	  "[listener mx]\nlisten = 127.0.0.1:25\nplaintext_auth = yes\n",
	  "test.conf:1: [listener mx] plaintext_auth = yes needs tls_profile = legacy" },
	{ "cram-md5 on submission",
	  "[listener submission]\nlisten = 127.0.0.1:587\ncram_md5 = yes\n", NULL },
	{ "cram-md5 not on http", "[listener http]\nlisten = 127.0.0.1:80\ncram_md5 = yes\n",
	  "test.conf:1: [listener http] cram_md5 applies to SMTP and POP3 listeners only" },
	{ "sizes and counts", "max_message_size = 10M\nmax_recipients = 1000\nworker_threads = 2\n",
	  NULL },
	{ "size too small", "max_message_size = 1000\n",
	  "test.conf:1: max_message_size: must be between 1024 and" },
	{ "size bad suffix", "max_message_size = 10T\n",
	  "test.conf:1: max_message_size: expected" },
	{ "size overflow", "max_message_size = 99999999999999999G\n",
	  "test.conf:1: max_message_size" },
	{ "count not a number", "max_recipients = lots\n",
	  "test.conf:1: max_recipients: expected a whole number" },
	{ "count zero", "max_recipients = 0\n", "test.conf:1: max_recipients: must be between 1" },
	{ "line length under the RFC minimum", "max_line_length = 999\n",
	  "test.conf:1: max_line_length: must be between 1000" },
	{ "unknown key", "hostname = a.test\nbogus = 1\n", "test.conf:2: unknown key 'bogus'" },
	{ "unknown key in listener", "[listener mx]\nlisten = 127.0.0.1:25\nport = 25\n",
	  "test.conf:3: unknown key 'port' in [listener mx]" },
	{ "top key inside listener", "[listener mx]\nlisten = 127.0.0.1:25\nhostname = a.test\n",
	  "test.conf:3: unknown key 'hostname'" },
	{ "unknown section", "[smtp]\n", "test.conf:1: unknown section [smtp]" },
	{ "unknown listener", "[listener imap]\nlisten = 127.0.0.1:143\n",
	  "test.conf:1: unknown listener 'imap'" },
	{ "listener twice", "[listener mx]\nlisten = 127.0.0.1:25\n[listener mx]\n",
	  "test.conf:3: [listener mx] appears twice" },
	{ "listener without listen", "[listener pop3]\n", "test.conf:1: [listener pop3] needs" },
	{ "key twice", "log_level = info\nlog_level = debug\n",
	  "test.conf:2: log_level is set twice" },
	{ "no equals", "hostname mail.example.test\n", "test.conf:1: expected `key = value`" },
	{ "bad section header", "[listener mx\n", "test.conf:1: section header must end" },
	{ "upper-case key", "HOSTNAME = a.test\n", "test.conf:1: a key is lower-case" },
	{ "argument on plain key", "hostname x = a.test\n",
	  "test.conf:1: hostname takes no argument" },
	{ "bad hostname", "hostname = -bad.test\n", "test.conf:1: hostname: not a valid host" },
	{ "hostname with underscore", "hostname = a_b.test\n", "test.conf:1: hostname" },
	{ "empty hostname", "hostname =\n", "test.conf:1: hostname" },
	{ "bad log level", "log_level = loud\n", "test.conf:1: log_level: must be" },
	{ "bad user", "user = a b\n", "test.conf:1: user: not a valid user name" },
	{ "bad duration unit", "shutdown_timeout = 5x\n",
	  "test.conf:1: shutdown_timeout: expected" },
	{ "negative duration", "shutdown_timeout = -5s\n", "test.conf:1: shutdown_timeout" },
	{ "duration too long", "shutdown_timeout = 2h\n",
	  "test.conf:1: shutdown_timeout: out of range" },
	{ "duration overflow", "shutdown_timeout = 99999999999999999999d\n", "test.conf:1:" },
	{ "listen hostname", "[listener mx]\nlisten = localhost:25\n",
	  "test.conf:2: listen: localhost:25 is not a numeric" },
	{ "listen no port", "[listener mx]\nlisten = 127.0.0.1\n", "test.conf:2: listen:" },
	{ "listen port zero", "[listener mx]\nlisten = 127.0.0.1:0\n", "test.conf:2: listen:" },
	{ "listen port too big", "[listener mx]\nlisten = 127.0.0.1:65536\n",
	  "test.conf:2: listen:" },
	{ "listen v6 without brackets", "[listener mx]\nlisten = ::1:25\n",
	  "test.conf:2: listen:" },
	{ "listen trailing comma", "[listener mx]\nlisten = 127.0.0.1:25,\n",
	  "test.conf:2: listen: empty address" },
	{ "listen empty", "[listener mx]\nlisten =\n", "test.conf:2: listen: needs at least one" },
	{ "listen too many",
	  "[listener mx]\nlisten = 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5,"
	  "127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,127.0.0.1:9\n",
	  "test.conf:2: listen: more than 8" },
	{ "same address twice",
	  "[listener mx]\nlisten = 127.0.0.1:25\n[listener submission]\nlisten = 127.0.0.1:25\n",
	  "[listener submission] uses 127.0.0.1 port 25, which [listener mx] uses too" },
	{ "nul byte", "hostname = a\0b\n", "test.conf:1: line holds a NUL" },
	{ "bare cr", "hostname = a\rb\n", "test.conf:1: line holds a NUL or carriage-return" },
	{ "missing include", "include = /nonexistent/postgate-test.conf\n",
	  "test.conf:1: include: /nonexistent/postgate-test.conf:" },
};

static size_t case_len(const struct load_case *c)
{
	/* The NUL-byte case carries its own length. */
	if (strcmp(c->name, "nul byte") == 0)
		return sizeof("hostname = a\0b\n") - 1;
	return strlen(c->text);
}

static void test_load_cases(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(load_cases); i++) {
		const struct load_case *c = &load_cases[i];
		struct config *config = malloc(sizeof(*config));
		struct error err = { 0 };
		int rc;

		print_message("case: %s\n", c->name);
		rc = config_load_text("test.conf", "/etc/postgate", span_make(c->text, case_len(c)),
				      config, &err);
		if (c->want_error == NULL) {
			if (rc != 0)
				print_message("unexpected error: %s\n", err.message);
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(err.kind, ERROR_CONFIG);
			if (strstr(err.message, c->want_error) == NULL)
				print_message("got: %s\n", err.message);
			assert_non_null(strstr(err.message, c->want_error));
		}
		free(config);
	}
}

static void test_long_line_is_refused(void **state)
{
	size_t len = CONFIG_LINE_MAX + 20;
	char *text = malloc(len);
	struct config *config = malloc(sizeof(*config));
	struct error err;

	(void) state;
	memset(text, ' ', len);
	memcpy(text, "\n\n# ", 4);
	text[len - 1] = '\n';
	assert_int_equal(config_load_text("t.conf", "/", span_make(text, len), config, &err), -1);
	assert_non_null(strstr(err.message, "t.conf:3: line is longer than 65536 bytes"));
	/* A line of exactly the limit is fine. */
	memset(text, ' ', len);
	text[0] = '#';
	text[CONFIG_LINE_MAX] = '\n';
	assert_int_equal(
		config_load_text("t.conf", "/", span_make(text, CONFIG_LINE_MAX + 1), config, &err),
		0);
	free(text);
	free(config);
}

static void test_defaults_and_values(void **state)
{
	static const char text[] = "hostname = Mail.Example.TEST\n"
				   "state_dir = state\n"
				   "tls_cert = /abs/cert.pem\n"
				   "shutdown_timeout = 5m\n"
				   "[listener mx]\n"
				   "listen = 127.0.0.1:2525 , [::1]:2525\n";
	struct config *config = malloc(sizeof(*config));
	struct error err;

	(void) state;
	assert_int_equal(config_load_text("t.conf", "/srv/pg", SPAN_LITERAL(text), config, &err),
			 0);
	assert_string_equal(config->hostname, "mail.example.test");
	assert_string_equal(config->user, "postgate");
	assert_string_equal(config->state_dir, "/srv/pg/state");
	assert_string_equal(config->accounts_db, "/srv/pg/state/accounts.db");
	assert_string_equal(config->maildir_root, "/srv/pg/state/mail");
	assert_string_equal(config->tls_cert, "/abs/cert.pem");
	assert_string_equal(config->tls_key, "/etc/postgate/tls/key.pem");
	assert_int_equal(config->log_level, LOG_LEVEL_INFO);
	assert_true(config->shutdown_timeout_ms == 300000);
	assert_true(config->max_message_size == 50 * 1024 * 1024);
	assert_true(config->max_recipients == 100);
	assert_true(config->max_line_length == 1000);
	assert_true(config->worker_threads == 4);
	assert_true(config->listeners[CONFIG_LISTENER_MX].is_enabled);
	assert_false(config->listeners[CONFIG_LISTENER_POP3].is_enabled);
	assert_int_equal(config->listeners[CONFIG_LISTENER_MX].listen_count, 2);
	assert_string_equal(config->listeners[CONFIG_LISTENER_MX].listen[0].host, "127.0.0.1");
	assert_string_equal(config->listeners[CONFIG_LISTENER_MX].listen[1].host, "::1");
	assert_int_equal(config->listeners[CONFIG_LISTENER_MX].listen[1].port, 2525);
	/* Listener defaults hold for every listener, present or not. */
	assert_int_equal(config->listeners[CONFIG_LISTENER_MX].tls_profile,
			 CONFIG_TLS_PROFILE_MODERN);
	assert_true(config->listeners[CONFIG_LISTENER_MX].starttls);
	assert_true(config->listeners[CONFIG_LISTENER_POP3].starttls);
	free(config);
}

/* Printing then loading what was printed gives the same settings. */
static void test_print_round_trip(void **state)
{
	static const char text[] = "hostname = mail.example.test\n"
				   "log_level = debug\n"
				   "shutdown_timeout = 1500ms\n"
				   "max_message_size = 1536K\n"
				   "[listener pop3]\nlisten = 127.0.0.1:1100, [::1]:1100\n"
				   "tls_profile = legacy\nstarttls = no\n"
				   "[listener http]\nlisten = 127.0.0.1:8080\n";
	struct config *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	char *printed = NULL, *printed_again = NULL;
	size_t printed_len = 0, again_len = 0;
	FILE *out;
	struct error err;

	(void) state;
	assert_int_equal(config_load_text("t.conf", "/x", SPAN_LITERAL(text), a, &err), 0);
	out = open_memstream(&printed, &printed_len);
	config_print(a, out);
	fclose(out);
	assert_non_null(strstr(printed, "shutdown_timeout = 1500ms\n"));
	assert_non_null(strstr(printed, "[listener pop3]\nlisten = 127.0.0.1:1100, [::1]:1100\n"
					"tls_profile = legacy\nstarttls = no\n"));
	assert_non_null(strstr(printed, "[listener http]\nlisten = 127.0.0.1:8080\n"
					"tls_profile = modern\nstarttls = yes\n"));
	assert_null(strstr(printed, "[listener mx]"));
	assert_int_equal(config_load_text("t.conf", "/x", span_make(printed, printed_len), b, &err),
			 0);
	out = open_memstream(&printed_again, &again_len);
	config_print(b, out);
	fclose(out);
	assert_string_equal(printed, printed_again);
	free(printed);
	free(printed_again);
	free(a);
	free(b);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_includes(void **state)
{
	char dir[] = "/tmp/postgate-config-test-XXXXXX";
	char main_path[256], sub_path[256], loop_path[256];
	struct config *config = malloc(sizeof(*config));
	struct error err;

	(void) state;
	assert_non_null(mkdtemp(dir));
	snprintf(main_path, sizeof(main_path), "%s/main.conf", dir);
	snprintf(sub_path, sizeof(sub_path), "%s/conf.d/listeners.conf", dir);
	snprintf(loop_path, sizeof(loop_path), "%s/loop.conf", dir);
	{
		char sub_dir[256];

		snprintf(sub_dir, sizeof(sub_dir), "%s/conf.d", dir);
		assert_int_equal(mkdir(sub_dir, 0700), 0);
	}
	write_file(main_path, "hostname = a.test\ninclude = conf.d/listeners.conf\n"
			      "log_level = debug\n");
	write_file(sub_path, "state_dir = data\n[listener mx]\nlisten = 127.0.0.1:2525\n");
	assert_int_equal(config_load(main_path, config, &err), 0);
	assert_int_equal(config->log_level, LOG_LEVEL_DEBUG);
	assert_true(config->listeners[CONFIG_LISTENER_MX].is_enabled);
	/* Relative paths are relative to the file they are written in. */
	assert_non_null(strstr(config->state_dir, "/conf.d/data"));

	/* An error inside an included file names that file and its line. */
	write_file(sub_path, "\n\nbogus = 1\n");
	assert_int_equal(config_load(main_path, config, &err), -1);
	assert_non_null(strstr(err.message, "conf.d/listeners.conf:3: unknown key 'bogus'"));

	/* A file that includes itself stops at the depth bound. */
	write_file(loop_path, "include = loop.conf\n");
	assert_int_equal(config_load(loop_path, config, &err), -1);
	assert_non_null(strstr(err.message, "includes nested deeper than 8"));

	/* A missing main file is a config error naming it. */
	unlink(main_path);
	assert_int_equal(config_load(main_path, config, &err), -1);
	assert_int_equal(err.kind, ERROR_CONFIG);
	assert_non_null(strstr(err.message, "main.conf"));

	unlink(sub_path);
	unlink(loop_path);
	snprintf(sub_path, sizeof(sub_path), "%s/conf.d", dir);
	rmdir(sub_path);
	rmdir(dir);
	free(config);
}

struct docs_check {
	const char *docs;
	int missing;
};

static void check_documented(void *ctx, const char *section, const char *key)
{
	struct docs_check *check = ctx;
	char needle[128];

	snprintf(needle, sizeof(needle), "`%s`", key);
	if (strstr(check->docs, needle) == NULL) {
		print_message("docs/configuration.md does not document %s%s%s\n", section,
			      section[0] ? " " : "", key);
		check->missing++;
	}
}

static void test_every_key_is_documented(void **state)
{
	FILE *f = fopen(POSTGATE_SOURCE_ROOT "/docs/configuration.md", "r");
	static char docs[1 << 18];
	size_t n;
	struct docs_check check = { docs, 0 };

	(void) state;
	assert_non_null(f);
	n = fread(docs, 1, sizeof(docs) - 1, f);
	docs[n] = '\0';
	fclose(f);
	config_keys_each(check_documented, &check);
	assert_int_equal(check.missing, 0);
}

static const struct cidr_case {
	const char *name, *value; /* value NULL: the default */
	bool ok;
	const char *client;
	bool want_inside;
} cidr_cases[] = {
	{ "default loopback v4", NULL, true, "127.0.0.2", true },
	{ "default loopback v6", NULL, true, "::1", true },
	{ "default mapped loopback", NULL, true, "::ffff:127.0.0.1", true },
	{ "default refuses others", NULL, true, "192.0.2.7", false },
	{ "one address", "192.0.2.7", true, "192.0.2.7", true },
	{ "one address, neighbour", "192.0.2.7", true, "192.0.2.8", false },
	{ "odd prefix inside", "10.64.0.0/10", true, "10.127.255.255", true },
	{ "odd prefix outside", "10.64.0.0/10", true, "10.128.0.0", false },
	{ "v6 block", "2001:db8::/32, 127.0.0.1/32", true, "2001:db8:ffff::1", true },
	{ "v6 block, v4 client", "2001:db8::/32", true, "127.0.0.1", false },
	{ "everything", "0.0.0.0/0", true, "203.0.113.9", true },
	{ "host bits set", "10.0.0.1/8", false, NULL, false },
	{ "prefix too long", "10.0.0.0/33", false, NULL, false },
	{ "not numeric", "localhost", false, NULL, false },
	{ "empty item", "127.0.0.1,", false, NULL, false },
	{ "empty prefix", "127.0.0.1/", false, NULL, false },
};

static void test_metrics_allow(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(cidr_cases); i++) {
		const struct cidr_case *c = &cidr_cases[i];
		struct config *config = calloc(1, sizeof(*config));
		char text[256];
		struct error err;
		int rc;

		print_message("case: %s\n", c->name);
		assert_non_null(config);
		if (c->value != NULL)
			snprintf(text, sizeof(text), "metrics_allow = %s\n", c->value);
		else
			text[0] = '\0';
		rc = config_load_text("t.conf", "/", span_from_cstr(text), config, &err);
		assert_int_equal(rc == 0, c->ok);
		if (c->ok)
			assert_int_equal(config_cidrs_contain(&config->metrics_allow, c->client),
					 c->want_inside);
		free(config);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_cases),
		cmocka_unit_test(test_long_line_is_refused),
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_print_round_trip),
		cmocka_unit_test(test_includes),
		cmocka_unit_test(test_every_key_is_documented),
		cmocka_unit_test(test_metrics_allow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
