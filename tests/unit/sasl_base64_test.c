/* Tests for src/sasl/base64.c: the RFC 4648 10 vectors both ways, every
 * kind of input the strict decoder refuses, the bounds at and past the
 * buffer's end, and agreement with libsodium's encoder on every length and
 * every octet value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "core/span.h"
#include "sasl/base64.h"

/* RFC 4648 10. */
static const struct vector {
	const char *name, *decoded, *encoded;
} vectors[] = {
	{ "empty", "", "" },
	{ "f", "f", "Zg==" },
	{ "fo", "fo", "Zm8=" },
	{ "foo", "foo", "Zm9v" },
	{ "foob", "foob", "Zm9vYg==" },
	{ "fooba", "fooba", "Zm9vYmE=" },
	{ "foobar", "foobar", "Zm9vYmFy" },
	{ "LOGIN Username:", "Username:", "VXNlcm5hbWU6" },
	{ "LOGIN Password:", "Password:", "UGFzc3dvcmQ6" },
};

static void test_vectors_encode(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(vectors); i++) {
		const struct vector *v = &vectors[i];
		char out[64];
		size_t len = 99;

		print_message("case: %s\n", v->name);
		assert_true(sasl_base64_encode((const unsigned char *) v->decoded,
					       strlen(v->decoded), out, sizeof(out), &len));
		assert_string_equal(out, v->encoded);
		assert_int_equal(len, strlen(v->encoded));
		assert_int_equal(SASL_BASE64_ENCODED_LEN(strlen(v->decoded)), len);
	}
}

static void test_vectors_decode(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(vectors); i++) {
		const struct vector *v = &vectors[i];
		unsigned char out[64];
		size_t len = 99;

		print_message("case: %s\n", v->name);
		assert_true(sasl_base64_decode(span_from_cstr(v->encoded), out, sizeof(out), &len));
		assert_int_equal(len, strlen(v->decoded));
		assert_memory_equal(out, v->decoded, len);
		assert_int_equal(sasl_base64_decoded_len(span_from_cstr(v->encoded)), len);
	}
}

static const struct refused_case {
	const char *name, *input;
} refused_cases[] = {
	{ "no padding (one octet)", "Zg" },
	{ "no padding (two octets)", "Zm8" },
	{ "short padding", "Zg=" },
	{ "too much padding", "Zg===" },
	{ "three pad characters", "Z===" },
	{ "only padding", "====" },
	{ "padding then data", "Zg==Zm9v" },
	{ "padding inside a quantum", "Z=9v" },
	{ "trailing CRLF", "Zm9v\r\n" },
	{ "trailing LF", "Zm9v\n" },
	{ "leading space", " Zm9v" },
	{ "trailing space", "Zm9v " },
	{ "space inside", "Zm9v Zm9v" },
	{ "URL-safe minus", "Zm9-" },
	{ "URL-safe underscore", "Zm9_" },
	{ "non-zero pad bits (one octet)", "Zh==" },
	{ "non-zero pad bits (two octets)", "Zm9=" },
	{ "8-bit octet", "Zm9\xc3" },
	{ "star", "*" },
	{ "dot", "Zm9." },
	{ "one character", "Z" },
};

static void test_refused(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(refused_cases); i++) {
		const struct refused_case *c = &refused_cases[i];
		unsigned char out[64];
		size_t len = 99;

		print_message("case: %s\n", c->name);
		memset(out, 0xa5, sizeof(out));
		assert_false(sasl_base64_decode(span_from_cstr(c->input), out, sizeof(out), &len));
		assert_int_equal(len, 0);
		/* The valid prefix it may have written is wiped. */
		for (size_t k = 0; k < 3 && out[k] != 0xa5; k++)
			assert_int_equal(out[k], 0);
	}
}

static void test_nul_inside_is_refused(void **state)
{
	unsigned char out[8];
	size_t len;

	(void) state;
	assert_false(sasl_base64_decode(span_make("Zm\0v", 4), out, sizeof(out), &len));
}

