/*
 * address: normalization of mail addresses and domain names for the accounts
 * store. Owns the syntax rules of docs/accounts.md: dot-atom local parts
 * (RFC 5322 3.2.3, 3.4.1) with UTF-8 (RFC 6531 3.3, RFC 6532 3.2), domains as
 * lower-case IDNA A-labels (RFC 5890, UTS #46 non-transitional processing
 * through libidn2). It must never trim, guess or repair: input that is not
 * exactly an address is refused with a message naming what is wrong.
 * Pure functions, no globals; libidn2 is thread-safe.
 */
#include "store/address.h"

#include <idn2.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The longest raw domain we hand to libidn2. UTS #46 mapping may delete code
 * points (U+00AD SOFT HYPHEN maps to nothing) and a U-label takes up to four
 * octets per code point, so a valid domain can be longer than 253 octets
 * before conversion; anything past this bound cannot become a valid one. */
#define ADDRESS_DOMAIN_INPUT_MAX 1024

static bool is_ascii_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_ascii_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 3.2.3 atext: ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~". */
static bool is_atext(unsigned char c)
{
	return is_ascii_alpha(c) || is_ascii_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool is_ascii_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629 4: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one.
 * code_point_out receives the decoded value.
 */
static size_t utf8_sequence(const unsigned char *s, size_t len, uint32_t *code_point_out)
{
	uint32_t cp;
	size_t need;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*code_point_out = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0;
	*code_point_out = cp;
	return need;
}

/* Checks that apply to the whole input before it is split. what is "address"
 * or "domain", so the message names what the caller handed in. */
static int check_bytes(struct span input, const char *what, struct error *err)
{
	if (input.len == 0)
		return error_set(err, ERROR_DATA, "%s is empty", what);
	for (size_t i = 0; i < input.len; i++) {
		unsigned char c = (unsigned char) input.ptr[i];

		if (c == '\0')
			return error_set(err, ERROR_DATA, "%s contains a NUL byte", what);
		if (c == ' ')
			return error_set(err, ERROR_DATA, "%s contains a space", what);
		if (is_ascii_control(c))
			return error_set(err, ERROR_DATA, "%s contains a control character", what);
	}
	return 0;
}

/*
 * Label rules for the ASCII form of a domain (RFC 1035 2.3.1 as relaxed by
 * RFC 1123 2.1: letters, digits and hyphens, not starting or ending with a
 * hyphen; RFC 1035 2.3.4: 1..63 octets). Used on the input when it is ASCII,
 * so that the common mistakes get a precise message, and again on libidn2's
 * output, which does not apply these rules itself.
 */
static int check_ldh(struct span domain, struct error *err)
{
	size_t start = 0;

	if (domain.len > 0 && domain.ptr[domain.len - 1] == '.')
		return error_set(err, ERROR_DATA, "domain ends with a dot");
	for (size_t i = 0; i <= domain.len; i++) {
		size_t label_len;
		unsigned char c;

		if (i < domain.len && domain.ptr[i] != '.') {
			c = (unsigned char) domain.ptr[i];
			if (!is_ascii_alpha(c) && !is_ascii_digit(c) && c != '-') {
				if (c >= 0x80)
					return error_set(err, ERROR_DATA,
							 "domain contains a non-ASCII octet");
				return error_set(err, ERROR_DATA,
						 "domain contains '%c'; only letters, digits, "
						 "hyphens and dots are allowed",
						 c);
			}
			continue;
		}
		label_len = i - start;
		if (label_len == 0)
			return error_set(err, ERROR_DATA, "domain label is empty");
		if (label_len > ADDRESS_LABEL_MAX)
			return error_set(err, ERROR_DATA, "domain label is longer than %d octets",
					 ADDRESS_LABEL_MAX);
		if (domain.ptr[start] == '-')
			return error_set(err, ERROR_DATA, "domain label starts with a hyphen");
		if (domain.ptr[i - 1] == '-')
			return error_set(err, ERROR_DATA, "domain label ends with a hyphen");
		start = i + 1;
	}
	return 0;
}

static const char *idn2_message(int rc)
{
	switch (rc) {
	case IDN2_TOO_BIG_LABEL:
	case IDN2_PUNYCODE_BIG_OUTPUT:
		return "domain label is longer than 63 octets";
	case IDN2_TOO_BIG_DOMAIN:
		return "domain is longer than 253 octets";
	case IDN2_ENCODING_ERROR:
		return "domain is not valid UTF-8";
	case IDN2_HYPHEN_STARTEND:
		return "domain label starts or ends with a hyphen";
	case IDN2_2HYPHEN:
		/* RFC 5891 4.2.3.1; RFC 5890 2.3.1 reserves such labels. */
		return "domain label has hyphens in both the third and fourth positions";
	case IDN2_PUNYCODE_BAD_INPUT:
	case IDN2_INVALID_NONTRANSITIONAL:
	case IDN2_ALABEL_ROUNDTRIP_FAILED:
		return "domain has an \"xn--\" label that is not a valid A-label";
	case IDN2_MALLOC:
		return "out of memory converting the domain";
	default:
		return NULL;
	}
}

int store_address_domain_normalize(struct span input, char *out, struct error *err)
{
	char raw[ADDRESS_DOMAIN_INPUT_MAX + 1];
	bool is_ascii = true;
	char *converted = NULL;
	size_t len, last_label;
	bool last_all_digits = true;
	int rc;

	out[0] = '\0';
	if (check_bytes(input, "domain", err) < 0)
		return -1;
	if (input.ptr[0] == '[')
		return error_set(err, ERROR_DATA,
				 "address literals are not accepted; give a domain name");
	if (input.len > ADDRESS_DOMAIN_INPUT_MAX)
		return error_set(err, ERROR_DATA, "domain is longer than %d octets",
				 ADDRESS_DOMAIN_MAX);
	for (size_t i = 0; i < input.len; i++) {
		if ((unsigned char) input.ptr[i] >= 0x80)
			is_ascii = false;
	}
	if (is_ascii) {
		if (check_ldh(input, err) < 0)
			return -1;
		if (input.len > ADDRESS_DOMAIN_MAX)
			return error_set(err, ERROR_DATA, "domain is longer than %d octets",
					 ADDRESS_DOMAIN_MAX);
	} else {
		for (size_t i = 0; i < input.len;) {
			uint32_t cp;
			size_t n = utf8_sequence((const unsigned char *) input.ptr + i,
						 input.len - i, &cp);

			if (n == 0)
				return error_set(err, ERROR_DATA, "domain is not valid UTF-8");
			i += n;
		}
		if (input.ptr[input.len - 1] == '.')
			return error_set(err, ERROR_DATA, "domain ends with a dot");
	}

	/*
	 * Every domain goes through libidn2, ASCII ones too: it checks that an
	 * "xn--" label is a valid A-label and refuses reserved "??--" labels,
	 * so a domain has exactly one stored form whichever way it was typed.
	 * Non-transitional processing (UTS #46 4, IDNA2008): "ß" stays "ß"
	 * (xn--zca) instead of becoming "ss".
	 */
	memcpy(raw, input.ptr, input.len);
	raw[input.len] = '\0';
	rc = idn2_lookup_u8((const uint8_t *) raw, (uint8_t **) &converted, IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		const char *message = idn2_message(rc);

		if (message != NULL)
			return error_set(err, ERROR_DATA, "%s", message);
		return error_set(err, ERROR_DATA,
				 "domain is not a valid internationalized domain name (%s)",
				 idn2_strerror(rc));
	}
	len = strlen(converted);
	for (size_t i = 0; i < len; i++) {
		if (converted[i] >= 'A' && converted[i] <= 'Z')
			converted[i] = (char) (converted[i] + ('a' - 'A'));
	}
	rc = check_ldh(span_make(converted, len), err);
	if (rc == 0 && len > ADDRESS_DOMAIN_MAX)
		rc = error_set(err, ERROR_DATA, "domain is longer than %d octets",
			       ADDRESS_DOMAIN_MAX);
	if (rc == 0) {
		/* RFC 3696 2: a top-level domain is never all-numeric, so a name
		 * ending in one is an IPv4 address written without brackets. */
		last_label = len;
		while (last_label > 0 && converted[last_label - 1] != '.')
			last_label--;
		for (size_t i = last_label; i < len; i++)
			if (!is_ascii_digit((unsigned char) converted[i]))
				last_all_digits = false;
		if (last_all_digits)
			rc = error_set(err, ERROR_DATA,
				       "domain ends in an all-numeric label; address literals "
				       "and IP addresses are not accepted");
	}
	if (rc == 0)
		memcpy(out, converted, len + 1);
	idn2_free(converted);
	return rc;
}

/*
 * RFC 5322 3.2.3 dot-atom-text, with RFC 6532 3.2's UTF8-non-ascii added to
 * atext. Quoted strings (RFC 5322 3.2.4) are refused: an account name
 * such as "john doe"@example.org needs quoting in every protocol and
 * configuration line it appears in, old clients mangle it, and RFC 5321
 * 4.1.2 asks not to create such mailboxes.
 */
static int check_local_part(struct span local, struct error *err)
{
	if (local.len == 0)
		return error_set(err, ERROR_DATA, "local part is empty");
	if (local.ptr[0] == '"')
		return error_set(err, ERROR_DATA,
				 "quoted local parts are not accepted for accounts");
	if (span_has_byte(local, '@'))
		return error_set(err, ERROR_DATA, "address contains more than one '@'");
	if (local.len > ADDRESS_LOCAL_MAX)
		return error_set(err, ERROR_DATA, "local part is longer than %d octets",
				 ADDRESS_LOCAL_MAX);
	if (local.ptr[0] == '.')
		return error_set(err, ERROR_DATA, "local part starts with a dot");
	if (local.ptr[local.len - 1] == '.')
		return error_set(err, ERROR_DATA, "local part ends with a dot");
	for (size_t i = 0; i < local.len;) {
		unsigned char c = (unsigned char) local.ptr[i];
		uint32_t cp;
		size_t n;

		if (c == '.') {
			if (local.ptr[i + 1] == '.')
				return error_set(err, ERROR_DATA,
						 "local part has two dots in a row");
			i++;
			continue;
		}
		if (c < 0x80) {
			if (!is_atext(c))
				return error_set(err, ERROR_DATA,
						 "local part contains '%c', which is not allowed "
						 "without quoting",
						 c);
			i++;
			continue;
		}
		n = utf8_sequence((const unsigned char *) local.ptr + i, local.len - i, &cp);
		if (n == 0)
			return error_set(err, ERROR_DATA, "local part is not valid UTF-8");
		/* C1 controls are as unprintable as their ASCII counterparts. */
		if (cp >= 0x80 && cp <= 0x9f)
			return error_set(err, ERROR_DATA,
					 "local part contains a control character");
		i += n;
	}
	return 0;
}

int store_address_normalize(struct span input, char *out, struct error *err)
{
	struct span local, domain;
	char domain_out[ADDRESS_DOMAIN_MAX + 1];
	size_t domain_len;

	out[0] = '\0';
	if (check_bytes(input, "address", err) < 0)
		return -1;
	/* The last '@' separates the domain: a domain never holds one, and a
	 * local part can only in the quoted form we refuse below. */
	if (!span_split_last(input, '@', &local, &domain))
		return error_set(err, ERROR_DATA, "address has no '@'");
	if (check_local_part(local, err) < 0)
		return -1;
	if (store_address_domain_normalize(domain, domain_out, err) < 0)
		return -1;
	domain_len = strlen(domain_out);
	if (local.len + 1 + domain_len > ADDRESS_TEXT_MAX)
		return error_set(err, ERROR_DATA, "address is longer than %d octets",
				 ADDRESS_TEXT_MAX);
	memcpy(out, local.ptr, local.len);
	out[local.len] = '@';
	memcpy(out + local.len + 1, domain_out, domain_len + 1);
	return 0;
}

struct span store_address_domain(const char *normalized)
{
	struct span local, domain;

	if (!span_split_last(span_from_cstr(normalized), '@', &local, &domain))
		return span_make(normalized + strlen(normalized), 0);
	return domain;
}
