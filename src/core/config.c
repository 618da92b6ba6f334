/*
 * config: the table of keys — name, type, default, bounds — and loading a
 * file (with includes) into struct config through it. The table is the only
 * list of keys: loading, `config check` printing and the documentation test
 * all walk it, so a key cannot exist in one and be missing from another.
 * Defaults are written as text and parsed by the same code as the file.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum config_type {
	CONFIG_TYPE_HOSTNAME,
	CONFIG_TYPE_USER,
	CONFIG_TYPE_PATH,
	CONFIG_TYPE_LOG_LEVEL,
	CONFIG_TYPE_DURATION,
	CONFIG_TYPE_LISTEN,
	CONFIG_TYPE_SIZE,  /* bytes, with an optional K, M or G suffix (binary) */
	CONFIG_TYPE_COUNT, /* a whole number */
	CONFIG_TYPE_BOOL,  /* yes or no */
	CONFIG_TYPE_TLS_PROFILE,
	CONFIG_TYPE_SERVERS,	  /* comma-separated numeric IP:PORT, kept as text */
	CONFIG_TYPE_OUTBOUND_TLS, /* opportunistic, require, verify, none */
	CONFIG_TYPE_ROUTE,	  /* HOST:PORT [tls=MODE] */
	CONFIG_TYPE_CIDRS,	  /* comma-separated ADDRESS[/PREFIX] */
};

enum config_scope {
	CONFIG_SCOPE_TOP,      /* before any section */
	CONFIG_SCOPE_LISTENER, /* [listener NAME]; offsets are into struct config_listener */
};

struct config_key {
	enum config_scope scope;
	const char *name;
	enum config_type type;
	const char *default_value; /* "" for keys whose default is derived after loading */
	size_t offset;
	size_t size;
	uint64_t min, max;	  /* durations in milliseconds, sizes in bytes, counts */
	const char *written_name; /* NULL: name, except for shutdown_timeout_ms */
};

#define TOP(name, type, def)                                                       \
	{                                                                          \
		CONFIG_SCOPE_TOP, #name, type, def, offsetof(struct config, name), \
			sizeof(((struct config *) 0)->name), 0, 0, NULL            \
	}
#define TOP_RANGE(name, type, def, min, max)                                       \
	{                                                                          \
		CONFIG_SCOPE_TOP, #name, type, def, offsetof(struct config, name), \
			sizeof(((struct config *) 0)->name), min, max, NULL        \
	}
/* A duration field NAME_ms written as `written` (the value carries its unit). */
#define TOP_DURATION(name, written, def, min, max)                                                 \
	{                                                                                          \
		CONFIG_SCOPE_TOP, #name, CONFIG_TYPE_DURATION, def, offsetof(struct config, name), \
			sizeof(((struct config *) 0)->name), min, max, written                     \
	}
#define LISTENER(name, type, def)                                                                \
	{                                                                                        \
		CONFIG_SCOPE_LISTENER, #name, type, def, offsetof(struct config_listener, name), \
			sizeof(((struct config_listener *) 0)->name), 0, 0, NULL                 \
	}

// clang-format off
static const struct config_key config_keys[] = {
	TOP(hostname,           CONFIG_TYPE_HOSTNAME,  ""),
	TOP(user,               CONFIG_TYPE_USER,      "postgate"),
	TOP(state_dir,          CONFIG_TYPE_PATH,      "/var/lib/postgate"),
	TOP(maildir_root,       CONFIG_TYPE_PATH,      ""),
	TOP(accounts_db,        CONFIG_TYPE_PATH,      ""),
	TOP(tls_cert,           CONFIG_TYPE_PATH,      "/etc/postgate/tls/cert.pem"),
	TOP(tls_key,            CONFIG_TYPE_PATH,      "/etc/postgate/tls/key.pem"),
	TOP(tls_cert_dir,       CONFIG_TYPE_PATH,      ""),
	TOP(log_level,          CONFIG_TYPE_LOG_LEVEL, "info"),
	TOP_RANGE(shutdown_timeout_ms, CONFIG_TYPE_DURATION, "30s", 0, 3600 * 1000),
	TOP_RANGE(worker_threads, CONFIG_TYPE_COUNT,   "4", 1, 64),
	TOP_RANGE(commit_threads, CONFIG_TYPE_COUNT,   "32", 1, 64),
	TOP_RANGE(max_message_size, CONFIG_TYPE_SIZE,  "50M", 1024, 4ULL << 30),
	TOP_RANGE(max_recipients, CONFIG_TYPE_COUNT,   "100", 1, 1000),
	TOP_RANGE(max_line_length, CONFIG_TYPE_COUNT,  "1000", 1000, 1 << 20),
	TOP_RANGE(max_sessions, CONFIG_TYPE_COUNT,     "20000", 1, 1000000),
	TOP_RANGE(max_sessions_per_ip, CONFIG_TYPE_COUNT, "50", 1, 1000000),
	TOP_DURATION(max_session_time_ms, "max_session_time", "1h", 1000, 86400000),
	TOP_DURATION(command_timeout_ms, "command_timeout", "5m", 1000, 3600000),
	TOP_DURATION(data_timeout_ms, "data_timeout", "3m", 1000, 3600000),
	TOP_RANGE(max_commands, CONFIG_TYPE_COUNT,     "10000", 10, 1000000),
	TOP_RANGE(max_errors,   CONFIG_TYPE_COUNT,     "20", 1, 1000),
	TOP_RANGE(user_messages_per_hour, CONFIG_TYPE_COUNT, "200", 0, 10000000),
	TOP_RANGE(user_messages_per_day, CONFIG_TYPE_COUNT, "1000", 0, 10000000),
	TOP_RANGE(user_recipients_per_hour, CONFIG_TYPE_COUNT, "500", 0, 10000000),
	TOP_RANGE(user_recipients_per_day, CONFIG_TYPE_COUNT, "2000", 0, 10000000),
	TOP_RANGE(hold_login_addresses, CONFIG_TYPE_COUNT, "10", 0, 1000),
	LISTENER(listen,        CONFIG_TYPE_LISTEN,    ""),
	LISTENER(tls_profile,   CONFIG_TYPE_TLS_PROFILE, "modern"),
	LISTENER(starttls,      CONFIG_TYPE_BOOL,      "yes"),
	LISTENER(plaintext_auth, CONFIG_TYPE_BOOL,     "no"),
	LISTENER(detect_implicit_tls, CONFIG_TYPE_BOOL, "no"),
	LISTENER(cram_md5,      CONFIG_TYPE_BOOL,      "no"),
	LISTENER(apop,          CONFIG_TYPE_BOOL,      "no"),
	LISTENER(tls,           CONFIG_TYPE_BOOL,      "no"),
	LISTENER(setup_index,   CONFIG_TYPE_BOOL,      "no"),
	TOP(dns_servers,        CONFIG_TYPE_SERVERS,   ""),
	TOP_RANGE(smtp_port,    CONFIG_TYPE_COUNT,     "25", 1, 65535),
	TOP(outbound_tls,       CONFIG_TYPE_OUTBOUND_TLS, "opportunistic"),
	TOP(outbound_ca_file,   CONFIG_TYPE_PATH,      ""),
	TOP_RANGE(outbound_timeout_divisor, CONFIG_TYPE_COUNT, "1", 1, 1000),
	TOP_RANGE(max_outbound_connections, CONFIG_TYPE_COUNT, "20", 1, 10000),
	TOP_RANGE(max_destination_connections, CONFIG_TYPE_COUNT, "4", 1, 1000),
	TOP_DURATION(retry_initial_ms, "retry_initial", "5m", 1000, 86400000),
	TOP_DURATION(retry_max_ms, "retry_max", "4h", 1000, 7 * 86400000ULL),
	TOP_DURATION(max_queue_lifetime_ms, "max_queue_lifetime", "5d", 1000, 30 * 86400000ULL),
	TOP_DURATION(delay_warning_ms, "delay_warning", "0s", 0, 30 * 86400000ULL),
	TOP_RANGE(bounce_return_max, CONFIG_TYPE_SIZE, "100K", 0, 1ULL << 30),
	TOP(relayhost,          CONFIG_TYPE_ROUTE,     ""),
	TOP(metrics_allow,      CONFIG_TYPE_CIDRS,     "127.0.0.0/8, ::1"),
	TOP_RANGE(auth_threads, CONFIG_TYPE_COUNT,     "0", 0, 64),
};
// clang-format on

