/*
 * server: evhttp wiring, routing, connection bookkeeping and worker jobs
 * for the HTTP listener (see server.h).
 *
 * Connection count: libevent 2.1's evhttp has no connection limit and no
 * "new connection" callback, but it asks our bufferevent callback
 * (evhttp_set_bevcb) for each accepted connection. That callback records
 * the connection; an event activated from it runs in the same loop pass,
 * after evhttp has built the connection around our bufferevent and set
 * itself as the bufferevent's callback argument, and "adopts" it: sets our
 * close callback, which does the counting down. At HTTP_CONNECTIONS_MAX the
 * listening sockets stop accepting until a connection ends
 * (docs/decisions/0150-http-listener-on-evhttp.md).
 */
#include "http/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "core/log.h"
#include "core/metrics.h"
#include "http/limits.h"
#include "http/query.h"
#include "http/render.h"
#include "http/settings.h"
#include "store/address.h"
#include "tls/upgrade.h"

#define HTTP_LISTENERS_MAX CONFIG_LISTEN_MAX

enum route {
	ROUTE_AUTOCONFIG,
	ROUTE_AUTODISCOVER,
	ROUTE_MOBILECONFIG,
	ROUTE_SETUP,
	ROUTE_SETUP_INDEX,
	ROUTE_METRICS,
};

struct http_job;

struct http_connection {
	struct http_connection *prev, *next;
	struct http_server *server;
	struct bufferevent *bev;	 /* until adopted (holds a reference) */
	struct evhttp_connection *evcon; /* once adopted */
	struct http_job *job;		 /* the request waiting for a worker */
	char sid[ID_CAP];
	char client[64];
	char ip[64];	  /* the limits' key: the address alone */
	bool is_admitted; /* counted by params.admit: release when it ends */
	bool is_refused;  /* over a session limit: 503 to its first request */
	uint64_t requests;
};

struct http_job {
	struct http_job *prev, *next;
	struct http_server *server; /* NULL: the server is gone */
	struct http_connection *conn;
	struct evhttp_request *req; /* NULL: evhttp freed it with its connection */
	enum route route;
	char address[ADDRESS_MAX + 1];
	char domain[ADDRESS_DOMAIN_MAX + 1];
	struct store *store;
	pthread_mutex_t *store_lock;
	struct queue_spool *server_spool; /* ROUTE_METRICS; NULL: not counted */
	/* Results (worker thread). */
	enum error_kind result;
	struct store_domain row;
	char (*domains)[ADDRESS_DOMAIN_MAX + 1];
	size_t domain_count;
	bool is_cut;
	size_t places[3]; /* ROUTE_METRICS: queue/, deferred/, hold/ */
};

struct http_server {
	struct http_server_params params;
	struct evhttp *http;
	struct evhttp_bound_socket *bound[HTTP_LISTENERS_MAX];
	size_t bound_count;
	bool is_paused;
	bool is_stopping;
	struct event *adopt;
	struct http_connection *connections;
	size_t connection_count;
	struct http_job *jobs;
};

/* ------------------------------------------------------------ connections */

static void list_remove_connection(struct http_server *s, struct http_connection *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->connections = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->connection_count--;
}

static void accepting_set(struct http_server *s, bool on)
{
	if (s->is_paused == !on)
		return;
	s->is_paused = !on;
	for (size_t i = 0; i < s->bound_count; i++) {
		struct evconnlistener *l = evhttp_bound_socket_get_listener(s->bound[i]);

		if (on)
			evconnlistener_enable(l);
		else
			evconnlistener_disable(l);
	}
	if (!on)
		log_warning("http connections=%zu max=%d: accepting paused", s->connection_count,
			    HTTP_CONNECTIONS_MAX);
}

