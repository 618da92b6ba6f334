/*
 * config: the one configuration file, its syntax and its table of keys.
 *
 * Syntax (docs/configuration.md): `key = value` lines, `[section]` or
 * `[section name]` headers, `key argument = value` for keys that take an
 * argument, full-line `#` comments, and `include = FILE` (relative to the
 * including file). Every key lives in one table with its type, default and
 * bounds; an unknown key, a bad value or a key given twice is an error that
 * names FILE:LINE. Relative paths are resolved against the directory of the
 * file they appear in.
 *
 * Nothing here knows about mail beyond the names of the keys.
 */
#ifndef POSTGATE_CORE_CONFIG_H
#define POSTGATE_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/log.h"
#include "core/span.h"

#define CONFIG_PATH_MAX	     4096
#define CONFIG_NAME_MAX	     256 /* host names: RFC 1035 2.3.4 allows 255 octets */
#define CONFIG_USER_MAX	     64
#define CONFIG_LISTEN_MAX    8	       /* addresses one listener binds */
#define CONFIG_LINE_MAX	     65536     /* bytes in one line of a config file */
#define CONFIG_FILE_MAX	     (1 << 20) /* bytes in one config file */
#define CONFIG_INCLUDE_DEPTH 8

enum config_listener_kind {
	CONFIG_LISTENER_MX = 0,
	CONFIG_LISTENER_SUBMISSION,
	CONFIG_LISTENER_SUBMISSIONS,
	CONFIG_LISTENER_POP3,
	CONFIG_LISTENER_POP3S,
	CONFIG_LISTENER_HTTP,
	CONFIG_LISTENER_KIND_COUNT,
};

struct config_address {
	char host[CONFIG_NAME_MAX]; /* numeric IPv4 or IPv6 address, no brackets */
	uint16_t port;
};

/* The TLS profile of a listener (the protocol versions and suites are in
 * src/tls/context.c). */
enum config_tls_profile {
	CONFIG_TLS_PROFILE_MODERN = 0, /* TLS 1.2 and 1.3 */
	CONFIG_TLS_PROFILE_LEGACY,     /* adds TLS 1.0/1.1 with AES-CBC, for Vista-era clients */
};

struct config_listener {
	bool is_enabled; /* its section is present */
	size_t listen_count;
	struct config_address listen[CONFIG_LISTEN_MAX];
	enum config_tls_profile tls_profile;
	bool starttls;		  /* offer STARTTLS (mx, submission) */
	bool plaintext_auth;	  /* PLAIN/LOGIN without TLS; only with the legacy profile */
	bool detect_implicit_tls; /* submission: a ClientHello first means implicit TLS */
	bool cram_md5;		  /* offer CRAM-MD5 (once every account has its secret) */
	bool apop;		  /* POP3: offer APOP (once every account has its secret) */
	bool tls;		  /* http: HTTPS on this listener (docs/http.md) */
	bool setup_index;	  /* http: /setup/ lists the hosted domains */
};

/* How the SMTP client treats TLS towards a destination (docs/delivery.md). */
enum config_outbound_tls {
	CONFIG_OUTBOUND_TLS_OPPORTUNISTIC = 0, /* STARTTLS when offered, no certificate check */
	CONFIG_OUTBOUND_TLS_REQUIRE,	       /* STARTTLS must succeed; no certificate check */
	CONFIG_OUTBOUND_TLS_VERIFY,	       /* STARTTLS with a certificate valid for the host */
	CONFIG_OUTBOUND_TLS_NONE,	       /* never STARTTLS */
};

#define CONFIG_ROUTES_MAX      64
#define CONFIG_DNS_SERVERS_MAX 512 /* bytes of the dns_servers list */

/* `route DOMAIN = HOST:PORT [tls=MODE]` and `relayhost = HOST:PORT [tls=MODE]`:
 * where mail for a domain (or all remote mail) goes instead of its MX. */
struct config_route {
	char domain[CONFIG_NAME_MAX]; /* lower-case; empty for the relayhost */
	char host[CONFIG_NAME_MAX];   /* a host name (A/AAAA looked up) or a numeric address;
					 empty: not set */
	uint16_t port;
	bool has_tls; /* tls= given; otherwise outbound_tls applies */
	enum config_outbound_tls tls;
};

#define CONFIG_CIDRS_MAX 16

/* An address block, "192.0.2.0/24" or "2001:db8::/32". */
struct config_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char address[16];
	unsigned prefix_len;
};

/* `metrics_allow`: who may read /metrics (docs/http.md). */
struct config_cidrs {
	size_t count;
	struct config_cidr items[CONFIG_CIDRS_MAX];
};

struct config {
	char path[CONFIG_PATH_MAX]; /* the main file, as given */