static const char *const listener_names[CONFIG_LISTENER_KIND_COUNT] = {
	[CONFIG_LISTENER_MX] = "mx",
	[CONFIG_LISTENER_SUBMISSION] = "submission",
	[CONFIG_LISTENER_SUBMISSIONS] = "submissions",
	[CONFIG_LISTENER_POP3] = "pop3",
	[CONFIG_LISTENER_POP3S] = "pop3s",
	[CONFIG_LISTENER_HTTP] = "http",
};

/* The name a key is written with: shutdown_timeout_ms is `shutdown_timeout`,
 * since its value carries its unit ("30s"). */
static const char *key_written_name(const struct config_key *key)
{
	if (key->written_name != NULL)
		return key->written_name;
	return key->type == CONFIG_TYPE_DURATION ? "shutdown_timeout" : key->name;
}

static const char *const outbound_tls_names[] = {
	[CONFIG_OUTBOUND_TLS_OPPORTUNISTIC] = "opportunistic",
	[CONFIG_OUTBOUND_TLS_REQUIRE] = "require",
	[CONFIG_OUTBOUND_TLS_VERIFY] = "verify",
	[CONFIG_OUTBOUND_TLS_NONE] = "none",
};

const char *config_outbound_tls_name(enum config_outbound_tls tls)
{
	return outbound_tls_names[tls];
}

static bool parse_outbound_tls(struct span s, enum config_outbound_tls *tls_out)
{
	for (size_t i = 0; i < ARRAY_LEN(outbound_tls_names); i++)
		if (span_eq_cstr(s, outbound_tls_names[i])) {
			*tls_out = (enum config_outbound_tls) i;
			return true;
		}
	return false;
}

const char *config_listener_name(enum config_listener_kind kind)
{
	return listener_names[kind];
}

bool config_apop_wanted(const struct config *config)
{
	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++)
		if (config->listeners[kind].is_enabled && config->listeners[kind].apop)
			return true;
	return false;
}

bool config_cram_md5_wanted(const struct config *config)
{
	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++)
		if (config->listeners[kind].is_enabled && config->listeners[kind].cram_md5)
			return true;
	return false;
}

/* ---- values ---------------------------------------------------------- */

struct value_context {
	const char *file;
	unsigned line;
	const char *dir; /* for relative paths; absolute */
	struct error *err;
};

static int value_error(const struct value_context *vc, const struct config_key *key,
		       const char *what)
{
	return error_set(vc->err, ERROR_CONFIG, "%s:%u: %s: %s", vc->file, vc->line,
			 key_written_name(key), what);
}

static bool is_hostname(struct span s)
{
	size_t label_len = 0;

	if (s.len == 0 || s.len > 253)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		char c = s.ptr[i];

		if (c == '.') {
			if (label_len == 0 || s.ptr[i - 1] == '-')
				return false;
			label_len = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (c == '-' && label_len == 0)
			return false;
		if (++label_len > 63)
			return false;
	}
	return label_len > 0 && s.ptr[s.len - 1] != '-';
}

static bool is_user_name(struct span s)
{
	/* The portable POSIX user name set, as useradd accepts by default. */
	if (s.len == 0 || s.len >= CONFIG_USER_MAX || s.ptr[0] == '-')
		return false;
	for (size_t i = 0; i < s.len; i++) {
		char c = s.ptr[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* "30s", "5m", "2h", "1d", "250ms"; a bare number is seconds. */
static bool parse_duration_ms(struct span s, uint64_t *ms_out)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 }
	};
	size_t digits = 0;
	uint64_t n, scale = 1000;
	struct span suffix;

	while (digits < s.len && s.ptr[digits] >= '0' && s.ptr[digits] <= '9')
		digits++;
	if (!span_parse_u64(span_make(s.ptr, digits), &n))
		return false;
	suffix = span_make(s.ptr + digits, s.len - digits);
	if (suffix.len > 0) {
		size_t i;

		for (i = 0; i < ARRAY_LEN(units); i++)
			if (span_eq_cstr(suffix, units[i].suffix))
				break;
		if (i == ARRAY_LEN(units))
			return false;
		scale = units[i].ms;
	}
	if (n > UINT64_MAX / scale)
		return false;
	*ms_out = n * scale;
	return true;
}

