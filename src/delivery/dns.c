/*
 * dns: c-ares on libevent. c-ares tells us which sockets it wants watched
 * (ARES_OPT_SOCK_STATE_CB); each gets a persistent libevent event that calls
 * ares_process_fd, and one timer calls it for timeouts. A look-up is an MX
 * query, then one address query per exchange, all in flight at once.
 */
#include "delivery/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <event2/event.h>

#include "core/log.h"

struct watch {
	struct watch *next;
	ares_socket_t fd;
	struct event *event;
};

struct lookup;

struct delivery_dns {
	struct event_base *base;
	ares_channel channel;
	struct lookup *lookups; /* in flight, freed with the resolver */
	struct watch *watches;
	struct event *timer;
	bool is_freeing;
};

struct lookup {
	struct lookup *next, **prev_next;
	struct event *numeric_event; /* answers a numeric host from the loop */
	struct delivery_dns *dns;
	delivery_dns_fn *fn;
	void *ctx;
	uint16_t port;
	bool is_fallback; /* no MX: the domain itself */
	size_t pending;	  /* address queries out */
	bool has_tempfail;
	struct delivery_mx mx[DELIVERY_MX_MAX];
	size_t mx_count;
	struct delivery_hosts hosts; /* hosts[i] for mx[i] */
	struct address_query {
		struct lookup *lookup;
		size_t index;
	} queries[DELIVERY_MX_MAX];
};

static void lookup_free(struct lookup *l);

static void rearm_timer(struct delivery_dns *dns)
{
	struct timeval tv, *next = ares_timeout(dns->channel, NULL, &tv);

	if (next != NULL)
		evtimer_add(dns->timer, next);
	else
		evtimer_del(dns->timer);
}

