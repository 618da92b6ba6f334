/*
 * settings: client settings from the listeners and the domain's names (see
 * settings.h).
 */
#include "http/settings.h"

#include <string.h>

static void add(struct http_settings *s, enum http_service service, enum config_listener_kind kind,
		const struct config_listener *l, enum http_security security, const char *host)
{
	struct http_endpoint *e;
	size_t *count = service == HTTP_SERVICE_SMTP ? &s->smtp_count : &s->pop3_count;

	if (*count >= HTTP_ENDPOINTS_MAX || l->listen_count == 0)
		return;
	e = service == HTTP_SERVICE_SMTP ? &s->smtp[*count] : &s->pop3[*count];
	e->service = service;
	e->listener = kind;
	snprintf(e->host, sizeof(e->host), "%s", host);
	e->port = l->listen[0].port;
	e->security = security;
	(*count)++;
}

/* A listener where the client starts in plaintext: STARTTLS when it is
 * offered, else plaintext only if the administrator allowed passwords so. */
static void add_plain(struct http_settings *s, enum http_service service,
		      const struct config *config, enum config_listener_kind kind, const char *host)
{
	const struct config_listener *l = &config->listeners[kind];

	if (!l->is_enabled)
		return;
	if (l->starttls)
		add(s, service, kind, l, HTTP_SECURITY_STARTTLS, host);
	else if (l->plaintext_auth)
		add(s, service, kind, l, HTTP_SECURITY_NONE, host);
}

void http_settings_build(const struct config *config, const struct store_domain *domain,
			 struct http_settings *out)
{
	const struct config_listener *http = &config->listeners[CONFIG_LISTENER_HTTP];

	memset(out, 0, sizeof(*out));
	snprintf(out->domain, sizeof(out->domain), "%s", domain->name);
	snprintf(out->hostname, sizeof(out->hostname), "%s", config->hostname);
	/* RFC 8314 3: implicit TLS is preferred to STARTTLS. */
	if (config->listeners[CONFIG_LISTENER_SUBMISSIONS].is_enabled)
		add(out, HTTP_SERVICE_SMTP, CONFIG_LISTENER_SUBMISSIONS,
		    &config->listeners[CONFIG_LISTENER_SUBMISSIONS], HTTP_SECURITY_SSL,
		    domain->smtp_name);
	add_plain(out, HTTP_SERVICE_SMTP, config, CONFIG_LISTENER_SUBMISSION, domain->smtp_name);
	if (config->listeners[CONFIG_LISTENER_POP3S].is_enabled)
		add(out, HTTP_SERVICE_POP3, CONFIG_LISTENER_POP3S,
		    &config->listeners[CONFIG_LISTENER_POP3S], HTTP_SECURITY_SSL,
		    domain->pop3_name);
	add_plain(out, HTTP_SERVICE_POP3, config, CONFIG_LISTENER_POP3, domain->pop3_name);
	if (http->is_enabled && http->listen_count > 0) {
		out->http_port = http->listen[0].port;
		out->is_http_tls = http->tls;
	}
}

const struct http_endpoint *http_settings_preferred(const struct http_settings *settings,
						    enum http_service service)
{
	if (service == HTTP_SERVICE_SMTP)
		return settings->smtp_count > 0 ? &settings->smtp[0] : NULL;
	return settings->pop3_count > 0 ? &settings->pop3[0] : NULL;
}

const char *http_security_name(enum http_security security)
{
	switch (security) {
	case HTTP_SECURITY_SSL:
		return "SSL";
	case HTTP_SECURITY_STARTTLS:
		return "STARTTLS";
	case HTTP_SECURITY_NONE:
		break;
	}
	return "plain";
}

const char *http_service_name(enum http_service service)
{
	return service == HTTP_SERVICE_SMTP ? "SMTP" : "POP3";
}

