/*
 * envelope: writing and strictly reading the ID.env and ID.state texts.
 * Nothing here touches a file, the clock or a global: the input is a span,
 * the output a heap buffer or struct, so the fuzzer sees all of it.
 */
#include "queue/envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENVELOPE_VERSION_LINE "postgate-envelope 1"
#define STATE_VERSION_LINE    "postgate-state 1"

/* --- building text ------------------------------------------------------ */

struct text {
	char *ptr;
	size_t len;
	size_t cap;
	size_t line_start;
	bool has_failed; /* out of memory or a line too long */
};

static void text_add(struct text *t, const char *bytes, size_t len)
{
	if (t->has_failed)
		return;
	if (t->cap - t->len < len) {
		size_t cap = t->cap ? t->cap : 512;
		char *p;

		while (cap - t->len < len)
			cap *= 2;
		p = realloc(t->ptr, cap);
		if (p == NULL) {
			t->has_failed = true;
			return;
		}
		t->ptr = p;
		t->cap = cap;
	}
	memcpy(t->ptr + t->len, bytes, len);
	t->len += len;
}

static void text_add_cstr(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

static void text_add_u64(struct text *t, uint64_t value)
{
	char digits[24];
	int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long) value);

	text_add(t, digits, (size_t) n);
}

static bool xtext_is_plain(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '+' && c != '=';
}

/* RFC 3461 4: xtext, with upper-case hex as the RFC's grammar spells it. */
static void text_add_xtext(struct text *t, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p != '\0'; p++) {
		if (xtext_is_plain(*p)) {
			text_add(t, (const char *) p, 1);
		} else {
			char esc[3] = { '+', hex[*p >> 4], hex[*p & 15] };

			text_add(t, esc, sizeof(esc));
		}
	}
}

static void text_end_line(struct text *t)
{
	text_add(t, "\n", 1);
	if (!t->has_failed && t->len - t->line_start > QUEUE_ENVELOPE_LINE_MAX)
		t->has_failed = true;
	t->line_start = t->len;
}

/* "key" alone for an empty value, else "key value". */
static void text_add_string_line(struct text *t, const char *key, const char *value)
{
	text_add_cstr(t, key);
	if (value[0] != '\0') {
		text_add(t, " ", 1);
		text_add_xtext(t, value);
	}
	text_end_line(t);
}

static void text_add_word_line(struct text *t, const char *key, const char *word)
{
	text_add_cstr(t, key);
	text_add(t, " ", 1);
	text_add_cstr(t, word);
	text_end_line(t);
}

static void text_add_number_line(struct text *t, const char *key, uint64_t value)
{
	text_add_cstr(t, key);
	text_add(t, " ", 1);
	text_add_u64(t, value);
	text_end_line(t);
}

static int text_finish(struct text *t, char **text_out, size_t *len_out, struct error *err)
{
	if (t->has_failed) {
		free(t->ptr);
		return error_set(err, ERROR_SOFTWARE, "envelope: out of memory or line too long");
	}
	*text_out = t->ptr;
	*len_out = t->len;
	return 0;
}

/* --- the enumerations ----------------------------------------------------- */

static const char *const body_words[] = {
	[QUEUE_BODY_7BIT] = "7bit",
	[QUEUE_BODY_8BITMIME] = "8bitmime",
	[QUEUE_BODY_BINARYMIME] = "binarymime",
};

static const char *const ret_words[] = {
	[QUEUE_RET_NONE] = "none",
	[QUEUE_RET_FULL] = "full",
	[QUEUE_RET_HDRS] = "hdrs",
};

static const char *const status_words[] = {
	[QUEUE_RECIPIENT_PENDING] = "pending",
	[QUEUE_RECIPIENT_DELIVERED] = "delivered",
	[QUEUE_RECIPIENT_FAILED] = "failed",
};

/* In the one order they are written. */
static const struct notify_word {
	unsigned bit;
	const char *word;
} notify_words[] = {
	{ QUEUE_NOTIFY_SUCCESS, "success" },
	{ QUEUE_NOTIFY_FAILURE, "failure" },
	{ QUEUE_NOTIFY_DELAY, "delay" },
};

static bool notify_is_valid(unsigned notify)
{
	if (notify == QUEUE_NOTIFY_NEVER)
		return true;
	return (notify & ~(QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY)) == 0;
}

