/*
 * session: the registry of live connections. Every accepted socket becomes a
 * session with its own id, is logged once when it connects and once when it
 * goes, and is counted per listener so that shutdown knows when it has
 * drained. What is said on the connection is the protocol engine's business
 * (protocol.c); this file never reads or writes a byte of it.
 */
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/util.h>

#include "core/log.h"
#include "core/metrics.h"
#include "daemon/internal.h"
#include "tls/upgrade.h"

static void format_client(const struct sockaddr *addr, int addr_len, char *out, size_t out_cap)
{
	/* A numeric IPv6 address with a scope ("fe80::1%eth0") and a port number. */
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1], port[8];

	if (addr == NULL || addr_len <= 0 ||
	    getnameinfo(addr, (socklen_t) addr_len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, out_cap, "unknown");
		return;
	}
	if (addr->sa_family == AF_INET6)
		snprintf(out, out_cap, "[%s]:%s", host, port);
	else
		snprintf(out, out_cap, "%s:%s", host, port);
}

/* The address part of "ip:port" / "[ip6]:port". */
static void client_ip_of(const char *client, char *out, size_t cap)
{
	const char *colon = strrchr(client, ':');
	size_t len = colon != NULL ? (size_t) (colon - client) : strlen(client);

	if (len >= 2 && client[0] == '[' && client[len - 1] == ']') {
		client++;
		len -= 2;
	}
	snprintf(out, cap, "%.*s", (int) len, client);
}

void daemon_session_accept(struct daemon_listener *listener, evutil_socket_t fd,
			   const struct sockaddr *addr, int addr_len)
{
	struct daemon *daemon = listener->daemon;
	struct daemon_session *session;
	char client[DAEMON_ADDRESS_CAP], ip[DAEMON_ADDRESS_CAP];
	const char *refusal;
	int on = 1;

	format_client(addr, addr_len, client, sizeof(client));
	client_ip_of(client, ip, sizeof(ip));
	refusal = daemon_limits_admit(daemon, ip);
	if (refusal != NULL) {
		log_warning("connect refused listener=%s client=%s reason=%s",
			    config_listener_name(listener->kind), client, refusal);
		metrics_session_refused(refusal);
		daemon_limits_refuse(listener->kind, fd);
		return;
	}
	session = calloc(1, sizeof(*session));

	/* Replies leave whole, one write per loop pass: Nagle would only hold
	 * the last small segment (a TLS 1.3 session ticket, then the greeting)
	 * for the client's delayed ACK, ~40 ms per session. Failing is harmless. */
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (session != NULL)
		session->bev = bufferevent_socket_new(daemon->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (session == NULL || session->bev == NULL) {
		log_warning("accept dropped listener=%s error=\"out of memory\"",
			    config_listener_name(listener->kind));
		evutil_closesocket(fd);
		free(session);
		daemon_limits_release(daemon, ip);
		return;
	}
	session->daemon = daemon;
	session->listener = listener;
	session->protocol = daemon_protocol_for(listener->kind);
	session->started_ms = daemon_clock_ms();
	id_generator_next(&daemon->session_ids, id_clock_ms(), session->sid);
	memcpy(session->client, client, sizeof(session->client));
	memcpy(session->client_ip, ip, sizeof(session->client_ip));

	session->next = daemon->sessions;
	if (daemon->sessions != NULL)
		daemon->sessions->prev = session;
	daemon->sessions = session;
	daemon->session_count++;
	daemon->session_counts[listener->kind]++;

	log_info("sid=%s connect listener=%s client=%s", session->sid,
		 config_listener_name(listener->kind), session->client);
	session->protocol->start(session);
}

void daemon_session_close(struct daemon_session *session, const char *reason)
{
	struct daemon *daemon = session->daemon;

	if (session->protocol->stop != NULL)
		session->protocol->stop(session);
	/* Sends close_notify on a TLS session so OpenSSL keeps it resumable
	 * (Outlook resumes by session ID); nothing on a plain one. */
	tls_bufferevent_shutdown(session->bev);
	bufferevent_free(session->bev);
	log_info("sid=%s disconnect listener=%s reason=%s duration_ms=%llu", session->sid,
		 config_listener_name(session->listener->kind), reason,
		 (unsigned long long) (daemon_clock_ms() - session->started_ms));

	if (session->prev != NULL)
		session->prev->next = session->next;
	else
		daemon->sessions = session->next;
	if (session->next != NULL)
		session->next->prev = session->prev;
	daemon->session_count--;
	daemon->session_counts[session->listener->kind]--;
	daemon_limits_release(daemon, session->client_ip);
	free(session);
	daemon_shutdown_check(daemon);
}

void daemon_sessions_close_all(struct daemon *daemon, const char *reason)
{
	while (daemon->sessions != NULL)
		daemon_session_close(daemon->sessions, reason);
}
