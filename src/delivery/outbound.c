/*
 * outbound: destinations, limits and connection reuse over dns.c and
 * smtp_client.c. A destination is the domain (MX routing) or "host:port" of
 * a route, so that every domain sent through one relayhost shares its
 * connections.
 */
#include "delivery/outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "core/log.h"

struct destination {
	struct destination *next;
	char key[DELIVERY_HOST_NAME_MAX + 16];
	char domain[DELIVERY_HOST_NAME_MAX]; /* for MX routing */
	struct config_route route;	     /* host empty: MX routing */
	struct delivery_outbound_job *head, **tail;
	size_t active; /* connections (or look-ups) for it */
};

struct connection {
	struct delivery_outbound *outbound;
	struct destination *destination;
	struct delivery_outbound_job *current; /* the job being sent */
	struct delivery_smtp *client;
	struct connection *next;
	bool is_resolving;
};

struct delivery_outbound {
	struct event_base *base;
	const struct config *config;
	struct delivery_dns *dns;
	SSL_CTX *tls_ctx;
	struct destination *destinations;
	struct connection *connections;
	size_t active;
	bool is_stopping;
	struct event *pump_event;
};

static void pump(struct delivery_outbound *ob);

static void job_fail(struct delivery_outbound_job *job, unsigned code, const char *text)
{
	for (size_t i = 0; i < job->message.recipient_count; i++) {
		struct delivery_recipient *r = &job->message.recipients[i];

		if (r->code != 0)
			continue;
		r->code = code;
		snprintf(r->reply, sizeof(r->reply), "%s", text);
	}
	job->done(job->ctx, job);
}

static struct delivery_outbound_job *destination_pop(struct destination *d)
{
	struct delivery_outbound_job *job = d->head;

	if (job != NULL) {
		d->head = job->next;
		if (d->head == NULL)
			d->tail = &d->head;
		job->next = NULL;
	}
	return job;
}

static void destination_free_if_idle(struct delivery_outbound *ob, struct destination *d)
{
	struct destination **p = &ob->destinations;

	if (d->head != NULL || d->active > 0)
		return;
	while (*p != NULL && *p != d)
		p = &(*p)->next;
	if (*p == d)
		*p = d->next;
	free(d);
}

static void connection_end(struct connection *conn)
{
	struct delivery_outbound *ob = conn->outbound;
	struct connection **p = &ob->connections;

	while (*p != NULL && *p != conn)
		p = &(*p)->next;
	if (*p == conn)
		*p = conn->next;
	conn->destination->active--;
	ob->active--;
	destination_free_if_idle(ob, conn->destination);
	free(conn);
	pump(ob);
}

/* --- the SMTP client's callbacks --------------------------------------------- */

static void on_message_done(void *ctx, struct delivery_message *message)
{
	struct connection *conn = ctx;
	struct delivery_outbound_job *job = conn->current;

	(void) message;
	conn->current = NULL;
	job->done(job->ctx, job);
}

static struct delivery_message *on_next(void *ctx)
{
	struct connection *conn = ctx;

	if (conn->outbound->is_stopping)
		return NULL;
	conn->current = destination_pop(conn->destination);
	if (conn->current == NULL)
		return NULL;
	log_debug("delivery outbound reuse destination=%s", conn->destination->key);
	return &conn->current->message;
}

static void on_session_done(void *ctx)
{
	struct connection *conn = ctx;

	conn->client = NULL;
	connection_end(conn);
}

/* --- routing --------------------------------------------------------------- */