static void on_socket(evutil_socket_t fd, short events, void *arg)
{
	struct delivery_dns *dns = arg;

	ares_process_fd(dns->channel, (events & EV_READ) ? fd : ARES_SOCKET_BAD,
			(events & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_timer(dns);
}

static void on_timer(evutil_socket_t fd, short events, void *arg)
{
	struct delivery_dns *dns = arg;

	(void) fd;
	(void) events;
	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(dns);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct delivery_dns *dns = data;
	struct watch **p = &dns->watches, *w;

	while (*p != NULL && (*p)->fd != fd)
		p = &(*p)->next;
	w = *p;
	if (w != NULL) {
		event_free(w->event);
		*p = w->next;
		free(w);
	}
	if (!readable && !writable)
		return;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return; /* the query times out and is reported as a temporary failure */
	w->fd = fd;
	w->event = event_new(
		dns->base, fd,
		(short) ((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) | EV_PERSIST),
		on_socket, dns);
	if (w->event == NULL) {
		free(w);
		return;
	}
	event_add(w->event, NULL);
	w->next = dns->watches;
	dns->watches = w;
}

struct delivery_dns *delivery_dns_new(struct event_base *base, const char *servers,
				      unsigned timeout_ms, struct error *err)
{
	struct delivery_dns *dns = calloc(1, sizeof(*dns));
	struct ares_options options = { 0 };
	int rc;

	if (dns == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		return NULL;
	}
	dns->base = base;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		error_set(err, ERROR_SOFTWARE, "c-ares: %s", ares_strerror(rc));
		free(dns);
		return NULL;
	}
	options.sock_state_cb = on_sock_state;
	options.sock_state_cb_data = dns;
	options.timeout = (int) timeout_ms;
	options.tries = 2;
	options.lookups = (char *) "b"; /* DNS only: mail routing never reads /etc/hosts */
	rc = ares_init_options(&dns->channel, &options,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
				       ARES_OPT_LOOKUPS);
	if (rc != ARES_SUCCESS) {
		error_set(err, ERROR_CONFIG, "c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		free(dns);
		return NULL;
	}
	if (servers[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(dns->channel, servers)) != ARES_SUCCESS) {
		error_set(err, ERROR_CONFIG, "dns_servers: %s", ares_strerror(rc));
		delivery_dns_free(dns);
		return NULL;
	}
	dns->timer = evtimer_new(base, on_timer, dns);
	if (dns->timer == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		delivery_dns_free(dns);
		return NULL;
	}
	return dns;
}

void delivery_dns_free(struct delivery_dns *dns)
{
	if (dns == NULL)
		return;
	dns->is_freeing = true;
	if (dns->channel != NULL)
		ares_destroy(dns->channel); /* callbacks run with ARES_EDESTRUCTION */
	/* Whatever c-ares did not hand back: no callback comes any more. */
	while (dns->lookups != NULL)
		lookup_free(dns->lookups);
	while (dns->watches != NULL) {
		struct watch *w = dns->watches;

		dns->watches = w->next;
		event_free(w->event);
		free(w);
	}
	if (dns->timer != NULL)
		event_free(dns->timer);
	ares_library_cleanup();
	free(dns);
}

/* --- ordering ------------------------------------------------------------ */

void delivery_mx_order(struct delivery_mx *mx, size_t count, delivery_random_fn *random,
		       void *random_ctx)
{
	/* Insertion sort: at most DELIVERY_MX_MAX records, and stable. */
	for (size_t i = 1; i < count; i++) {
		struct delivery_mx key = mx[i];
		size_t j = i;

		while (j > 0 && mx[j - 1].preference > key.preference) {
			mx[j] = mx[j - 1];
			j--;
		}
		mx[j] = key;
	}
	for (size_t start = 0; start < count;) {
		size_t end = start + 1;

		while (end < count && mx[end].preference == mx[start].preference)
			end++;
		/* Fisher-Yates over [start, end). */
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + random(random_ctx) % (i - start + 1);
			struct delivery_mx t = mx[i];

			mx[i] = mx[j];
			mx[j] = t;
		}
		start = end;
	}
}

bool delivery_mx_keep(struct delivery_mx *mx, size_t *count, unsigned preference, const char *name)
{
	size_t len = strlen(name), slot = *count;

	if (len == 0 || len >= sizeof(mx->name) || strcmp(name, ".") == 0)
		return false;
	if (*count == DELIVERY_MX_MAX) {
		slot = 0;
		for (size_t i = 1; i < *count; i++)
			if (mx[i].preference > mx[slot].preference)
				slot = i;
		if (mx[slot].preference <= preference)
			return false;
	} else {
		(*count)++;
	}
	mx[slot].preference = preference;
	snprintf(mx[slot].name, sizeof(mx[slot].name), "%s", name);
	return true;
}

enum delivery_mx_answer delivery_mx_parse(const unsigned char *abuf, int alen,
					  struct delivery_mx *mx, size_t *count)
{
	struct ares_mx_reply *records = NULL;
	enum delivery_mx_answer answer;

	*count = 0;
	if (abuf == NULL || alen <= 0 || ares_parse_mx_reply(abuf, alen, &records) != ARES_SUCCESS)
		return DELIVERY_MX_ANSWER_BAD;
	/* RFC 7505 3: a single MX with preference 0 and exchange "." */
	if (records != NULL && records->next == NULL && records->priority == 0 &&
	    (records->host[0] == '\0' || strcmp(records->host, ".") == 0)) {
		ares_free_data(records);
		return DELIVERY_MX_ANSWER_NULL_MX;
	}
	/* Every record is looked at (the answer is bounded by its packet), the
	 * DELIVERY_MX_MAX most preferred kept; a null MX among others is
	 * ignored. */
	for (struct ares_mx_reply *r = records; r != NULL; r = r->next)
		delivery_mx_keep(mx, count, r->priority, r->host);
	answer = *count > 0 ? DELIVERY_MX_ANSWER_OK : DELIVERY_MX_ANSWER_NO_HOST;
	if (records != NULL)
		ares_free_data(records);
	return answer;
}

static uint32_t system_random(void *ctx)
{
	uint32_t r = 0;

	(void) ctx;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t) rand();
	return r;
}

/* --- look-ups ------------------------------------------------------------ */

static void lookup_free(struct lookup *l)
{
	*l->prev_next = l->next;
	if (l->next != NULL)
		l->next->prev_next = l->prev_next;
	if (l->numeric_event != NULL)
		event_free(l->numeric_event);
	free(l);
}

