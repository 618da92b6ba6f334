/*
 * Tests for src/tls/upgrade.c: a libevent loop serves one loopback TCP
 * connection the way the daemon will (a plain socket bufferevent with
 * BEV_OPT_CLOSE_ON_FREE, a small SMTP-like line protocol, STARTTLS or
 * implicit TLS), and a real OpenSSL client in a second thread talks to it
 * over blocking sockets. Each test checks what the server executed and which
 * bufferevent events it saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/span.h"
#include "tls/cert.h"
#include "tls/context.h"
#include "tls/upgrade.h"

#define TEST_DEADLINE_S	     10 /* the whole exchange, server side */
#define CLIENT_IO_TIMEOUT_S  10 /* each blocking read or write of the client */
#define COMMANDS_MAX	     8
#define COMMAND_CAP	     64
#define HANDSHAKE_TIMEOUT_MS 300 /* for the test of a silent client */
#define SESSION_TIMEOUT_MS   5000

struct fixture {
	char dir[64];
	char cert[128], key[128];
	struct tls_context *modern, *legacy;
};

static int setup(void **state)
{
	static struct fixture f;
	static const char *const names[] = { "smtp.example.test" };
	struct error err;

	snprintf(f.dir, sizeof(f.dir), "/tmp/postgate-tls-upgrade-test-XXXXXX");
	if (mkdtemp(f.dir) == NULL)
		return -1;
	snprintf(f.cert, sizeof(f.cert), "%s/cert.pem", f.dir);
	snprintf(f.key, sizeof(f.key), "%s/key.pem", f.dir);
	if (tls_cert_make_selfsigned(names, 1, 30, f.cert, f.key, &err) < 0 ||
	    tls_context_new(f.cert, f.key, TLS_PROFILE_MODERN, &f.modern, &err) < 0 ||
	    tls_context_new(f.cert, f.key, TLS_PROFILE_LEGACY, &f.legacy, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.message);
		return -1;
	}
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tls_context_free(f->modern);
	tls_context_free(f->legacy);
	unlink(f->cert);
	unlink(f->key);
	rmdir(f->dir);
	return 0;
}

/* ---- the server: one session on the loop, as an engine would run it ---- */

struct server {
	struct event_base *base;
	struct tls_context *tls;
	struct bufferevent *bev; /* the session's current bufferevent */
	evutil_socket_t fd;
	bool is_implicit;
	bool is_tls;
	bool is_upgrade_pending;  /* 220 for STARTTLS written, upgrade on write-done */
	int handshake_timeout_ms; /* 0: SESSION_TIMEOUT_MS */
	bool is_shutdown_skipped; /* free without tls_bufferevent_shutdown */

	/* What happened. */
	char commands[COMMANDS_MAX][COMMAND_CAP];
	size_t command_count;
	size_t discarded_len; /* plaintext dropped at the upgrade */
	bool is_fd_open_after_upgrade;
	bool is_fd_open_at_handshake; /* after libevent finalized the plain bufferevent */
	bool has_upgrade_failed;
	char upgrade_error[ERROR_MESSAGE_MAX];
	short final_event; /* the event that ended the session */
	char handshake[TLS_DESCRIBE_CAP];
	char error[TLS_ERROR_DESCRIBE_CAP];
	int binding_rc;
	unsigned char binding[TLS_CHANNEL_BINDING_LEN];
	bool is_done;
};

static void server_end(struct server *s, short what)
{
	s->final_event = what;
	if (what & BEV_EVENT_ERROR)
		tls_error_describe(s->bev, s->error, sizeof(s->error));
	if (!s->is_shutdown_skipped)
		tls_bufferevent_shutdown(s->bev);
	bufferevent_free(s->bev);
	s->bev = NULL;
	s->is_done = true;
	event_base_loopbreak(s->base);
}

static void server_reply(struct server *s, const char *reply)
{
	assert_int_equal(bufferevent_write(s->bev, reply, strlen(reply)), 0);
}

