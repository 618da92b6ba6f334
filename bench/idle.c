/*
 * idle: how many concurrent sessions a server serves, and what they cost it
 * in memory. Opens N TCP sessions (at most --max-pending still waiting for
 * their greeting at any time), counts a session as served when the server's
 * greeting arrives (a 2xx/+OK reply; with --ehlo, also a 250 to EHLO), holds
 * them all open for --hold seconds, then reports how many were served, how
 * many were still open at the end, and the resident memory of the server's
 * processes (sum of RSS and of PSS over every selected process, from /proc).
 *
 * 10,000+ sessions to one server port need more than one ephemeral port
 * range: connections are spread over the source addresses 127.0.0.1 ..
 * 127.0.0.N (--sources), and RLIMIT_NOFILE is raised as needed.
 */
#include "common.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum session_state { S_UNUSED, S_CONNECTING, S_GREETING, S_EHLO, S_SERVED, S_FAILED };

struct session {
	struct bufferevent *bev;
	enum session_state state;
};

struct options {
	struct sockaddr_in server;
	uint64_t sessions;
	uint64_t max_pending;
	uint64_t sources;
	double hold_s;
	double timeout_s;
	bool ehlo;
	struct bench_proc_select procs;
};

static struct options opt;
static struct event_base *base;
static struct session *sessions;
static size_t started, pending, served, failed, closed_while_held;
static bool holding;
static struct bench_errors errors;
static struct event *hold_timer;
static struct bench_memory memory_max;

static void session_next(void);

static void session_fail(struct session *s, const char *why)
{
	if (s->state == S_SERVED) {
		/* Served, then closed by the server: it counts against "still open". */
		closed_while_held++;
		bench_errors_add(&errors, holding ? "closed while held" : "closed after greeting",
				 1);
	} else {
		failed++;
		pending--;
		bench_errors_add(&errors, why, 1);
	}
	bufferevent_free(s->bev);
	s->bev = NULL;
	s->state = S_FAILED;
	session_next();
}

static void session_served(struct session *s)
{
	s->state = S_SERVED;
	served++;
	pending--;
	/* Held sessions wait as long as the server lets them: no read timeout from here on. */
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	session_next();
}

