/*
 * limits: how many sessions the daemon serves at once, in all and per client
 * address (max_sessions, max_sessions_per_ip). A connection over either limit
 * is told so in its protocol's words — SMTP "421 4.7.0" (RFC 5321 3.8), POP3
 * "-ERR [SYS/TEMP]" (RFC 3206), HTTP 503 — and closed at once, before any
 * session state exists; on implicit-TLS listeners, where plain text would be
 * garbage to the client, it is just closed. HTTP connections count too
 * (daemon_limits_admit_http): evhttp accepts them itself, and one over a
 * limit is answered 503 to its first request (http/server.c). The
 * per-address counts live in a
 * small chained hash table keyed by the address text, one entry per address
 * with a session, so memory follows the number of distinct live clients.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/metrics.h"
#include "daemon/internal.h"

struct daemon_ip_count {
	struct daemon_ip_count *next;
	unsigned count;
	char ip[DAEMON_ADDRESS_CAP];
};

/* FNV-1a of the address text: spreading, not secrecy. A client chooses only
 * its own address, and a bucket's chain is bounded by the sessions there. */
static size_t bucket_of(const char *ip)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *) ip; *p != '\0'; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return (size_t) (h % DAEMON_IP_BUCKETS);
}

static struct daemon_ip_count **find(struct daemon *daemon, const char *ip)
{
	struct daemon_ip_count **p = &daemon->ip_counts[bucket_of(ip)];

	while (*p != NULL && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

const char *daemon_limits_admit(struct daemon *daemon, const char *ip)
{
	struct daemon_ip_count **p;

	/* HTTP connections are not in session_count (see internal.h). */
	if (daemon->session_count + daemon->session_counts[CONFIG_LISTENER_HTTP] >=
	    daemon->config.max_sessions)
		return "max-sessions";
	p = find(daemon, ip);
	if (*p != NULL && (*p)->count >= daemon->config.max_sessions_per_ip)
		return "max-sessions-per-ip";
	if (*p == NULL) {
		*p = calloc(1, sizeof(**p));
		if (*p == NULL)
			return "out-of-memory";
		snprintf((*p)->ip, sizeof((*p)->ip), "%s", ip);
	}
	(*p)->count++;
	return NULL;
}

void daemon_limits_release(struct daemon *daemon, const char *ip)
{
	struct daemon_ip_count **p = find(daemon, ip);
	struct daemon_ip_count *entry = *p;

	if (entry == NULL)
		return;
	if (--entry->count == 0) {
		*p = entry->next;
		free(entry);
	}
}

const char *daemon_limits_admit_http(void *arg, const char *ip)
{
	struct daemon *daemon = arg;
	const char *refusal = daemon_limits_admit(daemon, ip);

	if (refusal != NULL) {
		metrics_session_refused(refusal);
		return refusal;
	}
	daemon->session_counts[CONFIG_LISTENER_HTTP]++;
	return NULL;
}

void daemon_limits_release_http(void *arg, const char *ip)
{
	struct daemon *daemon = arg;

	if (daemon->session_counts[CONFIG_LISTENER_HTTP] > 0)
		daemon->session_counts[CONFIG_LISTENER_HTTP]--;
	daemon_limits_release(daemon, ip);
}

void daemon_limits_refuse(enum config_listener_kind kind, evutil_socket_t fd)
{
	static const char smtp[] = "421 4.7.0 Too many connections, try again later\r\n";
	static const char pop3[] = "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
	static const char http[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
				   "Content-Length: 0\r\nRetry-After: 60\r\n\r\n";
	const char *text = NULL;

	switch (kind) {
	case CONFIG_LISTENER_MX:
	case CONFIG_LISTENER_SUBMISSION:
		text = smtp;
		break;
	case CONFIG_LISTENER_POP3:
		text = pop3;
		break;
	case CONFIG_LISTENER_HTTP:
		text = http;
		break;
	case CONFIG_LISTENER_SUBMISSIONS:
	case CONFIG_LISTENER_POP3S:
	case CONFIG_LISTENER_KIND_COUNT:
		break;
	}
	/* A fresh socket's send buffer takes these few bytes at once; if not,
	 * the client simply sees the close. */
	if (text != NULL)
		(void) send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
	evutil_closesocket(fd);
}
