/*
 * parse: the grammar of RFC 5321 4.1.2 and of the ESMTP parameters we know,
 * over borrowed bytes. Owns no state and does no I/O: every function reads
 * its span, writes its out-parameters and returns. It never reads past a
 * span's len and never trusts a NUL.
 *
 * Lengths: RFC 5321 4.5.3.1 sets minimum maximums ("To the maximum extent
 * possible, implementation techniques that impose no limits ... should be
 * used"). We enforce the local part (64) and domain (255) limits because the
 * struct holds them in fixed arrays; the 256-octet path limit of 4.5.3.1.3 is
 * not enforced on its own (it would make a valid 255-octet domain unusable),
 * and the 512-octet command line bounds the whole anyway.
 */
#include "smtp/parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

enum path_result {
	PATH_OK,
	PATH_SYNTAX,
	PATH_TOO_LONG,
};

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* atext of RFC 5322 3.2.3, which RFC 5321 4.1.2 uses for Atom. */
static bool is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	switch (c) {
	case '!':
	case '#':
	case '$':
	case '%':
	case '&':
	case '\'':
	case '*':
	case '+':
	case '-':
	case '/':
	case '=':
	case '?':
	case '^':
	case '_':
	case '`':
	case '{':
	case '|':
	case '}':
	case '~':
		return true;
	default:
		return false;
	}
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Length of the well-formed UTF-8 sequence that starts at s.ptr[i] (an octet
 * >= 0x80), or 0 when it is ill-formed. The table of RFC 3629 4 rules out
 * overlong forms (C0, C1, E0 80-9F, F0 80-8F), surrogates (ED A0-BF) and code
 * points past U+10FFFF (F4 90-, F5-FF).
 */
static size_t utf8_sequence_len(struct span s, size_t i)
{
	const unsigned char *p = (const unsigned char *) s.ptr + i;
	size_t avail = s.len - i;
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;

	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		n = 2;
	} else if (p[0] == 0xE0) {
		n = 3;
		lo = 0xA0;
	} else if ((p[0] >= 0xE1 && p[0] <= 0xEC) || p[0] == 0xEE || p[0] == 0xEF) {
		n = 3;
	} else if (p[0] == 0xED) {
		n = 3;
		hi = 0x9F;
	} else if (p[0] == 0xF0) {
		n = 4;
		lo = 0x90;
	} else if (p[0] >= 0xF1 && p[0] <= 0xF3) {
		n = 4;
	} else if (p[0] == 0xF4) {
		n = 4;
		hi = 0x8F;
	} else {
		return 0;
	}
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++)
		if (p[k] < 0x80 || p[k] > 0xBF)
			return 0;
	return n;
}

/* True when every octet is printable ASCII (0x20-0x7E) or, with allow_utf8,
 * part of well-formed UTF-8: what RFC 3461 4.2 and 4.4 allow in a decoded
 * ORCPT or ENVID. */