static void text_add_notify(struct text *t, unsigned notify)
{
	bool is_first = true;

	text_add_cstr(t, "notify ");
	if (notify == QUEUE_NOTIFY_NEVER) {
		text_add_cstr(t, "never");
	} else {
		for (size_t i = 0; i < ARRAY_LEN(notify_words); i++) {
			if (!(notify & notify_words[i].bit))
				continue;
			if (!is_first)
				text_add(t, ",", 1);
			text_add_cstr(t, notify_words[i].word);
			is_first = false;
		}
	}
	text_end_line(t);
}

/* --- the envelope ------------------------------------------------------- */

void queue_envelope_init(struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
}

void queue_envelope_clear(struct queue_envelope *env)
{
	free(env->reverse_path);
	free(env->client_address);
	free(env->helo);
	free(env->auth_user);
	free(env->envid);
	for (size_t i = 0; i < env->recipient_count; i++) {
		free(env->recipients[i].address);
		free(env->recipients[i].orcpt);
		free(env->recipients[i].alias);
	}
	free(env->recipients);
	queue_envelope_init(env);
}

int queue_envelope_string_set(char **field, struct span value, struct error *err)
{
	char *copy;

	if (value.len > QUEUE_ENVELOPE_STRING_MAX)
		return error_set(err, ERROR_DATA, "envelope: string longer than %d bytes",
				 QUEUE_ENVELOPE_STRING_MAX);
	if (span_has_byte(value, 0))
		return error_set(err, ERROR_DATA, "envelope: string holds a NUL byte");
	copy = malloc(value.len + 1);
	if (copy == NULL)
		return error_set(err, ERROR_SOFTWARE, "envelope: out of memory");
	if (value.len > 0)
		memcpy(copy, value.ptr, value.len);
	copy[value.len] = '\0';
	free(*field);
	*field = copy;
	return 0;
}

int queue_envelope_add_recipient(struct queue_envelope *env, struct span address,
				 struct queue_recipient **recipient_out, struct error *err)
{
	struct queue_recipient *grown;
	char *copy = NULL;

	if (env->recipient_count >= QUEUE_ENVELOPE_RECIPIENTS_MAX)
		return error_set(err, ERROR_DATA, "envelope: more than %d recipients",
				 QUEUE_ENVELOPE_RECIPIENTS_MAX);
	if (address.len == 0)
		return error_set(err, ERROR_DATA, "envelope: empty recipient address");
	if (queue_envelope_string_set(&copy, address, err) < 0)
		return -1;
	grown = realloc(env->recipients, (env->recipient_count + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(copy);
		return error_set(err, ERROR_SOFTWARE, "envelope: out of memory");
	}
	env->recipients = grown;
	grown = &env->recipients[env->recipient_count++];
	memset(grown, 0, sizeof(*grown));
	grown->address = copy;
	if (recipient_out != NULL)
		*recipient_out = grown;
	return 0;
}

static bool string_fits(const char *s)
{
	return strlen(s) <= QUEUE_ENVELOPE_STRING_MAX;
}

static int envelope_check(const struct queue_envelope *env, struct error *err)
{
	if (env->reverse_path == NULL || env->client_address == NULL || env->helo == NULL)
		return error_set(err, ERROR_DATA,
				 "envelope: reverse-path, client address or HELO "
				 "missing");
	if (!string_fits(env->reverse_path) || !string_fits(env->client_address) ||
	    !string_fits(env->helo) || (env->auth_user && !string_fits(env->auth_user)) ||
	    (env->envid && !string_fits(env->envid)))
		return error_set(err, ERROR_DATA, "envelope: string longer than %d bytes",
				 QUEUE_ENVELOPE_STRING_MAX);
	if ((unsigned) env->body_type >= ARRAY_LEN(body_words) ||
	    (unsigned) env->ret >= ARRAY_LEN(ret_words))
		return error_set(err, ERROR_DATA, "envelope: bad BODY or RET value");
	if (env->recipient_count == 0 || env->recipient_count > QUEUE_ENVELOPE_RECIPIENTS_MAX)
		return error_set(err, ERROR_DATA, "envelope: %zu recipients (1..%d allowed)",
				 env->recipient_count, QUEUE_ENVELOPE_RECIPIENTS_MAX);
	for (size_t i = 0; i < env->recipient_count; i++) {
		const struct queue_recipient *r = &env->recipients[i];

		if (r->address == NULL || r->address[0] == '\0' || !string_fits(r->address) ||
		    (r->orcpt && !string_fits(r->orcpt)) || (r->alias && !string_fits(r->alias)))
			return error_set(err, ERROR_DATA,
					 "envelope: recipient %zu: bad address, "
					 "ORCPT or alias",
					 i);
		if (!notify_is_valid(r->notify))
			return error_set(err, ERROR_DATA, "envelope: recipient %zu: bad NOTIFY", i);
	}
	return 0;
}

int queue_envelope_serialize(const struct queue_envelope *env, char **text_out, size_t *len_out,
			     struct error *err)
{
	struct text t = { 0 };

