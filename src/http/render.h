/*
 * render: the documents the HTTP listener serves, written into an evbuffer
 * from a struct http_settings (settings.h): Thunderbird's autoconfig file,
 * Outlook's Autodiscover (POX) response, Apple's configuration profile, and
 * the setup pages (setup.c). Every text that comes from a client, the store
 * or the configuration is escaped for XML/HTML here, in one function.
 *
 * Runs on any thread (no globals); the caller owns out.
 */
#ifndef POSTGATE_HTTP_RENDER_H
#define POSTGATE_HTTP_RENDER_H

#include <stddef.h>

#include <event2/buffer.h>

#include "core/config.h"
#include "http/settings.h"

/* text with & < > " ' replaced by entities (XML 1.0 2.4; HTML alike). */
void http_escape_add(struct evbuffer *out, const char *text);

/* Thunderbird's clientConfig version 1.1 for the domain: every endpoint, in
 * preference order; the user name is %EMAILADDRESS%. */
void http_render_autoconfig(const struct http_settings *settings, struct evbuffer *out);

/* The Autodiscover response (Outlook response schema 2006a) for address: one
 * POP3 and one SMTP Protocol, the preferred of each. */
void http_render_autodiscover(const struct http_settings *settings, const char *address,
			      struct evbuffer *out);
/* An Autodiscover <Error> response: 600 "Invalid Request", 601 "Provider is
 * not available" ([MS-OXDSCLI] 2.2.4.1.1.2.1). */
void http_render_autodiscover_error(int code, const char *message, struct evbuffer *out);

/* An unsigned Apple configuration profile with one com.apple.mail.managed
 * payload (POP) for address. Its UUIDs are derived from the address, so
 * installing it again replaces the earlier one. */
void http_render_mobileconfig(const struct http_settings *settings, const char *address,
			      struct evbuffer *out);

/* setup.c: the customer setup page of the domain, one card per client, and
 * the index of domains. config gives what the listeners allow (profiles,
 * plaintext_auth) for the old clients' advice. */
void http_render_setup(const struct http_settings *settings, const struct config *config,
		       struct evbuffer *out);
void http_render_setup_index(const char *const *domains, size_t count, struct evbuffer *out);

#endif
