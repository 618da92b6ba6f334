/*
 * pop3load: POP3 download load. C clients at once, each logging in with
 * USER/PASS (after STLS, or over implicit TLS, if asked) as its own user and
 * downloading its whole maildrop: LIST, then RETR of every message (and DELE
 * of each with --dele), then QUIT. Each client runs --sessions such sessions
 * one after another. Reports the total time, messages/s, bytes/s and errors.
 *
 * The user name is a template: "%d" in it becomes the client number (1..C),
 * so ten clients can log in as pop1@example.test .. pop10@example.test (a
 * POP3 server locks a maildrop for one session at a time, RFC 1939 8).
 */
#include "common.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <getopt.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POP3_REPLY_LINE_MAX 512 /* RFC 2449 4: responses up to 512 octets */

enum tls_mode { TLS_NONE, TLS_STLS, TLS_IMPLICIT };

/* clang-format off */
enum client_state {
	ST_CONNECTING, ST_HANDSHAKE, ST_GREETING, ST_STLS, ST_USER, ST_PASS, ST_LIST,
	ST_LIST_BODY, ST_RETR, ST_RETR_BODY, ST_DELE, ST_QUIT, ST_DONE,
};
static const char *const state_names[] = {
	"CONNECT", "TLS", "GREETING", "STLS", "USER", "PASS", "LIST",
	"LIST", "RETR", "RETR", "DELE", "QUIT", "DONE",
};
/* clang-format on */

struct options {
	struct sockaddr_in server;
	uint64_t clients;
	uint64_t sessions;
	enum tls_mode tls;
	const char *tls_version;
	const char *user;
	const char *password;
	bool dele;
	double timeout_s;
};

struct client {
	size_t number;
	int fd;
	struct bufferevent *bev;
	SSL *ssl;
	enum client_state state;
	uint64_t sessions_done;
	uint32_t *listed; /* message numbers from LIST */
	size_t listed_count, listed_cap, next;
	double logged_in_at; /* bench_now() at the +OK to PASS */
	double logged_in_s;  /* summed over this client's sessions, PASS +OK to QUIT +OK */
};

static struct options opt;
static SSL_CTX *tls_ctx;
static struct event_base *base;
static uint64_t messages, bytes, sessions_ok;
static struct bench_errors errors;

static void client_session_start(struct client *c);

/* One CRLF-terminated line copied into line (cut to cap - 1); 1 when read, 0 for more. */
static int line_read(struct evbuffer *in, char *line, size_t cap, size_t *len_out)
{
	size_t eol_len, n;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

	if (eol.pos < 0)
		return 0;
	n = (size_t) eol.pos < cap - 1 ? (size_t) eol.pos : cap - 1;
	evbuffer_copyout(in, line, n);
	line[n] = '\0';
	*len_out = (size_t) eol.pos + eol_len;
	evbuffer_drain(in, (size_t) eol.pos + eol_len);
	return 1;
}