	if (envelope_check(env, err) < 0)
		return -1;
	text_add_cstr(&t, ENVELOPE_VERSION_LINE);
	text_end_line(&t);
	text_add_number_line(&t, "received-at", env->received_at);
	text_add_string_line(&t, "client-address", env->client_address);
	text_add_string_line(&t, "helo", env->helo);
	if (env->auth_user != NULL)
		text_add_string_line(&t, "auth-user", env->auth_user);
	text_add_string_line(&t, "reverse-path", env->reverse_path);
	text_add_word_line(&t, "smtputf8", env->is_smtputf8 ? "yes" : "no");
	text_add_word_line(&t, "body", body_words[env->body_type]);
	text_add_word_line(&t, "ret", ret_words[env->ret]);
	if (env->envid != NULL)
		text_add_string_line(&t, "envid", env->envid);
	for (size_t i = 0; i < env->recipient_count; i++) {
		const struct queue_recipient *r = &env->recipients[i];

		text_add_string_line(&t, "rcpt", r->address);
		if (r->orcpt != NULL)
			text_add_string_line(&t, "orcpt", r->orcpt);
		if (r->notify != 0)
			text_add_notify(&t, r->notify);
		if (r->alias != NULL)
			text_add_string_line(&t, "alias", r->alias);
	}
	text_add_cstr(&t, "end");
	text_end_line(&t);
	return text_finish(&t, text_out, len_out, err);
}

/* --- reading lines ------------------------------------------------------ */

struct line_reader {
	struct span text;
	size_t pos;
	unsigned number; /* of the line last read, from 1 */
};

struct line {
	struct span key;
	struct span value; /* len 0 when the line is the key alone */
};

/* 1 with the next line, 0 at the end of the text, -1 on a malformed line. */
static int line_next(struct line_reader *r, struct line *line_out, struct error *err)
{
	struct span rest, whole;
	long lf;

	if (r->pos == r->text.len)
		return 0;
	r->number++;
	rest = span_make(r->text.ptr + r->pos, r->text.len - r->pos);
	lf = span_find(rest, 0, '\n');
	if (lf < 0)
		return error_set(err, ERROR_DATA, "line %u: no LF: the file is cut short",
				 r->number);
	if ((size_t) lf + 1 > QUEUE_ENVELOPE_LINE_MAX)
		return error_set(err, ERROR_DATA, "line %u: longer than %d bytes", r->number,
				 QUEUE_ENVELOPE_LINE_MAX);
	whole = span_make(rest.ptr, (size_t) lf);
	r->pos += (size_t) lf + 1;
	if (!span_split_first(whole, ' ', &line_out->key, &line_out->value)) {
		line_out->key = whole;
		line_out->value = span_make(whole.ptr + whole.len, 0);
	} else if (line_out->value.len == 0) {
		return error_set(err, ERROR_DATA, "line %u: a space but no value", r->number);
	}
	return 1;
}

/* Decode canonical xtext: only bytes that must be escaped are, as "+HH" with
 * upper-case hex, and none decodes to NUL. */
static int xtext_decode(struct span value, unsigned line_number, char **out, struct error *err)
{
	static const char hex[] = "0123456789ABCDEF";
	char *decoded = malloc(value.len + 1);
	size_t n = 0;

	if (decoded == NULL)
		return error_set(err, ERROR_SOFTWARE, "envelope: out of memory");
	for (size_t i = 0; i < value.len; i++) {
		unsigned char c = (unsigned char) value.ptr[i];
		const char *hi, *lo;

		if (c != '+') {
			if (!xtext_is_plain(c))
				goto bad;
			decoded[n++] = (char) c;
			continue;
		}
		if (value.len - i < 3)
			goto bad;
		/* 16, not 17: the terminating NUL of hex is no digit. */
		hi = memchr(hex, value.ptr[i + 1], 16);
		lo = memchr(hex, value.ptr[i + 2], 16);
		if (hi == NULL || lo == NULL)
			goto bad;
		c = (unsigned char) (((hi - hex) << 4) | (lo - hex));
		if (c == 0 || xtext_is_plain(c))
			goto bad;
		decoded[n++] = (char) c;
		i += 2;
	}
	if (n > QUEUE_ENVELOPE_STRING_MAX) {
		free(decoded);
		return error_set(err, ERROR_DATA, "line %u: value longer than %d bytes",
				 line_number, QUEUE_ENVELOPE_STRING_MAX);
	}
	decoded[n] = '\0';
	free(*out);
	*out = decoded;
	return 0;
bad:
	free(decoded);
	return error_set(err, ERROR_DATA, "line %u: bad xtext", line_number);
}

/* Decimal, no leading zero: the one way the serializer writes it. */
static int number_parse(struct line *line, unsigned line_number, uint64_t max, uint64_t *value_out,
			struct error *err)
{
	if (line->value.len > 1 && line->value.ptr[0] == '0')
		return error_set(err, ERROR_DATA, "line %u: leading zero", line_number);
	if (!span_parse_u64(line->value, value_out) || *value_out > max)
		return error_set(err, ERROR_DATA, "line %u: bad number", line_number);
	return 0;
}

static int word_parse(struct span value, const char *const *words, size_t count,
		      unsigned line_number, unsigned *index_out, struct error *err)
{
	for (size_t i = 0; i < count; i++) {
		if (span_eq_cstr(value, words[i])) {
			*index_out = (unsigned) i;
			return 0;
		}
	}
	return error_set(err, ERROR_DATA, "line %u: unknown value", line_number);
}

static int notify_parse(struct span value, unsigned line_number, unsigned *notify_out,
			struct error *err)
{
	unsigned notify = 0, last_bit = 0;
	struct span rest = value;

