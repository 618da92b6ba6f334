/* Tests for src/sasl/: mechanism names, the response framing SMTP and POP3
 * share, and every mechanism as a scripted exchange — good ones with and
 * without an initial response, authzid rules, malformed input at each step,
 * the published examples (RFC 2195, RFC 7677, RFC 2202, Dovecot's
 * {CRAM-MD5} form), unknown users, wiping, and interoperation with GNU
 * SASL's client (the gsasl command) over pipes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/span.h"
#include "sasl/base64.h"
#include "sasl/internal.h"
#include "sasl/sasl.h"

static const unsigned char mock_key[SASL_MOCK_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const unsigned char channel_binding[SASL_CHANNEL_BINDING_LEN] =
	"tls-exporter data of 32 octets!";
static const unsigned char other_binding[SASL_CHANNEL_BINDING_LEN] =
	"another connection's 32 octets!";

/* RFC 2195 2. */
#define RFC2195_CHALLENGE "<1896.697170952@postoffice.reston.mci.net>"
#define RFC2195_RESPONSE  "tim b913a602c7eda7a495b4e6e7334d3890"
/* The {CRAM-MD5} secret of "tanstaaftanstaaf". Our maker's output; it is
 * trusted because the same maker reproduces Dovecot's secret of
 * "password" (test_cram_md5_secret_make) and the RFC's response verifies
 * against it. */
#define TIM_SECRET "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"

/* RFC 7677 3. The secret was made by GNU SASL, independently of us:
 *   gsasl -k -m SCRAM-SHA-256 --password pencil
 *         --salt W22ZaJ0SNY7soEsUEjb6gQ== --iteration-count 4096
 * (the same keys as tests/unit/secret_test.c computed with hashlib). */
#define RFC7677_SECRET                                  \
	"{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==," \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=," \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC7677_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC7677_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC7677_CLIENT_FIRST "n,,n=user,r=" RFC7677_CLIENT_NONCE
#define RFC7677_SERVER_FIRST \
	"r=" RFC7677_CLIENT_NONCE RFC7677_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC7677_FINAL_WITHOUT_PROOF "c=biws,r=" RFC7677_CLIENT_NONCE RFC7677_SERVER_NONCE
#define RFC7677_CLIENT_FINAL \
	RFC7677_FINAL_WITHOUT_PROOF ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC7677_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static struct sasl_server_info server_info(bool has_channel_binding)
{
	struct sasl_server_info info = {
		.hostname = "mail.example.test",
		.channel_binding = has_channel_binding ? channel_binding : NULL,
		.channel_binding_len = has_channel_binding ? sizeof(channel_binding) : 0,
		.mock_key = mock_key,
	};

	return info;
}

/* ---- names ---- */

static const struct name_case {
	const char *name, *input;
	int want; /* an enum sasl_mechanism, or -1: unknown */
} name_cases[] = {
	{ "PLAIN", "PLAIN", SASL_MECHANISM_PLAIN },
	{ "lower-case plain", "plain", SASL_MECHANISM_PLAIN },
	{ "LOGIN", "LOGIN", SASL_MECHANISM_LOGIN },
	{ "Eudora's cram-md5", "cram-md5", SASL_MECHANISM_CRAM_MD5 },
	{ "mixed case", "Cram-Md5", SASL_MECHANISM_CRAM_MD5 },
	{ "SCRAM-SHA-256", "SCRAM-SHA-256", SASL_MECHANISM_SCRAM_SHA_256 },
	{ "SCRAM-SHA-256-PLUS", "scram-sha-256-plus", SASL_MECHANISM_SCRAM_SHA_256_PLUS },
	{ "DIGEST-MD5 is not ours", "DIGEST-MD5", -1 },
	{ "SCRAM-SHA-1 is not ours", "SCRAM-SHA-1", -1 },
	{ "trailing space", "PLAIN ", -1 },
	{ "prefix", "PLAI", -1 },
	{ "empty", "", -1 },
};

static void test_mechanism_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(name_cases); i++) {
		const struct name_case *c = &name_cases[i];
		enum sasl_mechanism got = SASL_MECHANISM_PLAIN;
		bool ok = sasl_mechanism_parse(span_from_cstr(c->input), &got);

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->want >= 0);
		if (ok)
			assert_int_equal(got, c->want);
	}
}

static void test_mechanism_names(void **state)
{
	static const enum sasl_mechanism all[] = {
		SASL_MECHANISM_PLAIN,
		SASL_MECHANISM_LOGIN,
		SASL_MECHANISM_CRAM_MD5,
		SASL_MECHANISM_SCRAM_SHA_256,
		SASL_MECHANISM_SCRAM_SHA_256_PLUS,
	};

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(all); i++) {
		enum sasl_mechanism back;

		assert_true(
			sasl_mechanism_parse(span_from_cstr(sasl_mechanism_name(all[i])), &back));
		assert_int_equal(back, all[i]);
	}
	assert_string_equal(sasl_mechanism_name(SASL_MECHANISM_CRAM_MD5), "CRAM-MD5");
	assert_true(sasl_mechanism_is_plaintext(SASL_MECHANISM_PLAIN));
	assert_true(sasl_mechanism_is_plaintext(SASL_MECHANISM_LOGIN));
	assert_false(sasl_mechanism_is_plaintext(SASL_MECHANISM_CRAM_MD5));
	assert_false(sasl_mechanism_is_plaintext(SASL_MECHANISM_SCRAM_SHA_256));
}

/* ---- what a connection offers ---- */

static const struct offer_case {
	const char *name;
	struct sasl_offer offer;
	const char *want;
} offer_cases[] = {
	{ "plaintext, modern listener", { false, false, false, false }, "SCRAM-SHA-256" },
	{ "plaintext, legacy listener allowing it",
	  { false, true, false, false },
	  "PLAIN LOGIN SCRAM-SHA-256" },
	{ "TLS without a channel binding",
	  { true, false, false, false },
	  "PLAIN LOGIN SCRAM-SHA-256" },
	{ "TLS with tls-exporter",
	  { true, false, false, true },
	  "PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS" },
	{ "CRAM-MD5 enabled in plaintext",
	  { false, false, true, false },
	  "CRAM-MD5 SCRAM-SHA-256" },
	{ "everything",
	  { true, true, true, true },
	  "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 SCRAM-SHA-256-PLUS" },
	{ "a binding without TLS offers no -PLUS", { false, false, false, true }, "SCRAM-SHA-256" },
};

static void test_offered_mechanisms(void **state)
{
	char list[SASL_MECHANISMS_LIST_MAX];
	char small[12];

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(offer_cases); i++) {
		const struct offer_case *c = &offer_cases[i];

		print_message("case: %s\n", c->name);
		sasl_mechanisms_list(&c->offer, list, sizeof(list));
		assert_string_equal(list, c->want);
		assert_int_equal(sasl_mechanism_is_offered(SASL_MECHANISM_CRAM_MD5, &c->offer),
				 strstr(c->want, "CRAM-MD5") != NULL);
		assert_int_equal(sasl_mechanism_is_offered(SASL_MECHANISM_PLAIN, &c->offer),
				 strstr(c->want, "PLAIN") != NULL);
	}
	print_message("case: a short buffer holds whole names only\n");
	sasl_mechanisms_list(&offer_cases[5].offer, small, sizeof(small));
	assert_string_equal(small, "PLAIN LOGIN");
}

/* ---- framing ---- */

static const struct response_case {
	const char *name, *line;
	enum sasl_response_kind want;
	const char *want_decoded;
	size_t want_len;
} response_cases[] = {
	{ "cancel", "*", SASL_RESPONSE_CANCEL, "", 0 },
	{ "equals is empty", "=", SASL_RESPONSE_OK, "", 0 },
	{ "empty line is empty", "", SASL_RESPONSE_OK, "", 0 },
	{ "PLAIN message", "AGFsaWNlAHNlY3JldA==", SASL_RESPONSE_OK, "\0alice\0secret", 13 },
	{ "LOGIN user", "YWxpY2U=", SASL_RESPONSE_OK, "alice", 5 },
	{ "two stars", "**", SASL_RESPONSE_BAD_BASE64, "", 0 },
	{ "star with space", " *", SASL_RESPONSE_BAD_BASE64, "", 0 },
	{ "star and data", "*YWxp", SASL_RESPONSE_BAD_BASE64, "", 0 },
	{ "two equals", "==", SASL_RESPONSE_BAD_BASE64, "", 0 },
	{ "missing padding", "YWxpY2U", SASL_RESPONSE_BAD_BASE64, "", 0 },
	{ "space inside", "YWxp Y2U=", SASL_RESPONSE_BAD_BASE64, "", 0 },
	{ "trailing space", "YWxpY2U= ", SASL_RESPONSE_BAD_BASE64, "", 0 },
	{ "URL alphabet", "YWxp-2U=", SASL_RESPONSE_BAD_BASE64, "", 0 },
};