static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_connection *c = arg;
	struct http_server *s = c->server;

	(void) evcon;
	if (c->job != NULL) {
		/* A request still at a worker: evhttp frees it with the
		 * connection unless it was detached (the client went away
		 * first), in which case sending the reply frees it. */
		if (c->job->req != NULL && evhttp_request_get_connection(c->job->req) != NULL)
			c->job->req = NULL;
		c->job->conn = NULL;
	}
	if (!c->is_refused) /* a refused one never connected as a session */
		log_info("sid=%s disconnect listener=http requests=%llu", c->sid,
			 (unsigned long long) c->requests);
	if (c->is_admitted && s->params.release != NULL)
		s->params.release(s->params.limits_ctx, c->ip);
	list_remove_connection(s, c);
	free(c);
	if (!s->is_stopping && s->connection_count < HTTP_CONNECTIONS_MAX)
		accepting_set(s, true);
}

/*
 * The daemon's session limits. evhttp has read nothing yet, and a reply
 * written around it now would race the request (closing with the request
 * unread resets the connection, and the client may never see the reply):
 * so a refused connection is kept just long enough to answer its first
 * request 503 with "Connection: close" (on_request), with a short timeout
 * for a client that sends nothing. It counts in connection_count (the
 * listener's own cap) meanwhile, not in the daemon's sessions.
 */
static bool admit(struct http_server *s, struct http_connection *c)
{
	const char *refusal;

	if (s->params.admit == NULL)
		return true;
	refusal = s->params.admit(s->params.limits_ctx, c->ip);
	if (refusal == NULL) {
		c->is_admitted = true;
		return true;
	}
	c->is_refused = true;
	/* The mail listeners' line (which fail2ban matches), then the sid its
	 * 503 and disconnect lines carry. */
	log_warning("connect refused listener=http client=%s reason=%s sid=%s", c->client, refusal,
		    c->sid);
	evhttp_connection_set_timeout(c->evcon, HTTP_REFUSED_TIMEOUT_S);
	return false;
}

/* Runs in the loop pass that accepted: see the file comment. */
static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;

	(void) fd;
	(void) what;
	for (struct http_connection *c = s->connections, *next; c != NULL; c = next) {
		bufferevent_data_cb read_cb = NULL;
		void *cb_arg = NULL;
		struct bufferevent *bev = c->bev;
		char *peer = NULL;
		ev_uint16_t port = 0;

		next = c->next;
		if (bev == NULL)
			continue;
		c->bev = NULL;
		bufferevent_getcb(bev, &read_cb, NULL, NULL, &cb_arg);
		if (read_cb == NULL || cb_arg == NULL) {
			/* evhttp gave up on it already (out of memory). */
			bufferevent_decref(bev);
			list_remove_connection(s, c);
			free(c);
			continue;
		}
		c->evcon = cb_arg;
		bufferevent_decref(bev);
		s->params.new_sid(s->params.new_sid_ctx, c->sid);
		evhttp_connection_get_peer(c->evcon, &peer, &port);
		snprintf(c->client, sizeof(c->client), "%s%s%s:%u",
			 peer != NULL && strchr(peer, ':') != NULL ? "[" : "",
			 peer != NULL ? peer : "unknown",
			 peer != NULL && strchr(peer, ':') != NULL ? "]" : "", (unsigned) port);
		snprintf(c->ip, sizeof(c->ip), "%s", peer != NULL ? peer : "unknown");
		evhttp_connection_set_closecb(c->evcon, on_connection_close, c);
		if (!admit(s, c))
			continue;
		log_info("sid=%s connect listener=http client=%s", c->sid, c->client);
		if (s->connection_count > HTTP_CONNECTIONS_MAX) {
			/* Accepted in the same batch as the one that reached the limit. */
			log_warning("sid=%s http connection limit reached: closed", c->sid);
			evhttp_connection_free(c->evcon);
		}
	}
}

/* evhttp asks for the bufferevent of each accepted connection. */
static struct bufferevent *on_new_bufferevent(struct event_base *base, void *arg)
{
	struct http_server *s = arg;
	const struct config_listener *l = &s->params.config->listeners[CONFIG_LISTENER_HTTP];
	struct http_connection *c = calloc(1, sizeof(*c));
	struct bufferevent *bev = NULL;
	struct error err;