static void on_server_read(struct bufferevent *bev, void *arg);
static void on_server_write(struct bufferevent *bev, void *arg);
static void on_server_event(struct bufferevent *bev, short what, void *arg);

static void server_set_timeouts(struct server *s)
{
	int ms = s->handshake_timeout_ms > 0 ? s->handshake_timeout_ms : SESSION_TIMEOUT_MS;
	struct timeval timeout = { ms / 1000, (ms % 1000) * 1000 };

	bufferevent_set_timeouts(s->bev, &timeout, &timeout);
}

static void on_server_read(struct bufferevent *bev, void *arg)
{
	struct server *s = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	char *line;
	size_t len;

	while ((line = evbuffer_readln(input, &len, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		assert_true(s->command_count < COMMANDS_MAX);
		snprintf(s->commands[s->command_count++], COMMAND_CAP, "%s", line);
		if (strcmp(line, "STARTTLS") == 0 && !s->is_tls) {
			/* The engine's half of the contract: stop reading, parse
			 * nothing more, reply, and upgrade once the reply is out. */
			free(line);
			bufferevent_disable(bev, EV_READ);
			s->discarded_len = evbuffer_get_length(input);
			s->is_upgrade_pending = true;
			server_reply(s, "220 2.0.0 Ready to start TLS\r\n");
			return;
		}
		if (strncmp(line, "EHLO", 4) == 0)
			server_reply(s, "250 test.example\r\n");
		else if (strncmp(line, "MAIL", 4) == 0)
			server_reply(s, "250 2.1.0 Ok\r\n");
		else if (strcmp(line, "QUIT") == 0)
			server_reply(s, "221 2.0.0 Bye\r\n");
		else
			server_reply(s, "500 5.5.2 Command not recognized\r\n");
		free(line);
	}
}

static void on_server_write(struct bufferevent *bev, void *arg)
{
	struct server *s = arg;
	struct bufferevent *tls_bev;
	struct error err;

	if (!s->is_upgrade_pending)
		return;
	s->is_upgrade_pending = false;
	tls_bev = tls_bufferevent_upgrade(bev, s->tls, &err);
	if (tls_bev == NULL) {
		s->has_upgrade_failed = true;
		snprintf(s->upgrade_error, sizeof(s->upgrade_error), "%s", err.message);
		server_end(s, BEV_EVENT_ERROR);
		return;
	}
	/* bev is freed; the socket lives on in tls_bev. */
	s->is_fd_open_after_upgrade = fcntl(s->fd, F_GETFD) != -1;
	s->bev = tls_bev;
	bufferevent_setcb(s->bev, on_server_read, on_server_write, on_server_event, s);
	server_set_timeouts(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void on_server_event(struct bufferevent *bev, short what, void *arg)
{
	struct server *s = arg;

	assert_ptr_equal(bev, s->bev);
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = tls_bufferevent_ssl(bev);

		assert_non_null(ssl);
		s->is_tls = true;
		s->is_fd_open_at_handshake = fcntl(s->fd, F_GETFD) != -1;
		tls_handshake_describe(ssl, s->handshake, sizeof(s->handshake));
		s->binding_rc = tls_exporter_channel_binding(ssl, s->binding);
		if (s->is_implicit)
			server_reply(s, "220 test.example ESMTP\r\n");
		return;
	}
	server_end(s, what);
}

/* ---- the client: blocking sockets and OpenSSL in its own thread ---- */

enum client_script {
	CLIENT_STARTTLS_PIPELINED,	 /* STARTTLS and MAIL in one write, then TLS */
	CLIENT_STARTTLS_PLAINTEXT_AFTER, /* plaintext instead of a ClientHello */
	CLIENT_IMPLICIT,		 /* handshake at once, then a short session */
	CLIENT_SILENT,			 /* connects and says nothing */
};

enum client_close {
	CLOSE_NOTIFY, /* SSL_shutdown, then close */
	CLOSE_FIN,    /* close without close_notify (Outlook after QUIT) */
	CLOSE_RESET,  /* RST: SO_LINGER 0 (Outlook, as Exim documents) */
};

struct client {
	uint16_t port;
	enum client_script script;
	enum client_close close_how;
	int min_version, max_version;
	const char *ciphers;
	uint64_t options;
	SSL_SESSION *resume; /* offered in the ClientHello; NULL: none */
	bool wants_session;  /* keep the session in .session */

	/* What it saw. */
	bool is_ok; /* the script ran to its end as expected */
	char failure[256];
	char replies[8][COMMAND_CAP];
	size_t reply_count;
	int binding_rc;
	unsigned char binding[TLS_CHANNEL_BINDING_LEN];
	bool is_resumed;
	SSL_SESSION *session; /* for a later connection; the test frees it */
};

static bool client_fail(struct client *c, const char *what)
{
	snprintf(c->failure, sizeof(c->failure), "%s (errno %d)", what, errno);
	return false;
}

/* One reply line in plaintext, byte by byte: nothing after the CRLF may be
 * consumed, it is the server's TLS. */
static bool read_plain_line(struct client *c, int fd)
{
	char *line = c->replies[c->reply_count];
	size_t len = 0;

	while (len + 1 < COMMAND_CAP) {
		char ch;

		if (recv(fd, &ch, 1, 0) != 1)
			return client_fail(c, "plaintext reply cut short");
		if (ch == '\n')
			break;
		if (ch != '\r')
			line[len++] = ch;
	}
	line[len] = '\0';
	c->reply_count++;
	return true;
}

static bool read_tls_line(struct client *c, SSL *ssl)
{
	char *line = c->replies[c->reply_count];
	size_t len = 0;

	while (len + 1 < COMMAND_CAP) {
		char ch;

		if (SSL_read(ssl, &ch, 1) != 1)
			return client_fail(c, "TLS reply cut short");
		if (ch == '\n')
			break;
		if (ch != '\r')
			line[len++] = ch;
	}
	line[len] = '\0';
	c->reply_count++;
	return true;
}

static bool send_all(struct client *c, int fd, const char *text)
{
	size_t len = strlen(text);

	if (send(fd, text, len, MSG_NOSIGNAL) != (ssize_t) len)
		return client_fail(c, "send");
	return true;
}

static bool tls_send(struct client *c, SSL *ssl, const char *text)
{
	if (SSL_write(ssl, text, (int) strlen(text)) != (int) strlen(text))
		return client_fail(c, "SSL_write");
	return true;
}

static SSL *client_handshake(struct client *c, int fd, SSL_CTX **ctx_out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	*ctx_out = ctx;
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, c->min_version);
	SSL_CTX_set_max_proto_version(ctx, c->max_version);
	if (c->ciphers != NULL)
		SSL_CTX_set_cipher_list(ctx, c->ciphers);
	SSL_CTX_set_options(ctx, c->options);
	/* No client-side cache: the client keeps its session even when it
	 * closes without close_notify, as SChannel does. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		return NULL;
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "smtp.example.test");
	if (c->resume != NULL)
		SSL_set_session(ssl, c->resume);
	if (SSL_connect(ssl) != 1) {
		client_fail(c, "SSL_connect");
		SSL_free(ssl);
		return NULL;
	}
	c->is_resumed = SSL_session_reused(ssl) == 1;
	if (c->wants_session)
		c->session = SSL_get1_session(ssl);
	c->binding_rc = SSL_export_keying_material(ssl, c->binding, sizeof(c->binding),
						   "EXPORTER-Channel-Binding", 24,
						   (const unsigned char *) "", 0, 1) == 1
				? 0
				: -1;
	return ssl;
}

/* After the handshake: the greeting (implicit only), one MAIL, QUIT, close. */
static bool client_session(struct client *c, int fd, SSL *ssl, bool wants_greeting)
{
	if (wants_greeting && !read_tls_line(c, ssl))
		return false;
	if (!tls_send(c, ssl, "MAIL FROM:<good@example.test>\r\n") || !read_tls_line(c, ssl) ||
	    !tls_send(c, ssl, "QUIT\r\n") || !read_tls_line(c, ssl))
		return false;
	if (c->close_how == CLOSE_NOTIFY) {
		SSL_shutdown(ssl);
	} else if (c->close_how == CLOSE_RESET) {
		struct linger linger = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
	}
	return true;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(c->port) };
	struct timeval timeout = { CLIENT_IO_TIMEOUT_S, 0 };
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char byte;

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
	if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0) {
		client_fail(c, "connect");
		close(fd);
		return NULL;
	}
	switch (c->script) {
	case CLIENT_STARTTLS_PIPELINED:
		/* The attack: a command pipelined behind STARTTLS in one packet. */
		c->is_ok = read_plain_line(c, fd) && send_all(c, fd, "EHLO client.example\r\n") &&
			   read_plain_line(c, fd) &&
			   send_all(c, fd, "STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n") &&
			   read_plain_line(c, fd) &&
			   (ssl = client_handshake(c, fd, &ctx)) != NULL &&
			   client_session(c, fd, ssl, false);
		break;
	case CLIENT_STARTTLS_PLAINTEXT_AFTER:
		c->is_ok = read_plain_line(c, fd) && send_all(c, fd, "STARTTLS\r\n") &&
			   read_plain_line(c, fd) &&
			   send_all(c, fd, "MAIL FROM:<evil@example.test>\r\n");
		/* The server must hang up rather than answer. */
		if (c->is_ok && recv(fd, &byte, 1, 0) > 0)
			c->is_ok = client_fail(c, "the server answered plaintext after STARTTLS");
		break;
	case CLIENT_IMPLICIT:
		c->is_ok = (ssl = client_handshake(c, fd, &ctx)) != NULL &&
			   client_session(c, fd, ssl, true);
		break;
	case CLIENT_SILENT:
		/* Wait for the server to give up on the handshake. */
		c->is_ok = recv(fd, &byte, 1, 0) == 0;
		if (!c->is_ok)
			client_fail(c, "the server did not close a silent connection");
		break;
	}
	/* A client that sent no close_notify still keeps its session (as
	 * SChannel does); OpenSSL would otherwise mark it not resumable. */
	if (ssl != NULL && c->close_how != CLOSE_NOTIFY)
		SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	close(fd);
	return NULL;
}

static evutil_socket_t listen_loopback(uint16_t *port_out)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t len = sizeof(addr);
	evutil_socket_t fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *) &addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *) &addr, &len), 0);
	*port_out = ntohs(addr.sin_port);
	return fd;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void) fd;
	(void) what;
	event_base_loopbreak(s->base);
}