/* One complete reply: 1 with its status (2 for 2xx or +OK, else the first digit), 0 for more. */
static int reply_status(struct evbuffer *in, int *status_out)
{
	for (;;) {
		size_t eol_len;
		struct evbuffer_ptr eol =
			evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		char head[4] = { 0 };
		if (eol.pos < 0)
			return 0;
		evbuffer_copyout(in, head, eol.pos < 4 ? (size_t) eol.pos : 4);
		evbuffer_drain(in, (size_t) eol.pos + eol_len);
		if (head[0] == '+' || head[0] == '-') { /* POP3: +OK / -ERR */
			*status_out = head[0] == '+' ? 2 : 5;
			return 1;
		}
		if (head[3] == '-')
			continue;
		*status_out = head[0] >= '1' && head[0] <= '5' ? head[0] - '0' : 0;
		return 1;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	int status;
	char label[32];

	while (s->bev == bev && reply_status(bufferevent_get_input(bev), &status) == 1) {
		if (s->state == S_SERVED)
			continue; /* e.g. a 421 before closing: the EOF that follows is what counts
				   */
		if (status != 2) {
			snprintf(label, sizeof(label), "%s reply %dxx",
				 s->state == S_EHLO ? "EHLO" : "greeting", status);
			session_fail(s, label);
			return;
		}
		if (s->state == S_GREETING && opt.ehlo) {
			s->state = S_EHLO;
			evbuffer_add_printf(bufferevent_get_output(bev),
					    "EHLO idle.bench.test\r\n");
		} else {
			session_served(s);
		}
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	char label[BENCH_ERROR_LABEL_MAX];

	(void) bev;
	if (what & BEV_EVENT_CONNECTED) {
		s->state = S_GREETING;
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		session_fail(s, s->state == S_CONNECTING ? "connect timeout" : "greeting timeout");
	else if (what & BEV_EVENT_EOF)
		session_fail(s, "closed before greeting");
	else {
		snprintf(label, sizeof(label), "%s", strerror(EVUTIL_SOCKET_ERROR()));
		session_fail(s, label);
	}
}

static void session_start(struct session *s, size_t index)
{
	struct timeval tv = { (time_t) opt.timeout_s, 0 };
	int fd = bench_connect_start(&opt.server, bench_source_addr(index, opt.sources));

	pending++;
	if (fd < 0) {
		char label[BENCH_ERROR_LABEL_MAX];
		snprintf(label, sizeof(label), "connect: %s", strerror(errno));
		failed++;
		pending--;
		bench_errors_add(&errors, label, 1);
		s->state = S_FAILED;
		return;
	}
	s->state = S_CONNECTING;
	s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	bufferevent_socket_connect(s->bev, NULL, 0);
}

static void on_hold_done(evutil_socket_t fd, short what, void *arg)
{
	(void) fd;
	(void) what;
	(void) arg;
	event_base_loopexit(base, NULL);
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
	struct bench_memory m;

	(void) fd;
	(void) what;
	(void) arg;
	if (bench_proc_select_empty(&opt.procs))
		return;
	bench_memory_measure(&opt.procs, &m);
	if (m.rss_kib > memory_max.rss_kib)
		memory_max.rss_kib = m.rss_kib;
	if (m.pss_kib > memory_max.pss_kib)
		memory_max.pss_kib = m.pss_kib;
	if (m.processes > memory_max.processes)
		memory_max.processes = m.processes;
}

/* Keep max_pending connections waiting for a greeting until N have been started. */
static void session_next(void)
{
	static bool busy;

	if (busy)
		return; /* session_start can fail synchronously: loop here, not by recursion */
	busy = true;
	while (started < opt.sessions && pending < opt.max_pending) {
		size_t i = started++;
		session_start(&sessions[i], i);
	}
	busy = false;
	if (!holding && started == opt.sessions && pending == 0) {
		struct timeval tv = { (time_t) opt.hold_s,
				      (suseconds_t) ((opt.hold_s - (double) (time_t) opt.hold_s) *
						     1e6) };
		holding = true;
		hold_timer = evtimer_new(base, on_hold_done, NULL);
		evtimer_add(hold_timer, &tv);
	}
}

static void usage(void)
{
	puts("usage: idle [options] HOST PORT\n"
	     "  -n, --sessions N        sessions to open (default 1000)\n"
	     "      --ehlo              also send EHLO; served means its 250 came back\n"
	     "      --hold SECONDS      hold them all open this long once opened (default 10)\n"
	     "      --timeout SECONDS   wait this long for a greeting (default 30)\n"
	     "      --max-pending N     sessions waiting for their greeting at once (default 500)\n"
	     "      --sources N         source addresses 127.0.0.1..N (default: 1 per 20,000)\n"
	     "      --pid-of NAME       measure every process with this name (repeatable)\n"
	     "      --pid PID           measure this process (repeatable)\n"
	     "      --tree PID          measure this process and its descendants (repeatable)\n"
	     "The last line is RESULT key=value ..., for scripts.");
}

static void options_parse(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "sessions", required_argument, NULL, 'n' },
		{ "ehlo", no_argument, NULL, 1 },
		{ "hold", required_argument, NULL, 2 },
		{ "timeout", required_argument, NULL, 3 },
		{ "max-pending", required_argument, NULL, 4 },
		{ "sources", required_argument, NULL, 5 },
		{ "pid-of", required_argument, NULL, 6 },
		{ "pid", required_argument, NULL, 7 },
		{ "tree", required_argument, NULL, 8 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opt.sessions = 1000;
	opt.hold_s = 10;
	opt.timeout_s = 30;
	opt.max_pending = 500;
	while ((ch = getopt_long(argc, argv, "n:h", long_options, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'n':
			ok = bench_parse_u64(optarg, &opt.sessions) && opt.sessions > 0 &&
			     opt.sessions <= 1000000;
			break;
		case 1:
			opt.ehlo = true;
			break;
		case 2:
			ok = bench_parse_seconds(optarg, &opt.hold_s);
			break;
		case 3:
			ok = bench_parse_seconds(optarg, &opt.timeout_s) && opt.timeout_s >= 1;
			break;
		case 4:
			ok = bench_parse_u64(optarg, &opt.max_pending) && opt.max_pending > 0;
			break;
		case 5:
			ok = bench_parse_u64(optarg, &opt.sources) && opt.sources > 0 &&
			     opt.sources < 255;
			break;
		case 6:
			ok = bench_proc_select_add(&opt.procs, 'n', optarg);
			break;
		case 7:
			ok = bench_proc_select_add(&opt.procs, 'p', optarg);
			break;
		case 8:
			ok = bench_proc_select_add(&opt.procs, 't', optarg);
			break;
		case 'h':
			usage();
			exit(0);
		default:
			bench_usage_fail("idle", "bad option", NULL);
		}
		if (!ok)
			bench_usage_fail("idle", "bad value", optarg);
	}
	if (argc - optind != 2 || !bench_addr_parse(argv[optind], argv[optind + 1], &opt.server))
		bench_usage_fail("idle", "give HOST PORT (an IPv4 address and a port)", NULL);
	if (opt.sources == 0)
		opt.sources = opt.sessions / 20000 + 1;
}

int main(int argc, char **argv)
{
	struct bench_memory before = { 0 }, after = { 0 };
	struct timeval sample_every = { 1, 0 };
	struct event *sampler;
	size_t alive = 0;
	uint64_t limit;
	double start, opened_s;

	options_parse(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	limit = bench_fd_limit_raise(opt.sessions + 64);
	if (limit < opt.sessions + 16) {
		fprintf(stderr, "idle: cannot raise the open-file limit to %llu (got %llu)\n",
			(unsigned long long) (opt.sessions + 64), (unsigned long long) limit);
		return 1;
	}
	if (!bench_proc_select_empty(&opt.procs))
		bench_memory_measure(&opt.procs, &before);
	sessions = calloc(opt.sessions, sizeof(*sessions));
	base = event_base_new();
	sampler = event_new(base, -1, EV_PERSIST, on_sample, NULL);
	evtimer_add(sampler, &sample_every);

	start = bench_now();
	session_next();
	while (!holding && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	opened_s = bench_now() - start;
	printf("idle: %llu sessions asked, %zu served, %zu failed, in %.2f s (%llu source "
	       "addresses)\n",
	       (unsigned long long) opt.sessions, served, failed, opened_s,
	       (unsigned long long) opt.sources);
	fflush(stdout);
	event_base_dispatch(base);

	/* At the end of the hold: who is still open, and what the server holds for them. */
	if (!bench_proc_select_empty(&opt.procs)) {
		bench_memory_measure(&opt.procs, &after);
		on_sample(-1, 0, NULL);
	}
	for (size_t i = 0; i < opt.sessions; i++)
		if (sessions[i].state == S_SERVED)
			alive++;
	printf("held %.1f s: %zu still open\n", opt.hold_s, alive);
	if (!bench_proc_select_empty(&opt.procs)) {
		printf("server memory before: %zu processes, RSS %.1f MiB, PSS %.1f MiB\n",
		       before.processes, before.rss_kib / 1024.0, before.pss_kib / 1024.0);
		printf("server memory at the end of the hold: %zu processes, RSS %.1f MiB, PSS "
		       "%.1f "
		       "MiB (peak RSS %.1f MiB)\n",
		       after.processes, after.rss_kib / 1024.0, after.pss_kib / 1024.0,
		       memory_max.rss_kib / 1024.0);
	}
	printf("errors: %llu\n", (unsigned long long) errors.total);
	bench_errors_print(&errors);
	printf("RESULT asked=%llu served=%zu failed=%zu alive=%zu processes=%zu rss_kib=%llu "
	       "pss_kib=%llu peak_rss_kib=%llu rss_before_kib=%llu open_s=%.2f\n",
	       (unsigned long long) opt.sessions, served, failed, alive, after.processes,
	       (unsigned long long) after.rss_kib, (unsigned long long) after.pss_kib,
	       (unsigned long long) memory_max.rss_kib, (unsigned long long) before.rss_kib,
	       opened_s);
	fflush(stdout);
	for (size_t i = 0; i < opt.sessions; i++)
		if (sessions[i].bev != NULL)
			bufferevent_free(sessions[i].bev);
	event_free(sampler);
	if (hold_timer != NULL)
		event_free(hold_timer);
	event_base_free(base);
	free(sessions);
	return served == opt.sessions ? 0 : 1;
}