/* "1048576", "512K", "50M", "2G" (binary multiples). */
static bool parse_size(struct span s, uint64_t *bytes_out)
{
	uint64_t n, scale = 1;

	if (s.len > 0) {
		switch (s.ptr[s.len - 1]) {
		case 'K':
		case 'k':
			scale = 1024;
			break;
		case 'M':
		case 'm':
			scale = 1024 * 1024;
			break;
		case 'G':
		case 'g':
			scale = 1024 * 1024 * 1024;
			break;
		default:
			break;
		}
		if (scale != 1)
			s.len--;
	}
	if (!span_parse_u64(s, &n) || n > UINT64_MAX / scale)
		return false;
	*bytes_out = n * scale;
	return true;
}

static int parse_address(struct span text, struct config_address *address_out)
{
	struct span host, port;
	uint64_t port_number;
	unsigned char bin[sizeof(struct in6_addr)];

	if (text.len > 0 && text.ptr[0] == '[') {
		long close = span_find(text, 0, ']');

		if (close < 0 || (size_t) close + 1 >= text.len || text.ptr[close + 1] != ':')
			return -1;
		host = span_make(text.ptr + 1, (size_t) close - 1);
		port = span_make(text.ptr + close + 2, text.len - (size_t) close - 2);
		if (!span_copy_cstr(host, address_out->host, sizeof(address_out->host)) ||
		    inet_pton(AF_INET6, address_out->host, bin) != 1)
			return -1;
	} else {
		if (!span_split_last(text, ':', &host, &port) ||
		    !span_copy_cstr(host, address_out->host, sizeof(address_out->host)) ||
		    inet_pton(AF_INET, address_out->host, bin) != 1)
			return -1;
	}
	if (!span_parse_u64(port, &port_number) || port_number == 0 || port_number > 65535)
		return -1;
	address_out->port = (uint16_t) port_number;
	return 0;
}

/* "IP:PORT,[IPv6]:PORT": each item numeric, kept as text for the resolver. */
static int parse_servers(const struct value_context *vc, const struct config_key *key,
			 struct span value, char *out, size_t out_cap)
{
	struct span rest = value;

	if (value.len == 0)
		return value_error(vc, key, "needs at least one ADDRESS:PORT");
	while (rest.len > 0) {
		struct span item, after;
		struct config_address address;

		if (!span_split_first(rest, ',', &item, &after)) {
			item = rest;
			after = span_make(NULL, 0);
		} else if (span_trim(after).len == 0) {
			return value_error(vc, key, "empty address after ','");
		}
		if (parse_address(span_trim(item), &address) < 0)
			return value_error(
				vc, key, "expected numeric IPv4 ADDRESS:PORT or [IPv6]:PORT items");
		rest = after;
	}
	if (!span_copy_cstr(value, out, out_cap))
		return value_error(vc, key, "list is too long");
	for (char *p = out; *p; p++)
		if (*p == ' ' || *p == '\t')
			memmove(p, p + 1, strlen(p)), p--;
	return 0;
}

/* "HOST:PORT [tls=MODE]", HOST a host name, a numeric IPv4 address or [IPv6]. */
static int parse_route(const struct value_context *vc, const char *what, struct span value,
		       struct config_route *route)
{
	struct span target, rest, host, port, option, name, mode;
	uint64_t port_number;
	unsigned char bin[sizeof(struct in6_addr)];

	span_split_word(value, &target, &rest);
	if (target.len > 0 && target.ptr[0] == '[') {
		long close = span_find(target, 0, ']');

		if (close < 0 || (size_t) close + 1 >= target.len || target.ptr[close + 1] != ':')
			goto bad;
		host = span_make(target.ptr + 1, (size_t) close - 1);
		port = span_make(target.ptr + close + 2, target.len - (size_t) close - 2);
		if (!span_copy_cstr(host, route->host, sizeof(route->host)) ||
		    inet_pton(AF_INET6, route->host, bin) != 1)
			goto bad;
	} else {
		if (!span_split_last(target, ':', &host, &port) || !is_hostname(host) ||
		    !span_copy_cstr(host, route->host, sizeof(route->host)))
			goto bad;
		for (char *p = route->host; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char) (*p + 32);
	}
	if (!span_parse_u64(port, &port_number) || port_number == 0 || port_number > 65535)
		goto bad;
	route->port = (uint16_t) port_number;
	route->has_tls = false;
	span_split_word(rest, &option, &rest);
	if (option.len > 0) {
		if (rest.len > 0 || !span_split_first(option, '=', &name, &mode) ||
		    !span_eq_cstr(name, "tls") || !parse_outbound_tls(mode, &route->tls))
			return error_set(vc->err, ERROR_CONFIG,
					 "%s:%u: %s: the only option is tls=opportunistic, "
					 "tls=require, tls=verify or tls=none",
					 vc->file, vc->line, what);
		route->has_tls = true;
	}
	return 0;
bad:
	route->host[0] = '\0';
	return error_set(vc->err, ERROR_CONFIG,
			 "%s:%u: %s: expected HOST:PORT (a host name, IPv4 address or [IPv6])",
			 vc->file, vc->line, what);
}

const struct config_route *config_route_find(const struct config *config, const char *domain)
{
	for (size_t i = 0; i < config->route_count; i++)
		if (strcasecmp(config->routes[i].domain, domain) == 0)
			return &config->routes[i];
	return config->relayhost.host[0] != '\0' ? &config->relayhost : NULL;
}

static int parse_listen(const struct value_context *vc, const struct config_key *key,
			struct span value, struct config_listener *listener)
{
	struct span rest = value;

