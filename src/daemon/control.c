/*
 * control: the daemon's control socket, <state_dir>/control.sock, through
 * which `postgate queue flush|delete|hold|release` reaches the queue manager,
 * `postgate status` the daemon's state and `postgate user show` a user's
 * recent activity (the protocol is queue/control.h; docs/queue.md
 * describes it).
 *
 * The socket is made after root is gone, so the daemon's user owns it, with
 * mode 0600: only that user and root may connect (docs/decisions/0120). The
 * peer's uid (SO_PEERCRED) is checked too, in case the mode is ever widened.
 * A socket file left by a daemon that crashed is replaced at start; one that
 * still answers means another daemon serves this state_dir, which is fatal.
 * The file is removed at exit.
 *
 * One request per connection, at most DAEMON_CONTROL_CONNECTIONS_MAX at a
 * time, each with a deadline; garbage gets an "error usage" reply and the
 * connection is closed. Everything runs on the loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "core/log.h"
#include "daemon/internal.h"
#include "queue/control.h"

#define DAEMON_CONTROL_CONNECTIONS_MAX 16
#define DAEMON_CONTROL_TIMEOUT_S       10 /* to send the request, and to read the reply */

struct daemon_control {
	struct daemon *daemon;
	struct evconnlistener *evl;
	char path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
	struct control_connection *connections; /* live ones */
	size_t connection_count;
};

struct control_connection {
	struct control_connection *prev, *next;
	struct daemon_control *control;
	struct bufferevent *bev;
	uid_t peer_uid;
	bool is_answered;	/* the reply is written: close once it is flushed */
	struct status_job *job; /* a status request on a worker */
};

/* What `status` needs from the disk and the store: counted on a worker. */
struct status_job {
	struct control_connection *c; /* NULL once the client has gone */
	struct daemon *daemon;
	size_t places[3]; /* queue/, deferred/, hold/ */
	size_t held_users;
	int rc;
	struct error err;
};

static void connection_free(struct control_connection *c)
{
	struct daemon_control *control = c->control;

	if (c->job != NULL)
		c->job->c = NULL; /* the job comes back to nobody */

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		control->connections = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	control->connection_count--;
	bufferevent_free(c->bev);
	free(c);
}

static void reply(struct control_connection *c, const struct error *err, const char *text)
{
	char line[QUEUE_CONTROL_REPLY_MAX + 1];
	size_t len = queue_control_reply_format(err, text, line, sizeof(line));

	c->is_answered = true;
	bufferevent_disable(c->bev, EV_READ);
	if (bufferevent_write(c->bev, line, len) != 0)
		connection_free(c);
}

static int run_request(struct daemon *daemon, const struct queue_control_request *request,
		       struct error *err)
{
	const char *id = request->has_id ? request->id : NULL;

	if (daemon->queue == NULL)
		return error_set(err, ERROR_TEMPORARY, "the queue is not running");
	switch (request->verb) {
	case QUEUE_CONTROL_FLUSH:
		return queue_manager_flush(daemon->queue, id, err);
	case QUEUE_CONTROL_DELETE:
		return queue_manager_delete(daemon->queue, id, err);
	case QUEUE_CONTROL_HOLD:
		return queue_manager_hold(daemon->queue, id, err);
	case QUEUE_CONTROL_RELEASE:
		return queue_manager_release(daemon->queue, id, err);
	case QUEUE_CONTROL_STATUS:
	case QUEUE_CONTROL_ACTIVITY:
		break; /* answered by status_start, activity_answer */
	}
	return error_set(err, ERROR_SOFTWARE, "unknown request");
}

static void status_count(void *ctx, const char *id, enum queue_place place)
{
	struct status_job *job = ctx;

	(void) id;
	if ((size_t) place < ARRAY_LEN(job->places))
		job->places[place]++;
}

static int status_held(void *ctx, const struct store_user *user)
{
	struct status_job *job = ctx;

	if (user->is_held)
		job->held_users++;
	return 0;
}

static void status_run(void *arg)
{
	struct status_job *job = arg;
	struct daemon *daemon = job->daemon;

	job->rc = queue_spool_list(daemon->spool, status_count, job, &job->err);
	if (job->rc == 0) {
		pthread_mutex_lock(&daemon->store_lock);
		job->rc = store_user_list(daemon->store, NULL, status_held, job, &job->err) < 0 ? -1
												: 0;
		pthread_mutex_unlock(&daemon->store_lock);
	}
}