static void lookup_finish(struct lookup *l)
{
	struct delivery_hosts out = { 0 };
	char detail[DELIVERY_HOST_NAME_MAX + 128];

	for (size_t i = 0; i < l->mx_count; i++)
		if (l->hosts.hosts[i].address_count > 0)
			out.hosts[out.count++] = l->hosts.hosts[i];
	if (out.count > 0) {
		l->fn(l->ctx, DELIVERY_DNS_OK, &out, "");
	} else if (l->has_tempfail) {
		snprintf(detail, sizeof(detail), "address look-up of %s failed temporarily",
			 l->mx[0].name);
		l->fn(l->ctx, DELIVERY_DNS_TEMPFAIL, &out, detail);
	} else if (l->is_fallback) {
		snprintf(detail, sizeof(detail), "%s has no MX and no address records",
			 l->mx[0].name);
		l->fn(l->ctx, DELIVERY_DNS_NOT_FOUND, &out, detail);
	} else {
		/* MX records that name no host with an address: a DNS mistake
		 * that may be fixed; retry rather than bounce. */
		snprintf(detail, sizeof(detail), "no address for the MX hosts (first: %s)",
			 l->mx[0].name);
		l->fn(l->ctx, DELIVERY_DNS_TEMPFAIL, &out, detail);
	}
	lookup_free(l);
}

static void on_addresses(void *arg, int status, int timeouts, struct ares_addrinfo *result)
{
	struct address_query *q = arg;
	struct lookup *l = q->lookup;
	struct delivery_host *host = &l->hosts.hosts[q->index];

	(void) timeouts;
	if (status == ARES_EDESTRUCTION) {
		if (--l->pending == 0)
			lookup_free(l);
		return;
	}
	if (status == ARES_SUCCESS && result != NULL) {
		for (struct ares_addrinfo_node *n = result->nodes;
		     n != NULL && host->address_count < DELIVERY_HOST_ADDRESS_MAX; n = n->ai_next) {
			struct sockaddr_storage *ss = &host->addresses[host->address_count];

			if (n->ai_family == AF_INET &&
			    n->ai_addrlen >= sizeof(struct sockaddr_in)) {
				memcpy(ss, n->ai_addr, sizeof(struct sockaddr_in));
				((struct sockaddr_in *) ss)->sin_port = htons(l->port);
				host->address_lens[host->address_count++] =
					sizeof(struct sockaddr_in);
			} else if (n->ai_family == AF_INET6 &&
				   n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
				memcpy(ss, n->ai_addr, sizeof(struct sockaddr_in6));
				((struct sockaddr_in6 *) ss)->sin6_port = htons(l->port);
				host->address_lens[host->address_count++] =
					sizeof(struct sockaddr_in6);
			}
		}
	} else if (status != ARES_ENOTFOUND && status != ARES_ENODATA) {
		l->has_tempfail = true;
	}
	if (result != NULL)
		ares_freeaddrinfo(result);
	if (--l->pending == 0 && !l->dns->is_freeing)
		lookup_finish(l);
}

static void resolve_hosts(struct lookup *l)
{
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC };

	/* Count first: a query may complete inside ares_getaddrinfo. */
	l->pending = l->mx_count + 1;
	for (size_t i = 0; i < l->mx_count; i++) {
		snprintf(l->hosts.hosts[i].name, sizeof(l->hosts.hosts[i].name), "%s",
			 l->mx[i].name);
		l->queries[i] = (struct address_query){ l, i };
		ares_getaddrinfo(l->dns->channel, l->mx[i].name, NULL, &hints, on_addresses,
				 &l->queries[i]);
	}
	if (--l->pending == 0)
		lookup_finish(l);
	else
		rearm_timer(l->dns);
}