/* Accept one connection from the client thread and serve it to its end. */
static void run(struct tls_context *tls, bool is_implicit, struct server *s, struct client *c)
{
	struct timeval deadline = { TEST_DEADLINE_S, 0 };
	evutil_socket_t listener = listen_loopback(&c->port);
	struct event *timer;
	pthread_t thread;
	struct error err;

	s->base = event_base_new();
	s->tls = tls;
	s->is_implicit = is_implicit;
	s->binding_rc = 1; /* neither 0 nor -1: never computed */
	assert_non_null(s->base);
	assert_int_equal(pthread_create(&thread, NULL, client_main, c), 0);
	s->fd = accept(listener, NULL, NULL);
	assert_true(s->fd >= 0);
	close(listener);
	assert_int_equal(evutil_make_socket_nonblocking(s->fd), 0);
	if (is_implicit) {
		s->bev = tls_bufferevent_accept(s->base, s->fd, tls, &err);
		assert_non_null(s->bev);
	} else {
		/* As daemon_session_accept makes it. */
		s->bev = bufferevent_socket_new(s->base, s->fd, BEV_OPT_CLOSE_ON_FREE);
		assert_non_null(s->bev);
		server_reply(s, "220 test.example ESMTP\r\n");
	}
	bufferevent_setcb(s->bev, on_server_read, on_server_write, on_server_event, s);
	server_set_timeouts(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	timer = evtimer_new(s->base, on_deadline, s);
	evtimer_add(timer, &deadline);
	event_base_dispatch(s->base);
	if (s->bev != NULL) { /* the deadline: the test fails below */
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	event_free(timer);
	/* Let libevent finalize the freed bufferevents (closing the socket). */
	event_base_loop(s->base, EVLOOP_NONBLOCK);
	assert_int_equal(pthread_join(thread, NULL), 0);
	event_base_free(s->base);
	/* Nothing holds the socket any more: the last bufferevent closed it. */
	assert_int_equal(fcntl(s->fd, F_GETFD), -1);
	print_message(
		"      server: done=%d event=0x%x commands=%zu handshake=\"%s\" error=\"%s\"\n",
		s->is_done, s->final_event, s->command_count, s->handshake, s->error);
	print_message("      client: ok=%d failure=\"%s\"\n", c->is_ok, c->failure);
	assert_true(s->is_done);
}

static void assert_commands(const struct server *s, const char *const *want, size_t want_count)
{
	assert_int_equal(s->command_count, want_count);
	for (size_t i = 0; i < want_count; i++)
		assert_string_equal(s->commands[i], want[i]);
}

/* The heart of it: "STARTTLS\r\nMAIL FROM:<evil>\r\n" in one write. The
 * MAIL never runs, the handshake completes on the same socket, and the
 * session goes on encrypted both ways. */
static void test_starttls_discards_pipelined_plaintext(void **state)
{
	struct fixture *f = *state;
	struct server s = { 0 };
	struct client c = { .script = CLIENT_STARTTLS_PIPELINED,
			    .close_how = CLOSE_NOTIFY,
			    .min_version = TLS1_2_VERSION };
	static const char *const want[] = { "EHLO client.example", "STARTTLS",
					    "MAIL FROM:<good@example.test>", "QUIT" };

	run(f->modern, false, &s, &c);
	assert_true(c.is_ok);
	assert_false(s.has_upgrade_failed);
	assert_int_equal(s.discarded_len, strlen("MAIL FROM:<evil@example.test>\r\n"));
	assert_true(s.is_fd_open_after_upgrade);
	assert_true(s.is_fd_open_at_handshake);
	assert_commands(&s, want, ARRAY_LEN(want));
	assert_int_equal(c.reply_count, 5);
	assert_string_equal(c.replies[2], "220 2.0.0 Ready to start TLS");
	assert_string_equal(c.replies[3], "250 2.1.0 Ok");
	assert_string_equal(c.replies[4], "221 2.0.0 Bye");
	assert_non_null(strstr(s.handshake, "version=TLSv1.3"));
	assert_non_null(strstr(s.handshake, "sni=smtp.example.test"));
	/* The client closed with close_notify: a clean end. */
	assert_int_equal(s.final_event, BEV_EVENT_EOF | BEV_EVENT_READING);
}

/* Plaintext sent after the 220 (instead of a ClientHello) reaches the TLS
 * layer and fails the handshake: never a command. */
static void test_starttls_plaintext_after_reply_fails_handshake(void **state)
{
	struct fixture *f = *state;
	struct server s = { 0 };
	struct client c = { .script = CLIENT_STARTTLS_PLAINTEXT_AFTER };
	static const char *const want[] = { "STARTTLS" };

	run(f->modern, false, &s, &c);
	assert_true(c.is_ok);
	assert_int_equal(s.discarded_len, 0);
	assert_commands(&s, want, ARRAY_LEN(want));
	assert_false(s.is_tls);
	assert_true(s.final_event & BEV_EVENT_ERROR);
	/* OpenSSL's reason, not a socket error. */
	assert_true(strlen(s.error) > 0);
	assert_null(strstr(s.error, "closed"));
}

/* Implicit TLS with each profile and each way a client may end. */
static void test_implicit_tls_and_endings(void **state)
{
	struct fixture *f = *state;
	// clang-format off
	static const struct ending_case {
		const char *name;
		enum tls_profile profile;
		int min_version, max_version;
		const char *ciphers;
		enum client_close close_how;
		short want_event;
		const char *want_handshake; /* a part of the describe line */
	} cases[] = {
		{ "TLS 1.3, close_notify", TLS_PROFILE_MODERN, TLS1_2_VERSION, 0, NULL,
		  CLOSE_NOTIFY, BEV_EVENT_EOF | BEV_EVENT_READING, "version=TLSv1.3" },
		{ "TLS 1.3, FIN without close_notify", TLS_PROFILE_MODERN, TLS1_2_VERSION, 0, NULL,
		  CLOSE_FIN, BEV_EVENT_EOF | BEV_EVENT_READING, "version=TLSv1.3" },
		{ "TLS 1.3, reset after QUIT (Outlook)", TLS_PROFILE_MODERN, TLS1_2_VERSION, 0, NULL,
		  CLOSE_RESET, BEV_EVENT_EOF | BEV_EVENT_READING, "version=TLSv1.3" },
		{ "TLS 1.2, FIN without close_notify", TLS_PROFILE_MODERN, TLS1_2_VERSION,
		  TLS1_2_VERSION, NULL, CLOSE_FIN, BEV_EVENT_EOF | BEV_EVENT_READING,
		  "version=TLSv1.2 cipher=ECDHE-ECDSA-AES128-GCM-SHA256" },
		{ "legacy TLS 1.0 (Vista), reset after QUIT", TLS_PROFILE_LEGACY, TLS1_VERSION,
		  TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", CLOSE_RESET,
		  BEV_EVENT_EOF | BEV_EVENT_READING,
		  "version=TLSv1.0 cipher=ECDHE-ECDSA-AES128-SHA resumed=no" },
	};
	// clang-format on
	static const char *const want[] = { "MAIL FROM:<good@example.test>", "QUIT" };

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct ending_case *e = &cases[i];
		struct server s = { 0 };
		struct client c = { .script = CLIENT_IMPLICIT,
				    .close_how = e->close_how,
				    .min_version = e->min_version,
				    .max_version = e->max_version,
				    .ciphers = e->ciphers };

		print_message("case: %s\n", e->name);
		run(e->profile == TLS_PROFILE_MODERN ? f->modern : f->legacy, true, &s, &c);
		assert_true(c.is_ok);
		assert_commands(&s, want, ARRAY_LEN(want));
		assert_string_equal(c.replies[0], "220 test.example ESMTP");
		assert_string_equal(c.replies[2], "221 2.0.0 Bye");
		assert_non_null(strstr(s.handshake, e->want_handshake));
		assert_int_equal(s.final_event, e->want_event);
	}
}

/* A handshake a client never starts ends with the caller's read timeout. */
static void test_implicit_handshake_timeout(void **state)
{
	struct fixture *f = *state;
	struct server s = { .handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS };
	struct client c = { .script = CLIENT_SILENT };

	run(f->modern, true, &s, &c);
	assert_true(c.is_ok);
	assert_false(s.is_tls);
	assert_int_equal(s.command_count, 0);
	assert_int_equal(s.final_event, BEV_EVENT_TIMEOUT);
}

/* A client that offers nothing the profile has: BEV_EVENT_ERROR with
 * OpenSSL's reason. */
static void test_implicit_handshake_failure(void **state)
{
	struct fixture *f = *state;
	struct server s = { 0 };
	struct client c = { .script = CLIENT_IMPLICIT,
			    .min_version = TLS1_VERSION,
			    .max_version = TLS1_VERSION,
			    .ciphers = "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0" };

	run(f->modern, true, &s, &c);
	assert_false(c.is_ok);
	assert_false(s.is_tls);
	assert_true(s.final_event & BEV_EVENT_ERROR);
	print_message("      error: %s\n", s.error);
	assert_non_null(strstr(s.error, "unsupported protocol"));
}

/* RFC 9266 on both ends: equal after TLS 1.3 and after TLS 1.2 with the
 * extended master secret; refused after TLS 1.2 without it and after 1.0. */
static void test_channel_binding(void **state)
{
	struct fixture *f = *state;
	// clang-format off
	static const struct binding_case {
		const char *name;
		enum tls_profile profile;
		int version;
		const char *ciphers;
		uint64_t options;
		int want_rc;
	} cases[] = {
		{ "TLS 1.3", TLS_PROFILE_MODERN, TLS1_3_VERSION, NULL, 0, 0 },
		{ "TLS 1.2 with extended master secret", TLS_PROFILE_MODERN, TLS1_2_VERSION, NULL,
		  0, 0 },
		{ "TLS 1.2 without extended master secret", TLS_PROFILE_MODERN, TLS1_2_VERSION,
		  NULL, SSL_OP_NO_EXTENDED_MASTER_SECRET, -1 },
		{ "TLS 1.0", TLS_PROFILE_LEGACY, TLS1_VERSION,
		  "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", 0, -1 },
	};
	// clang-format on

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct binding_case *b = &cases[i];
		struct server s = { 0 };
		struct client c = { .script = CLIENT_IMPLICIT,
				    .close_how = CLOSE_NOTIFY,
				    .min_version = b->version,
				    .max_version = b->version,
				    .ciphers = b->ciphers,
				    .options = b->options };

		print_message("case: %s\n", b->name);
		run(b->profile == TLS_PROFILE_MODERN ? f->modern : f->legacy, true, &s, &c);
		assert_true(c.is_ok);
		assert_int_equal(s.binding_rc, b->want_rc);
		if (b->want_rc == 0) {
			assert_int_equal(c.binding_rc, 0);
			assert_memory_equal(s.binding, c.binding, TLS_CHANNEL_BINDING_LEN);
		}
	}
	assert_int_equal(tls_exporter_channel_binding(NULL, NULL), -1);
}