static void status_done(void *arg)
{
	struct status_job *job = arg;
	struct control_connection *c = job->c;
	struct daemon *daemon = job->daemon;
	struct auth_service_stats auth = { 0 };
	char text[QUEUE_CONTROL_REPLY_MAX];

	if (c == NULL) {
		free(job);
		return;
	}
	c->job = NULL;
	if (job->rc < 0) {
		reply(c, &job->err, NULL);
		free(job);
		return;
	}
	if (daemon->auth != NULL)
		auth_service_stats_get(daemon->auth, &auth);
	snprintf(text, sizeof(text),
		 "uptime_s=%llu sessions=%zu mx=%zu submission=%zu submissions=%zu pop3=%zu "
		 "pop3s=%zu http=%zu queue_active=%zu queue_deferred=%zu queue_hold=%zu "
		 "queue_in_delivery=%zu held_users=%zu auth_ok=%llu auth_failed=%llu "
		 "auth_failed_last_minute=%llu auth_throttled=%llu auth_throttled_clients=%zu "
		 "auth_cache_hits=%llu auth_hash_runs=%llu stopping=%s",
		 (unsigned long long) ((daemon_clock_ms() - daemon->started_ms) / 1000),
		 daemon->session_count + daemon->session_counts[CONFIG_LISTENER_HTTP],
		 daemon->session_counts[CONFIG_LISTENER_MX],
		 daemon->session_counts[CONFIG_LISTENER_SUBMISSION],
		 daemon->session_counts[CONFIG_LISTENER_SUBMISSIONS],
		 daemon->session_counts[CONFIG_LISTENER_POP3],
		 daemon->session_counts[CONFIG_LISTENER_POP3S],
		 daemon->session_counts[CONFIG_LISTENER_HTTP], job->places[QUEUE_PLACE_ACTIVE],
		 job->places[QUEUE_PLACE_DEFERRED], job->places[QUEUE_PLACE_HOLD],
		 daemon->queue != NULL ? queue_manager_active_count(daemon->queue) : 0,
		 job->held_users, (unsigned long long) auth.ok, (unsigned long long) auth.failed,
		 (unsigned long long) auth.failed_last_minute, (unsigned long long) auth.throttled,
		 daemon->auth != NULL ? auth_service_throttled_clients(daemon->auth) : 0,
		 (unsigned long long) auth.cache_hits, (unsigned long long) auth.hash_runs,
		 daemon->is_stopping ? "yes" : "no");
	free(job);
	log_info("control request=status qid=- uid=%ld result=ok", (long) c->peer_uid);
	reply(c, NULL, text);
}

static void status_start(struct control_connection *c)
{
	struct status_job *job = calloc(1, sizeof(*job));
	struct error err;

	if (job == NULL) {
		error_set(&err, ERROR_TEMPORARY, "out of memory");
		reply(c, &err, NULL);
		return;
	}
	job->c = c;
	job->daemon = c->control->daemon;
	c->job = job;
	if (job->daemon->workers == NULL ||
	    worker_pool_submit(job->daemon->workers, status_run, status_done, job) < 0) {
		c->job = NULL;
		free(job);
		error_set(&err, ERROR_TEMPORARY, "the daemon is stopping");
		reply(c, &err, NULL);
	}
}

/* What the daemon remembers of one user (auth/rate.h): answered on the
 * loop from memory, no store or disk. The address need not be a user: an
 * unknown one is simply "tracked=no" with zeros. */