static void test_response_decode(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(response_cases); i++) {
		const struct response_case *c = &response_cases[i];
		unsigned char out[SASL_MESSAGE_MAX];
		size_t len = 99;

		print_message("case: %s\n", c->name);
		assert_int_equal(
			sasl_response_decode(span_from_cstr(c->line), out, sizeof(out), &len),
			c->want);
		assert_int_equal(len, c->want_len);
		assert_memory_equal(out, c->want_decoded, c->want_len);
	}
}

static void test_response_line_limit(void **state)
{
	static char line[SASL_RESPONSE_LINE_MAX + 5];
	static unsigned char out[SASL_MESSAGE_MAX + 8];
	size_t len;

	(void) state;
	/* At the limit: 12288 base64 octets decode to SASL_MESSAGE_MAX. */
	memset(line, 'Q', sizeof(line));
	assert_int_equal(sasl_response_decode(span_make(line, SASL_RESPONSE_LINE_MAX), out,
					      SASL_MESSAGE_MAX, &len),
			 SASL_RESPONSE_OK);
	assert_int_equal(len, SASL_MESSAGE_MAX);
	/* One quantum past it. */
	assert_int_equal(sasl_response_decode(span_make(line, SASL_RESPONSE_LINE_MAX + 4), out,
					      sizeof(out), &len),
			 SASL_RESPONSE_TOO_LONG);
	assert_int_equal(len, 0);
	/* Well-formed but more than the caller's cap, and nothing written
	 * past it. */
	memset(out, 0xa5, sizeof(out));
	assert_int_equal(sasl_response_decode(span_from_cstr("YWxpY2U="), out, 4, &len),
			 SASL_RESPONSE_TOO_LONG);
	assert_int_equal(out[4], 0xa5);
	assert_int_equal(sasl_response_decode(span_from_cstr("YWxpY2U="), out, 5, &len),
			 SASL_RESPONSE_OK);
	assert_int_equal(len, 5);
}

static void test_challenge_encode(void **state)
{
	char out[SASL_CHALLENGE_ENCODED_MAX];
	static const unsigned char big[SASL_CHALLENGE_MAX];
	size_t len;

	(void) state;
	/* MS-XLOGIN 2.2.2: the exact prompts old Outlook recognizes. */
	assert_true(sasl_challenge_encode((const unsigned char *) "Username:", 9, out, sizeof(out),
					  &len));
	assert_string_equal(out, "VXNlcm5hbWU6");
	assert_true(sasl_challenge_encode((const unsigned char *) "Password:", 9, out, sizeof(out),
					  &len));
	assert_string_equal(out, "UGFzc3dvcmQ6");
	assert_true(sasl_challenge_encode((const unsigned char *) "", 0, out, sizeof(out), &len));
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
	/* The largest challenge fits the documented cap, and not one less. */
	assert_true(sasl_challenge_encode(big, sizeof(big), out, sizeof(out), &len));
	assert_int_equal(len, SASL_CHALLENGE_ENCODED_MAX - 1);
	assert_false(sasl_challenge_encode(big, sizeof(big), out, sizeof(out) - 1, &len));
}

/* ---- scripted exchanges ---- */

enum action_kind {
	ACTION_END = 0,
	ACTION_NONE,	 /* step without input: AUTH with no initial response */
	ACTION_STEP,	 /* step with data (decoded) */
	ACTION_PASSWORD, /* sasl_exchange_password_result(data != NULL) */
	ACTION_SECRET,	 /* sasl_exchange_secret(data) */
};

struct action {
	enum action_kind kind;
	const char *data;
	size_t len; /* of data for ACTION_STEP */
	enum sasl_step want;
	/* CHALLENGE: the challenge (NULL: not checked); CHECK_PASSWORD,
	 * NEED_SECRET, SUCCESS: the username. */
	const char *want_text;
	const char *want_password; /* CHECK_PASSWORD */
	const char *want_authzid;  /* CHECK_PASSWORD, SUCCESS; NULL: "" */
};

#define IN(s)			    ACTION_STEP, s, sizeof(s) - 1
#define NONE			    ACTION_NONE, NULL, 0
#define PASSWORD_OK		    ACTION_PASSWORD, "", 0
#define PASSWORD_BAD		    ACTION_PASSWORD, NULL, 0
#define SECRET(s)		    ACTION_SECRET, s, 0
#define CHALLENGE(text)		    SASL_STEP_CHALLENGE, text, NULL, NULL
#define CHECK(user, pw)		    SASL_STEP_CHECK_PASSWORD, user, pw, NULL
#define CHECK_AS(user, pw, authzid) SASL_STEP_CHECK_PASSWORD, user, pw, authzid
#define NEED(user)		    SASL_STEP_NEED_SECRET, user, NULL, NULL
#define OK(user)		    SASL_STEP_SUCCESS, user, NULL, NULL
#define OK_AS(user, authzid)	    SASL_STEP_SUCCESS, user, NULL, authzid
#define FAILED			    SASL_STEP_FAILURE, NULL, NULL, NULL
#define MALFORMED		    SASL_STEP_MALFORMED, NULL, NULL, NULL

struct script {
	const char *name;
	enum sasl_mechanism mechanism;
	bool has_channel_binding;
	const char *forced; /* CRAM-MD5 challenge or SCRAM server nonce; NULL: random */
	struct action actions[8];
};