	if (l->tls && s->params.tls[l->tls_profile] != NULL) {
		/* fd -1: evhttp sets the socket right after (bufferevent_setfd). */
		bev = tls_bufferevent_accept_later(base, s->params.tls[l->tls_profile], &err);
		if (bev == NULL)
			log_warning("http tls: %s", err.message);
	}
	if (bev == NULL)
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c == NULL || bev == NULL) {
		/* evhttp makes a plain one itself; it is served uncounted. */
		free(c);
		if (bev != NULL)
			bufferevent_free(bev);
		log_warning("http accept: out of memory");
		return NULL;
	}
	c->server = s;
	c->bev = bev;
	bufferevent_incref(bev);
	c->next = s->connections;
	if (s->connections != NULL)
		s->connections->prev = c;
	s->connections = c;
	s->connection_count++;
	if (s->connection_count >= HTTP_CONNECTIONS_MAX)
		accepting_set(s, false);
	event_active(s->adopt, 0, 0);
	return bev;
}

static struct http_connection *connection_find(struct http_server *s,
					       struct evhttp_connection *evcon)
{
	for (struct http_connection *c = s->connections; c != NULL; c = c->next)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

/* ------------------------------------------------------------ replies */

static void reply(struct http_connection *c, struct evhttp_request *req, int status,
		  const char *reason, const char *content_type, struct evbuffer *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	char path[LOG_ESCAPED_CAP];
	const char *uri = evhttp_request_get_uri(req);
	size_t len = body != NULL ? evbuffer_get_length(body) : 0;

	if (content_type != NULL)
		evhttp_add_header(headers, "Content-Type", content_type);
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	log_info("sid=%s http request method=%s uri=%s status=%d bytes=%zu",
		 c != NULL ? c->sid : "-",
		 evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "GET",
		 log_escape(span_from_cstr(uri != NULL ? uri : ""), path), status, len);
	evhttp_send_reply(req, status, reason, body);
}

static void reply_text(struct http_connection *c, struct evhttp_request *req, int status,
		       const char *reason, const char *text)
{
	struct evbuffer *body = evbuffer_new();

	if (body != NULL)
		evbuffer_add_printf(body, "%d %s: %s\n", status, reason, text);
	reply(c, req, status, reason, "text/plain; charset=utf-8", body);
	if (body != NULL)
		evbuffer_free(body);
}

static void reply_autodiscover_error(struct http_connection *c, struct evhttp_request *req,
				     int status, int code, const char *message)
{
	struct evbuffer *body = evbuffer_new();

	if (body != NULL)
		http_render_autodiscover_error(code, message, body);
	reply(c, req, status, status == 200 ? "OK" : "Bad Request", "text/xml; charset=utf-8",
	      body);
	if (body != NULL)
		evbuffer_free(body);
}

/* ------------------------------------------------------------ jobs */

static int collect_domain(void *ctx, const struct store_domain *domain)
{
	struct http_job *job = ctx;

	if (job->domain_count >= HTTP_INDEX_DOMAINS_MAX) {
		job->is_cut = true;
		return 1;
	}
	snprintf(job->domains[job->domain_count++], sizeof(job->domains[0]), "%s", domain->name);
	return 0;
}

static void count_place(void *ctx, const char *id, enum queue_place place)
{
	struct http_job *job = ctx;

	(void) id;
	if ((size_t) place < ARRAY_LEN(job->places))
		job->places[place]++;
}

static void run_job(void *arg)
{
	struct http_job *job = arg;
	struct error err;
	int rc;

	if (job->route == ROUTE_METRICS) {
		/* The spool only: a failure leaves the queue gauges out. */
		if (job->server_spool != NULL &&
		    queue_spool_list(job->server_spool, count_place, job, &err) < 0) {
			log_warning("http metrics: %s", err.message);
			job->server_spool = NULL;
		}
		job->result = ERROR_NONE;
		return;
	}
	pthread_mutex_lock(job->store_lock);
	if (job->route == ROUTE_SETUP_INDEX) {
		job->domains = calloc(HTTP_INDEX_DOMAINS_MAX, sizeof(job->domains[0]));
		rc = job->domains == NULL
			     ? -1
			     : store_domain_list(job->store, collect_domain, job, &err);
		if (rc > 0)
			rc = 0;
		if (job->domains == NULL)
			err.kind = ERROR_SOFTWARE;
	} else {
		rc = store_domain_get(job->store, job->domain, &job->row, &err);
	}
	pthread_mutex_unlock(job->store_lock);
	job->result = rc == 0 ? ERROR_NONE : err.kind;
	if (rc != 0 && err.kind != ERROR_NOT_FOUND)
		log_warning("http store: %s", err.message);
}

static void send_metrics(struct http_job *job)
{
	const struct http_server_params *p = &job->server->params;
	struct evbuffer *body = evbuffer_new();
	struct metrics_counters counters;
	struct metrics_gauges gauges = { .start_time_s = p->started_at_s };

	metrics_snapshot(&counters);
	for (size_t i = 0; p->session_counts != NULL && i < CONFIG_LISTENER_KIND_COUNT; i++)
		gauges.sessions[i] = p->session_counts[i];
	gauges.has_auth = p->auth != NULL;
	if (p->auth != NULL)
		gauges.auth_throttled_clients = auth_service_throttled_clients(p->auth);
	gauges.has_queue = job->server_spool != NULL;
	if (p->spool != NULL)
		queue_spool_sync_stats(p->spool, &gauges.spool_sync_waits, &gauges.spool_syncs);
	memcpy(gauges.queue, job->places, sizeof(gauges.queue));
	if (body == NULL || metrics_render(&counters, &gauges, body) < 0) {
		reply_text(job->conn, job->req, 503, "Service Unavailable", "out of memory");
	} else {
		/* The exposition format's own media type (text format 0.0.4). */
		reply(job->conn, job->req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
		      body);
	}
	if (body != NULL)
		evbuffer_free(body);
}

static void send_document(struct http_job *job)
{
	struct http_connection *c = job->conn;
	struct evhttp_request *req = job->req;
	const struct config *config = job->server->params.config;
	struct evbuffer *body = evbuffer_new();
	struct http_settings settings;
	const char *type = "text/xml; charset=utf-8";
	char disposition[ADDRESS_DOMAIN_MAX + 64];

	if (body == NULL) {
		reply_text(c, req, 503, "Service Unavailable", "out of memory");
		return;
	}
	if (job->route == ROUTE_SETUP_INDEX) {
		const char **names = calloc(job->domain_count + 1, sizeof(*names));

		for (size_t i = 0; names != NULL && i < job->domain_count; i++)
			names[i] = job->domains[i];
		http_render_setup_index(names, names != NULL ? job->domain_count : 0, body);
		free(names);
		type = "text/html; charset=utf-8";
	} else {
		http_settings_build(config, &job->row, &settings);
		switch (job->route) {
		case ROUTE_AUTOCONFIG:
			http_render_autoconfig(&settings, body);
			break;
		case ROUTE_AUTODISCOVER:
			http_render_autodiscover(&settings, job->address, body);
			break;
		case ROUTE_MOBILECONFIG:
			http_render_mobileconfig(&settings, job->address, body);
			type = "application/x-apple-aspen-config";
			snprintf(disposition, sizeof(disposition),
				 "attachment; filename=\"%s.mobileconfig\"", job->row.name);
			evhttp_add_header(evhttp_request_get_output_headers(req),
					  "Content-Disposition", disposition);
			break;
		case ROUTE_SETUP:
		case ROUTE_SETUP_INDEX:
		case ROUTE_METRICS:
			http_render_setup(&settings, config, body);
			type = "text/html; charset=utf-8";
			/* No script, no external resource: the page is self-contained. */
			evhttp_add_header(evhttp_request_get_output_headers(req),
					  "Content-Security-Policy",
					  "default-src 'none'; style-src 'unsafe-inline'; "
					  "form-action 'self'");
			break;
		}
	}
	reply(c, req, 200, "OK", type, body);
	evbuffer_free(body);
}

static void job_done(void *arg)
{
	struct http_job *job = arg;

	if (job->server == NULL) {
		/* The server is gone; a detached request is still ours. */
		if (job->req != NULL)
			evhttp_request_free(job->req);
	} else {
		struct http_server *s = job->server;

		if (job->prev != NULL)
			job->prev->next = job->next;
		else
			s->jobs = job->next;
		if (job->next != NULL)
			job->next->prev = job->prev;
		if (job->conn != NULL)
			job->conn->job = NULL;
		if (job->req != NULL) {
			if (job->result == ERROR_NOT_FOUND)
				reply_text(job->conn, job->req, 404, "Not Found",
					   "no such domain is hosted here");
			else if (job->result != ERROR_NONE)
				reply_text(job->conn, job->req, 503, "Service Unavailable",
					   "try again later");
			else if (job->route == ROUTE_METRICS)
				send_metrics(job);
			else
				send_document(job);
		}
	}
	free(job->domains);
	free(job);
}

static void submit(struct http_server *s, struct http_connection *c, struct evhttp_request *req,
		   enum route route, const char *address, const char *domain)
{
	struct http_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		reply_text(c, req, 503, "Service Unavailable", "out of memory");
		return;
	}
	job->server = s;
	job->conn = c;
	job->req = req;
	job->route = route;
	job->store = s->params.store;
	job->store_lock = s->params.store_lock;
	job->server_spool = s->params.spool;
	snprintf(job->address, sizeof(job->address), "%s", address);
	snprintf(job->domain, sizeof(job->domain), "%s", domain);
	if (worker_pool_submit(s->params.workers, run_job, job_done, job) != 0) {
		free(job);
		reply_text(c, req, 503, "Service Unavailable", "try again later");
		return;
	}
	job->next = s->jobs;
	if (s->jobs != NULL)
		s->jobs->prev = job;
	s->jobs = job;
	if (c != NULL)
		c->job = job;
}