	if (span_eq_cstr(value, "never")) {
		*notify_out = QUEUE_NOTIFY_NEVER;
		return 0;
	}
	for (;;) {
		struct span word, after;
		bool has_more = span_split_first(rest, ',', &word, &after);
		unsigned bit = 0;

		if (!has_more)
			word = rest;
		for (size_t i = 0; i < ARRAY_LEN(notify_words); i++)
			if (span_eq_cstr(word, notify_words[i].word))
				bit = notify_words[i].bit;
		/* Each word once, in the written order. */
		if (bit == 0 || bit <= last_bit)
			return error_set(err, ERROR_DATA, "line %u: bad NOTIFY", line_number);
		notify |= bit;
		last_bit = bit;
		if (!has_more)
			break;
		rest = after;
	}
	*notify_out = notify;
	return 0;
}

/*
 * Keys come in the order of a table; optional ones may be left out. Finds
 * key at or after *next; -1 when it is unknown here, out of order, repeated,
 * or when a required key before it was skipped.
 */
struct key_row {
	const char *key;
	bool is_optional;
};

static int key_take(const struct key_row *rows, size_t count, size_t *next, struct span key,
		    unsigned line_number, size_t *index_out, struct error *err)
{
	for (size_t i = 0; i < count; i++) {
		if (!span_eq_cstr(key, rows[i].key))
			continue;
		if (i < *next)
			return error_set(err, ERROR_DATA, "line %u: %s repeated or out of order",
					 line_number, rows[i].key);
		for (size_t j = *next; j < i; j++)
			if (!rows[j].is_optional)
				return error_set(err, ERROR_DATA, "line %u: %s missing before %s",
						 line_number, rows[j].key, rows[i].key);
		*next = i + 1;
		*index_out = i;
		return 0;
	}
	return error_set(err, ERROR_DATA, "line %u: unknown key", line_number);
}

static int keys_complete(const struct key_row *rows, size_t count, size_t next,
			 unsigned line_number, struct error *err)
{
	for (size_t j = next; j < count; j++)
		if (!rows[j].is_optional)
			return error_set(err, ERROR_DATA, "line %u: %s missing", line_number,
					 rows[j].key);
	return 0;
}

static int version_expect(struct line_reader *r, const char *version_line, struct error *err)
{
	struct line line;
	int rc = line_next(r, &line, err);

	if (rc < 0)
		return -1;
	if (rc == 0 || r->pos - 1 != strlen(version_line) ||
	    memcmp(r->text.ptr, version_line, r->pos - 1) != 0)
		return error_set(err, ERROR_DATA, "line 1: not \"%s\"", version_line);
	return 0;
}

enum header_key {
	HEADER_RECEIVED_AT,
	HEADER_CLIENT_ADDRESS,
	HEADER_HELO,
	HEADER_AUTH_USER,
	HEADER_REVERSE_PATH,
	HEADER_SMTPUTF8,
	HEADER_BODY,
	HEADER_RET,
	HEADER_ENVID,
	HEADER_RCPT, /* ends the header part */
	HEADER_END,
};

// clang-format off
static const struct key_row header_rows[] = {
	[HEADER_RECEIVED_AT]    = { "received-at",    false },
	[HEADER_CLIENT_ADDRESS] = { "client-address", false },
	[HEADER_HELO]           = { "helo",           false },
	[HEADER_AUTH_USER]      = { "auth-user",      true },
	[HEADER_REVERSE_PATH]   = { "reverse-path",   false },
	[HEADER_SMTPUTF8]       = { "smtputf8",       false },
	[HEADER_BODY]           = { "body",           false },
	[HEADER_RET]            = { "ret",            false },
	[HEADER_ENVID]          = { "envid",          true },
	[HEADER_RCPT]           = { "rcpt",           false },
	[HEADER_END]            = { "end",            false },
};

enum recipient_key { RECIPIENT_ORCPT, RECIPIENT_NOTIFY, RECIPIENT_ALIAS };

static const struct key_row recipient_rows[] = {
	[RECIPIENT_ORCPT]  = { "orcpt",  true },
	[RECIPIENT_NOTIFY] = { "notify", true },
	[RECIPIENT_ALIAS]  = { "alias",  true },
};
// clang-format on

static const char *const yes_no[] = { "no", "yes" };

static int header_value(struct queue_envelope *env, enum header_key key, struct line *line,
			unsigned n, struct error *err)
{
	unsigned word = 0;

	/* Only string values may be empty. */
	switch (key) {
	case HEADER_RECEIVED_AT:
		return number_parse(line, n, UINT64_MAX, &env->received_at, err);
	case HEADER_CLIENT_ADDRESS:
		return xtext_decode(line->value, n, &env->client_address, err);
	case HEADER_HELO:
		return xtext_decode(line->value, n, &env->helo, err);
	case HEADER_AUTH_USER:
		return xtext_decode(line->value, n, &env->auth_user, err);
	case HEADER_REVERSE_PATH:
		return xtext_decode(line->value, n, &env->reverse_path, err);
	case HEADER_SMTPUTF8:
		if (word_parse(line->value, yes_no, ARRAY_LEN(yes_no), n, &word, err) < 0)
			return -1;
		env->is_smtputf8 = word == 1;
		return 0;
	case HEADER_BODY:
		if (word_parse(line->value, body_words, ARRAY_LEN(body_words), n, &word, err) < 0)
			return -1;
		env->body_type = (enum queue_body_type) word;
		return 0;
	case HEADER_RET:
		if (word_parse(line->value, ret_words, ARRAY_LEN(ret_words), n, &word, err) < 0)
			return -1;
		env->ret = (enum queue_ret) word;
		return 0;
	case HEADER_ENVID:
		return xtext_decode(line->value, n, &env->envid, err);
	case HEADER_RCPT:
	case HEADER_END:
		break;
	}
	return error_set(err, ERROR_SOFTWARE, "line %u: unexpected key", n);
}

static int recipient_value(struct queue_recipient *r, enum recipient_key key, struct line *line,
			   unsigned n, struct error *err)
{
	switch (key) {
	case RECIPIENT_ORCPT:
		return xtext_decode(line->value, n, &r->orcpt, err);
	case RECIPIENT_NOTIFY:
		return notify_parse(line->value, n, &r->notify, err);
	case RECIPIENT_ALIAS:
		return xtext_decode(line->value, n, &r->alias, err);
	}
	return error_set(err, ERROR_SOFTWARE, "line %u: unexpected key", n);
}

int queue_envelope_parse(struct span text, struct queue_envelope *env_out, struct error *err)
{
	struct line_reader r = { text, 0, 0 };
	struct queue_recipient *current = NULL;
	size_t header_next = 0, recipient_next = 0;
	struct line line;
	int rc;

	queue_envelope_init(env_out);
	if (version_expect(&r, ENVELOPE_VERSION_LINE, err) < 0)
		return -1;
	while ((rc = line_next(&r, &line, err)) > 0) {
		size_t index = 0;

		if (current != NULL && !span_eq_cstr(line.key, "rcpt") &&
		    !span_eq_cstr(line.key, "end")) {
			if (key_take(recipient_rows, ARRAY_LEN(recipient_rows), &recipient_next,
				     line.key, r.number, &index, err) < 0) {
				for (size_t h = 0; h < HEADER_RCPT; h++)
					if (span_eq_cstr(line.key, header_rows[h].key))
						return error_set(err, ERROR_DATA,
								 "line %u: %s after a rcpt",
								 r.number, header_rows[h].key);
				return -1;
			}
			if (recipient_value(current, (enum recipient_key) index, &line, r.number,
					    err) < 0)
				return -1;
			continue;
		}
		if (current != NULL && span_eq_cstr(line.key, "rcpt")) {
			index = HEADER_RCPT; /* another recipient */
		} else if (key_take(header_rows, ARRAY_LEN(header_rows), &header_next, line.key,
				    r.number, &index, err) < 0) {
			return -1;
		}
		if (index == HEADER_END) {
			if (line.value.len != 0)
				return error_set(err, ERROR_DATA, "line %u: value after end",
						 r.number);
			if (r.pos != text.len)
				return error_set(err, ERROR_DATA, "line %u: text after end",
						 r.number + 1);
			return 0;
		}
		if (index == HEADER_RCPT) {
			struct span address;
			char *decoded = NULL;
			int added;

			if (line.value.len == 0)
				return error_set(err, ERROR_DATA, "line %u: empty recipient",
						 r.number);
			if (env_out->recipient_count >= QUEUE_ENVELOPE_RECIPIENTS_MAX)
				return error_set(err, ERROR_DATA,
						 "line %u: more than %d recipients", r.number,
						 QUEUE_ENVELOPE_RECIPIENTS_MAX);
			if (xtext_decode(line.value, r.number, &decoded, err) < 0)
				return -1;
			address = span_from_cstr(decoded);
			added = queue_envelope_add_recipient(env_out, address, &current, err);
			free(decoded);
			if (added < 0)
				return -1;
			recipient_next = 0;
			continue;
		}
		if (header_value(env_out, (enum header_key) index, &line, r.number, err) < 0)
			return -1;
	}
	if (rc < 0)
		return -1;
	return keys_complete(header_rows, ARRAY_LEN(header_rows), header_next, r.number + 1, err);
}

static bool string_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

bool queue_envelope_equal(const struct queue_envelope *a, const struct queue_envelope *b)
{
	if (!string_equal(a->reverse_path, b->reverse_path) || a->received_at != b->received_at ||
	    !string_equal(a->client_address, b->client_address) ||
	    !string_equal(a->helo, b->helo) || !string_equal(a->auth_user, b->auth_user) ||
	    a->is_smtputf8 != b->is_smtputf8 || a->body_type != b->body_type || a->ret != b->ret ||
	    !string_equal(a->envid, b->envid) || a->recipient_count != b->recipient_count)
		return false;
	for (size_t i = 0; i < a->recipient_count; i++) {
		const struct queue_recipient *x = &a->recipients[i], *y = &b->recipients[i];

		if (!string_equal(x->address, y->address) || !string_equal(x->orcpt, y->orcpt) ||
		    x->notify != y->notify || !string_equal(x->alias, y->alias))
			return false;
	}
	return true;
}

/* --- the delivery state ------------------------------------------------- */

int queue_state_init(struct queue_state *state, size_t recipient_count, struct error *err)
{
	memset(state, 0, sizeof(*state));
	if (recipient_count == 0 || recipient_count > QUEUE_ENVELOPE_RECIPIENTS_MAX)
		return error_set(err, ERROR_DATA, "state: %zu recipients (1..%d allowed)",
				 recipient_count, QUEUE_ENVELOPE_RECIPIENTS_MAX);
	state->recipients = calloc(recipient_count, sizeof(*state->recipients));
	if (state->recipients == NULL)
		return error_set(err, ERROR_SOFTWARE, "state: out of memory");
	state->recipient_count = recipient_count;
	return 0;
}

void queue_state_clear(struct queue_state *state)
{
	for (size_t i = 0; i < state->recipient_count; i++)
		free(state->recipients[i].reply);
	free(state->recipients);
	memset(state, 0, sizeof(*state));
}

int queue_state_set(struct queue_state *state, size_t index, enum queue_recipient_status status,
		    const char *reply, struct error *err)
{
	struct queue_recipient_state *r;

	if (index >= state->recipient_count)
		return error_set(err, ERROR_DATA, "state: recipient %zu of %zu", index,
				 state->recipient_count);
	if ((unsigned) status >= ARRAY_LEN(status_words))
		return error_set(err, ERROR_DATA, "state: bad status");
	r = &state->recipients[index];
	/* An empty reply is no reply: the file cannot tell them apart. */
	if (reply != NULL && reply[0] != '\0') {
		if (queue_envelope_string_set(&r->reply, span_from_cstr(reply), err) < 0)
			return -1;
	} else {
		free(r->reply);
		r->reply = NULL;
	}
	r->status = status;
	return 0;
}

bool queue_state_is_done(const struct queue_state *state)
{
	for (size_t i = 0; i < state->recipient_count; i++)
		if (state->recipients[i].status == QUEUE_RECIPIENT_PENDING)
			return false;
	return true;
}

int queue_state_serialize(const struct queue_state *state, char **text_out, size_t *len_out,
			  struct error *err)
{
	struct text t = { 0 };

