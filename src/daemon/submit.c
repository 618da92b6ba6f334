/*
 * submit: local submission, the server half of `postgate sendmail`
 * (docs/sendmail.md). The daemon listens on <state_dir>/submit.sock, mode
 * 0666 — any local user may submit, as with a local sendmail — and serves it
 * with the SMTP engine. The peer's uid comes from the kernel (SO_PEERCRED),
 * never from the client, and its user name makes the session authenticated
 * as "local:<name>": it may relay, and the envelope's auth-user and the
 * Received header name the user (docs/decisions/0121).
 *
 * state_dir is given the search bit for others (0711), or nobody but the
 * daemon's user could reach the socket; they still cannot list it, and
 * everything in it keeps its own mode.
 *
 * These sessions are not in the daemon's registry of network sessions: they
 * are not counted per listener and do not hold up a shutdown; a submission
 * cut by one gets no 250 and its sendmail reports the failure. At most
 * DAEMON_SUBMIT_SESSIONS_MAX at a time. Loop thread only.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "core/log.h"
#include "daemon/internal.h"

#define DAEMON_SUBMIT_SOCKET	   "submit.sock"
#define DAEMON_SUBMIT_SESSIONS_MAX 64
#define DAEMON_SUBMIT_USER_MAX	   64

struct submit_session {
	struct submit_session *prev, *next;
	struct daemon_submit *submit;
	struct bufferevent *bev;
	struct smtp_session *smtp;
	char sid[ID_CAP];
	char user[DAEMON_SUBMIT_USER_MAX];
	uint64_t started_ms;
};

struct daemon_submit {
	struct daemon *daemon;
	struct evconnlistener *evl;
	char path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
	struct submit_session *sessions;
	size_t session_count;
};

static void session_end(struct submit_session *s, const char *reason)
{
	struct daemon_submit *submit = s->submit;

	if (s->smtp != NULL)
		smtp_session_stop(s->smtp);
	bufferevent_free(s->bev);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		submit->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	submit->session_count--;
	log_info("sid=%s disconnect listener=local reason=%s duration_ms=%llu", s->sid, reason,
		 (unsigned long long) (daemon_clock_ms() - s->started_ms));
	free(s);
}

static void on_smtp_close(void *ctx, const char *reason)
{
	session_end(ctx, reason);
}

/* The user name of uid, or "uid<N>" when it has none. */
static void user_name(uid_t uid, char *out, size_t cap)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL &&
	    strlen(pw.pw_name) < cap)
		snprintf(out, cap, "%s", pw.pw_name);
	else
		snprintf(out, cap, "uid%ld", (long) uid);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
		      int addr_len, void *arg)
{
	struct daemon_submit *submit = arg;
	struct daemon *daemon = submit->daemon;
	struct submit_session *s;
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);

	(void) evl;
	(void) addr;
	(void) addr_len;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) {
		log_warning("accept dropped listener=local error=\"%s\"", strerror(errno));
		close(fd);
		return;
	}
	if (submit->session_count >= DAEMON_SUBMIT_SESSIONS_MAX) {
		static const char busy[] = "421 4.3.2 Too many local submissions, try again\r\n";

		log_warning("accept dropped listener=local uid=%ld reason=busy", (long) cred.uid);
		(void) !write(fd, busy, sizeof(busy) - 1);
		close(fd);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s != NULL)
		s->bev = bufferevent_socket_new(daemon->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s == NULL || s->bev == NULL) {
		log_warning("accept dropped listener=local error=\"out of memory\"");
		close(fd);
		free(s);
		return;
	}
	s->submit = submit;
	s->started_ms = daemon_clock_ms();
	id_generator_next(&daemon->session_ids, id_clock_ms(), s->sid);
	user_name(cred.uid, s->user, sizeof(s->user));
	s->next = submit->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	submit->sessions = s;
	submit->session_count++;
	log_info("sid=%s connect listener=local uid=%ld user=%s", s->sid, (long) cred.uid, s->user);
	s->smtp = smtp_session_start(&daemon->smtp, s->bev,
				     &(struct smtp_session_params){
					     .sid = s->sid,
					     .client_ip = "local",
					     .listener = "local",
					     .close = on_smtp_close,
					     .close_ctx = s,
					     .local_user = s->user,
				     });
	if (s->smtp == NULL)
		session_end(s, "out-of-memory");
}

/* Let others reach the socket in state_dir: the search bit only. */
static void open_state_dir(const char *state_dir)
{
	struct stat st;

	if (stat(state_dir, &st) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "%s: %s", state_dir, strerror(errno));
	if ((st.st_mode & 0011) == 0011)
		return;
	if (chmod(state_dir, (st.st_mode & 07777) | 0011) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot let local users reach %s: chmod: %s",
			     state_dir, strerror(errno));
	log_info("state_dir search permission given to all path=%s mode=%04o", state_dir,
		 (unsigned) ((st.st_mode & 07777) | 0011));
}

void daemon_submit_start(struct daemon *daemon)
{
	struct daemon_submit *submit = calloc(1, sizeof(*submit));
	int fd, n;

	if (submit == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "submit socket: out of memory");
	submit->daemon = daemon;
	n = snprintf(submit->path, sizeof(submit->path), "%s/%s", daemon->config.state_dir,
		     DAEMON_SUBMIT_SOCKET);
	if (n < 0 || (size_t) n >= sizeof(submit->path))
		daemon_fatal(DAEMON_EXIT_CONFIG,
			     "state_dir is too long for a unix socket path (at most %zu bytes)",
			     sizeof(submit->path) - sizeof(DAEMON_SUBMIT_SOCKET) - 1);
	open_state_dir(daemon->config.state_dir);
	fd = daemon_unix_listen(submit->path, 0666);
	submit->evl = evconnlistener_new(daemon->base, on_accept, submit,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (submit->evl == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "submit socket: out of memory");
	daemon->submit = submit;
	log_info("listening listener=local address=%s protocol=smtp mode=0666", submit->path);
}

void daemon_submit_free(struct daemon *daemon)
{
	struct daemon_submit *submit = daemon->submit;

	if (submit == NULL)
		return;
	evconnlistener_free(submit->evl);
	while (submit->sessions != NULL)
		session_end(submit->sessions, "shutdown");
	if (unlink(submit->path) != 0 && errno != ENOENT)
		log_warning("cannot remove %s: %s", submit->path, strerror(errno));
	free(submit);
	daemon->submit = NULL;
}