	listener->listen_count = 0;
	while (rest.len > 0) {
		struct span item, after;

		if (!span_split_first(rest, ',', &item, &after)) {
			item = rest;
			after = span_make(NULL, 0);
		} else if (after.len == 0 || span_trim(after).len == 0) {
			return value_error(vc, key, "empty address after ','");
		}
		item = span_trim(item);
		if (listener->listen_count == CONFIG_LISTEN_MAX)
			return value_error(vc, key, "more than 8 addresses");
		if (parse_address(item, &listener->listen[listener->listen_count]) < 0) {
			char shown[LOG_ESCAPED_CAP];

			return error_set(vc->err, ERROR_CONFIG,
					 "%s:%u: listen: %s is not a numeric IPv4 ADDRESS:PORT or "
					 "[IPv6]:PORT",
					 vc->file, vc->line, log_escape(item, shown));
		}
		listener->listen_count++;
		rest = after;
	}
	if (listener->listen_count == 0)
		return value_error(vc, key, "needs at least one ADDRESS:PORT");
	return 0;
}

/* "ADDRESS[/PREFIX], ...": numeric IPv4 or IPv6 blocks; no prefix is one
 * address. Bits past the prefix must be zero, so a typo such as
 * 10.0.0.1/8 is caught rather than read as 10.0.0.0/8. */
static int parse_cidrs(const struct value_context *vc, const struct config_key *key,
		       struct span value, struct config_cidrs *out)
{
	struct span rest = value;

	out->count = 0;
	while (rest.len > 0) {
		struct span item, after, host, prefix;
		struct config_cidr *c;
		char text[INET6_ADDRSTRLEN];
		uint64_t bits;
		unsigned max;
		bool has_prefix;

		if (!span_split_first(rest, ',', &item, &after)) {
			item = rest;
			after = span_make(NULL, 0);
		} else if (span_trim(after).len == 0) {
			return value_error(vc, key, "empty block after ','");
		}
		if (out->count == CONFIG_CIDRS_MAX)
			return value_error(vc, key, "more than 16 address blocks");
		c = &out->items[out->count];
		item = span_trim(item);
		has_prefix = span_split_first(item, '/', &host, &prefix);
		if (!has_prefix)
			host = item;
		if (!span_copy_cstr(host, text, sizeof(text)))
			goto bad;
		memset(c->address, 0, sizeof(c->address));
		if (inet_pton(AF_INET, text, c->address) == 1) {
			c->family = AF_INET;
			max = 32;
		} else if (inet_pton(AF_INET6, text, c->address) == 1) {
			c->family = AF_INET6;
			max = 128;
		} else {
			goto bad;
		}
		if (!has_prefix)
			bits = max;
		else if (!span_parse_u64(prefix, &bits) || bits > max)
			goto bad;
		c->prefix_len = (unsigned) bits;
		for (unsigned b = c->prefix_len; b < max; b++)
			if (c->address[b / 8] & (0x80 >> (b % 8)))
				return value_error(vc, key,
						   "a block has address bits set past its prefix");
		out->count++;
		rest = after;
	}
	if (out->count == 0)
		return value_error(vc, key, "needs at least one ADDRESS[/PREFIX]");
	return 0;
bad:
	return value_error(vc, key,
			   "expected numeric IPv4 or IPv6 ADDRESS[/PREFIX] items, comma-separated");
}

static bool cidr_contains(const struct config_cidr *c, const unsigned char *address)
{
	unsigned full = c->prefix_len / 8, rest = c->prefix_len % 8;

	if (memcmp(c->address, address, full) != 0)
		return false;
	return rest == 0 || ((c->address[full] ^ address[full]) & (0xff00 >> rest) & 0xff) == 0;
}