/* ------------------------------------------------------------ routing */

/* address (as typed) -> normalized address and its domain; false: 400 sent. */
static bool take_address(struct http_connection *c, struct evhttp_request *req, const char *text,
			 char *address_out, char *domain_out)
{
	struct error err;
	struct span domain;

	if (store_address_normalize(span_from_cstr(text), address_out, &err) < 0 ||
	    (domain = store_address_domain(address_out)).len == 0 ||
	    !span_copy_cstr(domain, domain_out, ADDRESS_DOMAIN_MAX + 1)) {
		reply_text(c, req, 400, "Bad Request", "not a valid email address");
		return false;
	}
	return true;
}

static void route_autoconfig(struct http_server *s, struct http_connection *c,
			     struct evhttp_request *req, struct span query)
{
	char value[HTTP_VALUE_MAX + 1], address[ADDRESS_MAX + 1] = "";
	char domain[ADDRESS_DOMAIN_MAX + 1];
	struct error err;

	switch (http_query_find(query, "emailaddress", value, sizeof(value))) {
	case HTTP_QUERY_FOUND:
		if (!take_address(c, req, value, address, domain))
			return;
		break;
	case HTTP_QUERY_ABSENT: {
		/* Thunderbird asks http://autoconfig.<domain>/... : the Host
		 * names the domain. */
		const char *host = evhttp_request_get_host(req);
		struct span h = span_from_cstr(host != NULL ? host : "");

		if (!span_starts_with_nocase(h, "autoconfig.") ||
		    store_address_domain_normalize(span_make(h.ptr + 11, h.len - 11), domain,
						   &err) < 0) {
			reply_text(c, req, 400, "Bad Request", "emailaddress is missing");
			return;
		}
		break;
	}
	case HTTP_QUERY_MALFORMED:
	default:
		reply_text(c, req, 400, "Bad Request", "malformed query");
		return;
	}
	submit(s, c, req, ROUTE_AUTOCONFIG, address, domain);
}