	if (state->recipient_count == 0 || state->recipient_count > QUEUE_ENVELOPE_RECIPIENTS_MAX)
		return error_set(err, ERROR_DATA, "state: %zu recipients (1..%d allowed)",
				 state->recipient_count, QUEUE_ENVELOPE_RECIPIENTS_MAX);
	for (size_t i = 0; i < state->recipient_count; i++) {
		const struct queue_recipient_state *r = &state->recipients[i];

		if ((unsigned) r->status >= ARRAY_LEN(status_words) ||
		    (r->reply != NULL && (r->reply[0] == '\0' || !string_fits(r->reply))))
			return error_set(err, ERROR_DATA,
					 "state: recipient %zu: bad status or reply", i);
	}
	text_add_cstr(&t, STATE_VERSION_LINE);
	text_end_line(&t);
	text_add_number_line(&t, "attempts", state->attempt_count);
	text_add_number_line(&t, "next-attempt", state->next_attempt_at);
	if (state->is_delay_warned) {
		text_add_cstr(&t, "delay-warned");
		text_end_line(&t);
	}
	for (size_t i = 0; i < state->recipient_count; i++) {
		const struct queue_recipient_state *r = &state->recipients[i];

		text_add_cstr(&t, "rcpt ");
		text_add_u64(&t, i);
		text_add(&t, " ", 1);
		text_add_cstr(&t, status_words[r->status]);
		if (r->reply != NULL) {
			text_add(&t, " ", 1);
			text_add_xtext(&t, r->reply);
		}
		text_end_line(&t);
	}
	text_add_cstr(&t, "end");
	text_end_line(&t);
	return text_finish(&t, text_out, len_out, err);
}

enum state_key { STATE_ATTEMPTS, STATE_NEXT_ATTEMPT, STATE_DELAY_WARNED, STATE_RCPT, STATE_END };

// clang-format off
static const struct key_row state_rows[] = {
	[STATE_ATTEMPTS]     = { "attempts",     false },
	[STATE_NEXT_ATTEMPT] = { "next-attempt", false },
	[STATE_DELAY_WARNED] = { "delay-warned", true },
	[STATE_RCPT]         = { "rcpt",         false },
	[STATE_END]          = { "end",          false },
};
// clang-format on

/* "INDEX STATUS[ REPLY]", INDEX being the next recipient's. */
static int state_recipient_parse(struct queue_state *state, struct span value, unsigned n,
				 struct error *err)
{
	struct span index_word, rest, status_word, reply;
	struct queue_recipient_state *grown, *r;
	struct line index_line;
	uint64_t index;
	unsigned status = 0;