static bool is_printable_text(struct span s, bool allow_utf8)
{
	for (size_t i = 0; i < s.len;) {
		unsigned char c = (unsigned char) s.ptr[i];

		if (c >= 0x20 && c <= 0x7E) {
			i++;
			continue;
		}
		if (c < 0x80 || !allow_utf8)
			return false;
		size_t n = utf8_sequence_len(s, i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

void smtp_command_split(struct span line, struct span *verb_out, struct span *args_out)
{
	struct span args;

	span_split_word(line, verb_out, &args);
	while (args.len > 0 && args.ptr[args.len - 1] == ' ')
		args.len--;
	*args_out = args;
}

enum smtp_line_result smtp_line_check(struct span line)
{
	for (size_t i = 0; i < line.len; i++) {
		switch (line.ptr[i]) {
		case '\0':
			return SMTP_LINE_HAS_NUL;
		case '\r':
			return SMTP_LINE_HAS_BARE_CR;
		case '\n':
			return SMTP_LINE_HAS_BARE_LF;
		default:
			break;
		}
	}
	return SMTP_LINE_OK;
}

/*
 * Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]
 * (RFC 5321 4.1.2), or a U-label with allow_utf8 (RFC 6531 3.3). Scans from
 * *pos and stops before the first octet that cannot continue the domain.
 *
 * SMTP_LABEL_MAX is checked for ASCII labels only: the 63-octet DNS limit
 * applies to a U-label's A-label form, which can be much shorter than its
 * UTF-8 (22 CJK characters are 66 octets); store/address converts to A-labels
 * and checks that form. U-labels are bounded by SMTP_DOMAIN_MAX like the rest.
 */
static bool scan_domain(struct span s, size_t *pos, bool allow_utf8, bool *has_utf8)
{
	size_t i = *pos;

	for (;;) {
		size_t start = i;
		bool is_u_label = false;

		while (i < s.len) {
			unsigned char c = (unsigned char) s.ptr[i];

			if (is_alpha(c) || is_digit(c) || c == '-') {
				i++;
			} else if (c >= 0x80 && allow_utf8) {
				size_t n = utf8_sequence_len(s, i);

				if (n == 0)
					return false;
				i += n;
				is_u_label = true;
			} else {
				break;
			}
		}
		if (i == start || s.ptr[start] == '-' || s.ptr[i - 1] == '-')
			return false;
		if (!is_u_label && i - start > SMTP_LABEL_MAX)
			return false;
		if (is_u_label)
			*has_utf8 = true;
		if (i < s.len && s.ptr[i] == '.') {
			i++;
			continue;
		}
		*pos = i;
		return true;
	}
}

bool smtp_domain_is_valid(struct span domain, bool allow_utf8)
{
	size_t pos = 0;
	bool has_utf8 = false;

	return domain.len <= SMTP_DOMAIN_MAX && scan_domain(domain, &pos, allow_utf8, &has_utf8) &&
	       pos == domain.len;
}

bool smtp_address_literal_is_valid(struct span literal)
{
	/* Room for the longest text inet_pton accepts, plus one so that a
	 * longer literal is refused by span_copy_cstr instead of cut. */
	char text[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];
	struct span inner;

	if (literal.len < 2 || literal.ptr[0] != '[' || literal.ptr[literal.len - 1] != ']')
		return false;
	inner = span_make(literal.ptr + 1, literal.len - 2);
	if (span_starts_with_nocase(inner, "IPv6:")) {
		inner = span_make(inner.ptr + 5, inner.len - 5);
		return span_copy_cstr(inner, text, sizeof(text)) &&
		       inet_pton(AF_INET6, text, addr) == 1;
	}
	return span_copy_cstr(inner, text, sizeof(text)) && inet_pton(AF_INET, text, addr) == 1;
}

/* "[" ... "]" at *pos; the literal must pass smtp_address_literal_is_valid. */
static bool scan_address_literal(struct span s, size_t *pos)
{
	long close = span_find(s, *pos, ']');

	if (close < 0)
		return false;
	if (!smtp_address_literal_is_valid(span_make(s.ptr + *pos, (size_t) close + 1 - *pos)))
		return false;
	*pos = (size_t) close + 1;
	return true;
}

/* Dot-string = Atom *("." Atom) (RFC 5321 4.1.2); atext =/ UTF8-non-ascii
 * with allow_utf8 (RFC 6531 3.3). */
static bool scan_dot_string(struct span s, size_t *pos, bool allow_utf8, bool *has_utf8)
{
	size_t i = *pos;

	for (;;) {
		size_t start = i;

		while (i < s.len) {
			unsigned char c = (unsigned char) s.ptr[i];

			if (is_atext(c)) {
				i++;
			} else if (c >= 0x80 && allow_utf8) {
				size_t n = utf8_sequence_len(s, i);

				if (n == 0)
					return false;
				i += n;
				*has_utf8 = true;
			} else {
				break;
			}
		}
		if (i == start)
			return false;
		if (i < s.len && s.ptr[i] == '.') {
			i++;
			continue;
		}
		*pos = i;
		return true;
	}
}

/*
 * Quoted-string = DQUOTE *QcontentSMTP DQUOTE, quoted-pairSMTP = "\" %d32-126,
 * qtextSMTP = %d32-33 / %d35-91 / %d93-126 (RFC 5321 4.1.2), UTF-8 in qtext
 * with allow_utf8 (RFC 6531 3.3). An empty "" is refused: the grammar allows
 * it, but an empty local part names no mailbox we could look up.
 */
static bool scan_quoted_string(struct span s, size_t *pos, bool allow_utf8, bool *has_utf8)
{
	size_t i = *pos + 1;
	bool has_content = false;

	while (i < s.len) {
		unsigned char c = (unsigned char) s.ptr[i];

		if (c == '"') {
			*pos = i + 1;
			return has_content;
		}
		if (c == '\\') {
			unsigned char quoted;

			if (i + 1 >= s.len)
				return false;
			quoted = (unsigned char) s.ptr[i + 1];
			if (quoted < 32 || quoted > 126)
				return false;
			i += 2;
		} else if (c >= 32 && c <= 126) {
			i++;
		} else if (c >= 0x80 && allow_utf8) {
			size_t n = utf8_sequence_len(s, i);

			if (n == 0)
				return false;
			i += n;
			*has_utf8 = true;
		} else {
			return false;
		}
		has_content = true;
	}
	return false;
}

/* Copy a syntactically valid local part without its quoting; the result is
 * never longer than local. */
static void unquote_local(struct span local, char *out)
{
	size_t n = 0;

	if (local.len > 0 && local.ptr[0] == '"') {
		for (size_t i = 1; i + 1 < local.len; i++) {
			if (local.ptr[i] == '\\')
				i++;
			out[n++] = local.ptr[i];
		}
	} else {
		memcpy(out, local.ptr, local.len);
		n = local.len;
	}
	out[n] = '\0';
}

/*
 * Path = "<" [ A-d-l ":" ] Mailbox ">" / "<>" / "<Postmaster>" (RFC 5321
 * 4.1.2, 4.1.1.3). has_utf8 is set for any non-ASCII octet, the source route
 * included, so the caller can insist on SMTPUTF8 (RFC 6531 3.4).
 */
static enum path_result parse_path(struct span text, bool allow_utf8, struct smtp_path *out,
				   size_t *consumed_out)
{
	struct span s, local, domain = { NULL, 0 };
	size_t i;
	bool is_bracketed, has_route = false, is_too_long = false, is_quoted;

	if (text.len > 0 && text.ptr[0] == '<') {
		if (text.len >= 2 && text.ptr[1] == '>') {
			out->is_null = true;
			*consumed_out = 2;
			return PATH_OK;
		}
		s = text;
		i = 1;
		is_bracketed = true;
	} else {
		/*
		 * Old clients send "MAIL FROM:alice@example.test" without the
		 * angle brackets RFC 5321 4.1.2 requires; Postfix takes it
		 * too (strict_rfc821_envelopes = no, its default). We accept
		 * such a path only when it is one word: it ends at the first
		 * space, so a quoted local part holding a space needs the
		 * brackets, and what follows the space is read as parameters.
		 */
		long space = span_find(text, 0, ' ');

		s = span_make(text.ptr, space < 0 ? text.len : (size_t) space);
		i = 0;
		is_bracketed = false;
		if (s.len == 0)
			return PATH_SYNTAX;
	}

	/* A-d-l = At-domain *( "," At-domain ): parsed, then dropped (RFC 5321
	 * 4.1.2 and appendix C: receivers SHOULD ignore source routes). */
	if (i < s.len && s.ptr[i] == '@') {
		has_route = true;
		for (;;) {
			size_t start = ++i;

			if (!scan_domain(s, &i, allow_utf8, &out->has_utf8))
				return PATH_SYNTAX;
			if (i - start > SMTP_DOMAIN_MAX)
				is_too_long = true;
			if (i + 1 < s.len && s.ptr[i] == ',' && s.ptr[i + 1] == '@') {
				i++;
				continue;
			}
			if (i < s.len && s.ptr[i] == ':') {
				i++;
				break;
			}
			return PATH_SYNTAX;
		}
	}

	size_t local_start = i;

	is_quoted = i < s.len && s.ptr[i] == '"';
	if (is_quoted ? !scan_quoted_string(s, &i, allow_utf8, &out->has_utf8)
		      : !scan_dot_string(s, &i, allow_utf8, &out->has_utf8))
		return PATH_SYNTAX;
	local = span_make(s.ptr + local_start, i - local_start);

	if (i < s.len && s.ptr[i] == '@') {
		size_t start = ++i;

		if (i < s.len && s.ptr[i] == '[') {
			if (!scan_address_literal(s, &i))
				return PATH_SYNTAX;
		} else if (!scan_domain(s, &i, allow_utf8, &out->has_utf8)) {
			return PATH_SYNTAX;
		}
		domain = span_make(s.ptr + start, i - start);
	} else {
		/* "<Postmaster>" is the only mailbox without a domain; the
		 * name is case-insensitive (RFC 5321 4.5.1). */
		if (has_route || is_quoted || !span_eq_cstr_nocase(local, "postmaster"))
			return PATH_SYNTAX;
		out->is_postmaster = true;
	}

	if (is_bracketed) {
		if (i >= s.len || s.ptr[i] != '>')
			return PATH_SYNTAX;
		i++;
	} else if (i != s.len) {
		return PATH_SYNTAX;
	}
	if (is_too_long || local.len > SMTP_LOCAL_PART_MAX || domain.len > SMTP_DOMAIN_MAX)
		return PATH_TOO_LONG;

	memcpy(out->local, local.ptr, local.len);
	out->local[local.len] = '\0';
	unquote_local(local, out->local_unquoted);
	if (domain.len > 0)
		memcpy(out->domain, domain.ptr, domain.len);
	out->domain[domain.len] = '\0';
	if (out->is_postmaster)
		snprintf(out->address, sizeof(out->address), "%s", out->local);
	else
		snprintf(out->address, sizeof(out->address), "%s@%s", out->local, out->domain);
	*consumed_out = i;
	return PATH_OK;
}

bool smtp_path_parse(struct span text, bool allow_utf8, struct smtp_path *path_out,
		     size_t *consumed_out)
{
	size_t consumed = 0;

	memset(path_out, 0, sizeof(*path_out));
	if (parse_path(text, allow_utf8, path_out, &consumed) != PATH_OK) {
		memset(path_out, 0, sizeof(*path_out));
		return false;
	}
	*consumed_out = consumed;
	return true;
}

/* xtext (RFC 3461 4) into out; with allow_utf8, well-formed UTF-8 passes
 * through as RFC 6533's utf-8-addr-unitext allows once SMTPUTF8 is in effect. */
static bool xtext_decode(struct span xtext, bool allow_utf8, char *out, size_t cap, size_t *len_out)
{
	size_t n = 0;

	if (cap == 0)
		return false;
	for (size_t i = 0; i < xtext.len;) {
		unsigned char c = (unsigned char) xtext.ptr[i];
		size_t take = 1, put = 1;
		unsigned char decoded = c;

		if (c == '+') {
			int hi, lo;

			if (xtext.len - i < 3)
				goto fail;
			hi = hex_value((unsigned char) xtext.ptr[i + 1]);
			lo = hex_value((unsigned char) xtext.ptr[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto fail;
			decoded = (unsigned char) (hi * 16 + lo);
			take = 3;
		} else if (c >= 0x80 && allow_utf8) {
			take = put = utf8_sequence_len(xtext, i);
			if (take == 0)
				goto fail;
		} else if (c < '!' || c > '~' || c == '=') {
			goto fail;
		}
		if (put >= cap - n)
			goto fail;
		if (take == put)
			memcpy(out + n, xtext.ptr + i, put);
		else
			out[n] = (char) decoded;
		n += put;
		i += take;
	}
	out[n] = '\0';
	*len_out = n;
	return true;
fail:
	out[0] = '\0';
	return false;
}

bool smtp_xtext_decode(struct span xtext, char *out, size_t cap, size_t *len_out)
{
	return xtext_decode(xtext, false, out, cap, len_out);
}

bool smtp_xtext_encode(struct span text, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	if (cap == 0)
		return false;
	for (size_t i = 0; i < text.len; i++) {
		unsigned char c = (unsigned char) text.ptr[i];

		if (c >= '!' && c <= '~' && c != '+' && c != '=') {
			if (n + 1 >= cap)
				goto too_long;
			out[n++] = (char) c;
		} else {
			if (n + 3 >= cap)
				goto too_long;
			out[n++] = '+';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return true;
too_long:
	out[0] = '\0';
	return false;
}

bool smtp_helo_parse(struct span args, char *out, size_t cap)
{
	while (args.len > 0 && args.ptr[args.len - 1] == ' ')
		args.len--;
	if (cap > 0)
		out[0] = '\0';
	if (args.len == 0 || args.len > SMTP_HELO_MAX)
		return false;
	for (size_t i = 0; i < args.len; i++)
		if ((unsigned char) args.ptr[i] < 0x21 || (unsigned char) args.ptr[i] > 0x7E)
			return false;
	return span_copy_cstr(args, out, cap);
}

/* One esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2). */
struct esmtp_param {
	struct span keyword;
	struct span value; /* empty when there is no "=" */
	bool has_value;
};

/*
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
 * esmtp-value = 1*(%d33-60 / %d62-126), =/ UTF8-non-ascii with allow_utf8
 * (RFC 6531 3.3).
 */
static bool split_param(struct span token, bool allow_utf8, struct esmtp_param *out)
{
	size_t i = 0;

	while (i < token.len && token.ptr[i] != '=') {
		unsigned char c = (unsigned char) token.ptr[i];

		if (!is_alpha(c) && !is_digit(c) && !(c == '-' && i > 0))
			return false;
		i++;
	}
	if (i == 0)
		return false;
	out->keyword = span_make(token.ptr, i);
	out->has_value = i < token.len;
	out->value = out->has_value ? span_make(token.ptr + i + 1, token.len - i - 1)
				    : span_make(token.ptr + token.len, 0);
	if (out->has_value && out->value.len == 0)
		return false;
	for (size_t k = 0; k < out->value.len;) {
		unsigned char c = (unsigned char) out->value.ptr[k];

		if (c >= 33 && c <= 126 && c != '=') {
			k++;
		} else if (c >= 0x80 && allow_utf8) {
			size_t n = utf8_sequence_len(out->value, k);

			if (n == 0)
				return false;
			k += n;
		} else {
			return false;
		}
	}
	return true;
}

/* The next space-separated token of *rest. RFC 5321 4.1.2 puts one SP
 * between parameters; a run is accepted. */
static bool next_token(struct span *rest, struct span *token_out)
{
	size_t i = 0, start;

	while (i < rest->len && rest->ptr[i] == ' ')
		i++;
	if (i == rest->len)
		return false;
	start = i;
	while (i < rest->len && rest->ptr[i] != ' ')
		i++;
	*token_out = span_make(rest->ptr + start, i - start);
	*rest = span_make(rest->ptr + i, rest->len - i);
	return true;
}

/*
 * "FROM:" / "TO:" and the path (RFC 5321 4.1.1.2, 4.1.1.3). One space after
 * the colon is tolerated: old clients send "MAIL FROM: <a@b>". The path is
 * parsed with UTF-8 allowed; callers insist on SMTPUTF8 afterwards, so a
 * non-ASCII address gets its own reply. params_out is what follows the path.
 */
static enum smtp_args_result parse_command_path(struct span args, const char *prefix,
						struct smtp_path *path, struct span *params_out)
{
	struct span rest;
	size_t consumed = 0;
	size_t prefix_len = strlen(prefix);

	if (!span_starts_with_nocase(args, prefix))
		return SMTP_ARGS_SYNTAX;
	rest = span_make(args.ptr + prefix_len, args.len - prefix_len);
	if (rest.len > 0 && rest.ptr[0] == ' ')
		rest = span_make(rest.ptr + 1, rest.len - 1);
	switch (parse_path(rest, true, path, &consumed)) {
	case PATH_OK:
		break;
	case PATH_TOO_LONG:
		return SMTP_ARGS_TOO_LONG;
	case PATH_SYNTAX:
	default:
		return SMTP_ARGS_SYNTAX;
	}
	*params_out = span_make(rest.ptr + consumed, rest.len - consumed);
	if (params_out->len > 0 && params_out->ptr[0] != ' ')
		return SMTP_ARGS_SYNTAX;
	return SMTP_ARGS_OK;
}

/* Index of keyword in names (case-insensitive), or -1. */
static int keyword_find(struct span keyword, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (span_eq_cstr_nocase(keyword, names[i]))
			return (int) i;
	return -1;
}

enum mail_param {
	MAIL_PARAM_SIZE,
	MAIL_PARAM_BODY,
	MAIL_PARAM_SMTPUTF8,
	MAIL_PARAM_RET,
	MAIL_PARAM_ENVID,
	MAIL_PARAM_AUTH,
};

static const char *const mail_param_names[] = {
	[MAIL_PARAM_SIZE] = "SIZE",	    /* RFC 1870 */
	[MAIL_PARAM_BODY] = "BODY",	    /* RFC 6152, RFC 3030 */
	[MAIL_PARAM_SMTPUTF8] = "SMTPUTF8", /* RFC 6531 */
	[MAIL_PARAM_RET] = "RET",	    /* RFC 3461 4.3 */
	[MAIL_PARAM_ENVID] = "ENVID",	    /* RFC 3461 4.4 */
	[MAIL_PARAM_AUTH] = "AUTH",	    /* RFC 4954 5 */
};

static enum smtp_args_result apply_mail_param(struct smtp_mail_args *out, int which,
					      const struct esmtp_param *p)
{
	size_t len;

	if (which != MAIL_PARAM_SMTPUTF8 && !p->has_value)
		return SMTP_ARGS_BAD_PARAM_VALUE;
	switch (which) {
	case MAIL_PARAM_SIZE:
		/* size-value = 1*20DIGIT; span_parse_u64 refuses overflow. */
		if (!span_parse_u64(p->value, &out->size))
			return SMTP_ARGS_BAD_PARAM_VALUE;
		out->has_size = true;
		return SMTP_ARGS_OK;
	case MAIL_PARAM_BODY:
		if (span_eq_cstr_nocase(p->value, "7BIT"))
			out->body = SMTP_BODY_7BIT;
		else if (span_eq_cstr_nocase(p->value, "8BITMIME"))
			out->body = SMTP_BODY_8BITMIME;
		else if (span_eq_cstr_nocase(p->value, "BINARYMIME"))
			out->body = SMTP_BODY_BINARYMIME;
		else
			return SMTP_ARGS_BAD_PARAM_VALUE;
		return SMTP_ARGS_OK;
	case MAIL_PARAM_SMTPUTF8:
		/* RFC 6531 3.4: the parameter has no value. */
		if (p->has_value)
			return SMTP_ARGS_BAD_PARAM_VALUE;
		out->is_smtputf8 = true;
		return SMTP_ARGS_OK;
	case MAIL_PARAM_RET:
		if (span_eq_cstr_nocase(p->value, "FULL"))
			out->ret = SMTP_RET_FULL;
		else if (span_eq_cstr_nocase(p->value, "HDRS"))
			out->ret = SMTP_RET_HDRS;
		else
			return SMTP_ARGS_BAD_PARAM_VALUE;
		return SMTP_ARGS_OK;
	case MAIL_PARAM_ENVID:
		/* RFC 3461 4.4: at most 100 characters of xtext, decoding to
		 * printable US-ASCII. */
		if (p->value.len > SMTP_ENVID_MAX ||
		    !xtext_decode(p->value, false, out->envid, sizeof(out->envid), &len) ||
		    !is_printable_text(span_make(out->envid, len), false))
			return SMTP_ARGS_BAD_PARAM_VALUE;
		out->has_envid = true;
		return SMTP_ARGS_OK;
	case MAIL_PARAM_AUTH:
		/* RFC 4954 5: "<>" or the xtext of a mailbox. Kept decoded;
		 * whether to trust it is the session's decision. */
		if (!xtext_decode(p->value, false, out->auth, sizeof(out->auth), &len) ||
		    !is_printable_text(span_make(out->auth, len), true))
			return SMTP_ARGS_BAD_PARAM_VALUE;
		out->has_auth = true;
		return SMTP_ARGS_OK;
	default:
		return SMTP_ARGS_UNKNOWN_PARAM;
	}
}

static enum smtp_args_result parse_mail(struct span args, struct smtp_mail_args *out)
{
	struct span params, token;
	enum smtp_args_result r;
	unsigned seen = 0;

	r = parse_command_path(args, "FROM:", &out->reverse_path, &params);
	if (r != SMTP_ARGS_OK)
		return r;
	/* A reverse-path names a mailbox with a domain, or is null. */
	if (out->reverse_path.is_postmaster)
		return SMTP_ARGS_SYNTAX;
	while (next_token(&params, &token)) {
		struct esmtp_param p;
		int which;

		if (!split_param(token, true, &p))
			return SMTP_ARGS_SYNTAX;
		which = keyword_find(p.keyword, mail_param_names, ARRAY_LEN(mail_param_names));
		if (which < 0)
			return SMTP_ARGS_UNKNOWN_PARAM;
		if (seen & (1u << which))
			return SMTP_ARGS_BAD_PARAM_VALUE;
		seen |= 1u << which;
		r = apply_mail_param(out, which, &p);
		if (r != SMTP_ARGS_OK)
			return r;
	}
	if (out->reverse_path.has_utf8 && !out->is_smtputf8)
		return SMTP_ARGS_NEEDS_SMTPUTF8;
	return SMTP_ARGS_OK;
}

enum smtp_args_result smtp_mail_parse(struct span args, struct smtp_mail_args *out)
{
	enum smtp_args_result r;

	memset(out, 0, sizeof(*out));
	r = parse_mail(args, out);
	if (r != SMTP_ARGS_OK)
		memset(out, 0, sizeof(*out));
	return r;
}

enum rcpt_param {
	RCPT_PARAM_NOTIFY,
	RCPT_PARAM_ORCPT,
};

static const char *const rcpt_param_names[] = {
	[RCPT_PARAM_NOTIFY] = "NOTIFY", /* RFC 3461 4.1 */
	[RCPT_PARAM_ORCPT] = "ORCPT",	/* RFC 3461 4.2 */
};

/* "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static bool parse_notify(struct span value, unsigned *notify_out)
{
	static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
	static const unsigned bits[] = { SMTP_NOTIFY_NEVER, SMTP_NOTIFY_SUCCESS,
					 SMTP_NOTIFY_FAILURE, SMTP_NOTIFY_DELAY };
	struct span rest = value, item;
	unsigned notify = 0;
	size_t count = 0;
	bool has_more;

	do {
		int which;

		has_more = span_split_first(rest, ',', &item, &rest);
		if (!has_more)
			item = rest;
		which = keyword_find(item, names, ARRAY_LEN(names));
		if (which < 0)
			return false;
		notify |= bits[which];
		count++;
	} while (has_more);
	if ((notify & SMTP_NOTIFY_NEVER) && count > 1)
		return false;
	*notify_out = notify;
	return true;
}

/*
 * original-recipient-address = addr-type ";" xtext; addr-type = atom
 * (RFC 3461 4.2), at most 500 characters as sent. Only the address types
 * whose syntax we can check and later put in a DSN's Original-Recipient
 * field are taken: "rfc822" (printable US-ASCII, RFC 3461 4.2) and, in a
 * transaction with SMTPUTF8, "utf-8" (RFC 6533 3, whose utf-8-addr-unitext
 * carries UTF-8 as is). Anything else is refused as a bad value.
 */
static bool parse_orcpt(struct span value, bool allow_utf8, struct smtp_rcpt_args *out)
{
	struct span type, address;
	size_t len;
	bool is_utf8_type;

	if (value.len > SMTP_ORCPT_MAX || !span_split_first(value, ';', &type, &address) ||
	    type.len == 0 || address.len == 0)
		return false;
	for (size_t i = 0; i < type.len; i++)
		if (!is_atext((unsigned char) type.ptr[i]))
			return false;
	is_utf8_type = span_eq_cstr_nocase(type, "utf-8");
	if (!span_eq_cstr_nocase(type, "rfc822") && !(is_utf8_type && allow_utf8))
		return false;
	if (!span_copy_cstr(type, out->orcpt_type, sizeof(out->orcpt_type)))
		return false;
	return xtext_decode(address, is_utf8_type, out->orcpt_address, sizeof(out->orcpt_address),
			    &len) &&
	       is_printable_text(span_make(out->orcpt_address, len), is_utf8_type);
}

static enum smtp_args_result parse_rcpt(struct span args, bool allow_utf8,
					struct smtp_rcpt_args *out)
{
	struct span params, token;
	enum smtp_args_result r;
	unsigned seen = 0;

	r = parse_command_path(args, "TO:", &out->forward_path, &params);
	if (r != SMTP_ARGS_OK)
		return r;
	if (out->forward_path.is_null)
		return SMTP_ARGS_SYNTAX;
	while (next_token(&params, &token)) {
		struct esmtp_param p;
		int which;

		if (!split_param(token, allow_utf8, &p))
			return SMTP_ARGS_SYNTAX;
		which = keyword_find(p.keyword, rcpt_param_names, ARRAY_LEN(rcpt_param_names));
		if (which < 0)
			return SMTP_ARGS_UNKNOWN_PARAM;
		if (seen & (1u << which))
			return SMTP_ARGS_BAD_PARAM_VALUE;
		seen |= 1u << which;
		if (!p.has_value)
			return SMTP_ARGS_BAD_PARAM_VALUE;
		if (which == RCPT_PARAM_NOTIFY ? !parse_notify(p.value, &out->notify)
					       : !parse_orcpt(p.value, allow_utf8, out))
			return SMTP_ARGS_BAD_PARAM_VALUE;
		if (which == RCPT_PARAM_ORCPT)
			out->has_orcpt = true;
	}
	if (out->forward_path.has_utf8 && !allow_utf8)
		return SMTP_ARGS_NEEDS_SMTPUTF8;
	return SMTP_ARGS_OK;
}

enum smtp_args_result smtp_rcpt_parse(struct span args, bool allow_utf8, struct smtp_rcpt_args *out)
{
	enum smtp_args_result r;

	memset(out, 0, sizeof(*out));
	r = parse_rcpt(args, allow_utf8, out);
	if (r != SMTP_ARGS_OK)
		memset(out, 0, sizeof(*out));
	return r;
}