bool config_cidrs_contain(const struct config_cidrs *cidrs, const char *ip)
{
	unsigned char v4[4], v6[16];
	int family;

	if (inet_pton(AF_INET, ip, v4) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, ip, v6) == 1) {
		static const unsigned char mapped[12] = {
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
		};

		family = AF_INET6;
		if (memcmp(v6, mapped, sizeof(mapped)) == 0) {
			memcpy(v4, v6 + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < cidrs->count; i++)
		if (cidrs->items[i].family == family &&
		    cidr_contains(&cidrs->items[i], family == AF_INET ? v4 : v6))
			return true;
	return false;
}

static int set_path(const struct value_context *vc, const struct config_key *key, struct span value,
		    char *out, size_t out_cap)
{
	int n;

	if (value.len == 0 || span_has_byte(value, 0))
		return value_error(vc, key, "needs a path");
	if (value.ptr[0] == '/' || vc->dir == NULL)
		n = snprintf(out, out_cap, "%.*s", (int) value.len, value.ptr);
	else
		n = snprintf(out, out_cap, "%s/%.*s", vc->dir, (int) value.len, value.ptr);
	if (n < 0 || (size_t) n >= out_cap)
		return value_error(vc, key, "path is too long");
	return 0;
}

static int set_value(const struct value_context *vc, const struct config_key *key,
		     struct span value, void *base)
{
	char *field = (char *) base + key->offset;

	switch (key->type) {
	case CONFIG_TYPE_HOSTNAME:
		if (!is_hostname(value))
			return value_error(vc, key, "not a valid host name");
		span_copy_cstr(value, field, key->size);
		for (char *p = field; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char) (*p + 32);
		return 0;
	case CONFIG_TYPE_USER:
		if (!is_user_name(value))
			return value_error(vc, key, "not a valid user name");
		span_copy_cstr(value, field, key->size);
		return 0;
	case CONFIG_TYPE_PATH:
		return set_path(vc, key, value, field, key->size);
	case CONFIG_TYPE_LOG_LEVEL:
		if (!log_level_parse(value, (enum log_level *) (void *) field))
			return value_error(vc, key, "must be error, warning, info or debug");
		return 0;
	case CONFIG_TYPE_DURATION: {
		uint64_t ms;

		if (!parse_duration_ms(value, &ms))
			return value_error(vc, key,
					   "expected a duration such as 30s, 5m, 2h, 1d or 250ms");
		if (ms < key->min || ms > key->max)
			return value_error(vc, key, "out of range");
		*(uint64_t *) (void *) field = ms;
		return 0;
	}
	case CONFIG_TYPE_LISTEN:
		return parse_listen(vc, key, value, (struct config_listener *) base);
	case CONFIG_TYPE_BOOL:
		if (span_eq_cstr(value, "yes") || span_eq_cstr(value, "true") ||
		    span_eq_cstr(value, "on"))
			*(bool *) (void *) field = true;
		else if (span_eq_cstr(value, "no") || span_eq_cstr(value, "false") ||
			 span_eq_cstr(value, "off"))
			*(bool *) (void *) field = false;
		else
			return value_error(vc, key, "must be yes or no");
		return 0;
	case CONFIG_TYPE_TLS_PROFILE:
		if (span_eq_cstr(value, "modern"))
			*(enum config_tls_profile *) (void *) field = CONFIG_TLS_PROFILE_MODERN;
		else if (span_eq_cstr(value, "legacy"))
			*(enum config_tls_profile *) (void *) field = CONFIG_TLS_PROFILE_LEGACY;
		else
			return value_error(vc, key, "must be modern or legacy");
		return 0;
	case CONFIG_TYPE_SERVERS:
		return parse_servers(vc, key, value, field, key->size);
	case CONFIG_TYPE_OUTBOUND_TLS:
		if (!parse_outbound_tls(value, (enum config_outbound_tls *) (void *) field))
			return value_error(vc, key,
					   "must be opportunistic, require, verify or none");
		return 0;
	case CONFIG_TYPE_ROUTE:
		return parse_route(vc, key->name, value, (struct config_route *) (void *) field);
	case CONFIG_TYPE_CIDRS:
		return parse_cidrs(vc, key, value, (struct config_cidrs *) (void *) field);
	case CONFIG_TYPE_SIZE:
	case CONFIG_TYPE_COUNT: {
		uint64_t n;
		bool ok = key->type == CONFIG_TYPE_SIZE ? parse_size(value, &n)
							: span_parse_u64(value, &n);

		if (!ok)
			return value_error(vc, key,
					   key->type == CONFIG_TYPE_SIZE
						   ? "expected a size such as 50M, 512K or 1048576"
						   : "expected a whole number");
		if (n < key->min || n > key->max) {
			char what[96];

			snprintf(what, sizeof(what), "must be between %llu and %llu",
				 (unsigned long long) key->min, (unsigned long long) key->max);
			return value_error(vc, key, what);
		}
		*(uint64_t *) (void *) field = n;
		return 0;
	}
	}
	return value_error(vc, key, "unsupported type");
}

void config_init_defaults(struct config *config_out)
{
	struct error err;
	struct value_context vc = { .file = "(defaults)", .line = 0, .dir = NULL, .err = &err };

	memset(config_out, 0, sizeof(*config_out));
	for (size_t i = 0; i < ARRAY_LEN(config_keys); i++) {
		const struct config_key *key = &config_keys[i];

		if (key->default_value[0] == '\0')
			continue;
		/* Defaults are constants checked by the unit tests; they cannot fail. */
		if (key->scope == CONFIG_SCOPE_TOP) {
			(void) set_value(&vc, key, span_from_cstr(key->default_value), config_out);
			continue;
		}
		for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++)
			(void) set_value(&vc, key, span_from_cstr(key->default_value),
					 &config_out->listeners[kind]);
	}
}

/* ---- loading ----------------------------------------------------------- */

enum { SET_LINES_CAP = ARRAY_LEN(config_keys) * (1 + CONFIG_LISTENER_KIND_COUNT) };

struct loader {
	struct config *config;
	int depth;
	/* Where each key was set (0: not yet), per scope instance: index
	 * key * (1 + listener kinds) + (0 for top, 1 + kind for a listener). */
	unsigned set_at[SET_LINES_CAP];
	unsigned listener_line[CONFIG_LISTENER_KIND_COUNT];
	const char *listener_file[CONFIG_LISTENER_KIND_COUNT];
};

struct file_state {
	struct loader *loader;
	const char *file;
	const char *dir;
	bool in_listener;
	enum config_listener_kind listener;
	bool in_unknown;
};

static int load_file(struct loader *loader, const char *path, const char *shown_name,
		     struct error *err);

static int include_file(struct file_state *fs, const struct config_line *line, struct error *err)
{
	char path[CONFIG_PATH_MAX];
	struct value_context vc = { fs->file, line->line, fs->dir, err };
	static const struct config_key include_key = {
		CONFIG_SCOPE_TOP, "include", CONFIG_TYPE_PATH, "", 0, 0, 0, 0, NULL
	};

	if (line->key_arg.len > 0)
		return error_set(err, ERROR_CONFIG, "%s:%u: include takes no argument", fs->file,
				 line->line);
	if (set_path(&vc, &include_key, line->value, path, sizeof(path)) < 0)
		return -1;
	if (fs->loader->depth >= CONFIG_INCLUDE_DEPTH)
		return error_set(err, ERROR_CONFIG, "%s:%u: includes nested deeper than %d",
				 fs->file, line->line, CONFIG_INCLUDE_DEPTH);
	{
		struct error inner;

		if (load_file(fs->loader, path, path, &inner) < 0) {
			/* Name both the include line and the included file's problem. */
			if (inner.kind == ERROR_IO)
				return error_set(err, ERROR_CONFIG, "%s:%u: include: %s", fs->file,
						 line->line, inner.message);
			*err = inner;
			return -1;
		}
	}
	return 0;
}

static int enter_section(struct file_state *fs, const struct config_line *line, struct error *err)
{
	struct loader *loader = fs->loader;

	fs->in_listener = false;
	if (!span_eq_cstr(line->section, "listener")) {
		char shown[LOG_ESCAPED_CAP];

		return error_set(err, ERROR_CONFIG, "%s:%u: unknown section [%s]", fs->file,
				 line->line, log_escape(line->section, shown));
	}
	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++) {
		if (!span_eq_cstr(line->section_arg, listener_names[kind]))
			continue;
		if (loader->config->listeners[kind].is_enabled)
			return error_set(err, ERROR_CONFIG,
					 "%s:%u: [listener %s] appears twice (first at %s:%u)",
					 fs->file, line->line, listener_names[kind],
					 loader->listener_file[kind], loader->listener_line[kind]);
		loader->config->listeners[kind].is_enabled = true;
		loader->listener_line[kind] = line->line;
		loader->listener_file[kind] = fs->file;
		fs->in_listener = true;
		fs->listener = (enum config_listener_kind) kind;
		return 0;
	}
	{
		char shown[LOG_ESCAPED_CAP];

		return error_set(err, ERROR_CONFIG,
				 "%s:%u: unknown listener '%s' (known: mx, submission, "
				 "submissions, pop3, pop3s, http)",
				 fs->file, line->line, log_escape(line->section_arg, shown));
	}
}