static void test_refused_wipes_valid_prefix(void **state)
{
	unsigned char out[16];
	size_t len;

	(void) state;
	/* "c2VjcmV0" is "secret"; the bad last quantum must not leave it. */
	memset(out, 0xa5, sizeof(out));
	assert_false(sasl_base64_decode(span_from_cstr("c2VjcmV0Zm9-"), out, sizeof(out), &len));
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(out[i], 0);
	assert_int_equal(out[6], 0xa5);
}

static void test_decode_bounds(void **state)
{
	unsigned char out[8];
	size_t len;

	(void) state;
	/* "foobar" needs exactly 6: at the limit it fits, one short it is
	 * refused, and nothing is written past the cap either way. */
	memset(out, 0xa5, sizeof(out));
	assert_true(sasl_base64_decode(span_from_cstr("Zm9vYmFy"), out, 6, &len));
	assert_int_equal(len, 6);
	assert_int_equal(out[6], 0xa5);
	memset(out, 0xa5, sizeof(out));
	assert_false(sasl_base64_decode(span_from_cstr("Zm9vYmFy"), out, 5, &len));
	assert_int_equal(len, 0);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xa5);
	/* Padding counts: "Zm9vYg==" is 4 octets. */
	assert_true(sasl_base64_decode(span_from_cstr("Zm9vYg=="), out, 4, &len));
	assert_false(sasl_base64_decode(span_from_cstr("Zm9vYg=="), out, 3, &len));
	/* Empty input into no buffer at all. */
	assert_true(sasl_base64_decode(span_from_cstr(""), NULL, 0, &len));
	assert_int_equal(len, 0);
}

static void test_encode_bounds(void **state)
{
	char out[16];
	size_t len;

	(void) state;
	memset(out, 'x', sizeof(out));
	assert_true(sasl_base64_encode((const unsigned char *) "foo", 3, out, 5, &len));
	assert_string_equal(out, "Zm9v");
	assert_false(sasl_base64_encode((const unsigned char *) "foo", 3, out, 4, &len));
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
	assert_true(sasl_base64_encode((const unsigned char *) "", 0, out, 1, NULL));
	assert_string_equal(out, "");
	assert_false(sasl_base64_encode((const unsigned char *) "", 0, out, 0, NULL));
}

/* Every length 0..200 over every octet value, against libsodium's
 * independent encoder, and back. */
static void test_agrees_with_libsodium(void **state)
{
	unsigned char in[200], back[200];
	char ours[SASL_BASE64_ENCODED_LEN(200) + 1], theirs[sizeof(ours)];

	(void) state;
	assert_true(sodium_init() >= 0);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char) (i * 37 + 11);
	for (size_t len = 0; len <= sizeof(in); len++) {
		size_t out_len, back_len;

		assert_true(sasl_base64_encode(in, len, ours, sizeof(ours), &out_len));
		sodium_bin2base64(theirs, sizeof(theirs), in, len, sodium_base64_VARIANT_ORIGINAL);
		assert_string_equal(ours, theirs);
		assert_true(sasl_base64_decode(span_make(ours, out_len), back, sizeof(back),
					       &back_len));
		assert_int_equal(back_len, len);
		assert_memory_equal(back, in, len);
	}
	for (unsigned v = 0; v < 256; v++) {
		unsigned char one = (unsigned char) v, got;
		size_t got_len;

		assert_true(sasl_base64_encode(&one, 1, ours, sizeof(ours), NULL));
		assert_true(sasl_base64_decode(span_from_cstr(ours), &got, 1, &got_len));
		assert_int_equal(got_len, 1);
		assert_int_equal(got, one);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_encode),
		cmocka_unit_test(test_vectors_decode),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_nul_inside_is_refused),
		cmocka_unit_test(test_refused_wipes_valid_prefix),
		cmocka_unit_test(test_decode_bounds),
		cmocka_unit_test(test_encode_bounds),
		cmocka_unit_test(test_agrees_with_libsodium),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