	char hostname[CONFIG_NAME_MAX];
	char user[CONFIG_USER_MAX];
	char state_dir[CONFIG_PATH_MAX];
	char maildir_root[CONFIG_PATH_MAX];
	char accounts_db[CONFIG_PATH_MAX];
	char tls_cert[CONFIG_PATH_MAX];
	char tls_key[CONFIG_PATH_MAX];
	char tls_cert_dir[CONFIG_PATH_MAX]; /* certificates per server name; "" for none */
	enum log_level log_level;
	uint64_t shutdown_timeout_ms;
	uint64_t worker_threads;
	uint64_t commit_threads;      /* threads that wait for the group sync */
	uint64_t auth_threads;	      /* password-hashing threads; 0: one per online CPU */
	uint64_t max_message_size;    /* bytes */
	uint64_t max_recipients;      /* per message */
	uint64_t max_line_length;     /* octets of a DATA text line, CRLF included */
	uint64_t max_sessions;	      /* at once, every listener together */
	uint64_t max_sessions_per_ip; /* at once, from one client address */
	uint64_t max_session_time_ms; /* from connect to the end, any session */
	uint64_t command_timeout_ms;  /* a whole command line, from its first byte */
	uint64_t data_timeout_ms;     /* between two reads of message data */
	uint64_t max_commands;	      /* SMTP commands in one session */
	uint64_t max_errors;	      /* SMTP 5xx for bad commands before we hang up */
	/* Per authenticated user (0: no limit); src/auth/rate.h. */
	uint64_t user_messages_per_hour;
	uint64_t user_messages_per_day;
	uint64_t user_recipients_per_hour;
	uint64_t user_recipients_per_day;
	uint64_t hold_login_addresses;

	struct config_listener listeners[CONFIG_LISTENER_KIND_COUNT];

	/* Outbound delivery (docs/delivery.md). */
	char dns_servers[CONFIG_DNS_SERVERS_MAX]; /* "IP:PORT,..."; empty: /etc/resolv.conf */
	uint64_t smtp_port;			  /* port of MX hosts */
	enum config_outbound_tls outbound_tls;
	char outbound_ca_file[CONFIG_PATH_MAX]; /* empty: the system trust store */
	uint64_t outbound_timeout_divisor;	/* divides every RFC 5321 4.5.3.2 timeout */
	uint64_t max_outbound_connections;
	uint64_t max_destination_connections;
	uint64_t retry_initial_ms;
	uint64_t retry_max_ms;
	uint64_t max_queue_lifetime_ms;
	uint64_t delay_warning_ms;  /* 0: off */
	uint64_t bounce_return_max; /* bytes of the original a bounce returns whole */
	struct config_route relayhost;
	size_t route_count;
	struct config_route routes[CONFIG_ROUTES_MAX];
	struct config_cidrs metrics_allow; /* clients that may read /metrics */
};

/*
 * A parsed line, as the syntax layer hands it to the key table. Spans point
 * into the file's bytes and live only for the callback.
 */
struct config_line {
	const char *file;
	unsigned line;
	struct span section;	 /* empty for the top level */
	struct span section_arg; /* `[listener mx]` -> "mx"; empty if none */
	struct span key;
	struct span key_arg; /* `route example.net = ...` -> "example.net" */
	struct span value;   /* trimmed */
};

/* Called for each key line and each section header (key empty); return -1 and
 * fill err to stop. */
typedef int config_line_fn(void *ctx, const struct config_line *line, struct error *err);

/*
 * The syntax layer alone: no file system, no globals, so tests and the fuzzer
 * call it directly. `include` lines are handed to the callback like any key.
 */
int config_text_parse(const char *file, struct span text, config_line_fn *each, void *ctx,
		      struct error *err);

/* Fill every field with its documented default. */
void config_init_defaults(struct config *config_out);

/* Read FILE (and its includes) over the defaults; on error, err holds
 * "FILE:LINE: what is wrong" and config_out is unspecified. */
int config_load(const char *path, struct config *config_out, struct error *err);

/* Same, from text already in memory; includes are resolved against dir. Used by tests. */
int config_load_text(const char *file, const char *dir, struct span text, struct config *config_out,
		     struct error *err);

/* The effective settings, in the file's own syntax, every key shown. */
void config_print(const struct config *config, FILE *out);

/* Whether any enabled listener has cram_md5 = yes: then `postgate user
 * add/passwd` store the CRAM-MD5 secret (password-equivalent), else they
 * remove it. */
bool config_cram_md5_wanted(const struct config *config);
/* Whether any enabled listener has apop = yes: then `postgate user
 * add/passwd` store the {PLAIN} secret APOP needs, else they remove it. */
bool config_apop_wanted(const struct config *config);

/* "mx", "submission", ... as used in section headers and logs. */
const char *config_listener_name(enum config_listener_kind kind);

/* Formats "host:port", with brackets around IPv6 hosts. */
void config_address_format(const struct config_address *address, char *out, size_t out_cap);

/* The route for domain (ASCII case-insensitive): a `route` entry, else the
 * relayhost, else NULL (MX look-up). */
const struct config_route *config_route_find(const struct config *config, const char *domain);

/* Whether ip (numeric text, IPv4 or IPv6; an IPv4-mapped IPv6 address
 * counts as its IPv4 address) is inside one of the blocks. */
bool config_cidrs_contain(const struct config_cidrs *cidrs, const char *ip);

/* "opportunistic", "require", "verify", "none". */
const char *config_outbound_tls_name(enum config_outbound_tls tls);

/* Each documented key, for the docs test: calls each(ctx, "section", "key"). */
typedef void config_key_fn(void *ctx, const char *section, const char *key);
void config_keys_each(config_key_fn *each, void *ctx);

#endif