// clang-format off
static const struct script plain_scripts[] = {
	{ "initial response, right password", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0alice@example.test\0secret"), CHECK("alice@example.test", "secret") },
		{ PASSWORD_OK, OK("alice@example.test") } } },
	{ "initial response, wrong password", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0alice@example.test\0wrong"), CHECK("alice@example.test", "wrong") },
		{ PASSWORD_BAD, FAILED } } },
	{ "no initial response: empty challenge", SASL_MECHANISM_PLAIN, false, NULL, {
		{ NONE, CHALLENGE("") },
		{ IN("\0alice@example.test\0secret"), CHECK("alice@example.test", "secret") },
		{ PASSWORD_OK, OK("alice@example.test") } } },
	{ "authzid equal to authcid", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("alice@example.test\0alice@example.test\0secret"),
		  CHECK_AS("alice@example.test", "secret", "alice@example.test") },
		{ PASSWORD_OK, OK_AS("alice@example.test", "alice@example.test") } } },
	{ "authzid of another user", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("bob@example.test\0alice@example.test\0secret"), FAILED } } },
	{ "authzid differing in case only", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("Alice@example.test\0alice@example.test\0secret"), FAILED } } },
	{ "empty initial response (=)", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN(""), MALFORMED } } },
	{ "empty response after challenge", SASL_MECHANISM_PLAIN, false, NULL, {
		{ NONE, CHALLENGE("") }, { IN(""), MALFORMED } } },
	{ "one NUL", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("alice\0secret"), MALFORMED } } },
	{ "no NUL", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("alice secret"), MALFORMED } } },
	{ "three NULs", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0alice\0sec\0ret"), MALFORMED } } },
	{ "empty authcid", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0\0secret"), MALFORMED } } },
	{ "empty password", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0alice\0"), MALFORMED } } },
	{ "authcid not UTF-8", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0al\xe9ice\0secret"), MALFORMED } } },
	{ "authcid overlong UTF-8", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0al\xc0\xafice\0secret"), MALFORMED } } },
	{ "authcid with CR LF", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0alice\r\nX\0secret"), MALFORMED } } },
	{ "authcid with C1 control", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0alice\xc2\x85\0secret"), MALFORMED } } },
	{ "authcid UTF-8", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0j\xc3\xb6rg@example.test\0secret"), CHECK("j\xc3\xb6rg@example.test", "secret") },
		{ PASSWORD_OK, OK("j\xc3\xb6rg@example.test") } } },
	{ "Latin-1 password goes to the check", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\0alice\0p\xe4ss"), CHECK("alice", "p\xe4ss") },
		{ PASSWORD_BAD, FAILED } } },
	{ "authzid not UTF-8", SASL_MECHANISM_PLAIN, false, NULL, {
		{ IN("\xff\0alice\0secret"), MALFORMED } } },
};

static const struct script login_scripts[] = {
	{ "prompts, right password", SASL_MECHANISM_LOGIN, false, NULL, {
		{ NONE, CHALLENGE("Username:") },
		{ IN("alice@example.test"), CHALLENGE("Password:") },
		{ IN("secret"), CHECK("alice@example.test", "secret") },
		{ PASSWORD_OK, OK("alice@example.test") } } },
	{ "prompts, wrong password", SASL_MECHANISM_LOGIN, false, NULL, {
		{ NONE, CHALLENGE("Username:") },
		{ IN("alice@example.test"), CHALLENGE("Password:") },
		{ IN("wrong"), CHECK("alice@example.test", "wrong") },
		{ PASSWORD_BAD, FAILED } } },
	{ "user name as initial response (Netscape 6)", SASL_MECHANISM_LOGIN, false, NULL, {
		{ IN("alice@example.test"), CHALLENGE("Password:") },
		{ IN("secret"), CHECK("alice@example.test", "secret") },
		{ PASSWORD_OK, OK("alice@example.test") } } },
	{ "empty initial response", SASL_MECHANISM_LOGIN, false, NULL, {
		{ IN(""), MALFORMED } } },
	{ "empty user name", SASL_MECHANISM_LOGIN, false, NULL, {
		{ NONE, CHALLENGE("Username:") }, { IN(""), MALFORMED } } },
	{ "user name with NUL", SASL_MECHANISM_LOGIN, false, NULL, {
		{ NONE, CHALLENGE("Username:") }, { IN("ali\0ce"), MALFORMED } } },
	{ "empty password", SASL_MECHANISM_LOGIN, false, NULL, {
		{ IN("alice"), CHALLENGE("Password:") }, { IN(""), MALFORMED } } },
	{ "password with NUL", SASL_MECHANISM_LOGIN, false, NULL, {
		{ IN("alice"), CHALLENGE("Password:") }, { IN("sec\0ret"), MALFORMED } } },
	{ "password with spaces", SASL_MECHANISM_LOGIN, false, NULL, {
		{ IN("alice"), CHALLENGE("Password:") },
		{ IN("correct horse battery"), CHECK("alice", "correct horse battery") },
		{ PASSWORD_OK, OK("alice") } } },
};

static const struct script cram_md5_scripts[] = {
	{ "RFC 2195 example", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN(RFC2195_RESPONSE), NEED("tim") },
		{ SECRET(TIM_SECRET), OK("tim") } } },
	{ "upper-case digest", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN("tim B913A602C7EDA7A495B4E6E7334D3890"), NEED("tim") },
		{ SECRET(TIM_SECRET), OK("tim") } } },
	{ "scheme name in lower case", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN(RFC2195_RESPONSE), NEED("tim") },
		{ SECRET("{cram-md5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"),
		  OK("tim") } } },
	{ "wrong digest", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN("tim b913a602c7eda7a495b4e6e7334d3891"), NEED("tim") },
		{ SECRET(TIM_SECRET), FAILED } } },
	{ "right digest for another challenge", SASL_MECHANISM_CRAM_MD5, false,
	  "<1897.697170952@postoffice.reston.mci.net>", {
		{ NONE, CHALLENGE("<1897.697170952@postoffice.reston.mci.net>") },
		{ IN(RFC2195_RESPONSE), NEED("tim") },
		{ SECRET(TIM_SECRET), FAILED } } },
	{ "unknown user", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN(RFC2195_RESPONSE), NEED("tim") },
		{ SECRET(NULL), FAILED } } },
	{ "secret of another scheme", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN(RFC2195_RESPONSE), NEED("tim") },
		{ SECRET(RFC7677_SECRET), FAILED } } },
	{ "secret one hex digit short", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN(RFC2195_RESPONSE), NEED("tim") },
		{ SECRET("{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116"),
		  FAILED } } },
	/* The digest does not cover the name: the secret the caller fetches
	 * for "tim smith" decides. */
	{ "user name with a space", SASL_MECHANISM_CRAM_MD5, false, RFC2195_CHALLENGE, {
		{ NONE, CHALLENGE(RFC2195_CHALLENGE) },
		{ IN("tim smith b913a602c7eda7a495b4e6e7334d3890"), NEED("tim smith") },
		{ SECRET(TIM_SECRET), OK("tim smith") } } },
	{ "initial response", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ IN(RFC2195_RESPONSE), MALFORMED } } },
	{ "empty initial response (=)", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ IN(""), MALFORMED } } },
	{ "no space", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ NONE, CHALLENGE(NULL) }, { IN("timb913a602c7eda7a495b4e6e7334d3890"), MALFORMED } } },
	{ "31 hex digits", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ NONE, CHALLENGE(NULL) }, { IN("tim b913a602c7eda7a495b4e6e7334d389"), MALFORMED } } },
	{ "33 hex digits", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ NONE, CHALLENGE(NULL) }, { IN("tim b913a602c7eda7a495b4e6e7334d38900"), MALFORMED } } },
	{ "not hex", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ NONE, CHALLENGE(NULL) }, { IN("tim g913a602c7eda7a495b4e6e7334d3890"), MALFORMED } } },
	{ "empty user name", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ NONE, CHALLENGE(NULL) }, { IN(" b913a602c7eda7a495b4e6e7334d3890"), MALFORMED } } },
	{ "empty response", SASL_MECHANISM_CRAM_MD5, false, NULL, {
		{ NONE, CHALLENGE(NULL) }, { IN(""), MALFORMED } } },
};