static void activity_answer(struct control_connection *c, const char *address)
{
	struct daemon *daemon = c->control->daemon;
	struct auth_rate_activity a;
	char text[QUEUE_CONTROL_REPLY_MAX], shown[LOG_ESCAPED_CAP];
	size_t used;
	int n;

	if (daemon->rates != NULL)
		auth_rate_activity_get(daemon->rates, address, (int64_t) time(NULL), &a);
	else
		a = (struct auth_rate_activity){ 0 };
	n = snprintf(text, sizeof(text),
		     "tracked=%s messages_hour=%llu messages_day=%llu recipients_hour=%llu "
		     "recipients_day=%llu refused_hour=%llu logins_ok_hour=%llu logins_ok_day=%llu "
		     "logins_failed_hour=%llu logins_failed_day=%llu hold_at=%lld hold_reason=%s "
		     "addresses=%zu",
		     a.is_tracked ? "yes" : "no", (unsigned long long) a.usage.messages_hour,
		     (unsigned long long) a.usage.messages_day,
		     (unsigned long long) a.usage.recipients_hour,
		     (unsigned long long) a.usage.recipients_day,
		     (unsigned long long) a.usage.refused_hour,
		     (unsigned long long) a.logins_ok_hour, (unsigned long long) a.logins_ok_day,
		     (unsigned long long) a.logins_failed_hour,
		     (unsigned long long) a.logins_failed_day, (long long) a.hold_s,
		     a.hold_reason[0] != '\0' ? a.hold_reason : "-", a.address_count);
	used = n > 0 ? (size_t) n : 0;
	/* Sixteen addresses of at most 63 octets and four numbers each fit. */
	for (size_t i = 0; i < a.address_count && used < sizeof(text); i++) {
		n = snprintf(text + used, sizeof(text) - used, " address=%s,%lu,%lu,%lld",
			     a.addresses[i].ip, (unsigned long) a.addresses[i].ok,
			     (unsigned long) a.addresses[i].failed,
			     (long long) a.addresses[i].last_s);
		if (n < 0 || (size_t) n >= sizeof(text) - used)
			break;
		used += (size_t) n;
	}
	text[used < sizeof(text) ? used : sizeof(text) - 1] = '\0';
	log_info("control request=activity user=%s uid=%ld result=ok",
		 log_escape(span_from_cstr(address), shown), (long) c->peer_uid);
	reply(c, NULL, text);
}