static void route_autodiscover(struct http_server *s, struct http_connection *c,
			       struct evhttp_request *req)
{
	struct evbuffer *input = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(input);
	char value[HTTP_VALUE_MAX + 1], address[ADDRESS_MAX + 1], domain[ADDRESS_DOMAIN_MAX + 1];
	const char *body;
	bool is_outlook;
	struct error err;
	struct span d;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		reply_text(c, req, 405, "Method Not Allowed", "Autodiscover takes a POST");
		return;
	}
	body = len > 0 ? (const char *) evbuffer_pullup(input, (ev_ssize_t) len) : "";
	if (body == NULL ||
	    !http_autodiscover_parse(span_make(body, len), value, sizeof(value), &is_outlook)) {
		reply_autodiscover_error(c, req, 400, 600, "Invalid Request");
		return;
	}
	if (!is_outlook) {
		/* Exchange ActiveSync and other schemas: not ours to answer. */
		reply_autodiscover_error(c, req, 200, 601, "Provider is not available");
		return;
	}
	if (store_address_normalize(span_from_cstr(value), address, &err) < 0 ||
	    (d = store_address_domain(address)).len == 0 ||
	    !span_copy_cstr(d, domain, sizeof(domain))) {
		reply_autodiscover_error(c, req, 400, 600, "Invalid Request");
		return;
	}
	submit(s, c, req, ROUTE_AUTODISCOVER, address, domain);
}

