/*
 * smtpload: SMTP load generator. C concurrent connections, each optionally
 * securing itself (STARTTLS or implicit TLS, TLS 1.2 or 1.3), authenticating
 * with AUTH PLAIN (or not, for MX mode), then sending K messages of S bytes
 * before QUIT and a new connection. Stops after a total number of messages or
 * a duration. Reports messages/s, the latency from the end of DATA (the last
 * byte handed to the socket) to the 250 reply as p50/p99/max, and every
 * failure counted by stage and reply code.
 *
 * Event-driven: one libevent loop per thread (--threads), each owning its
 * share of the connections; threads share only two atomic counters. Nothing
 * here reads the messages back; see pop3load for that.
 */
#include "common.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMTP_REPLY_LINE_MAX 512 /* RFC 5321 4.5.3.1.5 */

enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_IMPLICIT };

/* clang-format off */
enum conn_state {
	ST_CONNECTING, ST_HANDSHAKE, ST_GREETING, ST_EHLO, ST_STARTTLS, ST_EHLO_TLS, ST_AUTH,
	ST_MAIL, ST_RCPT, ST_DATA, ST_BODY, ST_QUIT, ST_CLOSED,
};
static const char *const state_names[] = {
	"CONNECT", "TLS", "GREETING", "EHLO", "STARTTLS", "EHLO", "AUTH",
	"MAIL", "RCPT", "DATA", "END-OF-DATA", "QUIT", "CLOSED",
};
/* clang-format on */

struct options {
	struct sockaddr_in server;
	uint64_t connections;
	uint64_t threads;
	uint64_t per_connection; /* messages per connection; 1: a new connection per message */
	uint64_t total;		 /* 0: run for duration_s */
	double duration_s;
	uint64_t size;
	uint64_t sources; /* 127.0.0.1 .. 127.0.0.N as source addresses; 0: kernel's choice */
	uint64_t max_errors;
	double timeout_s;
	enum tls_mode tls;
	const char *tls_version;
	const char *user;
	const char *password;
	const char *from;
	const char *to;
	const char *helo;
};

struct worker;

struct conn {
	struct worker *w;
	int fd;
	struct bufferevent *bev;
	SSL *ssl;
	enum conn_state state;
	uint64_t sent_on_conn;
	bool body_flushed;
	double body_end;
};

struct worker {
	pthread_t thread;
	size_t index;
	struct event_base *base;
	struct conn *conns;
	size_t conn_count;
	size_t live;
	uint64_t ok;
	uint64_t connections_opened;
	double last_done;
	struct bench_latency latency;
	struct bench_errors errors;
};

static struct options opt;
static SSL_CTX *tls_ctx;
static char *message;
static size_t message_len;
static char auth_line[1024];
static char mail_line[600];
static char rcpt_line[600];
static char ehlo_line[300];
static atomic_ullong claimed;
static atomic_ullong errors_seen;
static atomic_bool stopping;
static double deadline;
static atomic_size_t next_source;

static void conn_start(struct conn *c);
static void conn_finish(struct conn *c, bool reconnect);

/*
 * Consume one complete reply (all its "NNN-" lines and the final "NNN ") from
 * in. Returns 1 with the code, 0 when more bytes are needed, -1 when a line
 * is not a reply line.
 */
static int reply_read(struct evbuffer *in, int *code_out)
{
	for (;;) {
		size_t eol_len;
		struct evbuffer_ptr eol =
			evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		char head[4];
		if (eol.pos < 0)
			return evbuffer_get_length(in) > 64 * 1024 ? -1 : 0;
		if (eol.pos < 3 || evbuffer_copyout(in, head, 4) < 3)
			return -1;
		if (eol.pos == 3)
			head[3] = ' ';
		if (head[0] < '1' || head[0] > '5' || head[1] < '0' || head[1] > '9' ||
		    head[2] < '0' || head[2] > '9')
			return -1;
		evbuffer_drain(in, (size_t) eol.pos + eol_len);
		if (head[3] == ' ') {
			*code_out = (head[0] - '0') * 100 + (head[1] - '0') * 10 + (head[2] - '0');
			return 1;
		}
		if (head[3] != '-')
			return -1;
	}
}