static void client_close(struct client *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void client_end(struct client *c, const char *error)
{
	char label[BENCH_ERROR_LABEL_MAX];

	if (error != NULL) {
		snprintf(label, sizeof(label), "%s %s", state_names[c->state], error);
		bench_errors_add(&errors, label, 1);
	} else {
		sessions_ok++;
	}
	client_close(c);
	c->state = ST_DONE;
	c->sessions_done++;
	if (c->sessions_done < opt.sessions)
		client_session_start(c);
}

/* A command: verb and an optional argument (NULL: none). */
static void send_line(struct client *c, enum client_state next, const char *verb, const char *arg)
{
	c->state = next;
	if (arg != NULL)
		evbuffer_add_printf(bufferevent_get_output(c->bev), "%s %s\r\n", verb, arg);
	else
		evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\r\n", verb);
}

/* The user name carries the client number where the template has %d. */
static void send_user(struct client *c)
{
	char user[256];

	snprintf(user, sizeof(user), opt.user, (int) c->number);
	send_line(c, ST_USER, "USER", user);
}

static void retr_next(struct client *c)
{
	char n[16];

	if (c->next < c->listed_count) {
		snprintf(n, sizeof(n), "%u", c->listed[c->next]);
		send_line(c, ST_RETR, "RETR", n);
	} else {
		send_line(c, ST_QUIT, "QUIT", NULL);
	}
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void tls_begin(struct client *c)
{
	struct timeval tv = { (time_t) opt.timeout_s, 0 };

	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->ssl = SSL_new(tls_ctx);
	c->bev = bufferevent_openssl_socket_new(base, c->fd, c->ssl, BUFFEREVENT_SSL_CONNECTING, 0);
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = ST_HANDSHAKE;
}

/* A multi-line body (RFC 1939 3): lines up to "." alone; returns true at its end. */
static bool body_consume(struct client *c, struct evbuffer *in, bool *more_out)
{
	for (;;) {
		size_t eol_len;
		struct evbuffer_ptr eol =
			evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		char head[16];
		size_t n;
		if (eol.pos < 0) {
			*more_out = true;
			return false;
		}
		n = (size_t) eol.pos < sizeof(head) - 1 ? (size_t) eol.pos : sizeof(head) - 1;
		evbuffer_copyout(in, head, n);
		head[n] = '\0';
		evbuffer_drain(in, (size_t) eol.pos + eol_len);
		if (eol.pos == 1 && head[0] == '.')
			return true;
		if (c->state == ST_LIST_BODY) {
			uint64_t number;
			char *space = strchr(head, ' ');
			if (space != NULL)
				*space = '\0';
			if (!bench_parse_u64(head, &number) || number == 0 || number > UINT32_MAX)
				continue;
			if (c->listed_count == c->listed_cap) {
				c->listed_cap = c->listed_cap ? c->listed_cap * 2 : 256;
				c->listed = realloc(c->listed, c->listed_cap * sizeof(*c->listed));
			}
			c->listed[c->listed_count++] = (uint32_t) number;
		} else {
			bytes += (size_t) eol.pos + eol_len;
		}
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[POP3_REPLY_LINE_MAX];
	size_t len;

	while (c->bev == bev && c->state != ST_DONE) {
		if (c->state == ST_LIST_BODY || c->state == ST_RETR_BODY) {
			bool more = false;
			if (!body_consume(c, in, &more))
				return;
			if (c->state == ST_LIST_BODY) {
				c->next = 0;
				retr_next(c);
			} else if (opt.dele) {
				messages++;
				char n[16];
				snprintf(n, sizeof(n), "%u", c->listed[c->next]);
				send_line(c, ST_DELE, "DELE", n);
			} else {
				messages++;
				c->next++;
				retr_next(c);
			}
			continue;
		}
		if (line_read(in, line, sizeof(line), &len) == 0)
			return;
		if (strncmp(line, "+OK", 3) != 0) {
			char what[40];
			snprintf(what, sizeof(what), "%.30s", line[0] == '-' ? line : "bad reply");
			client_end(c, what);
			return;
		}
		switch (c->state) {
		case ST_GREETING:
			if (opt.tls == TLS_STLS && c->ssl == NULL)
				send_line(c, ST_STLS, "STLS", NULL);
			else
				send_user(c);
			break;
		case ST_STLS:
			tls_begin(c);
			return;
		case ST_USER:
			send_line(c, ST_PASS, "PASS", opt.password);
			break;
		case ST_PASS:
			c->logged_in_at = bench_now();
			c->listed_count = 0;
			send_line(c, ST_LIST, "LIST", NULL);
			break;
		case ST_LIST:
			c->state = ST_LIST_BODY;
			break;
		case ST_RETR:
			c->state = ST_RETR_BODY;
			break;
		case ST_DELE:
			c->next++;
			retr_next(c);
			break;
		case ST_QUIT:
			c->logged_in_s += bench_now() - c->logged_in_at;
			client_end(c, NULL);
			return;
		default:
			break;
		}
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	char label[BENCH_ERROR_LABEL_MAX];

	(void) bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == ST_CONNECTING && opt.tls == TLS_IMPLICIT) {
			tls_begin(c);
		} else if (c->state == ST_CONNECTING) {
			c->state = ST_GREETING;
		} else if (c->state == ST_HANDSHAKE && opt.tls == TLS_IMPLICIT) {
			c->state = ST_GREETING;
		} else if (c->state == ST_HANDSHAKE) {
			send_user(c); /* after STLS: no new greeting (RFC 2595 4) */
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		client_end(c, "timeout");
	} else if (what & BEV_EVENT_EOF) {
		client_end(c, "closed by server");
	} else if (c->ssl != NULL && ERR_peek_error() != 0) {
		snprintf(label, sizeof(label), "tls: %s", ERR_reason_error_string(ERR_get_error()));
		ERR_clear_error();
		client_end(c, label);
	} else {
		client_end(c, strerror(EVUTIL_SOCKET_ERROR()));
	}
}

static void client_session_start(struct client *c)
{
	struct timeval tv = { (time_t) opt.timeout_s, 0 };
	struct in_addr any = { .s_addr = 0 };

	c->state = ST_CONNECTING;
	c->listed_count = 0;
	c->fd = bench_connect_start(&opt.server, any);
	if (c->fd < 0) {
		char label[BENCH_ERROR_LABEL_MAX];
		snprintf(label, sizeof(label), "connect: %s", strerror(errno));
		bench_errors_add(&errors, label, 1);
		c->state = ST_DONE;
		return;
	}
	c->bev = bufferevent_socket_new(base, c->fd, 0);
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	bufferevent_socket_connect(c->bev, NULL, 0);
}

static void usage(void)
{
	puts("usage: pop3load [options] HOST PORT\n"
	     "  -c, --clients N        clients at once (default 10)\n"
	     "      --sessions N       sessions per client, one after another (default 1)\n"
	     "  -u, --user TEMPLATE    user name; %d becomes the client number 1..N\n"
	     "  -p, --password PASSWORD\n"
	     "      --tls MODE         none, stls or implicit (default none)\n"
	     "      --tls-version V    1.2 or 1.3\n"
	     "      --dele             DELE each message after RETR\n"
	     "      --timeout SECONDS  per reply (default 60)\n"
	     "The last line is RESULT key=value ..., for scripts.");
}

static void options_parse(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "clients", required_argument, NULL, 'c' },
		{ "sessions", required_argument, NULL, 1 },
		{ "user", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'p' },
		{ "tls", required_argument, NULL, 2 },
		{ "tls-version", required_argument, NULL, 3 },
		{ "dele", no_argument, NULL, 4 },
		{ "timeout", required_argument, NULL, 5 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opt.clients = 10;
	opt.sessions = 1;
	opt.timeout_s = 60;
	while ((ch = getopt_long(argc, argv, "c:u:p:h", long_options, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'c':
			ok = bench_parse_u64(optarg, &opt.clients) && opt.clients > 0 &&
			     opt.clients < 100000;
			break;
		case 1:
			ok = bench_parse_u64(optarg, &opt.sessions) && opt.sessions > 0;
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'p':
			opt.password = optarg;
			break;
		case 2:
			if (strcmp(optarg, "none") == 0)
				opt.tls = TLS_NONE;
			else if (strcmp(optarg, "stls") == 0)
				opt.tls = TLS_STLS;
			else if (strcmp(optarg, "implicit") == 0)
				opt.tls = TLS_IMPLICIT;
			else
				ok = false;
			break;
		case 3:
			opt.tls_version = optarg;
			ok = strcmp(optarg, "1.2") == 0 || strcmp(optarg, "1.3") == 0;
			break;
		case 4:
			opt.dele = true;
			break;
		case 5:
			ok = bench_parse_seconds(optarg, &opt.timeout_s) && opt.timeout_s >= 1;
			break;
		case 'h':
			usage();
			exit(0);
		default:
			bench_usage_fail("pop3load", "bad option", NULL);
		}
		if (!ok)
			bench_usage_fail("pop3load", "bad value", optarg);
	}
	if (argc - optind != 2 || !bench_addr_parse(argv[optind], argv[optind + 1], &opt.server))
		bench_usage_fail("pop3load", "give HOST PORT (an IPv4 address and a port)", NULL);
	if (opt.user == NULL || opt.password == NULL)
		bench_usage_fail("pop3load", "--user and --password are required", NULL);
	/* The template may hold one %d and no other conversion. */
	const char *pct = strchr(opt.user, '%');
	if (pct != NULL && (pct[1] != 'd' || strchr(pct + 2, '%') != NULL))
		bench_usage_fail("pop3load", "--user may hold only one %d", opt.user);
}

int main(int argc, char **argv)
{
	struct client *clients;
	double start, elapsed, cpu_start, cpu, logged_in_max = 0;

	options_parse(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	bench_fd_limit_raise(opt.clients + 64);
	if (opt.tls != TLS_NONE)
		tls_ctx = bench_tls_ctx_new(opt.tls_version);
	base = event_base_new();
	clients = calloc(opt.clients, sizeof(*clients));
	cpu_start = bench_cpu_seconds();
	start = bench_now();
	for (size_t i = 0; i < opt.clients; i++) {
		clients[i].number = i + 1;
		clients[i].fd = -1;
		client_session_start(&clients[i]);
	}
	event_base_dispatch(base);
	elapsed = bench_now() - start;
	cpu = bench_cpu_seconds() - cpu_start;
	for (size_t i = 0; i < opt.clients; i++)
		if (clients[i].logged_in_s > logged_in_max)
			logged_in_max = clients[i].logged_in_s;

	printf("pop3load: %llu clients x %llu sessions, %llu sessions ok, %llu messages, %llu "
	       "bytes in %.3f s\n",
	       (unsigned long long) opt.clients, (unsigned long long) opt.sessions,
	       (unsigned long long) sessions_ok, (unsigned long long) messages,
	       (unsigned long long) bytes, elapsed);
	printf("rate: %.1f msgs/s, %.2f MiB/s; pop3load itself: %.0f%% of one core\n",
	       (double) messages / elapsed, (double) bytes / elapsed / 1048576.0,
	       100 * cpu / elapsed);
	printf("sessions: %.1f/s; longest time one client spent logged in (PASS to QUIT): %.3f s\n",
	       (double) sessions_ok / elapsed, logged_in_max);
	printf("errors: %llu\n", (unsigned long long) errors.total);
	bench_errors_print(&errors);
	printf("RESULT sessions_ok=%llu messages=%llu bytes=%llu seconds=%.3f msgs_per_s=%.1f "
	       "bytes_per_s=%.0f sessions_per_s=%.1f logged_in_s=%.3f errors=%llu "
	       "client_cpu_pct=%.0f\n",
	       (unsigned long long) sessions_ok, (unsigned long long) messages,
	       (unsigned long long) bytes, elapsed, (double) messages / elapsed,
	       (double) bytes / elapsed, (double) sessions_ok / elapsed, logged_in_max,
	       (unsigned long long) errors.total, 100 * cpu / elapsed);
	for (size_t i = 0; i < opt.clients; i++) {
		client_close(&clients[i]);
		free(clients[i].listed);
	}
	free(clients);
	event_base_free(base);
	SSL_CTX_free(tls_ctx);
	return errors.total == 0 && sessions_ok > 0 ? 0 : 1;
}