static void route_mobileconfig(struct http_server *s, struct http_connection *c,
			       struct evhttp_request *req, struct span query)
{
	char value[HTTP_VALUE_MAX + 1], address[ADDRESS_MAX + 1], domain[ADDRESS_DOMAIN_MAX + 1];

	switch (http_query_find(query, "email", value, sizeof(value))) {
	case HTTP_QUERY_FOUND:
		if (take_address(c, req, value, address, domain))
			submit(s, c, req, ROUTE_MOBILECONFIG, address, domain);
		return;
	case HTTP_QUERY_ABSENT:
		reply_text(c, req, 400, "Bad Request", "email is missing");
		return;
	case HTTP_QUERY_MALFORMED:
	default:
		reply_text(c, req, 400, "Bad Request", "malformed query");
		return;
	}
}

static void route_setup(struct http_server *s, struct http_connection *c,
			struct evhttp_request *req, struct span rest)
{
	char text[HTTP_VALUE_MAX + 1], domain[ADDRESS_DOMAIN_MAX + 1];
	struct error err;

	if (rest.len == 0) {
		if (!s->params.config->listeners[CONFIG_LISTENER_HTTP].setup_index) {
			reply_text(c, req, 404, "Not Found", "no such page");
			return;
		}
		submit(s, c, req, ROUTE_SETUP_INDEX, "", "");
		return;
	}
	if (!http_segment_decode(rest, text, sizeof(text)) ||
	    store_address_domain_normalize(span_from_cstr(text), domain, &err) < 0) {
		reply_text(c, req, 400, "Bad Request", "not a domain name");
		return;
	}
	submit(s, c, req, ROUTE_SETUP, "", domain);
}

/* Only the clients metrics_allow names; the counters say how the service
 * is used, which is not for the world to read. */
static void route_metrics(struct http_server *s, struct http_connection *c,
			  struct evhttp_request *req)
{
	char *peer = NULL;
	ev_uint16_t port = 0;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
	if (peer == NULL || !config_cidrs_contain(&s->params.config->metrics_allow, peer)) {
		reply_text(c, req, 403, "Forbidden", "metrics are not served to this address");
		return;
	}
	submit(s, c, req, ROUTE_METRICS, "", "");
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_server *s = arg;
	struct http_connection *c = connection_find(s, evhttp_request_get_connection(req));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path_text = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *query_text = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct span path = span_from_cstr(path_text != NULL ? path_text : "");
	struct span query = span_from_cstr(query_text != NULL ? query_text : "");
	bool is_get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;