static void conn_error(struct conn *c, const char *what)
{
	char label[BENCH_ERROR_LABEL_MAX];

	snprintf(label, sizeof(label), "%s %s", state_names[c->state], what);
	bench_errors_add(&c->w->errors, label, 1);
	if (atomic_fetch_add(&errors_seen, 1) + 1 >= opt.max_errors &&
	    !atomic_exchange(&stopping, true))
		fprintf(stderr, "smtpload: %llu errors, stopping\n",
			(unsigned long long) opt.max_errors);
	conn_finish(c, true);
}

static void send_line(struct conn *c, enum conn_state next, const char *line)
{
	c->state = next;
	evbuffer_add(bufferevent_get_output(c->bev), line, strlen(line));
}

/* Take the next message from the shared budget; false when the run is over. */
static bool message_claim(void)
{
	if (atomic_load(&stopping))
		return false;
	if (opt.total == 0)
		return bench_now() < deadline;
	if (atomic_fetch_add(&claimed, 1) < opt.total)
		return true;
	return false;
}

static bool work_remains(void)
{
	if (atomic_load(&stopping))
		return false;
	if (opt.total == 0)
		return bench_now() < deadline;
	return atomic_load(&claimed) < opt.total;
}

static void next_message_or_quit(struct conn *c)
{
	if (c->sent_on_conn < opt.per_connection && message_claim())
		send_line(c, ST_MAIL, mail_line);
	else
		send_line(c, ST_QUIT, "QUIT\r\n");
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void tls_begin(struct conn *c)
{
	struct timeval tv = { (time_t) opt.timeout_s,
			      (suseconds_t) ((opt.timeout_s - (double) (time_t) opt.timeout_s) *
					     1e6) };

	if (c->bev != NULL)
		bufferevent_free(c->bev); /* plain, not owning the fd; nothing was left unread */
	c->ssl = SSL_new(tls_ctx);
	SSL_set_tlsext_host_name(c->ssl, opt.helo);
	c->bev = bufferevent_openssl_socket_new(c->w->base, c->fd, c->ssl,
						BUFFEREVENT_SSL_CONNECTING, 0);
	if (c->bev == NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		conn_error(c, "tls setup");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = ST_HANDSHAKE;
}

static void on_reply(struct conn *c, int code)
{
	char label[16];

	switch (c->state) {
	case ST_GREETING:
		if (code != 220)
			break;
		send_line(c, ST_EHLO, ehlo_line);
		return;
	case ST_EHLO:
		if (code != 250)
			break;
		if (opt.tls == TLS_STARTTLS)
			send_line(c, ST_STARTTLS, "STARTTLS\r\n");
		else if (opt.user != NULL)
			send_line(c, ST_AUTH, auth_line);
		else
			next_message_or_quit(c);
		return;
	case ST_STARTTLS:
		if (code != 220)
			break;
		tls_begin(c);
		return;
	case ST_EHLO_TLS:
		if (code != 250)
			break;
		if (opt.user != NULL)
			send_line(c, ST_AUTH, auth_line);
		else
			next_message_or_quit(c);
		return;
	case ST_AUTH:
		if (code != 235)
			break;
		next_message_or_quit(c);
		return;
	case ST_MAIL:
		if (code != 250)
			break;
		send_line(c, ST_RCPT, rcpt_line);
		return;
	case ST_RCPT:
		if (code != 250 && code != 251)
			break;
		send_line(c, ST_DATA, "DATA\r\n");
		return;
	case ST_DATA:
		if (code != 354)
			break;
		c->state = ST_BODY;
		c->body_flushed = false;
		c->body_end = bench_now();
		/* The shared message is never copied into the connection's buffer. */
		evbuffer_add_reference(bufferevent_get_output(c->bev), message, message_len, NULL,
				       NULL);
		return;
	case ST_BODY: {
		double now = bench_now();
		c->sent_on_conn++;
		if (code != 250)
			break;
		bench_latency_add(&c->w->latency, now - c->body_end);
		c->w->ok++;
		c->w->last_done = now;
		next_message_or_quit(c);
		return;
	}
	case ST_QUIT:
		conn_finish(c, true);
		return;
	default:
		break;
	}
	snprintf(label, sizeof(label), "%d", code);
	conn_error(c, label);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int code, r;

	while (c->state != ST_CLOSED && c->bev == bev && (r = reply_read(in, &code)) != 0) {
		if (r < 0) {
			conn_error(c, "bad reply");
			return;
		}
		on_reply(c, code);
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void) bev;
	/* The write callback runs when the output buffer has drained into the socket. */
	if (c->state == ST_BODY && !c->body_flushed) {
		c->body_flushed = true;
		c->body_end = bench_now();
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char label[BENCH_ERROR_LABEL_MAX];

	(void) bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == ST_CONNECTING) {
			if (opt.tls == TLS_IMPLICIT)
				tls_begin(c);
			else
				c->state = ST_GREETING;
		} else if (c->state == ST_HANDSHAKE) {
			if (opt.tls == TLS_IMPLICIT)
				c->state = ST_GREETING;
			else
				send_line(c, ST_EHLO_TLS, ehlo_line);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		conn_error(c, "timeout");
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->state == ST_QUIT) {
		conn_finish(c, true);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		conn_error(c, "closed by server");
		return;
	}
	if (c->ssl != NULL && ERR_peek_error() != 0) {
		snprintf(label, sizeof(label), "tls: %s", ERR_reason_error_string(ERR_get_error()));
		ERR_clear_error();
	} else {
		snprintf(label, sizeof(label), "%s", strerror(EVUTIL_SOCKET_ERROR()));
	}
	conn_error(c, label);
}

static void conn_finish(struct conn *c, bool reconnect)
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
	c->state = ST_CLOSED;
	if (reconnect && work_remains())
		conn_start(c);
	else
		c->w->live--;
}

static void conn_start(struct conn *c)
{
	struct timeval tv = { (time_t) opt.timeout_s,
			      (suseconds_t) ((opt.timeout_s - (double) (time_t) opt.timeout_s) *
					     1e6) };
	size_t src = atomic_fetch_add(&next_source, 1);

	c->sent_on_conn = 0;
	c->state = ST_CONNECTING;
	c->w->connections_opened++;
	c->fd = bench_connect_start(&opt.server, bench_source_addr(src, opt.sources));
	if (c->fd < 0) {
		/* Counted like any failure; the caller's loop does not retry on its own stack. */
		bench_errors_add(&c->w->errors, strerror(errno), 1);
		atomic_fetch_add(&errors_seen, 1);
		atomic_store(&stopping, true);
		c->state = ST_CLOSED;
		c->w->live--;
		return;
	}
	c->bev = bufferevent_socket_new(c->w->base, c->fd, 0);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	/* connect() is already in progress: BEV_EVENT_CONNECTED tells us when it completes. */
	bufferevent_socket_connect(c->bev, NULL, 0);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	w->base = event_base_new();
	w->live = w->conn_count;
	for (size_t i = 0; i < w->conn_count; i++) {
		w->conns[i].w = w;
		w->conns[i].fd = -1;
		if (work_remains())
			conn_start(&w->conns[i]);
		else
			w->live--;
	}
	event_base_dispatch(w->base);
	event_base_free(w->base);
	return NULL;
}

static void message_build(void)
{
	char head[1024];
	size_t head_len, pos;

	head_len = (size_t) snprintf(head, sizeof(head),
				     "From: <%s>\r\nTo: <%s>\r\nSubject: smtpload test message\r\n"
				     "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
				     opt.from, opt.to);
	if (opt.size < head_len + 2)
		opt.size = head_len + 2;
	message = malloc(opt.size + 3);
	memcpy(message, head, head_len);
	pos = head_len;
	/* Body lines of 76 characters; none starts with '.', so no dot-stuffing is needed. */
	while (pos < opt.size) {
		size_t line = opt.size - pos >= 78 ? 76 : opt.size - pos - 2;
		for (size_t i = 0; i < line; i++)
			message[pos + i] = (char) ('a' + (pos + i) % 26);
		pos += line;
		if (line == 0 && opt.size - pos < 2) {
			message[pos++] = 'x';
			continue;
		}
		message[pos++] = '\r';
		message[pos++] = '\n';
	}
	memcpy(message + pos, ".\r\n", 3);
	message_len = pos + 3;
}

static void usage(void)
{
	puts("usage: smtpload [options] HOST PORT\n"
	     "  -c, --connections N      concurrent connections (default 10)\n"
	     "  -k, --per-connection K   messages per connection, then QUIT and reconnect\n"
	     "                           (default 1: a new connection per message)\n"
	     "  -n, --count N            total messages (default 1000)\n"
	     "  -d, --duration SECONDS   run for this long instead of a count\n"
	     "  -s, --size BYTES         message size including headers (default 4096)\n"
	     "      --tls MODE           none, starttls or implicit (default none)\n"
	     "      --tls-version V      1.2 or 1.3 (default: whatever both sides prefer)\n"
	     "  -u, --user USER          AUTH PLAIN as USER (default: no AUTH, MX mode)\n"
	     "  -p, --password PASSWORD\n"
	     "  -f, --from ADDRESS       MAIL FROM (default bench@bench.test)\n"
	     "  -t, --to ADDRESS         RCPT TO (required)\n"
	     "      --helo NAME          EHLO name and TLS SNI (default bench.test)\n"
	     "  -T, --threads N          event loops (default 1)\n"
	     "      --sources N          spread connections over 127.0.0.1..127.0.0.N\n"
	     "      --timeout SECONDS    per reply (default 60)\n"
	     "      --max-errors N       stop after N errors (default 1000)\n"
	     "The last line is RESULT key=value ..., for scripts.");
}

static void options_parse(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "connections", required_argument, NULL, 'c' },
		{ "per-connection", required_argument, NULL, 'k' },
		{ "count", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "tls", required_argument, NULL, 1 },
		{ "tls-version", required_argument, NULL, 2 },
		{ "user", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'p' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "helo", required_argument, NULL, 3 },
		{ "threads", required_argument, NULL, 'T' },
		{ "sources", required_argument, NULL, 4 },
		{ "timeout", required_argument, NULL, 5 },
		{ "max-errors", required_argument, NULL, 6 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opt.connections = 10;
	opt.threads = 1;
	opt.per_connection = 1;
	opt.total = 1000;
	opt.size = 4096;
	opt.max_errors = 1000;
	opt.timeout_s = 60;
	opt.from = "bench@bench.test";
	opt.helo = "bench.test";
	while ((ch = getopt_long(argc, argv, "c:k:n:d:s:u:p:f:t:T:h", long_options, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'c':
			ok = bench_parse_u64(optarg, &opt.connections) && opt.connections > 0;
			break;
		case 'k':
			ok = bench_parse_u64(optarg, &opt.per_connection) && opt.per_connection > 0;
			break;
		case 'n':
			ok = bench_parse_u64(optarg, &opt.total) && opt.total > 0;
			break;
		case 'd':
			ok = bench_parse_seconds(optarg, &opt.duration_s) && opt.duration_s > 0;
			opt.total = 0;
			break;
		case 's':
			ok = bench_parse_u64(optarg, &opt.size);
			break;
		case 1:
			if (strcmp(optarg, "none") == 0)
				opt.tls = TLS_NONE;
			else if (strcmp(optarg, "starttls") == 0)
				opt.tls = TLS_STARTTLS;
			else if (strcmp(optarg, "implicit") == 0)
				opt.tls = TLS_IMPLICIT;
			else
				ok = false;
			break;
		case 2:
			opt.tls_version = optarg;
			ok = strcmp(optarg, "1.2") == 0 || strcmp(optarg, "1.3") == 0;
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'p':
			opt.password = optarg;
			break;
		case 'f':
			opt.from = optarg;
			break;
		case 't':
			opt.to = optarg;
			break;
		case 3:
			opt.helo = optarg;
			break;
		case 'T':
			ok = bench_parse_u64(optarg, &opt.threads) && opt.threads > 0;
			break;
		case 4:
			ok = bench_parse_u64(optarg, &opt.sources) && opt.sources < 256;
			break;
		case 5:
			ok = bench_parse_seconds(optarg, &opt.timeout_s) && opt.timeout_s > 0;
			break;
		case 6:
			ok = bench_parse_u64(optarg, &opt.max_errors) && opt.max_errors > 0;
			break;
		case 'h':
			usage();
			exit(0);
		default:
			bench_usage_fail("smtpload", "bad option", NULL);
		}
		if (!ok)
			bench_usage_fail("smtpload", "bad value", optarg);
	}
	if (argc - optind != 2 || !bench_addr_parse(argv[optind], argv[optind + 1], &opt.server))
		bench_usage_fail("smtpload", "give HOST PORT (an IPv4 address and a port)", NULL);
	if (opt.to == NULL)
		bench_usage_fail("smtpload", "--to is required", NULL);
	if (opt.user != NULL && opt.password == NULL)
		bench_usage_fail("smtpload", "--user needs --password", NULL);
	if (opt.threads > opt.connections)
		opt.threads = opt.connections;
}

static void lines_build(void)
{
	char plain[600];
	unsigned char b64[820];
	int plain_len;

	snprintf(ehlo_line, sizeof(ehlo_line), "EHLO %s\r\n", opt.helo);
	snprintf(mail_line, sizeof(mail_line), "MAIL FROM:<%s>\r\n", opt.from);
	snprintf(rcpt_line, sizeof(rcpt_line), "RCPT TO:<%s>\r\n", opt.to);
	if (opt.user == NULL)
		return;
	/* RFC 4616: authzid NUL authcid NUL passwd, sent as the initial response (RFC 4954 4). */
	plain_len = snprintf(plain, sizeof(plain), "%c%s%c%s", 0, opt.user, 0, opt.password);
	if (plain_len < 0 || (size_t) plain_len >= sizeof(plain))
		bench_usage_fail("smtpload", "user and password too long", NULL);
	EVP_EncodeBlock(b64, (const unsigned char *) plain, plain_len);
	snprintf(auth_line, sizeof(auth_line), "AUTH PLAIN %s\r\n", b64);
}

int main(int argc, char **argv)
{
	struct worker *workers;
	struct bench_latency latency = { 0 };
	struct bench_errors errors = { 0 };
	uint64_t ok = 0, opened = 0;
	double start, end = 0, elapsed, cpu_start, cpu;
	size_t offset = 0;

	options_parse(argc, argv);
	message_build();
	lines_build();
	bench_fd_limit_raise(opt.connections + 64);
	if (opt.tls != TLS_NONE)
		tls_ctx = bench_tls_ctx_new(opt.tls_version);
	signal(SIGPIPE, SIG_IGN);

	workers = calloc(opt.threads, sizeof(*workers));
	cpu_start = bench_cpu_seconds();
	start = bench_now();
	deadline = start + opt.duration_s;
	for (size_t i = 0; i < opt.threads; i++) {
		size_t share = opt.connections / opt.threads + (i < opt.connections % opt.threads);
		workers[i].index = i;
		workers[i].conns = calloc(share, sizeof(struct conn));
		workers[i].conn_count = share;
		offset += share;
		pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]);
	}
	for (size_t i = 0; i < opt.threads; i++) {
		pthread_join(workers[i].thread, NULL);
		ok += workers[i].ok;
		opened += workers[i].connections_opened;
		if (workers[i].last_done > end)
			end = workers[i].last_done;
		bench_latency_merge(&latency, &workers[i].latency);
		bench_errors_merge(&errors, &workers[i].errors);
		bench_latency_clear(&workers[i].latency);
		free(workers[i].conns);
	}
	if (end <= start)
		end = bench_now();
	elapsed = end - start;
	cpu = bench_cpu_seconds() - cpu_start;

	printf("smtpload: %llu messages of %llu bytes accepted in %.3f s: %.1f msgs/s\n",
	       (unsigned long long) ok, (unsigned long long) opt.size, elapsed,
	       elapsed > 0 ? (double) ok / elapsed : 0.0);
	printf("connections: %llu concurrent, %llu opened, %llu messages per connection, "
	       "tls=%s%s%s, auth=%s\n",
	       (unsigned long long) opt.connections, (unsigned long long) opened,
	       (unsigned long long) opt.per_connection,
	       opt.tls == TLS_NONE	 ? "none"
	       : opt.tls == TLS_STARTTLS ? "starttls"
					 : "implicit",
	       opt.tls_version ? " " : "", opt.tls_version ? opt.tls_version : "",
	       opt.user ? "plain" : "none");
	double p50 = bench_latency_ms(&latency, 0.50), p99 = bench_latency_ms(&latency, 0.99),
	       max = bench_latency_ms(&latency, 1.0);
	printf("latency end-of-data to 250: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99,
	       max);
	/* If this nears 100% per thread, the load tool is the bottleneck: add --threads. */
	printf("smtpload itself: %.2f CPU s, %.0f%% of one core (%llu threads)\n", cpu,
	       elapsed > 0 ? 100 * cpu / elapsed : 0.0, (unsigned long long) opt.threads);
	printf("errors: %llu\n", (unsigned long long) errors.total);
	bench_errors_print(&errors);
	printf("RESULT ok=%llu errors=%llu seconds=%.3f msgs_per_s=%.1f p50_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f connections_opened=%llu client_cpu_pct=%.0f\n",
	       (unsigned long long) ok, (unsigned long long) errors.total, elapsed,
	       elapsed > 0 ? (double) ok / elapsed : 0.0, p50, p99, max,
	       (unsigned long long) opened, elapsed > 0 ? 100 * cpu / elapsed : 0.0);
	bench_latency_clear(&latency);
	free(workers);
	free(message);
	SSL_CTX_free(tls_ctx);
	return errors.total == 0 && ok > 0 ? 0 : 1;
}