/* RFC 6186 3.1 / RFC 8314 5.1: the SRV service label of an endpoint. */
static const char *srv_label(const struct http_endpoint *e)
{
	switch (e->listener) {
	case CONFIG_LISTENER_SUBMISSIONS:
		return "_submissions";
	case CONFIG_LISTENER_SUBMISSION:
		return "_submission";
	case CONFIG_LISTENER_POP3S:
		return "_pop3s";
	default:
		return "_pop3";
	}
}

static void write_srv(const struct http_settings *s, const struct http_endpoint *list, size_t count,
		      FILE *out)
{
	/* RFC 6186 3.4: lower priority is preferred; RFC 8314 5.1: implicit
	 * TLS before STARTTLS. */
	for (size_t i = 0; i < count; i++)
		fprintf(out, "%s._tcp.%s. 3600 IN SRV %u 1 %u %s.\n", srv_label(&list[i]),
			s->domain, (unsigned) (i * 10), (unsigned) list[i].port, list[i].host);
}

void http_settings_dns_write(const struct http_settings *s, FILE *out)
{
	bool has_submission = false, has_pop3 = false;

	fprintf(out, "; Client configuration records for %s (RFC 6186, RFC 8314).\n", s->domain);
	fprintf(out, "; Server names: each must resolve to this server (A/AAAA or CNAME).\n");
	for (size_t i = 0; i < s->smtp_count; i++)
		has_submission |= s->smtp[i].listener == CONFIG_LISTENER_SUBMISSION;
	for (size_t i = 0; i < s->pop3_count; i++)
		has_pop3 |= s->pop3[i].listener == CONFIG_LISTENER_POP3;
	if (s->smtp_count > 0)
		fprintf(out, "%s. 3600 IN CNAME %s.\n", s->smtp[0].host, s->hostname);
	if (s->pop3_count > 0)
		fprintf(out, "%s. 3600 IN CNAME %s.\n", s->pop3[0].host, s->hostname);
	fprintf(out, "; Mail submission and retrieval (RFC 6186 3.1, RFC 8314 5.1).\n");
	write_srv(s, s->smtp, s->smtp_count, out);
	write_srv(s, s->pop3, s->pop3_count, out);
	/* RFC 6186 3.4: a target of "." says the service is not offered. */
	if (s->smtp_count > 0 && !has_submission)
		fprintf(out, "_submission._tcp.%s. 3600 IN SRV 0 0 0 .\n", s->domain);
	if (s->pop3_count > 0 && !has_pop3)
		fprintf(out, "_pop3._tcp.%s. 3600 IN SRV 0 0 0 .\n", s->domain);
	fprintf(out, "_imap._tcp.%s. 3600 IN SRV 0 0 0 .\n", s->domain);
	fprintf(out, "_imaps._tcp.%s. 3600 IN SRV 0 0 0 .\n", s->domain);
	fprintf(out, "; Automatic configuration (docs/http.md).\n");
	if (s->http_port == 0) {
		fprintf(out,
			"; The http listener is not enabled: no autoconfig or autodiscover.\n");
		return;
	}
	fprintf(out,
		"; Thunderbird fetches http://autoconfig.%s/mail/config-v1.1.xml (port 80),\n"
		"; Outlook POSTs https://autodiscover.%s/autodiscover/autodiscover.xml (port "
		"443);\n"
		"; the http listener is on port %u (%s): proxy 80/443 to it unless it is there.\n",
		s->domain, s->domain, (unsigned) s->http_port, s->is_http_tls ? "HTTPS" : "HTTP");
	fprintf(out, "autoconfig.%s. 3600 IN CNAME %s.\n", s->domain, s->hostname);
	fprintf(out, "autodiscover.%s. 3600 IN CNAME %s.\n", s->domain, s->hostname);
	/* [MS-OXDSCLI] 3.1.5.1: Outlook follows the SRV record's port, HTTPS only. */
	fprintf(out, "_autodiscover._tcp.%s. 3600 IN SRV 0 1 %u %s.\n", s->domain,
		s->is_http_tls ? (unsigned) s->http_port : 443u, s->hostname);
}
