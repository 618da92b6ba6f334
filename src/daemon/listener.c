/*
 * listener: the listening sockets. They are bound while the daemon may still
 * be root (ports below 1024), before the event loop exists; the loop wraps
 * them in evconnlisteners only after root is gone. At shutdown they are all
 * closed at once, so the kernel refuses new connections from then on.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/listener.h>
#include <event2/util.h>

#include "core/log.h"
#include "daemon/internal.h"

static void bind_address(struct daemon *daemon, enum config_listener_kind kind,
			 const struct config_address *address)
{
	struct daemon_listener *listener;
	struct addrinfo hints, *res = NULL;
	char port[8];
	int rc, fd, on = 1, e;
	const char *what;

	if (daemon->listener_count >= DAEMON_LISTENER_MAX)
		daemon_fatal(DAEMON_EXIT_CONFIG, "too many listen addresses");
	listener = &daemon->listeners[daemon->listener_count];
	listener->daemon = daemon;
	listener->kind = kind;
	listener->fd = -1;
	config_address_format(address, listener->address, sizeof(listener->address));

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* Numeric only: binding never waits for DNS. */
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", (unsigned) address->port);
	rc = getaddrinfo(address->host, port, &hints, &res);
	if (rc != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot bind listener %s to %s: %s",
			     config_listener_name(kind), listener->address, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	what = "socket";
	if (fd < 0)
		goto fail;
	/* A restart must not wait for the old connections' TIME_WAIT. */
	what = "SO_REUSEADDR";
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0)
		goto fail;
	/* [::]:25 means IPv6 only; 0.0.0.0:25 is its own listen line. */
	what = "IPV6_V6ONLY";
	if (res->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0)
		goto fail;
	what = "bind";
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
		goto fail;
	what = "listen";
	if (listen(fd, DAEMON_LISTEN_BACKLOG) != 0)
		goto fail;
	freeaddrinfo(res);
	listener->fd = fd;
	daemon->listener_count++;
	return;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	daemon_fatal(DAEMON_EXIT_FAILURE, "cannot bind listener %s to %s: %s: %s",
		     config_listener_name(kind), listener->address, what, strerror(e));
}

void daemon_listeners_bind(struct daemon *daemon)
{
	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++) {
		const struct config_listener *config = &daemon->config.listeners[kind];

		if (!config->is_enabled)
			continue;
		for (size_t i = 0; i < config->listen_count; i++)
			bind_address(daemon, (enum config_listener_kind) kind, &config->listen[i]);
	}
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
		      int addr_len, void *arg)
{
	(void) evl;
	daemon_session_accept(arg, fd, addr, addr_len);
}

/*
 * accept() failed for a reason that will not pass by itself, typically
 * EMFILE or ENFILE. The socket stays readable, so retrying at once would spin:
 * pause this address until some sessions have ended.
 */
static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct daemon_listener *listener = arg;
	struct timeval pause = { DAEMON_ACCEPT_PAUSE_MS / 1000,
				 (DAEMON_ACCEPT_PAUSE_MS % 1000) * 1000 };
	char reason[LOG_ESCAPED_CAP];
	int e = EVUTIL_SOCKET_ERROR();

	log_warning("accept failed listener=%s address=%s error=%s pause_ms=%d",
		    config_listener_name(listener->kind), listener->address,
		    log_escape(span_from_cstr(evutil_socket_error_to_string(e)), reason),
		    DAEMON_ACCEPT_PAUSE_MS);
	evconnlistener_disable(evl);
	evtimer_add(listener->resume, &pause);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_listener *listener = arg;

	(void) fd;
	(void) what;
	if (listener->evl != NULL)
		evconnlistener_enable(listener->evl);
}

void daemon_listeners_start(struct daemon *daemon)
{
	for (size_t i = 0; i < daemon->listener_count; i++) {
		struct daemon_listener *listener = &daemon->listeners[i];

		if (listener->kind == CONFIG_LISTENER_HTTP && daemon->http != NULL) {
			struct error err;

			/* evhttp accepts on this socket itself (src/http/server.h). */
			if (http_server_accept(daemon->http, listener->fd, listener->address,
					       &err) < 0) {
				listener->fd = -1;
				daemon_fatal(DAEMON_EXIT_FAILURE, "cannot listen on %s: %s",
					     listener->address, err.message);
			}
			listener->fd = -1;
			log_info("listening listener=http address=%s protocol=%s",
				 listener->address,
				 daemon->config.listeners[CONFIG_LISTENER_HTTP].tls ? "https"
										    : "http");
			continue;
		}
		listener->resume = evtimer_new(daemon->base, on_resume, listener);
		/* backlog 0: the socket already listens. Accepted sockets are
		 * non-blocking and close-on-exec. */
		listener->evl = evconnlistener_new(daemon->base, on_accept, listener,
						   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
						   listener->fd);
		if (listener->resume == NULL || listener->evl == NULL)
			daemon_fatal(DAEMON_EXIT_FAILURE, "cannot listen on %s: out of memory",
				     listener->address);
		listener->fd = -1;
		evconnlistener_set_error_cb(listener->evl, on_accept_error);
		log_info("listening listener=%s address=%s protocol=%s",
			 config_listener_name(listener->kind), listener->address,
			 daemon_protocol_for(listener->kind)->name);
	}
}

void daemon_listeners_free(struct daemon *daemon)
{
	http_server_close_listeners(daemon->http);
	for (size_t i = 0; i < daemon->listener_count; i++) {
		struct daemon_listener *listener = &daemon->listeners[i];

		if (listener->evl != NULL)
			evconnlistener_free(listener->evl);
		listener->evl = NULL;
		if (listener->fd >= 0)
			close(listener->fd);
		listener->fd = -1;
		if (listener->resume != NULL)
			event_free(listener->resume);
		listener->resume = NULL;
	}
}