static void handle_line(struct control_connection *c, struct span line)
{
	struct queue_control_request request;
	struct error err;
	char shown[LOG_ESCAPED_CAP], reason[LOG_ESCAPED_CAP], text[QUEUE_ID_MAX + 32];

	error_clear(&err);
	if (queue_control_request_parse(line, &request, &err) < 0) {
		log_warning("control request refused uid=%ld request=%s error=%s",
			    (long) c->peer_uid, log_escape(line, shown),
			    log_escape(span_from_cstr(err.message), reason));
		reply(c, &err, NULL);
		return;
	}
	if (request.verb == QUEUE_CONTROL_ACTIVITY) {
		activity_answer(c, request.address);
		return;
	}
	if (request.verb == QUEUE_CONTROL_STATUS) {
		bufferevent_disable(c->bev, EV_READ); /* one request per connection */
		status_start(c);
		return;
	}
	if (run_request(c->control->daemon, &request, &err) < 0) {
		log_info("control request=%s qid=%s uid=%ld result=error kind=%s",
			 queue_control_verb_name(request.verb), request.has_id ? request.id : "-",
			 (long) c->peer_uid, queue_control_error_name(err.kind));
		reply(c, &err, NULL);
		return;
	}
	log_info("control request=%s qid=%s uid=%ld result=ok",
		 queue_control_verb_name(request.verb), request.has_id ? request.id : "-",
		 (long) c->peer_uid);
	snprintf(text, sizeof(text), "%s %s", queue_control_verb_name(request.verb),
		 request.has_id ? request.id : "all");
	reply(c, NULL, text);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct control_connection *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr lf;
	size_t len;
	unsigned char *bytes;

	if (c->is_answered)
		return;
	lf = evbuffer_search(in, "\n", 1, NULL);
	if (lf.pos < 0 ? evbuffer_get_length(in) >= QUEUE_CONTROL_REQUEST_MAX
		       : (size_t) lf.pos + 1 > QUEUE_CONTROL_REQUEST_MAX) {
		struct error err;

		error_set(&err, ERROR_USAGE, "request longer than %d bytes",
			  QUEUE_CONTROL_REQUEST_MAX);
		log_warning("control request refused uid=%ld error=too-long", (long) c->peer_uid);
		reply(c, &err, NULL);
		return;
	}
	if (lf.pos < 0)
		return;
	len = (size_t) lf.pos;
	bytes = evbuffer_pullup(in, (ev_ssize_t) len + 1);
	handle_line(c, span_make((const char *) bytes, len));
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct control_connection *c = arg;

	if (c->is_answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		connection_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_connection *c = arg;

	(void) bev;
	if ((what & BEV_EVENT_TIMEOUT) && !c->is_answered)
		log_warning("control connection timed out uid=%ld", (long) c->peer_uid);
	else if ((what & BEV_EVENT_EOF) && !c->is_answered)
		log_warning("control connection closed before a request uid=%ld",
			    (long) c->peer_uid);
	connection_free(c);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
		      int addr_len, void *arg)
{
	struct daemon_control *control = arg;
	struct control_connection *c;
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	struct timeval timeout = { DAEMON_CONTROL_TIMEOUT_S, 0 };

	(void) evl;
	(void) addr;
	(void) addr_len;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) {
		log_warning("control connection refused error=\"%s\"", strerror(errno));
		close(fd);
		return;
	}
	/* Root, or the daemon's own user: the file mode says the same. */
	if (cred.uid != 0 && cred.uid != geteuid()) {
		static const char refusal[] = "error permission not allowed for this user\n";

		log_warning("control connection refused uid=%ld reason=permission",
			    (long) cred.uid);
		(void) !write(fd, refusal, sizeof(refusal) - 1);
		close(fd);
		return;
	}
	if (control->connection_count >= DAEMON_CONTROL_CONNECTIONS_MAX) {
		static const char busy[] = "error temporary too many control connections\n";

		log_warning("control connection refused uid=%ld reason=busy", (long) cred.uid);
		(void) !write(fd, busy, sizeof(busy) - 1);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->control = control;
	c->peer_uid = cred.uid;
	c->bev = bufferevent_socket_new(control->daemon->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	c->next = control->connections;
	if (c->next != NULL)
		c->next->prev = c;
	control->connections = c;
	control->connection_count++;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &timeout, &timeout);
	bufferevent_setwatermark(c->bev, EV_READ, 0, QUEUE_CONTROL_REQUEST_MAX);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* A socket file at path from an earlier run: remove it when nothing answers
 * there any more; fatal when something does, or when it is not a socket. */
static void remove_stale(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc, e;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return;
		daemon_fatal(DAEMON_EXIT_FAILURE, "socket %s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		daemon_fatal(DAEMON_EXIT_FAILURE, "socket %s: exists and is not a socket", path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "socket: %s", strerror(errno));
	rc = connect(fd, (struct sockaddr *) &sun, sizeof(sun));
	e = errno;
	close(fd);
	if (rc == 0)
		daemon_fatal(DAEMON_EXIT_FAILURE,
			     "socket %s answers: another postgated serves this state_dir", path);
	if (e != ECONNREFUSED)
		daemon_fatal(DAEMON_EXIT_FAILURE, "socket %s: %s", path, strerror(e));
	if (unlink(path) != 0 && errno != ENOENT)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot remove the stale socket %s: %s", path,
			     strerror(errno));
	log_info("socket stale file removed path=%s", path);
}

int daemon_unix_listen(const char *path, mode_t mode)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		daemon_fatal(DAEMON_EXIT_CONFIG,
			     "%s: too long for a unix socket path (at most %zu bytes)", path,
			     sizeof(sun.sun_path) - 1);
	remove_stale(path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot create the socket %s: %s", path,
			     strerror(errno));
	/* Whatever the umask made of it. Until this chmod nobody else could
	 * write to it (connecting needs write permission) unless the umask
	 * allowed it, which mode then only narrows or keeps. */
	if (chmod(path, mode) != 0 || listen(fd, DAEMON_LISTEN_BACKLOG) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot set up the socket %s: %s", path,
			     strerror(errno));
	return fd;
}

void daemon_control_start(struct daemon *daemon)
{
	struct daemon_control *control = calloc(1, sizeof(*control));
	int fd, n;

	if (control == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "control socket: out of memory");
	control->daemon = daemon;
	n = snprintf(control->path, sizeof(control->path), "%s/%s", daemon->config.state_dir,
		     QUEUE_CONTROL_SOCKET);
	if (n < 0 || (size_t) n >= sizeof(control->path))
		daemon_fatal(DAEMON_EXIT_CONFIG,
			     "state_dir is too long for a unix socket path (at most %zu bytes)",
			     sizeof(control->path) - sizeof(QUEUE_CONTROL_SOCKET) - 1);
	/* The daemon's user (and root) only. */
	fd = daemon_unix_listen(control->path, 0600);
	control->evl = evconnlistener_new(daemon->base, on_accept, control,
					  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (control->evl == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "control socket: out of memory");
	daemon->control = control;
	log_info("control socket listening path=%s mode=0600", control->path);
}

void daemon_control_free(struct daemon *daemon)
{
	struct daemon_control *control = daemon->control;

	if (control == NULL)
		return;
	evconnlistener_free(control->evl);
	while (control->connections != NULL)
		connection_free(control->connections);
	if (unlink(control->path) != 0 && errno != ENOENT)
		log_warning("cannot remove %s: %s", control->path, strerror(errno));
	free(control);
	daemon->control = NULL;
}