	if (state->recipient_count >= QUEUE_ENVELOPE_RECIPIENTS_MAX)
		return error_set(err, ERROR_DATA, "line %u: more than %d recipients", n,
				 QUEUE_ENVELOPE_RECIPIENTS_MAX);
	if (!span_split_first(value, ' ', &index_word, &rest))
		return error_set(err, ERROR_DATA, "line %u: no status", n);
	index_line.value = index_word;
	if (number_parse(&index_line, n, UINT64_MAX, &index, err) < 0)
		return -1;
	if (index != state->recipient_count)
		return error_set(err, ERROR_DATA, "line %u: recipient %llu where %zu was due", n,
				 (unsigned long long) index, state->recipient_count);
	if (!span_split_first(rest, ' ', &status_word, &reply)) {
		status_word = rest;
		reply = span_make(NULL, 0);
	} else if (reply.len == 0) {
		return error_set(err, ERROR_DATA, "line %u: a space but no reply", n);
	}
	if (word_parse(status_word, status_words, ARRAY_LEN(status_words), n, &status, err) < 0)
		return -1;
	grown = realloc(state->recipients, (state->recipient_count + 1) * sizeof(*grown));
	if (grown == NULL)
		return error_set(err, ERROR_SOFTWARE, "state: out of memory");
	state->recipients = grown;
	r = &state->recipients[state->recipient_count++];
	r->status = (enum queue_recipient_status) status;
	r->reply = NULL;
	if (reply.len > 0 && xtext_decode(reply, n, &r->reply, err) < 0)
		return -1;
	return 0;
}

int queue_state_parse(struct span text, struct queue_state *state_out, struct error *err)
{
	struct line_reader r = { text, 0, 0 };
	size_t next = 0;
	struct line line;
	uint64_t number;
	int rc;

	memset(state_out, 0, sizeof(*state_out));
	if (version_expect(&r, STATE_VERSION_LINE, err) < 0)
		return -1;
	while ((rc = line_next(&r, &line, err)) > 0) {
		size_t index = 0;

		if (state_out->recipient_count > 0 && span_eq_cstr(line.key, "rcpt"))
			index = STATE_RCPT;
		else if (key_take(state_rows, ARRAY_LEN(state_rows), &next, line.key, r.number,
				  &index, err) < 0)
			return -1;
		switch ((enum state_key) index) {
		case STATE_ATTEMPTS:
			if (number_parse(&line, r.number, UINT32_MAX, &number, err) < 0)
				return -1;
			state_out->attempt_count = (uint32_t) number;
			break;
		case STATE_NEXT_ATTEMPT:
			if (number_parse(&line, r.number, UINT64_MAX, &number, err) < 0)
				return -1;
			state_out->next_attempt_at = number;
			break;
		case STATE_DELAY_WARNED:
			if (line.value.len != 0)
				return error_set(err, ERROR_DATA,
						 "line %u: delay-warned takes no value", r.number);
			state_out->is_delay_warned = true;
			break;
		case STATE_RCPT:
			if (state_recipient_parse(state_out, line.value, r.number, err) < 0)
				return -1;
			break;
		case STATE_END:
			if (line.value.len != 0)
				return error_set(err, ERROR_DATA, "line %u: value after end",
						 r.number);
			if (r.pos != text.len)
				return error_set(err, ERROR_DATA, "line %u: text after end",
						 r.number + 1);
			return 0;
		}
	}
	if (rc < 0)
		return -1;
	return keys_complete(state_rows, ARRAY_LEN(state_rows), next, r.number + 1, err);
}

bool queue_state_equal(const struct queue_state *a, const struct queue_state *b)
{
	if (a->attempt_count != b->attempt_count || a->next_attempt_at != b->next_attempt_at ||
	    a->is_delay_warned != b->is_delay_warned || a->recipient_count != b->recipient_count)
		return false;
	for (size_t i = 0; i < a->recipient_count; i++)
		if (a->recipients[i].status != b->recipients[i].status ||
		    !string_equal(a->recipients[i].reply, b->recipients[i].reply))
			return false;
	return true;
}