static const struct script scram_scripts[] = {
	{ "RFC 7677 example", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_CLIENT_FINAL), CHALLENGE(RFC7677_SERVER_FINAL) },
		{ IN(""), OK("user") } } },
	{ "RFC 7677 example without initial response", SASL_MECHANISM_SCRAM_SHA_256, false,
	  RFC7677_SERVER_NONCE, {
		{ NONE, CHALLENGE("") },
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_CLIENT_FINAL), CHALLENGE(RFC7677_SERVER_FINAL) },
		{ IN(""), OK("user") } } },
	{ "RFC 7677 example, y flag on a connection without binding",
	  SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN("y,,n=user,r=" RFC7677_CLIENT_NONCE), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		/* The proof is over c=biws ("n,,"); this c= is "y,,". */
		{ IN(RFC7677_CLIENT_FINAL), FAILED } } },
	{ "wrong proof", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_FINAL_WITHOUT_PROOF ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
		  FAILED } } },
	{ "unknown user fails at the proof", SASL_MECHANISM_SCRAM_SHA_256, false,
	  RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(NULL), CHALLENGE(NULL) },
		{ IN(RFC7677_CLIENT_FINAL), FAILED } } },
	{ "malformed secret acts as unknown", SASL_MECHANISM_SCRAM_SHA_256, false,
	  RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET("{SCRAM-SHA-256}4095,W22ZaJ0SNY7soEsUEjb6gQ==,"
			 "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
			 "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="), CHALLENGE(NULL) },
		{ IN(RFC7677_CLIENT_FINAL), FAILED } } },
	{ "secret of another scheme acts as unknown", SASL_MECHANISM_SCRAM_SHA_256, false,
	  RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(TIM_SECRET), CHALLENGE(NULL) },
		{ IN(RFC7677_CLIENT_FINAL), FAILED } } },
	{ "scheme name in lower case", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET("{scram-sha-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
			 "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
			 "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_CLIENT_FINAL), CHALLENGE(RFC7677_SERVER_FINAL) },
		{ IN(""), OK("user") } } },
	{ "wrong nonce in client-final", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN("c=biws,r=" RFC7677_CLIENT_NONCE "X,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
		  FAILED } } },
	{ "client nonce only in client-final", SASL_MECHANISM_SCRAM_SHA_256, false,
	  RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN("c=biws,r=" RFC7677_CLIENT_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
		  FAILED } } },
	{ "wrong GS2 header in c=", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN("c=eSws,r=" RFC7677_CLIENT_NONCE RFC7677_SERVER_NONCE
		     ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), FAILED } } },
	{ "proof too short", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_FINAL_WITHOUT_PROOF ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ=="),
		  MALFORMED } } },
	{ "proof missing", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_FINAL_WITHOUT_PROOF), MALFORMED } } },
	{ "proof not last", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_CLIENT_FINAL ",x=1"), MALFORMED } } },
	{ "c= not base64", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN("c=biw,r=" RFC7677_CLIENT_NONCE RFC7677_SERVER_NONCE
		     ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), FAILED } } },
	{ "attributes out of order in client-final", SASL_MECHANISM_SCRAM_SHA_256, false,
	  RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN("r=" RFC7677_CLIENT_NONCE RFC7677_SERVER_NONCE
		     ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), MALFORMED } } },
	{ "response after server-final", SASL_MECHANISM_SCRAM_SHA_256, false, RFC7677_SERVER_NONCE, {
		{ IN(RFC7677_CLIENT_FIRST), NEED("user") },
		{ SECRET(RFC7677_SECRET), CHALLENGE(RFC7677_SERVER_FIRST) },
		{ IN(RFC7677_CLIENT_FINAL), CHALLENGE(RFC7677_SERVER_FINAL) },
		{ IN("x"), MALFORMED } } },
	{ "y flag where we can bind (downgrade)", SASL_MECHANISM_SCRAM_SHA_256, true, NULL, {
		{ IN("y,,n=user,r=abc"), FAILED } } },
	{ "p flag without -PLUS", SASL_MECHANISM_SCRAM_SHA_256, true, NULL, {
		{ IN("p=tls-exporter,,n=user,r=abc"), MALFORMED } } },
	{ "-PLUS with the n flag", SASL_MECHANISM_SCRAM_SHA_256_PLUS, true, NULL, {
		{ IN("n,,n=user,r=abc"), MALFORMED } } },
	{ "-PLUS with the y flag", SASL_MECHANISM_SCRAM_SHA_256_PLUS, true, NULL, {
		{ IN("y,,n=user,r=abc"), MALFORMED } } },
	{ "-PLUS with tls-unique", SASL_MECHANISM_SCRAM_SHA_256_PLUS, true, NULL, {
		{ IN("p=tls-unique,,n=user,r=abc"), MALFORMED } } },
	{ "-PLUS with tls-exporter", SASL_MECHANISM_SCRAM_SHA_256_PLUS, true, NULL, {
		{ IN("p=tls-exporter,,n=user,r=abc"), NEED("user") } } },
	{ "authzid of another user", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,a=admin,n=user,r=abc"), FAILED } } },
	{ "authzid equal to the user", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,a=user,n=user,r=abc"), NEED("user") } } },
	{ "saslname escapes", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=us=2Cer=3D,r=abc"), NEED("us,er=") } } },
	{ "unknown saslname escape", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=us=41er,r=abc"), MALFORMED } } },
	{ "lower-case saslname escape", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=us=2cer,r=abc"), MALFORMED } } },
	{ "cut saslname escape", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user=2,r=abc"), MALFORMED } } },
	{ "mandatory extension m=", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,m=ext,n=user,r=abc"), MALFORMED } } },
	{ "unknown extension is ignored", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user,r=abc,x=1"), NEED("user") } } },
	{ "malformed extension", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user,r=abc,xyz"), MALFORMED } } },
	{ "trailing comma", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user,r=abc,"), MALFORMED } } },
	{ "empty user", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=,r=abc"), MALFORMED } } },
	{ "no nonce", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user"), MALFORMED } } },
	{ "empty nonce", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user,r="), MALFORMED } } },
	{ "nonce with a space", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user,r=a c"), MALFORMED } } },
	{ "nonce with 8-bit octets", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=user,r=a\xc3\xa4"), MALFORMED } } },
	{ "no GS2 header", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n=user,r=abc"), MALFORMED } } },
	{ "unknown GS2 flag", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("x,,n=user,r=abc"), MALFORMED } } },
	{ "authzid without a=", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,user,n=user,r=abc"), MALFORMED } } },
	{ "NUL in client-first", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=us\0er,r=abc"), MALFORMED } } },
	{ "not UTF-8", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,n=us\xff""er,r=abc"), MALFORMED } } },
	{ "empty initial response", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN(""), MALFORMED } } },
	{ "attributes out of order in client-first", SASL_MECHANISM_SCRAM_SHA_256, false, NULL, {
		{ IN("n,,r=abc,n=user"), MALFORMED } } },
};
// clang-format on

static void run_script(const struct script *s)
{
	struct sasl_server_info info = server_info(s->has_channel_binding);
	struct sasl_exchange *x;
	struct error err = { 0 };

	print_message("case: %s\n", s->name);
	x = sasl_exchange_new(s->mechanism, &info, &err);
	assert_non_null(x);
	if (s->forced != NULL) {
		if (s->mechanism == SASL_MECHANISM_CRAM_MD5)
			assert_int_equal(sasl_cram_md5_challenge_force(x, s->forced), 0);
		else
			assert_int_equal(sasl_scram_server_nonce_force(x, s->forced), 0);
	}
	for (size_t i = 0; i < ARRAY_LEN(s->actions) && s->actions[i].kind != ACTION_END; i++) {
		const struct action *a = &s->actions[i];
		struct sasl_output out;
		enum sasl_step got = SASL_STEP_MALFORMED;

		switch (a->kind) {
		case ACTION_NONE:
			got = sasl_exchange_step(x, false, span_make(NULL, 0), &out);
			break;
		case ACTION_STEP:
			got = sasl_exchange_step(x, true, span_make(a->data, a->len), &out);
			break;
		case ACTION_PASSWORD:
			got = sasl_exchange_password_result(x, a->data != NULL, &out);
			break;
		case ACTION_SECRET:
			got = sasl_exchange_secret(x, a->data, &out);
			break;
		case ACTION_END:
			break;
		}
		print_message("  action %zu: step %d\n", i, got);
		assert_int_equal(got, a->want);
		switch (got) {
		case SASL_STEP_CHALLENGE:
			if (a->want_text != NULL) {
				assert_int_equal(out.challenge_len, strlen(a->want_text));
				assert_memory_equal(out.challenge, a->want_text, out.challenge_len);
			}
			break;
		case SASL_STEP_CHECK_PASSWORD:
			assert_string_equal(out.password, a->want_password);
			assert_int_equal(out.password_len, strlen(a->want_password));
			assert_string_equal(out.authzid, a->want_authzid ? a->want_authzid : "");
			assert_string_equal(out.username, a->want_text);
			break;
		case SASL_STEP_SUCCESS:
			assert_string_equal(out.authzid, a->want_authzid ? a->want_authzid : "");
			assert_string_equal(out.username, a->want_text);
			assert_null(out.password);
			break;
		case SASL_STEP_NEED_SECRET:
			assert_string_equal(out.username, a->want_text);
			assert_null(out.password);
			break;
		case SASL_STEP_FAILURE:
		case SASL_STEP_MALFORMED:
			assert_null(out.username);
			assert_null(out.password);
			/* The exchange is over: it must be the last action. */
			assert_int_equal(i + 1 < ARRAY_LEN(s->actions) ? s->actions[i + 1].kind
								       : ACTION_END,
					 ACTION_END);
			break;
		}
	}
	sasl_exchange_free(x);
}

static void run_scripts(const struct script *scripts, size_t count)
{
	for (size_t i = 0; i < count; i++)
		run_script(&scripts[i]);
}

static void test_plain(void **state)
{
	(void) state;
	run_scripts(plain_scripts, ARRAY_LEN(plain_scripts));
}

static void test_login(void **state)
{
	(void) state;
	run_scripts(login_scripts, ARRAY_LEN(login_scripts));
}

static void test_cram_md5(void **state)
{
	(void) state;
	run_scripts(cram_md5_scripts, ARRAY_LEN(cram_md5_scripts));
}

static void test_scram(void **state)
{
	(void) state;
	run_scripts(scram_scripts, ARRAY_LEN(scram_scripts));
}

/* ---- bounds ---- */

static enum sasl_step plain_once(const char *message, size_t len)
{
	struct sasl_server_info info = server_info(false);
	struct sasl_exchange *x = sasl_exchange_new(SASL_MECHANISM_PLAIN, &info, NULL);
	struct sasl_output out;
	enum sasl_step step;

	assert_non_null(x);
	step = sasl_exchange_step(x, true, span_make(message, len), &out);
	sasl_exchange_free(x);
	return step;
}

static void test_plain_field_limits(void **state)
{
	static char message[SASL_MESSAGE_MAX + 1];
	size_t o;

	(void) state;
	/* authcid of SASL_USERNAME_MAX octets, and one more. */
	for (size_t extra = 0; extra <= 1; extra++) {
		o = 0;
		message[o++] = '\0';
		memset(message + o, 'u', SASL_USERNAME_MAX + extra);
		o += SASL_USERNAME_MAX + extra;
		message[o++] = '\0';
		message[o++] = 'p';
		assert_int_equal(plain_once(message, o),
				 extra ? SASL_STEP_MALFORMED : SASL_STEP_CHECK_PASSWORD);
	}
	/* authzid the same way (equal to authcid at the limit). */
	for (size_t extra = 0; extra <= 1; extra++) {
		o = 0;
		memset(message, 'u', SASL_USERNAME_MAX + extra);
		o += SASL_USERNAME_MAX + extra;
		message[o++] = '\0';
		memset(message + o, 'u', SASL_USERNAME_MAX);
		o += SASL_USERNAME_MAX;
		message[o++] = '\0';
		message[o++] = 'p';
		assert_int_equal(plain_once(message, o),
				 extra ? SASL_STEP_MALFORMED : SASL_STEP_CHECK_PASSWORD);
	}
	/* A password of SASL_PASSWORD_MAX octets, and one more. */
	for (size_t extra = 0; extra <= 1; extra++) {
		o = 0;
		message[o++] = '\0';
		message[o++] = 'u';
		message[o++] = '\0';
		memset(message + o, 'p', SASL_PASSWORD_MAX + extra);
		o += SASL_PASSWORD_MAX + extra;
		assert_int_equal(plain_once(message, o),
				 extra ? SASL_STEP_MALFORMED : SASL_STEP_CHECK_PASSWORD);
	}
	/* A message longer than any response line can carry. */
	memset(message, 'p', sizeof(message));
	message[0] = '\0';
	message[2] = '\0';
	assert_int_equal(plain_once(message, SASL_MESSAGE_MAX + 1), SASL_STEP_MALFORMED);
}

static void test_login_password_limit(void **state)
{
	static char password[SASL_PASSWORD_MAX + 1];

	(void) state;
	memset(password, 'p', sizeof(password));
	for (size_t extra = 0; extra <= 1; extra++) {
		struct sasl_server_info info = server_info(false);
		struct sasl_exchange *x = sasl_exchange_new(SASL_MECHANISM_LOGIN, &info, NULL);
		struct sasl_output out;

		assert_int_equal(sasl_exchange_step(x, true, span_from_cstr("alice"), &out),
				 SASL_STEP_CHALLENGE);
		assert_int_equal(sasl_exchange_step(x, true,
						    span_make(password, SASL_PASSWORD_MAX + extra),
						    &out),
				 extra ? SASL_STEP_MALFORMED : SASL_STEP_CHECK_PASSWORD);
		sasl_exchange_free(x);
	}
}

static void test_scram_nonce_limit(void **state)
{
	static char message[SASL_SCRAM_NONCE_MAX + 64];

	(void) state;
	for (size_t extra = 0; extra <= 1; extra++) {
		struct sasl_server_info info = server_info(false);
		struct sasl_exchange *x =
			sasl_exchange_new(SASL_MECHANISM_SCRAM_SHA_256, &info, NULL);
		struct sasl_output out;
		int n = snprintf(message, sizeof(message), "n,,n=user,r=");
		enum sasl_step step;

		memset(message + n, 'r', SASL_SCRAM_NONCE_MAX + extra);
		step = sasl_exchange_step(
			x, true, span_make(message, (size_t) n + SASL_SCRAM_NONCE_MAX + extra),
			&out);
		assert_int_equal(step, extra ? SASL_STEP_MALFORMED : SASL_STEP_NEED_SECRET);
		if (!extra) {
			/* The largest server-first still fits a challenge. */
			assert_int_equal(sasl_exchange_secret(x, RFC7677_SECRET, &out),
					 SASL_STEP_CHALLENGE);
			assert_true(out.challenge_len <= SASL_CHALLENGE_MAX);
		}
		sasl_exchange_free(x);
	}
}

/* ---- exchange creation ---- */

static void test_exchange_new_requirements(void **state)
{
	struct sasl_server_info info = server_info(true);
	struct error err = { 0 };
	static const unsigned char short_binding[12] = "twelve bytes";

	(void) state;
	assert_null(sasl_exchange_new(SASL_MECHANISM_PLAIN, NULL, &err));
	assert_int_equal(err.kind, ERROR_USAGE);

	info.hostname = NULL;
	assert_null(sasl_exchange_new(SASL_MECHANISM_CRAM_MD5, &info, &err));
	info.hostname = "";
	assert_null(sasl_exchange_new(SASL_MECHANISM_CRAM_MD5, &info, &err));
	info.hostname = "mail example";
	assert_null(sasl_exchange_new(SASL_MECHANISM_CRAM_MD5, &info, &err));
	info.hostname = "mail>example";
	assert_null(sasl_exchange_new(SASL_MECHANISM_CRAM_MD5, &info, &err));
	/* PLAIN needs no host name. */
	sasl_exchange_free(sasl_exchange_new(SASL_MECHANISM_PLAIN, &info, &err));

	info = server_info(false);
	assert_null(sasl_exchange_new(SASL_MECHANISM_SCRAM_SHA_256_PLUS, &info, &err));
	assert_int_equal(err.kind, ERROR_USAGE);
	info.channel_binding = short_binding;
	info.channel_binding_len = sizeof(short_binding);
	assert_null(sasl_exchange_new(SASL_MECHANISM_SCRAM_SHA_256_PLUS, &info, &err));

	info = server_info(false);
	info.mock_key = NULL;
	assert_null(sasl_exchange_new(SASL_MECHANISM_SCRAM_SHA_256, &info, &err));
	assert_int_equal(err.kind, ERROR_USAGE);
	sasl_exchange_free(NULL);
}

static void test_test_hooks_refuse_bad_values(void **state)
{
	struct sasl_server_info info = server_info(false);
	struct sasl_exchange *cram = sasl_exchange_new(SASL_MECHANISM_CRAM_MD5, &info, NULL);
	struct sasl_exchange *scram = sasl_exchange_new(SASL_MECHANISM_SCRAM_SHA_256, &info, NULL);

	(void) state;
	assert_int_equal(sasl_cram_md5_challenge_force(cram, "no brackets"), -1);
	assert_int_equal(sasl_cram_md5_challenge_force(scram, RFC2195_CHALLENGE), -1);
	assert_int_equal(sasl_scram_server_nonce_force(scram, "with,comma"), -1);
	assert_int_equal(sasl_scram_server_nonce_force(cram, "abc"), -1);
	sasl_exchange_free(cram);
	sasl_exchange_free(scram);
}

/* ---- CRAM-MD5 secrets ---- */

static void test_cram_md5_secret_make(void **state)
{
	char out[SASL_CRAM_MD5_SECRET_MAX];
	struct error err = { 0 };
	static char long_password[SASL_PASSWORD_MAX + 1];

	(void) state;
	/* Dovecot's `doveadm pw -s CRAM-MD5` of "password", as recorded in
	 * PostfixAdmin's test suite. */
	assert_int_equal(sasl_cram_md5_secret_make("password", 8, out, sizeof(out), &err), 0);
	assert_string_equal(
		out, "{CRAM-MD5}9186d855e11eba527a7a52ca82b313e180d62234f0acc9051b527243d41e2740");
	assert_int_equal(sasl_cram_md5_secret_make("tanstaaftanstaaf", 16, out, sizeof(out), &err),
			 0);
	assert_string_equal(out, TIM_SECRET);

	assert_int_equal(sasl_cram_md5_secret_make("", 0, out, sizeof(out), &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	assert_string_equal(out, "");
	assert_int_equal(sasl_cram_md5_secret_make("a\0b", 3, out, sizeof(out), &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	memset(long_password, 'p', sizeof(long_password));
	assert_int_equal(
		sasl_cram_md5_secret_make(long_password, SASL_PASSWORD_MAX, out, sizeof(out), &err),
		0);
	assert_int_equal(sasl_cram_md5_secret_make(long_password, SASL_PASSWORD_MAX + 1, out,
						   sizeof(out), &err),
			 -1);
	assert_int_equal(sasl_cram_md5_secret_make("password", 8, out, sizeof(out) - 1, &err), -1);
	assert_string_equal(out, "");
}

/* RFC 2202 2: HMAC-MD5 test cases, computed through the stored context. */
static const struct hmac_case {
	const char *name;
	unsigned char key_byte; /* key: key_len copies, unless key is set */
	const char *key;
	size_t key_len;
	unsigned char data_byte; /* data: data_len copies, unless data is set */
	const char *data;
	size_t data_len;
	const char *want_hex;
} hmac_cases[] = {
	{ "1", 0x0b, NULL, 16, 0, "Hi There", 8, "9294727a3638bb1c13f48ef8158bfc9d" },
	{ "2", 0, "Jefe", 4, 0, "what do ya want for nothing?", 28,
	  "750c783e6ab0b503eaa86e310a5db738" },
	{ "3", 0xaa, NULL, 16, 0xdd, NULL, 50, "56be34521d144c88dbb8c733f0e8b3f6" },
	{ "4", 0,
	  "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13"
	  "\x14\x15\x16\x17\x18\x19",
	  25, 0xcd, NULL, 50, "697eaf0aca3a3aea3a75164746ffaa79" },
	{ "5", 0x0c, NULL, 16, 0, "Test With Truncation", 20, "56461ef2342edc00f9bab995690efd4c" },
	{ "6 (key longer than a block)", 0xaa, NULL, 80, 0,
	  "Test Using Larger Than Block-Size Key - Hash Key First", 54,
	  "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd" },
	{ "7 (key and data longer than a block)", 0xaa, NULL, 80, 0,
	  "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data", 73,
	  "6f630fad67cda0ee1fb1f562db3aa53e" },
};

static void test_hmac_md5_rfc2202(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(hmac_cases); i++) {
		const struct hmac_case *c = &hmac_cases[i];
		unsigned char key[80], data[80], context[SASL_CRAM_MD5_CONTEXT_LEN], digest[16];
		char hex[33];

		print_message("case: %s\n", c->name);
		if (c->key != NULL)
			memcpy(key, c->key, c->key_len);
		else
			memset(key, c->key_byte, c->key_len);
		if (c->data != NULL)
			memcpy(data, c->data, c->data_len);
		else
			memset(data, c->data_byte, c->data_len);
		sasl_cram_md5_context_make(key, c->key_len, context);
		sasl_cram_md5_context_hmac(context, data, c->data_len, digest);
		for (size_t k = 0; k < 16; k++)
			snprintf(hex + 2 * k, 3, "%02x", digest[k]);
		assert_string_equal(hex, c->want_hex);
	}
}

/* The context path agrees with OpenSSL's own HMAC-MD5 on every key length
 * around the block size and every message length around it. */
static void test_hmac_md5_agrees_with_openssl(void **state)
{
	unsigned char key[130], data[200], context[SASL_CRAM_MD5_CONTEXT_LEN], ours[16], theirs[16];

	(void) state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char) (i * 7 + 3);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char) (i * 13 + 5);
	for (size_t key_len = 0; key_len <= sizeof(key); key_len++) {
		sasl_cram_md5_context_make(key, key_len, context);
		for (size_t data_len = 0; data_len <= sizeof(data); data_len += 7) {
			unsigned int len = 0;

			sasl_cram_md5_context_hmac(context, data, data_len, ours);
			assert_non_null(
				HMAC(EVP_md5(), key, (int) key_len, data, data_len, theirs, &len));
			assert_memory_equal(ours, theirs, 16);
		}
	}
}

static void test_cram_md5_challenge_shape(void **state)
{
	struct sasl_server_info info = server_info(false);
	char first[SASL_CHALLENGE_MAX + 1];
	time_t before = time(NULL);

	(void) state;
	for (int round = 0; round < 2; round++) {
		struct sasl_exchange *x = sasl_exchange_new(SASL_MECHANISM_CRAM_MD5, &info, NULL);
		struct sasl_output out;
		unsigned long long digits, stamp;
		char host[64], close;
		char text[SASL_CHALLENGE_MAX + 1];

		assert_int_equal(sasl_exchange_step(x, false, span_make(NULL, 0), &out),
				 SASL_STEP_CHALLENGE);
		memcpy(text, out.challenge, out.challenge_len);
		text[out.challenge_len] = '\0';
		/* RFC 2195 2: <random-digits.timestamp@hostname>. */
		assert_int_equal(
			sscanf(text, "<%llu.%llu@%63[^>]%c", &digits, &stamp, host, &close), 4);
		assert_int_equal(close, '>');
		assert_string_equal(host, "mail.example.test");
		assert_true(stamp >= (unsigned long long) before &&
			    stamp <= (unsigned long long) time(NULL));
		if (round == 0)
			memcpy(first, text, sizeof(text));
		else
			assert_string_not_equal(first, text);
		sasl_exchange_free(x);
	}
}

/* ---- SCRAM: a client of our own for what the RFC example does not cover ---- */

struct scram_client {
	const char *password;
	unsigned char client_key[32], server_key[32];
	char client_first_bare[256];
	char final[2048];
	unsigned char server_signature[32];
};

static void b64(const unsigned char *in, size_t len, char *out, size_t cap)
{
	sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_ORIGINAL);
}

/* Compute client-final for server-first, binding gs2_header and cb. */
static void scram_client_final(struct scram_client *c, const char *gs2_header,
			       const unsigned char *cb, size_t cb_len, const char *server_first)
{
	char nonce[256], salt_b64[128], cbind_b64[256], proof_b64[64];
	unsigned char salt[64], salted[32], stored[32], signature[32], proof[32], cbind[256];
	char auth_message[4096], without_proof[1024];
	unsigned iterations;
	size_t salt_len, cbind_len = strlen(gs2_header);
	unsigned int len;

	assert_int_equal(
		sscanf(server_first, "r=%255[^,],s=%127[^,],i=%u", nonce, salt_b64, &iterations),
		3);
	assert_int_equal(sodium_base642bin(salt, sizeof(salt), salt_b64, strlen(salt_b64), NULL,
					   &salt_len, NULL, sodium_base64_VARIANT_ORIGINAL),
			 0);
	assert_int_equal(PKCS5_PBKDF2_HMAC(c->password, (int) strlen(c->password), salt,
					   (int) salt_len, (int) iterations, EVP_sha256(), 32,
					   salted),
			 1);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *) "Client Key", 10, c->client_key,
	     &len);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *) "Server Key", 10, c->server_key,
	     &len);
	SHA256(c->client_key, 32, stored);
	memcpy(cbind, gs2_header, cbind_len);
	if (cb_len > 0)
		memcpy(cbind + cbind_len, cb, cb_len);
	b64(cbind, cbind_len + cb_len, cbind_b64, sizeof(cbind_b64));
	snprintf(without_proof, sizeof(without_proof), "c=%s,r=%s", cbind_b64, nonce);
	snprintf(auth_message, sizeof(auth_message), "%s,%s,%s", c->client_first_bare, server_first,
		 without_proof);
	HMAC(EVP_sha256(), stored, 32, (const unsigned char *) auth_message, strlen(auth_message),
	     signature, &len);
	for (size_t i = 0; i < 32; i++)
		proof[i] = c->client_key[i] ^ signature[i];
	b64(proof, 32, proof_b64, sizeof(proof_b64));
	snprintf(c->final, sizeof(c->final), "%s,p=%s", without_proof, proof_b64);
	HMAC(EVP_sha256(), c->server_key, 32, (const unsigned char *) auth_message,
	     strlen(auth_message), c->server_signature, &len);
}

static const struct scram_case {
	const char *name;
	enum sasl_mechanism mechanism;
	bool has_channel_binding;
	const char *gs2_header;
	const unsigned char *client_binding; /* what the client binds to (-PLUS) */
	const char *client_password;
	const char *secret;	   /* NULL: unknown user */
	enum sasl_step want_final; /* after client-final */
	const char *want_authzid;
} scram_cases[] = {
	{ "plain SCRAM-SHA-256", SASL_MECHANISM_SCRAM_SHA_256, false, "n,,", NULL, "pencil",
	  RFC7677_SECRET, SASL_STEP_CHALLENGE, "" },
	{ "authzid equal to the user", SASL_MECHANISM_SCRAM_SHA_256, false, "n,a=user,", NULL,
	  "pencil", RFC7677_SECRET, SASL_STEP_CHALLENGE, "user" },
	{ "y flag, no binding on this connection", SASL_MECHANISM_SCRAM_SHA_256, false, "y,,", NULL,
	  "pencil", RFC7677_SECRET, SASL_STEP_CHALLENGE, "" },
	{ "n flag on a connection that could bind", SASL_MECHANISM_SCRAM_SHA_256, true, "n,,", NULL,
	  "pencil", RFC7677_SECRET, SASL_STEP_CHALLENGE, "" },
	{ "-PLUS with the right binding", SASL_MECHANISM_SCRAM_SHA_256_PLUS, true,
	  "p=tls-exporter,,", channel_binding, "pencil", RFC7677_SECRET, SASL_STEP_CHALLENGE, "" },
	{ "-PLUS with another connection's binding", SASL_MECHANISM_SCRAM_SHA_256_PLUS, true,
	  "p=tls-exporter,,", other_binding, "pencil", RFC7677_SECRET, SASL_STEP_FAILURE, "" },
	{ "-PLUS binding only the header", SASL_MECHANISM_SCRAM_SHA_256_PLUS, true,
	  "p=tls-exporter,,", NULL, "pencil", RFC7677_SECRET, SASL_STEP_FAILURE, "" },
	{ "wrong password", SASL_MECHANISM_SCRAM_SHA_256, false, "n,,", NULL, "pencil!",
	  RFC7677_SECRET, SASL_STEP_FAILURE, "" },
	{ "unknown user, right-looking proof", SASL_MECHANISM_SCRAM_SHA_256, false, "n,,", NULL,
	  "pencil", NULL, SASL_STEP_FAILURE, "" },
};

static void test_scram_with_client(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(scram_cases); i++) {
		const struct scram_case *c = &scram_cases[i];
		struct sasl_server_info info = server_info(c->has_channel_binding);
		struct sasl_exchange *x = sasl_exchange_new(c->mechanism, &info, NULL);
		struct scram_client client = { .password = c->client_password };
		struct sasl_output out;
		char first[512], server_first[SASL_CHALLENGE_MAX + 1], want_final[64];
		enum sasl_step step;

		print_message("case: %s\n", c->name);
		assert_non_null(x);
		snprintf(client.client_first_bare, sizeof(client.client_first_bare),
			 "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
		snprintf(first, sizeof(first), "%s%s", c->gs2_header, client.client_first_bare);
		assert_int_equal(sasl_exchange_step(x, true, span_from_cstr(first), &out),
				 SASL_STEP_NEED_SECRET);
		assert_int_equal(sasl_exchange_secret(x, c->secret, &out), SASL_STEP_CHALLENGE);
		memcpy(server_first, out.challenge, out.challenge_len);
		server_first[out.challenge_len] = '\0';
		scram_client_final(&client, c->gs2_header, c->client_binding,
				   c->client_binding ? SASL_CHANNEL_BINDING_LEN : 0, server_first);
		step = sasl_exchange_step(x, true, span_from_cstr(client.final), &out);
		assert_int_equal(step, c->want_final);
		if (step == SASL_STEP_CHALLENGE) {
			/* The client checks our ServerSignature. */
			memcpy(want_final, "v=", 2);
			b64(client.server_signature, 32, want_final + 2, sizeof(want_final) - 2);
			assert_int_equal(out.challenge_len, strlen(want_final));
			assert_memory_equal(out.challenge, want_final, out.challenge_len);
			assert_int_equal(sasl_exchange_step(x, true, span_make("", 0), &out),
					 SASL_STEP_SUCCESS);
			assert_string_equal(out.username, "user");
			assert_string_equal(out.authzid, c->want_authzid);
		}
		sasl_exchange_free(x);
	}
}

static void server_first_of(const char *client_first, const char *secret, const unsigned char *key,
			    char *out, size_t cap)
{
	struct sasl_server_info info = server_info(false);
	struct sasl_exchange *x;
	struct sasl_output o;

	info.mock_key = key;
	x = sasl_exchange_new(SASL_MECHANISM_SCRAM_SHA_256, &info, NULL);
	assert_int_equal(sasl_scram_server_nonce_force(x, "SERVERNONCE"), 0);
	assert_int_equal(sasl_exchange_step(x, true, span_from_cstr(client_first), &o),
			 SASL_STEP_NEED_SECRET);
	assert_int_equal(sasl_exchange_secret(x, secret, &o), SASL_STEP_CHALLENGE);
	assert_true(o.challenge_len < cap);
	memcpy(out, o.challenge, o.challenge_len);
	out[o.challenge_len] = '\0';
	sasl_exchange_free(x);
}

/* RFC 5802 5.1: an unknown user sees what a known one sees — a salt that
 * stays the same for the name (in any ASCII case, as the store matches
 * names), differs between names and keys, and the default count. */
static void test_scram_mock_salt(void **state)
{
	static const unsigned char other_key[SASL_MOCK_KEY_LEN] = "another process's mock key!!!!!";
	char a[SASL_CHALLENGE_MAX + 1], b[SASL_CHALLENGE_MAX + 1], salt[64];
	unsigned char raw[64];
	size_t raw_len;
	unsigned iterations;

	(void) state;
	server_first_of("n,,n=ghost@example.test,r=abc", NULL, mock_key, a, sizeof(a));
	server_first_of("n,,n=ghost@example.test,r=abc", NULL, mock_key, b, sizeof(b));
	assert_string_equal(a, b);
	assert_int_equal(sscanf(a, "r=abcSERVERNONCE,s=%63[^,],i=%u", salt, &iterations), 2);
	assert_int_equal(iterations, 4096);
	assert_true(sasl_base64_decode(span_from_cstr(salt), raw, sizeof(raw), &raw_len));
	assert_int_equal(raw_len, 16); /* as long as the salts auth_secret_make_scram makes */
	server_first_of("n,,n=Ghost@EXAMPLE.test,r=abc", NULL, mock_key, b, sizeof(b));
	assert_string_equal(a, b);
	server_first_of("n,,n=ghost2@example.test,r=abc", NULL, mock_key, b, sizeof(b));
	assert_string_not_equal(a, b);
	server_first_of("n,,n=ghost@example.test,r=abc", NULL, other_key, b, sizeof(b));
	assert_string_not_equal(a, b);
	/* A malformed secret looks the same as none. */
	server_first_of("n,,n=ghost@example.test,r=abc", "{SCRAM-SHA-256}garbage", mock_key, b,
			sizeof(b));
	assert_string_equal(a, b);
}

static void test_scram_server_nonce(void **state)
{
	struct sasl_server_info info = server_info(false);
	char first[SASL_CHALLENGE_MAX + 1] = "";

	(void) state;
	for (int round = 0; round < 2; round++) {
		struct sasl_exchange *x =
			sasl_exchange_new(SASL_MECHANISM_SCRAM_SHA_256, &info, NULL);
		struct sasl_output out;
		char text[SASL_CHALLENGE_MAX + 1], nonce[128];
		unsigned char raw[64];
		size_t raw_len;

		assert_int_equal(
			sasl_exchange_step(x, true, span_from_cstr("n,,n=user,r=abc"), &out),
			SASL_STEP_NEED_SECRET);
		assert_int_equal(sasl_exchange_secret(x, RFC7677_SECRET, &out),
				 SASL_STEP_CHALLENGE);
		memcpy(text, out.challenge, out.challenge_len);
		text[out.challenge_len] = '\0';
		assert_int_equal(sscanf(text, "r=abc%127[^,],", nonce), 1);
		/* 24 random octets, base64. */
		assert_int_equal(strlen(nonce), 32);
		assert_true(sasl_base64_decode(span_from_cstr(nonce), raw, sizeof(raw), &raw_len));
		assert_int_equal(raw_len, 24);
		if (round == 0)
			memcpy(first, text, sizeof(text));
		else
			assert_string_not_equal(first, text);
		sasl_exchange_free(x);
	}
}

/* ---- wiping ---- */

static void test_password_wiped_after_result(void **state)
{
	static const struct {
		const char *name;
		bool is_valid;
	} cases[] = { { "after success", true }, { "after failure", false } };

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct sasl_server_info info = server_info(false);
		struct sasl_exchange *x = sasl_exchange_new(SASL_MECHANISM_PLAIN, &info, NULL);
		struct sasl_output out;
		const char *password;
		size_t len;

		print_message("case: %s\n", cases[i].name);
		assert_int_equal(
			sasl_exchange_step(x, true, span_make("\0alice\0hunter2", 14), &out),
			SASL_STEP_CHECK_PASSWORD);
		password = out.password;
		len = out.password_len;
		assert_string_equal(password, "hunter2");
		sasl_exchange_password_result(x, cases[i].is_valid, &out);
		/* The exchange is still alive: its buffer may be read. */
		for (size_t k = 0; k < len; k++)
			assert_int_equal(password[k], '\0');
		assert_null(out.password);
		sasl_exchange_free(x);
	}
}

/* ---- interoperation with GNU SASL's client ---- */

#define GSASL_PATH	  "/usr/bin/gsasl"
#define INTEROP_WAIT_MS	  10000
#define INTEROP_LINE_MAX  (SASL_RESPONSE_LINE_MAX + 16)
#define INTEROP_STEPS_MAX 8

struct child {
	pid_t pid;
	int to_child, from_child;
	char buf[INTEROP_LINE_MAX];
	size_t buf_len;
};

static void child_start(struct child *c, char *const argv[])
{
	int in[2], out[2];

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(in[0], 0);
		dup2(out[1], 1);
		if (devnull >= 0)
			dup2(devnull, 2);
		close(in[1]);
		close(out[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->to_child = in[1];
	c->from_child = out[0];
	c->buf_len = 0;
}

static void child_send(struct child *c, const char *line)
{
	char buf[INTEROP_LINE_MAX];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	/* A client that gave up has closed its end; the exit status tells. */
	if (write(c->to_child, buf, (size_t) n) != n)
		print_message("  (client gone before: %s)\n", line);
}

/* One line without CR LF, or false at EOF or after INTEROP_WAIT_MS. */
static bool child_read_line(struct child *c, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->buf_len);
		struct pollfd pfd = { .fd = c->from_child, .events = POLLIN };
		ssize_t n;

		if (nl != NULL) {
			size_t len = (size_t) (nl - c->buf);

			if (len > 0 && c->buf[len - 1] == '\r')
				len--;
			assert_true(len < cap);
			memcpy(line, c->buf, len);
			line[len] = '\0';
			c->buf_len -= (size_t) (nl + 1 - c->buf);
			memmove(c->buf, nl + 1, c->buf_len);
			return true;
		}
		if (c->buf_len == sizeof(c->buf))
			return false;
		if (poll(&pfd, 1, INTEROP_WAIT_MS) <= 0)
			return false;
		n = read(c->from_child, c->buf + c->buf_len, sizeof(c->buf) - c->buf_len);
		if (n <= 0)
			return false;
		c->buf_len += (size_t) n;
	}
}

/* The exit status, or -1 if it had to be killed after INTEROP_WAIT_MS. */
static int child_finish(struct child *c)
{
	int status = 0;

	close(c->to_child);
	close(c->from_child);
	for (int waited = 0; waited < INTEROP_WAIT_MS; waited += 10) {
		pid_t r = waitpid(c->pid, &status, WNOHANG);

		if (r == c->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		usleep(10 * 1000);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
	return -1;
}

/* A SCRAM secret made by GNU SASL itself (gsasl -k), 4096 iterations. */
static void gsasl_scram_secret(const char *password, char *out, size_t cap)
{
	char *argv[] = { GSASL_PATH,
			 "-k",
			 "-m",
			 "SCRAM-SHA-256",
			 "--password",
			 (char *) password,
			 "--iteration-count",
			 "4096",
			 "--quiet",
			 NULL };
	struct child c;

	child_start(&c, argv);
	assert_true(child_read_line(&c, out, cap));
	assert_int_equal(child_finish(&c), 0);
	assert_true(strncmp(out, "{SCRAM-SHA-256}4096,", 20) == 0);
}

static const struct interop_case {
	const char *name, *mechanism;
	const char *client_password; /* what gsasl sends */
	const char *authzid;	     /* gsasl -z, or NULL */
	const char *user_password;   /* the account's: NULL, unknown user */
	bool want_success;
} interop_cases[] = {
	{ "PLAIN", "PLAIN", "s3cret pw", NULL, "s3cret pw", true },
	{ "PLAIN wrong password", "PLAIN", "s3cret", NULL, "other", false },
	{ "PLAIN with authzid", "PLAIN", "s3cret", "alice@example.test", "s3cret", true },
	{ "PLAIN with another authzid", "PLAIN", "s3cret", "bob@example.test", "s3cret", false },
	{ "LOGIN", "LOGIN", "s3cret", NULL, "s3cret", true },
	{ "LOGIN wrong password", "LOGIN", "s3cret", NULL, "other", false },
	{ "CRAM-MD5", "CRAM-MD5", "s3cret", NULL, "s3cret", true },
	{ "CRAM-MD5 wrong password", "CRAM-MD5", "s3cret", NULL, "other", false },
	{ "CRAM-MD5 unknown user", "CRAM-MD5", "s3cret", NULL, NULL, false },
	{ "SCRAM-SHA-256", "SCRAM-SHA-256", "s3cret", NULL, "s3cret", true },
	{ "SCRAM-SHA-256 with authzid", "SCRAM-SHA-256", "s3cret", "alice@example.test", "s3cret",
	  true },
	{ "SCRAM-SHA-256 wrong password", "SCRAM-SHA-256", "s3cret", NULL, "other", false },
	{ "SCRAM-SHA-256 unknown user", "SCRAM-SHA-256", "s3cret", NULL, NULL, false },
};

/* Plays an SMTP server over gsasl's stdin and stdout (gsasl --smtp), with
 * our exchange behind AUTH: 334 challenges, 235 or 535 at the end. */
static void run_interop(const struct interop_case *ic)
{
	char *argv[20];
	int argc = 0;
	struct child c;
	char line[INTEROP_LINE_MAX], secret[256] = "";
	struct sasl_server_info info = server_info(false);
	struct sasl_exchange *x = NULL;
	enum sasl_mechanism mechanism;
	bool is_success = false;
	int status;

	print_message("case: %s\n", ic->name);
	if (ic->user_password != NULL && strcmp(ic->mechanism, "SCRAM-SHA-256") == 0)
		gsasl_scram_secret(ic->user_password, secret, sizeof(secret));
	if (ic->user_password != NULL && strcmp(ic->mechanism, "CRAM-MD5") == 0)
		assert_int_equal(sasl_cram_md5_secret_make(ic->user_password,
							   strlen(ic->user_password), secret,
							   sizeof(secret), NULL),
				 0);
	argv[argc++] = GSASL_PATH;
	argv[argc++] = "--client";
	argv[argc++] = "--smtp";
	/* gsasl's SMTP mode would otherwise send its first message before
	 * our 334; real clients wait (RFC 4954 4). */
	argv[argc++] = "--no-client-first";
	argv[argc++] = "--application-data"; /* a flag that is on: this turns it off */
	argv[argc++] = "--quiet";
	/* Else gsasl asks on stdout for tls-exporter data to bind to; there
	 * is no TLS here (-PLUS is covered by test_scram_with_client). */
	argv[argc++] = "--no-cb";
	argv[argc++] = "--mechanism";
	argv[argc++] = (char *) ic->mechanism;
	argv[argc++] = "--authentication-id";
	argv[argc++] = "alice@example.test";
	argv[argc++] = "--password";
	argv[argc++] = (char *) ic->client_password;
	if (ic->authzid != NULL) {
		argv[argc++] = "--authorization-id";
		argv[argc++] = (char *) ic->authzid;
	}
	argv[argc] = NULL;

	child_start(&c, argv);
	child_send(&c, "220 mail.example.test ESMTP sasl_test");
	assert_true(child_read_line(&c, line, sizeof(line)));
	assert_string_equal(line, "EHLO [127.0.0.1]");
	child_send(&c, "250-mail.example.test");
	child_send(&c, "250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256");
	assert_true(child_read_line(&c, line, sizeof(line)));
	assert_true(strncmp(line, "AUTH ", 5) == 0);
	assert_true(sasl_mechanism_parse(span_from_cstr(line + 5), &mechanism));
	assert_string_equal(sasl_mechanism_name(mechanism), ic->mechanism);
	x = sasl_exchange_new(mechanism, &info, NULL);
	assert_non_null(x);

	{
		struct sasl_output out;
		enum sasl_step step = sasl_exchange_step(x, false, span_make(NULL, 0), &out);

		for (int n = 0; n < INTEROP_STEPS_MAX; n++) {
			char encoded[SASL_CHALLENGE_ENCODED_MAX + 8];
			static unsigned char decoded[SASL_MESSAGE_MAX];
			size_t len;

			if (step == SASL_STEP_CHALLENGE) {
				memcpy(encoded, "334 ", 4);
				assert_true(sasl_challenge_encode(out.challenge, out.challenge_len,
								  encoded + 4, sizeof(encoded) - 4,
								  &len));
				child_send(&c, encoded);
				if (!child_read_line(&c, line, sizeof(line)))
					break;
				assert_int_equal(sasl_response_decode(span_from_cstr(line), decoded,
								      sizeof(decoded), &len),
						 SASL_RESPONSE_OK);
				step = sasl_exchange_step(x, true, span_make((char *) decoded, len),
							  &out);
			} else if (step == SASL_STEP_CHECK_PASSWORD) {
				bool ok = ic->user_password != NULL &&
					  strcmp(out.username, "alice@example.test") == 0 &&
					  out.password_len == strlen(ic->user_password) &&
					  memcmp(out.password, ic->user_password,
						 out.password_len) == 0;

				step = sasl_exchange_password_result(x, ok, &out);
			} else if (step == SASL_STEP_NEED_SECRET) {
				assert_string_equal(out.username, "alice@example.test");
				step = sasl_exchange_secret(x, secret[0] ? secret : NULL, &out);
			} else {
				break;
			}
		}
		print_message("  final step %d\n", step);
		if (step == SASL_STEP_SUCCESS) {
			is_success = true;
			child_send(&c, "235 2.7.0 Authentication successful");
			/* gsasl ends with QUIT. */
			assert_true(child_read_line(&c, line, sizeof(line)));
			assert_string_equal(line, "QUIT");
			child_send(&c, "221 2.0.0 Bye");
		} else {
			assert_int_equal(step, SASL_STEP_FAILURE);
			child_send(&c, "535 5.7.8 Authentication credentials invalid");
		}
	}
	status = child_finish(&c);
	print_message("  gsasl exit status %d\n", status);
	assert_int_equal(is_success, ic->want_success);
	/* gsasl exits 0 only after it verified our side too (for SCRAM, the
	 * server signature); after a 535 it exits 1. */
	assert_int_equal(status, ic->want_success ? 0 : 1);
	sasl_exchange_free(x);
}

static void test_interop_gsasl(void **state)
{
	(void) state;
	if (access(GSASL_PATH, X_OK) != 0) {
		print_message("gsasl is not installed (Debian package gsasl): skipped\n");
		skip();
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < ARRAY_LEN(interop_cases); i++)
		run_interop(&interop_cases[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mechanism_parse),
		cmocka_unit_test(test_mechanism_names),
		cmocka_unit_test(test_offered_mechanisms),
		cmocka_unit_test(test_response_decode),
		cmocka_unit_test(test_response_line_limit),
		cmocka_unit_test(test_challenge_encode),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_cram_md5),
		cmocka_unit_test(test_scram),
		cmocka_unit_test(test_plain_field_limits),
		cmocka_unit_test(test_login_password_limit),
		cmocka_unit_test(test_scram_nonce_limit),
		cmocka_unit_test(test_exchange_new_requirements),
		cmocka_unit_test(test_test_hooks_refuse_bad_values),
		cmocka_unit_test(test_cram_md5_secret_make),
		cmocka_unit_test(test_hmac_md5_rfc2202),
		cmocka_unit_test(test_hmac_md5_agrees_with_openssl),
		cmocka_unit_test(test_cram_md5_challenge_shape),
		cmocka_unit_test(test_scram_with_client),
		cmocka_unit_test(test_scram_mock_salt),
		cmocka_unit_test(test_scram_server_nonce),
		cmocka_unit_test(test_password_wiped_after_result),
		cmocka_unit_test(test_interop_gsasl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
