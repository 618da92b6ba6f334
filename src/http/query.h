/*
 * query: the parameters of a request's query string and the one field we
 * read from an Autodiscover request body. Pure functions over bytes: no I/O,
 * no libevent, no globals, so the unit tests and the fuzzer
 * (fuzz/http_query_fuzz.c) call them directly. What a value means (an
 * address, a domain) is decided by the caller with store/address.h.
 */
#ifndef POSTGATE_HTTP_QUERY_H
#define POSTGATE_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

enum http_query_result {
	HTTP_QUERY_FOUND = 0,
	HTTP_QUERY_ABSENT,    /* well formed, but the name is not there */
	HTTP_QUERY_MALFORMED, /* too long, too many parameters, bad %-escape, a NUL or
				 control byte, or the name given twice */
};

/*
 * Find parameter name in query (the text after '?', without it) as an HTML
 * form encodes it (application/x-www-form-urlencoded: '&'-separated
 * name=value pairs, '+' for a space, %XX escapes; WHATWG URL 5.1). The
 * decoded value is copied to out (NUL-terminated, at most out_cap - 1
 * bytes; a longer value is MALFORMED). The whole query is checked, not only
 * up to the name: a query with any malformed pair is MALFORMED, at most
 * HTTP_QUERY_MAX bytes and HTTP_QUERY_PARAMS_MAX pairs. Names compare
 * exactly after decoding (Thunderbird sends "emailaddress", iOS "email").
 */
enum http_query_result http_query_find(struct span query, const char *name, char *out,
				       size_t out_cap);

/*
 * Percent-decode one path segment (RFC 3986 2.1; '+' is literal here) into
 * out. false when an escape is bad, the result holds a byte below 0x20 or
 * 0x7F, or '/', or does not fit.
 */
bool http_segment_decode(struct span segment, char *out, size_t out_cap);

/*
 * The text of the <EMailAddress> element of an Autodiscover request
 * ([MS-OXDSCLI] 2.2.3.1.1.1), trimmed, copied to out. Also reports whether
 * <AcceptableResponseSchema> names the Outlook schema
 * ("http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a");
 * an absent element counts as yes. false when the body has no such element,
 * it is empty, it holds markup ('<', '&') or does not fit.
 */
bool http_autodiscover_parse(struct span body, char *out, size_t out_cap,
			     bool *is_outlook_schema_out);

#endif