static void on_resolved(void *ctx, enum delivery_dns_status status,
			const struct delivery_hosts *hosts, const char *detail)
{
	struct connection *conn = ctx;
	struct delivery_outbound *ob = conn->outbound;
	struct destination *d = conn->destination;
	unsigned code = 0;
	char text[DELIVERY_DETAIL_MAX];

	conn->is_resolving = false;
	switch (status) {
	case DELIVERY_DNS_OK:
		break;
	case DELIVERY_DNS_NULL_MX:
		code = 556;
		snprintf(text, sizeof(text), "556 5.1.10 %s", detail);
		break;
	case DELIVERY_DNS_NOT_FOUND:
		code = 550;
		snprintf(text, sizeof(text), "550 5.1.2 %s", detail);
		break;
	case DELIVERY_DNS_TEMPFAIL:
		code = 451;
		snprintf(text, sizeof(text), "451 4.4.3 %s", detail);
		break;
	}
	if (ob->is_stopping && code == 0) {
		code = 421;
		snprintf(text, sizeof(text), "421 4.4.2 shutting down");
	}
	if (code != 0) {
		struct delivery_outbound_job *job;

		log_info("delivery route destination=%s result=%s detail=\"%s\"", d->key,
			 code / 100 == 5 ? "failed" : "deferred", text);
		job_fail(conn->current, code, text);
		conn->current = NULL;
		/* The jobs waiting for this destination would get the same answer. */
		while ((job = destination_pop(d)) != NULL)
			job_fail(job, code, text);
		connection_end(conn);
		return;
	}
	{
		const struct config_route *route = d->route.host[0] != '\0' ? &d->route : NULL;
		struct delivery_smtp_params params = {
			.base = ob->base,
			.tls_ctx = ob->tls_ctx,
			.tls = route != NULL && route->has_tls ? route->tls
							       : ob->config->outbound_tls,
			.helo_name = ob->config->hostname,
			.timeout_divisor = (unsigned) ob->config->outbound_timeout_divisor,
		};

		conn->client = delivery_smtp_start(&params, hosts, &conn->current->message,
						   on_message_done, on_next, on_session_done, conn);
		if (conn->client == NULL) {
			job_fail(conn->current, 451, "451 4.3.0 out of memory");
			conn->current = NULL;
			connection_end(conn);
		}
	}
}

/* False when memory ran out: the jobs wait for the next pump (a connection
 * ending or a new job), and this one must not spin on them. */
static bool connection_start(struct delivery_outbound *ob, struct destination *d)
{
	struct connection *conn = calloc(1, sizeof(*conn));
	int rc;

	if (conn == NULL)
		return false;
	conn->outbound = ob;
	conn->destination = d;
	conn->current = destination_pop(d);
	conn->is_resolving = true;
	conn->next = ob->connections;
	ob->connections = conn;
	d->active++;
	ob->active++;
	if (d->route.host[0] != '\0')
		rc = delivery_dns_resolve_host(ob->dns, d->route.host, d->route.port, on_resolved,
					       conn);
	else
		rc = delivery_dns_resolve_mx(ob->dns, d->domain, (uint16_t) ob->config->smtp_port,
					     on_resolved, conn);
	if (rc < 0) {
		job_fail(conn->current, 451, "451 4.3.0 out of memory");
		conn->current = NULL;
		connection_end(conn);
	}
	return true;
}

/* Start connections while limits allow. Runs from its own event so that no
 * job's done callback runs inside submit. */
static void on_pump(evutil_socket_t fd, short events, void *arg)
{
	struct delivery_outbound *ob = arg;
	bool started = true;

	(void) fd;
	(void) events;
	while (started && !ob->is_stopping && ob->active < ob->config->max_outbound_connections) {
		started = false;
		for (struct destination *d = ob->destinations; d != NULL; d = d->next) {
			if (d->head == NULL || d->active >= ob->config->max_destination_connections)
				continue;
			if (ob->active >= ob->config->max_outbound_connections)
				break;
			started = connection_start(ob, d);
			break; /* the list may have changed */
		}
	}
}

static void pump(struct delivery_outbound *ob)
{
	struct timeval now = { 0, 0 };

	if (!ob->is_stopping)
		evtimer_add(ob->pump_event, &now);
}

static void destination_key(const struct delivery_outbound *ob, const char *domain,
			    struct destination *d)
{
	const struct config_route *route = config_route_find(ob->config, domain);