/* `route DOMAIN = HOST:PORT [tls=MODE]`: one line per domain. */
static int add_route(struct file_state *fs, const struct config_line *line, struct error *err)
{
	struct config *config = fs->loader->config;
	struct value_context vc = { fs->file, line->line, fs->dir, err };
	struct config_route *route;
	char domain[CONFIG_NAME_MAX];

	if (!is_hostname(line->key_arg) || !span_copy_cstr(line->key_arg, domain, sizeof(domain)))
		return error_set(err, ERROR_CONFIG,
				 "%s:%u: route needs a domain: route DOMAIN = "
				 "HOST:PORT",
				 fs->file, line->line);
	for (char *p = domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char) (*p + 32);
	for (size_t i = 0; i < config->route_count; i++)
		if (strcmp(config->routes[i].domain, domain) == 0)
			return error_set(err, ERROR_CONFIG, "%s:%u: route %s is set twice",
					 fs->file, line->line, domain);
	if (config->route_count == CONFIG_ROUTES_MAX)
		return error_set(err, ERROR_CONFIG, "%s:%u: more than %d routes", fs->file,
				 line->line, CONFIG_ROUTES_MAX);
	route = &config->routes[config->route_count];
	memset(route, 0, sizeof(*route));
	if (parse_route(&vc, "route", line->value, route) < 0)
		return -1;
	snprintf(route->domain, sizeof(route->domain), "%s", domain);
	config->route_count++;
	return 0;
}

static int on_line(void *ctx, const struct config_line *line, struct error *err)
{
	struct file_state *fs = ctx;
	enum config_scope scope = fs->in_listener ? CONFIG_SCOPE_LISTENER : CONFIG_SCOPE_TOP;
	char shown[LOG_ESCAPED_CAP];

	if (line->key.len == 0)
		return enter_section(fs, line, err);
	if (span_eq_cstr(line->key, "include"))
		return include_file(fs, line, err);
	if (!fs->in_listener && span_eq_cstr(line->key, "route"))
		return add_route(fs, line, err);
	for (size_t i = 0; i < ARRAY_LEN(config_keys); i++) {
		const struct config_key *key = &config_keys[i];
		struct value_context vc = { fs->file, line->line, fs->dir, err };
		size_t slot;
		void *base;

		if (key->scope != scope || !span_eq_cstr(line->key, key_written_name(key)))
			continue;
		if (line->key_arg.len > 0)
			return error_set(err, ERROR_CONFIG, "%s:%u: %s takes no argument", fs->file,
					 line->line, key_written_name(key));
		slot = i * (1 + CONFIG_LISTENER_KIND_COUNT) +
		       (scope == CONFIG_SCOPE_TOP ? 0 : 1 + (size_t) fs->listener);
		if (fs->loader->set_at[slot] != 0)
			return error_set(err, ERROR_CONFIG, "%s:%u: %s is set twice", fs->file,
					 line->line, key_written_name(key));
		fs->loader->set_at[slot] = line->line;
		base = scope == CONFIG_SCOPE_TOP
			       ? (void *) fs->loader->config
			       : (void *) &fs->loader->config->listeners[fs->listener];
		return set_value(&vc, key, line->value, base);
	}
	if (fs->in_listener)
		return error_set(err, ERROR_CONFIG, "%s:%u: unknown key '%s' in [listener %s]",
				 fs->file, line->line, log_escape(line->key, shown),
				 listener_names[fs->listener]);
	return error_set(err, ERROR_CONFIG, "%s:%u: unknown key '%s'", fs->file, line->line,
			 log_escape(line->key, shown));
}

static int load_text(struct loader *loader, const char *file, const char *dir, struct span text,
		     struct error *err)
{
	struct file_state fs = { .loader = loader, .file = file, .dir = dir };
	int rc;

	loader->depth++;
	rc = config_text_parse(file, text, on_line, &fs, err);
	loader->depth--;
	return rc;
}

/* Reads a whole file, bounded by CONFIG_FILE_MAX. The caller frees *text_out. */
static int read_file(const char *path, char **text_out, size_t *len_out, struct error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *text;
	size_t len = 0;

	if (fd < 0)
		return error_set(err, ERROR_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return error_set(err, ERROR_IO, "%s: not a regular file", path);
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		close(fd);
		return error_set(err, ERROR_CONFIG, "%s: file is larger than %d bytes", path,
				 CONFIG_FILE_MAX);
	}
	text = malloc((size_t) st.st_size + 1);
	if (text == NULL) {
		close(fd);
		return error_set(err, ERROR_IO, "%s: out of memory", path);
	}
	for (;;) {
		ssize_t n = read(fd, text + len, (size_t) st.st_size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			free(text);
			close(fd);
			return error_set(err, ERROR_IO, "%s: %s", path, strerror(saved));
		}
		if (n == 0)
			break;
		len += (size_t) n;
		if (len > (size_t) st.st_size) {
			free(text);
			close(fd);
			return error_set(err, ERROR_CONFIG, "%s: file grew while being read", path);
		}
	}
	close(fd);
	*text_out = text;
	*len_out = len;
	return 0;
}