/* Session-ID resumption (TLS 1.2 without tickets, as Outlook does it) over
 * real bufferevents: the second connection resumes when the server ended the
 * first with tls_bufferevent_shutdown, and not when it only freed it. The
 * client closes without close_notify both times, as Outlook does. */
static void test_session_id_resumption_needs_shutdown(void **state)
{
	struct fixture *f = *state;
	// clang-format off
	static const struct shutdown_case {
		const char *name;
		bool is_shutdown_skipped;
		bool want_resumed;
	} cases[] = {
		{ "tls_bufferevent_shutdown before free: resumed", false, true },
		{ "free alone: OpenSSL drops the session", true, false },
	};
	// clang-format on

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct shutdown_case *k = &cases[i];
		struct tls_context *ctx;
		struct error err;
		struct server s1 = { .is_shutdown_skipped = k->is_shutdown_skipped };
		struct server s2 = { 0 };
		struct client c1 = { .script = CLIENT_IMPLICIT,
				     .close_how = CLOSE_FIN,
				     .min_version = TLS1_2_VERSION,
				     .max_version = TLS1_2_VERSION,
				     .options = SSL_OP_NO_TICKET,
				     .wants_session = true };
		struct client c2 = c1;

		print_message("case: %s\n", k->name);
		/* A context of its own: a fresh session cache. */
		assert_int_equal(tls_context_new(f->cert, f->key, TLS_PROFILE_MODERN, &ctx, &err),
				 0);
		run(ctx, true, &s1, &c1);
		assert_true(c1.is_ok);
		assert_false(c1.is_resumed);
		assert_non_null(c1.session);
		c2.resume = c1.session;
		run(ctx, true, &s2, &c2);
		assert_true(c2.is_ok);
		assert_int_equal(c2.is_resumed, k->want_resumed);
		assert_non_null(
			strstr(s2.handshake, k->want_resumed ? "resumed=yes" : "resumed=no"));
		SSL_SESSION_free(c1.session);
		SSL_SESSION_free(c2.session);
		tls_context_free(ctx);
	}
}