	memset(d, 0, sizeof(*d));
	if (route != NULL) {
		d->route = *route;
		snprintf(d->key, sizeof(d->key), "[%s]:%u", route->host, route->port);
	} else {
		snprintf(d->key, sizeof(d->key), "%s", domain);
		for (char *p = d->key; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char) (*p + 32);
		snprintf(d->domain, sizeof(d->domain), "%s", domain);
		for (char *p = d->domain; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char) (*p + 32);
	}
}

void delivery_outbound_submit(struct delivery_outbound *ob, struct delivery_outbound_job *job)
{
	struct destination want, *d;

	destination_key(ob, job->domain, &want);
	for (d = ob->destinations; d != NULL; d = d->next)
		if (strcmp(d->key, want.key) == 0)
			break;
	if (d == NULL) {
		d = malloc(sizeof(*d));
		if (d == NULL) {
			/* Fail it from the loop, never inside submit. */
			job->next = NULL;
			d = NULL;
		} else {
			*d = want;
			d->tail = &d->head;
			d->next = ob->destinations;
			ob->destinations = d;
		}
	}
	if (d == NULL) {
		log_error("delivery outbound out of memory; domain=%s deferred", job->domain);
		job_fail(job, 451, "451 4.3.0 out of memory");
		return;
	}
	job->next = NULL;
	*d->tail = job;
	d->tail = &job->next;
	pump(ob);
}

struct delivery_outbound *delivery_outbound_new(struct event_base *base,
						const struct config *config, struct error *err)
{
	struct delivery_outbound *ob = calloc(1, sizeof(*ob));

	if (ob == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		return NULL;
	}
	ob->base = base;
	ob->config = config;
	ob->pump_event = evtimer_new(base, on_pump, ob);
	ob->tls_ctx = SSL_CTX_new(TLS_client_method());
	if (ob->pump_event == NULL || ob->tls_ctx == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		goto fail;
	}
	SSL_CTX_set_options(ob->tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (config->outbound_ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ob->tls_ctx, config->outbound_ca_file, NULL) !=
		    1) {
			error_set(err, ERROR_CONFIG, "outbound_ca_file %s: %s",
				  config->outbound_ca_file,
				  ERR_reason_error_string(ERR_get_error()));
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ob->tls_ctx) != 1) {
		error_set(err, ERROR_CONFIG, "cannot load the system trust store");
		goto fail;
	}
	/* Answers within seconds or a retry later: a slow resolver must not
	 * hold connections slots for long. */
	ob->dns = delivery_dns_new(base, config->dns_servers,
				   (unsigned) (5000 / config->outbound_timeout_divisor) + 100, err);
	if (ob->dns == NULL)
		goto fail;
	return ob;
fail:
	delivery_outbound_free(ob);
	return NULL;
}

void delivery_outbound_stop(struct delivery_outbound *ob)
{
	struct delivery_outbound_job *job;

	if (ob == NULL)
		return;
	ob->is_stopping = true;
	evtimer_del(ob->pump_event);
	/* Connections: their message in flight gets 421, then session_done. */
	while (ob->connections != NULL) {
		struct connection *conn = ob->connections;

		if (conn->client != NULL) {
			delivery_smtp_abort(conn->client);
		} else {
			/* Still resolving: the look-up is cancelled with the resolver. */
			if (conn->current != NULL)
				job_fail(conn->current, 421, "421 4.4.2 shutting down");
			conn->current = NULL;
			connection_end(conn);
		}
	}
	for (struct destination *d = ob->destinations, *next; d != NULL; d = next) {
		next = d->next;
		while ((job = destination_pop(d)) != NULL)
			job_fail(job, 421, "421 4.4.2 shutting down");
		destination_free_if_idle(ob, d);
	}
}

void delivery_outbound_free(struct delivery_outbound *ob)
{
	if (ob == NULL)
		return;
	delivery_dns_free(ob->dns);
	while (ob->destinations != NULL) {
		struct destination *d = ob->destinations;

		ob->destinations = d->next;
		free(d);
	}
	if (ob->pump_event != NULL)
		event_free(ob->pump_event);
	if (ob->tls_ctx != NULL)
		SSL_CTX_free(ob->tls_ctx);
	free(ob);
}