static int load_file(struct loader *loader, const char *path, const char *shown_name,
		     struct error *err)
{
	char dir_buf[CONFIG_PATH_MAX], resolved[PATH_MAX];
	const char *slash = strrchr(path, '/');
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (slash == NULL)
		snprintf(dir_buf, sizeof(dir_buf), ".");
	else if (slash == path)
		snprintf(dir_buf, sizeof(dir_buf), "/");
	else
		snprintf(dir_buf, sizeof(dir_buf), "%.*s", (int) (slash - path), path);
	/* Relative paths in the file are relative to where the file is, made
	 * absolute now so that a later chdir (detaching) cannot change them. */
	if (realpath(dir_buf, resolved) == NULL)
		return error_set(err, ERROR_IO, "%s: %s", path, strerror(errno));
	if (read_file(path, &text, &len, err) < 0)
		return -1;
	rc = load_text(loader, shown_name, resolved, span_make(text, len), err);
	free(text);
	return rc;
}

static int derive(const char *file, struct config *config, struct error *err)
{
	int n;

	if (config->maildir_root[0] == '\0') {
		n = snprintf(config->maildir_root, sizeof(config->maildir_root), "%s/mail",
			     config->state_dir);
		if (n < 0 || (size_t) n >= sizeof(config->maildir_root))
			return error_set(err, ERROR_CONFIG, "%s: state_dir is too long", file);
	}
	if (config->accounts_db[0] == '\0') {
		n = snprintf(config->accounts_db, sizeof(config->accounts_db), "%s/accounts.db",
			     config->state_dir);
		if (n < 0 || (size_t) n >= sizeof(config->accounts_db))
			return error_set(err, ERROR_CONFIG, "%s: state_dir is too long", file);
	}
	if (config->hostname[0] == '\0') {
		char host[CONFIG_NAME_MAX] = "";

		if (gethostname(host, sizeof(host) - 1) < 0 || !is_hostname(span_from_cstr(host)))
			return error_set(err, ERROR_CONFIG,
					 "%s: hostname is not set and the system's host name is "
					 "not usable; set hostname",
					 file);
		snprintf(config->hostname, sizeof(config->hostname), "%s", host);
	}
	return 0;
}

static int check_listeners(const struct loader *loader, struct error *err)
{
	const struct config *config = loader->config;

	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++) {
		const struct config_listener *l = &config->listeners[kind];

		if (!l->is_enabled)
			continue;
		if (l->listen_count == 0)
			return error_set(err, ERROR_CONFIG,
					 "%s:%u: [listener %s] needs `listen = ADDRESS:PORT`",
					 loader->listener_file[kind], loader->listener_line[kind],
					 listener_names[kind]);
		/* Passwords in the clear are the legacy profile's explicit choice. */
		if (l->plaintext_auth && l->tls_profile != CONFIG_TLS_PROFILE_LEGACY)
			return error_set(err, ERROR_CONFIG,
					 "%s:%u: [listener %s] plaintext_auth = yes needs "
					 "tls_profile = legacy",
					 loader->listener_file[kind], loader->listener_line[kind],
					 listener_names[kind]);
		if (l->apop && kind != CONFIG_LISTENER_POP3 && kind != CONFIG_LISTENER_POP3S)
			return error_set(err, ERROR_CONFIG,
					 "%s:%u: [listener %s] apop applies to POP3 listeners only",
					 loader->listener_file[kind], loader->listener_line[kind],
					 listener_names[kind]);
		if (l->cram_md5 && kind == CONFIG_LISTENER_HTTP)
			return error_set(err, ERROR_CONFIG,
					 "%s:%u: [listener %s] cram_md5 applies to SMTP and POP3 "
					 "listeners only",
					 loader->listener_file[kind], loader->listener_line[kind],
					 listener_names[kind]);
		if ((l->tls || l->setup_index) && kind != CONFIG_LISTENER_HTTP)
			return error_set(err, ERROR_CONFIG,
					 "%s:%u: [listener %s] tls and setup_index apply to the "
					 "http listener only",
					 loader->listener_file[kind], loader->listener_line[kind],
					 listener_names[kind]);
		/* Two listeners on one address would fail at bind time with a less
		 * helpful message; say which ones collide now. */
		for (int other = 0; other <= kind; other++) {
			const struct config_listener *o = &config->listeners[other];

			for (size_t i = 0; i < l->listen_count; i++) {
				for (size_t j = 0; j < (other == kind ? i : o->listen_count); j++) {
					if (l->listen[i].port != o->listen[j].port ||
					    strcmp(l->listen[i].host, o->listen[j].host) != 0)
						continue;
					return error_set(
						err, ERROR_CONFIG,
						"%s:%u: [listener %s] uses %s port %u, which "
						"[listener %s] uses too",
						loader->listener_file[kind],
						loader->listener_line[kind], listener_names[kind],
						l->listen[i].host, l->listen[i].port,
						listener_names[other]);
				}
			}
		}
	}
	return 0;
}

int config_load_text(const char *file, const char *dir, struct span text, struct config *config_out,
		     struct error *err)
{
	struct loader *loader = calloc(1, sizeof(*loader));
	int rc;

	if (loader == NULL)
		return error_set(err, ERROR_IO, "%s: out of memory", file);
	config_init_defaults(config_out);
	snprintf(config_out->path, sizeof(config_out->path), "%s", file);
	loader->config = config_out;
	rc = load_text(loader, file, dir, text, err);
	if (rc == 0)
		rc = check_listeners(loader, err);
	if (rc == 0)
		rc = derive(file, config_out, err);
	free(loader);
	return rc;
}

int config_load(const char *path, struct config *config_out, struct error *err)
{
	struct loader *loader = calloc(1, sizeof(*loader));
	int rc;

	if (loader == NULL)
		return error_set(err, ERROR_IO, "%s: out of memory", path);
	config_init_defaults(config_out);
	snprintf(config_out->path, sizeof(config_out->path), "%s", path);
	loader->config = config_out;
	rc = load_file(loader, path, path, err);
	if (rc < 0 && err != NULL && err->kind == ERROR_IO)
		err->kind = ERROR_CONFIG;
	if (rc == 0)
		rc = check_listeners(loader, err);
	if (rc == 0)
		rc = derive(path, config_out, err);
	free(loader);
	return rc;
}

/* ---- printing ---------------------------------------------------------- */