/* The contract's failures: a reply still buffered, or TLS already on. The
 * plain bufferevent survives, still owns the socket, and has lost its input. */
static void test_upgrade_refusals(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct bufferevent *plain, *tls_bev;
	struct error err;
	int pair[2];

	assert_non_null(base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	assert_int_equal(evutil_make_socket_nonblocking(pair[0]), 0);
	plain = bufferevent_socket_new(base, pair[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(plain);
	/* Pipelined input read into plain's buffer, and a reply not yet sent. */
	assert_int_equal(send(pair[1], "MAIL FROM:<x>\r\n", 15, 0), 15);
	assert_int_equal(bufferevent_enable(plain, EV_READ), 0);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	assert_int_equal(evbuffer_get_length(bufferevent_get_input(plain)), 15);
	assert_int_equal(bufferevent_write(plain, "220 2.0.0 Ready\r\n", 17), 0);

	error_clear(&err);
	assert_null(tls_bufferevent_upgrade(plain, f->modern, &err));
	assert_int_equal(err.kind, ERROR_SOFTWARE);
	print_message("      %s\n", err.message);
	assert_non_null(strstr(err.message, "17 bytes"));
	assert_int_equal(evbuffer_get_length(bufferevent_get_input(plain)), 0);
	assert_int_equal(bufferevent_getfd(plain), pair[0]);
	assert_true(fcntl(pair[0], F_GETFD) != -1);

	/* Upgrading a TLS bufferevent again is refused too. */
	tls_bev = tls_bufferevent_accept(base, pair[1], f->modern, &err);
	assert_non_null(tls_bev);
	error_clear(&err);
	assert_null(tls_bufferevent_upgrade(tls_bev, f->modern, &err));
	assert_int_equal(err.kind, ERROR_SOFTWARE);
	assert_null(tls_bufferevent_ssl(plain));
	assert_non_null(tls_bufferevent_ssl(tls_bev));

	/* And an invalid socket for implicit TLS. */
	assert_null(tls_bufferevent_accept(base, -1, f->modern, &err));

	bufferevent_free(plain);
	bufferevent_free(tls_bev);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(fcntl(pair[0], F_GETFD), -1);
	assert_int_equal(fcntl(pair[1], F_GETFD), -1);
	event_base_free(base);
}

/* tls_error_describe without OpenSSL reasons falls back to the socket error,
 * then to "closed". */
static void test_error_describe_fallbacks(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct bufferevent *bev;
	char out[TLS_ERROR_DESCRIBE_CAP];
	struct error err;
	int pair[2];

	assert_non_null(base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	bev = tls_bufferevent_accept(base, pair[0], f->modern, &err);
	assert_non_null(bev);
	errno = ECONNRESET;
	assert_string_equal(tls_error_describe(bev, out, sizeof(out)), strerror(ECONNRESET));
	errno = 0;
	assert_string_equal(tls_error_describe(bev, out, sizeof(out)), "closed");
	bufferevent_free(bev);
	close(pair[1]);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_id_resumption_needs_shutdown),
		cmocka_unit_test(test_starttls_discards_pipelined_plaintext),
		cmocka_unit_test(test_starttls_plaintext_after_reply_fails_handshake),
		cmocka_unit_test(test_implicit_tls_and_endings),
		cmocka_unit_test(test_implicit_handshake_timeout),
		cmocka_unit_test(test_implicit_handshake_failure),
		cmocka_unit_test(test_channel_binding),
		cmocka_unit_test(test_upgrade_refusals),
		cmocka_unit_test(test_error_describe_fallbacks),
	};

	/* As postgated: a write to a socket the client reset is an error, not a
	 * signal. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