	if (c != NULL)
		c->requests++;
	if (c != NULL && c->is_refused) {
		struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

		evhttp_add_header(headers, "Connection", "close");
		evhttp_add_header(headers, "Retry-After", "60");
		reply_text(c, req, 503, "Service Unavailable",
			   "too many connections from this address, try again later");
		return;
	}
	if (span_eq_cstr_nocase(path, "/autodiscover/autodiscover.xml")) {
		route_autodiscover(s, c, req);
		return;
	}
	if (!is_get) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		reply_text(c, req, 405, "Method Not Allowed", "this page takes a GET");
		return;
	}
	if (span_eq_cstr(path, "/mail/config-v1.1.xml") ||
	    span_eq_cstr(path, "/.well-known/autoconfig/mail/config-v1.1.xml"))
		route_autoconfig(s, c, req, query);
	else if (span_eq_cstr(path, "/metrics"))
		route_metrics(s, c, req);
	else if (span_eq_cstr(path, "/apple/mobileconfig"))
		route_mobileconfig(s, c, req, query);
	else if (span_eq_cstr(path, "/setup") || span_eq_cstr(path, "/setup/"))
		route_setup(s, c, req, span_make("", 0));
	else if (span_starts_with_nocase(path, "/setup/"))
		route_setup(s, c, req, span_make(path.ptr + 7, path.len - 7));
	else
		reply_text(c, req, 404, "Not Found", "no such page");
}

/* ------------------------------------------------------------ life cycle */

struct http_server *http_server_new(const struct http_server_params *params, struct error *err)
{
	struct http_server *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		return NULL;
	}
	s->params = *params;
	s->http = evhttp_new(params->base);
	s->adopt = event_new(params->base, -1, 0, on_adopt, s);
	if (s->http == NULL || s->adopt == NULL) {
		http_server_free(s);
		error_set(err, ERROR_SOFTWARE, "cannot make the HTTP server");
		return NULL;
	}
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_max_headers_size(s->http, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(s->http, HTTP_BODY_MAX);
	evhttp_set_timeout(s->http, HTTP_TIMEOUT_S);
	evhttp_set_bevcb(s->http, on_new_bufferevent, s);
	evhttp_set_gencb(s->http, on_request, s);
	return s;
}

int http_server_accept(struct http_server *s, int fd, const char *address, struct error *err)
{
	struct evhttp_bound_socket *bound;

	if (s->bound_count >= HTTP_LISTENERS_MAX) {
		close(fd);
		return error_set(err, ERROR_CONFIG, "too many http addresses");
	}
	bound = evhttp_accept_socket_with_handle(s->http, fd);
	if (bound == NULL) {
		close(fd);
		return error_set(err, ERROR_SOFTWARE, "cannot serve HTTP on %s", address);
	}
	s->bound[s->bound_count++] = bound;
	return 0;
}

void http_server_close_listeners(struct http_server *s)
{
	if (s == NULL)
		return;
	s->is_stopping = true;
	for (size_t i = 0; i < s->bound_count; i++)
		evhttp_del_accept_socket(s->http, s->bound[i]);
	s->bound_count = 0;
}

void http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	http_server_close_listeners(s);
	if (s->http != NULL)
		evhttp_free(s->http); /* closes connections: on_connection_close */
	/* Connections evhttp made but we never adopted. */
	while (s->connections != NULL) {
		struct http_connection *c = s->connections;

		if (c->bev != NULL)
			bufferevent_decref(c->bev);
		list_remove_connection(s, c);
		free(c);
	}
	for (struct http_job *job = s->jobs; job != NULL; job = job->next) {
		job->server = NULL;
		job->conn = NULL;
	}
	if (s->adopt != NULL)
		event_free(s->adopt);
	free(s);
}
