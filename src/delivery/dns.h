/*
 * dns: where mail for a domain goes — MX look-up (RFC 5321 5.1) and the
 * addresses of each exchange, asynchronously with c-ares on the event loop
 * (ares sockets are watched by libevent events, its timeouts by one timer),
 * so no look-up ever blocks the loop or a worker.
 *
 * Order: MX records by preference, equal preferences shuffled
 * (delivery_mx_order, pure for the tests); no MX record → the domain itself
 * as the only host (its A/AAAA, RFC 5321 5.1); a null MX (RFC 7505: one
 * record, preference 0, exchange ".") → DELIVERY_DNS_NULL_MX; NXDOMAIN →
 * DELIVERY_DNS_NOT_FOUND; SERVFAIL, REFUSED, timeouts → DELIVERY_DNS_TEMPFAIL.
 *
 * Loop thread only. Knows nothing of the queue or of SMTP.
 */
#ifndef POSTGATE_DELIVERY_DNS_H
#define POSTGATE_DELIVERY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/error.h"

struct event_base;
struct delivery_dns;

#define DELIVERY_MX_MAX		  10 /* exchanges tried per domain */
#define DELIVERY_HOST_ADDRESS_MAX 4  /* addresses tried per exchange */
#define DELIVERY_HOST_NAME_MAX	  256

struct delivery_host {
	char name[DELIVERY_HOST_NAME_MAX];
	size_t address_count;
	struct sockaddr_storage addresses[DELIVERY_HOST_ADDRESS_MAX]; /* port filled in */
	socklen_t address_lens[DELIVERY_HOST_ADDRESS_MAX];
};

struct delivery_hosts {
	size_t count;
	struct delivery_host hosts[DELIVERY_MX_MAX];
};

enum delivery_dns_status {
	DELIVERY_DNS_OK,	/* hosts->count >= 1, in the order to try */
	DELIVERY_DNS_NULL_MX,	/* the domain accepts no mail (RFC 7505) */
	DELIVERY_DNS_NOT_FOUND, /* NXDOMAIN, or no MX and no address: permanent */
	DELIVERY_DNS_TEMPFAIL,	/* try again later */
};

/* Called once per look-up on the loop thread; hosts valid during the call,
 * detail a short text for logs and DSNs. */
typedef void delivery_dns_fn(void *ctx, enum delivery_dns_status status,
			     const struct delivery_hosts *hosts, const char *detail);

/* servers: "IP:PORT,..." or "" for /etc/resolv.conf. timeout_ms per try. */
struct delivery_dns *delivery_dns_new(struct event_base *base, const char *servers,
				      unsigned timeout_ms, struct error *err);
/* Cancels every look-up (their callbacks are not called). NULL ok. */
void delivery_dns_free(struct delivery_dns *dns);

/* MX hosts of domain with their addresses, port set on each. -1 only when
 * memory runs out (fn is then not called). */
int delivery_dns_resolve_mx(struct delivery_dns *dns, const char *domain, uint16_t port,
			    delivery_dns_fn *fn, void *ctx);
/* The addresses of one host (a route's or the relayhost's; a numeric
 * address is used as it is). */
int delivery_dns_resolve_host(struct delivery_dns *dns, const char *host, uint16_t port,
			      delivery_dns_fn *fn, void *ctx);

/* --- pure --- */

struct delivery_mx {
	unsigned preference;
	char name[DELIVERY_HOST_NAME_MAX];
};

/* Offer one MX record to mx[0..*count) (room for DELIVERY_MX_MAX): kept
 * while there is room; when full, it replaces the kept record of the highest
 * preference if its own is lower, so that the DELIVERY_MX_MAX most
 * preferred exchanges are kept whatever order the answer lists them in. An
 * empty name, "." or a name too long is never kept. Returns whether it was. */
bool delivery_mx_keep(struct delivery_mx *mx, size_t *count, unsigned preference, const char *name);

/* A source of random numbers: tests pass a fixed sequence. */
typedef uint32_t delivery_random_fn(void *ctx);

/* Sort by preference (lowest first) and shuffle each run of equal
 * preferences (RFC 5321 5.1: "randomize them to spread the load"). */
void delivery_mx_order(struct delivery_mx *mx, size_t count, delivery_random_fn *random,
		       void *random_ctx);

/* What an MX answer says (delivery_mx_parse). */
enum delivery_mx_answer {
	DELIVERY_MX_ANSWER_OK,	    /* mx[0..*count) kept, *count >= 1, not yet ordered */
	DELIVERY_MX_ANSWER_NULL_MX, /* RFC 7505: one record, preference 0, exchange "." */
	DELIVERY_MX_ANSWER_NO_HOST, /* records, but none names a usable host */
	DELIVERY_MX_ANSWER_BAD,	    /* not a well-formed MX answer */
};

/* The MX answer packet a DNS server handed us (abuf, alen bytes, as c-ares
 * passes it to the query callback) → the exchanges to try, through
 * ares_parse_mx_reply and delivery_mx_keep; mx has room for DELIVERY_MX_MAX.
 * Any bytes are accepted: a malformed packet is DELIVERY_MX_ANSWER_BAD. */
enum delivery_mx_answer delivery_mx_parse(const unsigned char *abuf, int alen,
					  struct delivery_mx *mx, size_t *count);

#endif