static void print_duration(FILE *out, uint64_t ms)
{
	if (ms % 86400000 == 0 && ms != 0)
		fprintf(out, "%llud", (unsigned long long) (ms / 86400000));
	else if (ms % 3600000 == 0 && ms != 0)
		fprintf(out, "%lluh", (unsigned long long) (ms / 3600000));
	else if (ms % 60000 == 0 && ms != 0)
		fprintf(out, "%llum", (unsigned long long) (ms / 60000));
	else if (ms % 1000 == 0)
		fprintf(out, "%llus", (unsigned long long) (ms / 1000));
	else
		fprintf(out, "%llums", (unsigned long long) ms);
}

void config_address_format(const struct config_address *address, char *out, size_t out_cap)
{
	if (strchr(address->host, ':') != NULL)
		snprintf(out, out_cap, "[%s]:%u", address->host, address->port);
	else
		snprintf(out, out_cap, "%s:%u", address->host, address->port);
}

static void print_route(FILE *out, const struct config_route *route)
{
	if (strchr(route->host, ':') != NULL)
		fprintf(out, "[%s]:%u", route->host, route->port);
	else
		fprintf(out, "%s:%u", route->host, route->port);
	if (route->has_tls)
		fprintf(out, " tls=%s", outbound_tls_names[route->tls]);
}

/* Keys with no value (not set, no default) are printed as a comment. */
static bool is_unset(const struct config_key *key, const void *base)
{
	const char *field = (const char *) base + key->offset;

	switch (key->type) {
	case CONFIG_TYPE_PATH:
	case CONFIG_TYPE_SERVERS:
		return field[0] == '\0';
	case CONFIG_TYPE_ROUTE:
		return ((const struct config_route *) (const void *) field)->host[0] == '\0';
	default:
		return false;
	}
}

static void print_value(FILE *out, const struct config_key *key, const void *base)
{
	const char *field = (const char *) base + key->offset;

	switch (key->type) {
	case CONFIG_TYPE_HOSTNAME:
	case CONFIG_TYPE_USER:
	case CONFIG_TYPE_PATH:
	case CONFIG_TYPE_SERVERS:
		fputs(field, out);
		break;
	case CONFIG_TYPE_OUTBOUND_TLS:
		fputs(outbound_tls_names[*(const enum config_outbound_tls *) (const void *) field],
		      out);
		break;
	case CONFIG_TYPE_ROUTE:
		print_route(out, (const struct config_route *) (const void *) field);
		break;
	case CONFIG_TYPE_LOG_LEVEL:
		fputs(log_level_name(*(const enum log_level *) (const void *) field), out);
		break;
	case CONFIG_TYPE_DURATION:
		print_duration(out, *(const uint64_t *) (const void *) field);
		break;
	case CONFIG_TYPE_COUNT:
		fprintf(out, "%llu", (unsigned long long) *(const uint64_t *) (const void *) field);
		break;
	case CONFIG_TYPE_BOOL:
		fputs(*(const bool *) (const void *) field ? "yes" : "no", out);
		break;
	case CONFIG_TYPE_TLS_PROFILE:
		fputs(*(const enum config_tls_profile *) (const void *) field ==
				      CONFIG_TLS_PROFILE_LEGACY
			      ? "legacy"
			      : "modern",
		      out);
		break;
	case CONFIG_TYPE_SIZE: {
		uint64_t n = *(const uint64_t *) (const void *) field;

		if (n % (1024 * 1024 * 1024) == 0)
			fprintf(out, "%lluG", (unsigned long long) (n >> 30));
		else if (n % (1024 * 1024) == 0)
			fprintf(out, "%lluM", (unsigned long long) (n >> 20));
		else if (n % 1024 == 0)
			fprintf(out, "%lluK", (unsigned long long) (n >> 10));
		else
			fprintf(out, "%llu", (unsigned long long) n);
		break;
	}
	case CONFIG_TYPE_CIDRS: {
		const struct config_cidrs *cidrs =
			(const struct config_cidrs *) (const void *) field;

		for (size_t i = 0; i < cidrs->count; i++) {
			char text[INET6_ADDRSTRLEN];

			inet_ntop(cidrs->items[i].family, cidrs->items[i].address, text,
				  sizeof(text));
			fprintf(out, "%s%s/%u", i ? ", " : "", text, cidrs->items[i].prefix_len);
		}
		break;
	}
	case CONFIG_TYPE_LISTEN: {
		const struct config_listener *l = base;

		for (size_t i = 0; i < l->listen_count; i++) {
			char text[CONFIG_NAME_MAX + 16];

			config_address_format(&l->listen[i], text, sizeof(text));
			fprintf(out, "%s%s", i ? ", " : "", text);
		}
		break;
	}
	}
}

void config_print(const struct config *config, FILE *out)
{
	for (size_t i = 0; i < ARRAY_LEN(config_keys); i++) {
		if (config_keys[i].scope != CONFIG_SCOPE_TOP)
			continue;
		if (is_unset(&config_keys[i], config)) {
			fprintf(out, "# %s is not set\n", key_written_name(&config_keys[i]));
			continue;
		}
		fprintf(out, "%s = ", key_written_name(&config_keys[i]));
		print_value(out, &config_keys[i], config);
		fputc('\n', out);
	}
	for (size_t i = 0; i < config->route_count; i++) {
		fprintf(out, "route %s = ", config->routes[i].domain);
		print_route(out, &config->routes[i]);
		fputc('\n', out);
	}
	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++) {
		if (!config->listeners[kind].is_enabled)
			continue;
		fprintf(out, "\n[listener %s]\n", listener_names[kind]);
		for (size_t i = 0; i < ARRAY_LEN(config_keys); i++) {
			if (config_keys[i].scope != CONFIG_SCOPE_LISTENER)
				continue;
			fprintf(out, "%s = ", key_written_name(&config_keys[i]));
			print_value(out, &config_keys[i], &config->listeners[kind]);
			fputc('\n', out);
		}
	}
}

void config_keys_each(config_key_fn *each, void *ctx)
{
	for (size_t i = 0; i < ARRAY_LEN(config_keys); i++)
		each(ctx, config_keys[i].scope == CONFIG_SCOPE_TOP ? "" : "listener",
		     key_written_name(&config_keys[i]));
	each(ctx, "", "include");
	each(ctx, "", "route");
}