static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;
	char detail[DELIVERY_HOST_NAME_MAX + 128];

	(void) timeouts;
	if (status == ARES_EDESTRUCTION) {
		lookup_free(l);
		return;
	}
	if (status == ARES_ENODATA) {
		/* RFC 5321 5.1: no MX, the domain is its own mail exchange. */
		l->is_fallback = true;
		l->mx_count = 1;
		resolve_hosts(l);
		return;
	}
	if (status == ARES_ENOTFOUND) {
		snprintf(detail, sizeof(detail), "%s: domain not found (NXDOMAIN)", l->mx[0].name);
		l->fn(l->ctx, DELIVERY_DNS_NOT_FOUND, &l->hosts, detail);
		lookup_free(l);
		return;
	}
	if (status != ARES_SUCCESS) {
		snprintf(detail, sizeof(detail), "MX look-up of %s failed: %s", l->mx[0].name,
			 ares_strerror(status));
		l->fn(l->ctx, DELIVERY_DNS_TEMPFAIL, &l->hosts, detail);
		lookup_free(l);
		return;
	}
	{
		struct delivery_mx name = l->mx[0]; /* the domain, for the details */

		switch (delivery_mx_parse(abuf, alen, l->mx, &l->mx_count)) {
		case DELIVERY_MX_ANSWER_OK:
			break;
		case DELIVERY_MX_ANSWER_NULL_MX:
			snprintf(detail, sizeof(detail), "%s accepts no mail (null MX)", name.name);
			l->fn(l->ctx, DELIVERY_DNS_NULL_MX, &l->hosts, detail);
			lookup_free(l);
			return;
		case DELIVERY_MX_ANSWER_NO_HOST:
			l->fn(l->ctx, DELIVERY_DNS_TEMPFAIL, &l->hosts, "MX records name no host");
			lookup_free(l);
			return;
		case DELIVERY_MX_ANSWER_BAD:
			snprintf(detail, sizeof(detail), "MX look-up of %s failed: %s", name.name,
				 ares_strerror(ARES_EBADRESP));
			l->fn(l->ctx, DELIVERY_DNS_TEMPFAIL, &l->hosts, detail);
			lookup_free(l);
			return;
		}
	}
	delivery_mx_order(l->mx, l->mx_count, system_random, NULL);
	resolve_hosts(l);
}

static void on_numeric(evutil_socket_t fd, short events, void *arg)
{
	struct lookup *l = arg;

	(void) fd;
	(void) events;
	l->pending = 0;
	lookup_finish(l);
}

static struct lookup *lookup_new(struct delivery_dns *dns, const char *name, uint16_t port,
				 delivery_dns_fn *fn, void *ctx)
{
	struct lookup *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->dns = dns;
	l->next = dns->lookups;
	if (l->next != NULL)
		l->next->prev_next = &l->next;
	l->prev_next = &dns->lookups;
	dns->lookups = l;
	l->fn = fn;
	l->ctx = ctx;
	l->port = port;
	snprintf(l->mx[0].name, sizeof(l->mx[0].name), "%s", name);
	return l;
}

int delivery_dns_resolve_mx(struct delivery_dns *dns, const char *domain, uint16_t port,
			    delivery_dns_fn *fn, void *ctx)
{
	struct lookup *l = lookup_new(dns, domain, port, fn, ctx);

	if (l == NULL)
		return -1;
	ares_query(dns->channel, domain, 1 /* C_IN */, 15 /* T_MX */, on_mx, l);
	rearm_timer(dns);
	return 0;
}

int delivery_dns_resolve_host(struct delivery_dns *dns, const char *host, uint16_t port,
			      delivery_dns_fn *fn, void *ctx)
{
	struct lookup *l = lookup_new(dns, host, port, fn, ctx);

	if (l == NULL)
		return -1;
	l->is_fallback = true;
	l->mx_count = 1;
	{
		/* A numeric address (a route to 127.0.0.1:2626) needs no look-up;
		 * the answer still comes from the loop, never inside this call. */
		struct delivery_host *h = &l->hosts.hosts[0];
		struct sockaddr_in *sin = (struct sockaddr_in *) &h->addresses[0];
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &h->addresses[0];

		if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons(port);
			h->address_lens[0] = sizeof(*sin);
		} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(port);
			h->address_lens[0] = sizeof(*sin6);
		}
		if (h->address_lens[0] != 0) {
			snprintf(h->name, sizeof(h->name), "%s", host);
			h->address_count = 1;
			struct timeval now = { 0, 0 };

			l->pending = 1;
			l->numeric_event = evtimer_new(dns->base, on_numeric, l);
			if (l->numeric_event == NULL) {
				lookup_free(l);
				return -1;
			}
			evtimer_add(l->numeric_event, &now);
			return 0;
		}
	}
	resolve_hosts(l);
	return 0;
}
