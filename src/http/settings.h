/*
 * settings: what a mail client must be told for one hosted domain — which
 * server names, ports, security modes and authentication — derived from the
 * configuration in effect (its listeners) and the domain's row in the store
 * (its server names). This is the one place that derivation happens: the
 * HTTP documents, the setup pages and `postgate domain show` all read a
 * struct http_settings, so they cannot disagree, and there is no second,
 * hand-kept copy to go stale (docs/http.md).
 *
 * Pure functions of their arguments; safe from any thread.
 */
#ifndef POSTGATE_HTTP_SETTINGS_H
#define POSTGATE_HTTP_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "store/store.h"

enum http_service {
	HTTP_SERVICE_SMTP = 0, /* outgoing: message submission */
	HTTP_SERVICE_POP3,     /* incoming */
};

enum http_security {
	HTTP_SECURITY_SSL = 0,	/* implicit TLS from the first byte (RFC 8314 3.3) */
	HTTP_SECURITY_STARTTLS, /* plain connection upgraded by STARTTLS or STLS */
	HTTP_SECURITY_NONE,	/* no TLS: only where plaintext_auth = yes allows it */
};

/* One way in: a listener of the configuration, named for this domain. */
struct http_endpoint {
	enum http_service service;
	enum config_listener_kind listener;
	char host[ADDRESS_DOMAIN_MAX + 1]; /* the domain's smtp_name or pop3_name */
	uint16_t port;			   /* the listener's first address */
	enum http_security security;
};

#define HTTP_ENDPOINTS_MAX 2 /* per service: the implicit-TLS and the STARTTLS listener */

struct http_settings {
	char domain[ADDRESS_DOMAIN_MAX + 1];
	char hostname[CONFIG_NAME_MAX]; /* the server's own name (config hostname) */
	/* In the order a client should prefer them: implicit TLS first (RFC
	 * 8314 3), then STARTTLS, then (legacy profile only) none. */
	size_t smtp_count;
	struct http_endpoint smtp[HTTP_ENDPOINTS_MAX];
	size_t pop3_count;
	struct http_endpoint pop3[HTTP_ENDPOINTS_MAX];
	/* The http listener, for the DNS hints: port 0 when it is not enabled. */
	uint16_t http_port;
	bool is_http_tls;
};

/*
 * Fill out from the listeners of config and the names of domain. A listener
 * appears only when a client can log in on it with a password: submissions
 * and pop3s always; submission and pop3 with STARTTLS (starttls = yes), or
 * without TLS where plaintext_auth = yes. mx is never offered to customers
 * (port 25 is for other servers and is blocked by many access providers).
 */
void http_settings_build(const struct config *config, const struct store_domain *domain,
			 struct http_settings *out);

/* The first (preferred) endpoint of a service, or NULL when there is none. */
const struct http_endpoint *http_settings_preferred(const struct http_settings *settings,
						    enum http_service service);

/* "SSL", "STARTTLS", "plain": the words of Thunderbird's socketType. */
const char *http_security_name(enum http_security security);
/* "SMTP", "POP3". */
const char *http_service_name(enum http_service service);

/*
 * The DNS records an administrator should publish for the domain, as zone
 * file lines with ';' comments: the RFC 6186 SRV records (with RFC 8314's
 * _submissions), "." targets for the services we do not offer (IMAP), and
 * the autoconfig/autodiscover names.
 */
void http_settings_dns_write(const struct http_settings *settings, FILE *out);

#endif
