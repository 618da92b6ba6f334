/*
 * signals: stopping and reloading, both delivered through the event loop
 * (evsignal), so handlers run as ordinary callbacks and may do real work.
 *
 * SIGTERM, SIGINT: stop accepting at once (every listening socket is closed,
 * so the kernel refuses new connections), let live sessions finish for up to
 * shutdown_timeout, then close what is left and leave the loop. A second
 * signal during the wait closes the remaining sessions at once.
 *
 * SIGHUP: read the configuration file again. A file with an error changes
 * nothing. Otherwise log_level, hostname, shutdown_timeout and the SMTP
 * limits take effect now; the other keys are bound to sockets, privileges or open files made at
 * start-up, so a change to them is logged as needing a restart.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/log.h"
#include "daemon/internal.h"

static const int shutdown_signals[] = { SIGTERM, SIGINT };

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "TERM";
	case SIGINT:
		return "INT";
	case SIGHUP:
		return "HUP";
	default:
		return "?";
	}
}

void daemon_shutdown_check(struct daemon *daemon)
{
	if (daemon->is_stopping && daemon->session_count == 0)
		event_base_loopbreak(daemon->base);
}

static void on_shutdown_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *daemon = arg;
	uint64_t timeout_ms = daemon->config.shutdown_timeout_ms;
	struct timeval timeout = { (time_t) (timeout_ms / 1000),
				   (suseconds_t) ((timeout_ms % 1000) * 1000) };

	(void) what;
	if (daemon->is_stopping) {
		log_info("shutdown signal=%s again: closing sessions=%zu now",
			 signal_name((int) sig), daemon->session_count);
		daemon_sessions_close_all(daemon, "shutdown");
		return;
	}
	daemon->is_stopping = true;
	/* Listeners first: once this line is in the log, connections are refused. */
	daemon_listeners_free(daemon);
	log_info("shutdown signal=%s sessions=%zu timeout_ms=%llu", signal_name((int) sig),
		 daemon->session_count, (unsigned long long) timeout_ms);
	if (daemon->session_count == 0) {
		event_base_loopbreak(daemon->base);
		return;
	}
	evtimer_add(daemon->shutdown_timer, &timeout);
	/* Idle sessions are told goodbye now; busy ones finish first. */
	for (struct daemon_session *session = daemon->sessions, *next; session != NULL;
	     session = next) {
		next = session->next;
		if (session->protocol->drain != NULL)
			session->protocol->drain(session);
	}
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *daemon = arg;
	char by_listener[CONFIG_LISTENER_KIND_COUNT * 32] = "";
	size_t len = 0;

	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++) {
		int n;

		if (daemon->session_counts[kind] == 0)
			continue;
		n = snprintf(by_listener + len, sizeof(by_listener) - len, " %s=%zu",
			     config_listener_name((enum config_listener_kind) kind),
			     daemon->session_counts[kind]);
		if (n > 0 && (size_t) n < sizeof(by_listener) - len)
			len += (size_t) n;
	}
	(void) fd;
	(void) what;
	log_warning("shutdown timeout: closing sessions=%zu%s", daemon->session_count, by_listener);
	daemon_sessions_close_all(daemon, "shutdown");
}

static bool listener_equal(const struct config_listener *a, const struct config_listener *b)
{
	if (a->is_enabled != b->is_enabled || a->listen_count != b->listen_count)
		return false;
	for (size_t i = 0; i < a->listen_count; i++)
		if (a->listen[i].port != b->listen[i].port ||
		    strcmp(a->listen[i].host, b->listen[i].host) != 0)
			return false;
	return true;
}

/* Keys fixed at start-up: what they were used for cannot be redone by an
 * unprivileged process holding bound sockets and open files. */
static void warn_restart_needed(const struct config *old, const struct config *fresh)
{
	static const struct {
		const char *key;
		size_t offset;
	} fixed_keys[] = {
		{ "user", offsetof(struct config, user) },
		{ "state_dir", offsetof(struct config, state_dir) },
		{ "maildir_root", offsetof(struct config, maildir_root) },
		{ "accounts_db", offsetof(struct config, accounts_db) },
	};

	for (size_t i = 0; i < ARRAY_LEN(fixed_keys); i++) {
		const char *was = (const char *) old + fixed_keys[i].offset;
		const char *now = (const char *) fresh + fixed_keys[i].offset;

		if (strcmp(was, now) != 0)
			log_warning("%s changed; restart postgated to apply", fixed_keys[i].key);
	}
	if (old->worker_threads != fresh->worker_threads)
		log_warning("worker_threads changed; restart postgated to apply");
	if (old->commit_threads != fresh->commit_threads)
		log_warning("commit_threads changed; restart postgated to apply");
	if (old->auth_threads != fresh->auth_threads)
		log_warning("auth_threads changed; restart postgated to apply");
	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++)
		if (!listener_equal(&old->listeners[kind], &fresh->listeners[kind]))
			log_warning("listener %s changed; restart postgated to apply",
				    config_listener_name((enum config_listener_kind) kind));
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *daemon = arg;
	struct config *fresh = malloc(sizeof(*fresh));
	struct config *live = &daemon->config;
	struct error err;

	(void) sig;
	(void) what;
	log_info("reload signal=HUP config=%s", live->path);
	if (fresh == NULL) {
		log_error("reload failed: out of memory");
		return;
	}
	if (config_load(live->path, fresh, &err) < 0) {
		log_error("reload failed: %s", err.message);
		free(fresh);
		return;
	}
	if (fresh->log_level != live->log_level) {
		live->log_level = fresh->log_level;
		log_set_level(live->log_level);
		log_info("reload applied log_level=%s", log_level_name(live->log_level));
	}
	if (strcmp(fresh->hostname, live->hostname) != 0) {
		memcpy(live->hostname, fresh->hostname, sizeof(live->hostname));
		log_info("reload applied hostname=%s", live->hostname);
	}
	if (memcmp(&fresh->metrics_allow, &live->metrics_allow, sizeof(live->metrics_allow)) != 0) {
		live->metrics_allow = fresh->metrics_allow;
		log_info("reload applied metrics_allow blocks=%zu", live->metrics_allow.count);
	}
	if (fresh->shutdown_timeout_ms != live->shutdown_timeout_ms) {
		live->shutdown_timeout_ms = fresh->shutdown_timeout_ms;
		log_info("reload applied shutdown_timeout_ms=%llu",
			 (unsigned long long) live->shutdown_timeout_ms);
	}
	/* SMTP limits: new transactions use them (a session keeps the
	 * recipient limit it started with). */
	{
		static const struct {
			const char *key;
			size_t offset;
		} limits[] = {
			{ "max_message_size", offsetof(struct config, max_message_size) },
			{ "max_recipients", offsetof(struct config, max_recipients) },
			{ "max_line_length", offsetof(struct config, max_line_length) },
		};

		for (size_t i = 0; i < ARRAY_LEN(limits); i++) {
			uint64_t *was = (uint64_t *) (void *) ((char *) live + limits[i].offset);
			const uint64_t *now =
				(const uint64_t *) (const void *) ((const char *) fresh +
								   limits[i].offset);

			if (*was == *now)
				continue;
			*was = *now;
			log_info("reload applied %s=%llu", limits[i].key,
				 (unsigned long long) *now);
		}
	}
	warn_restart_needed(live, fresh);
	/* An administrator who reloads expects nothing remembered from before:
	 * the next login of each user is verified against the store again. */
	if (daemon->auth != NULL)
		log_info("reload auth cache cleared entries=%zu",
			 auth_service_cache_clear(daemon->auth));
	/* Certificates: renewed ones are read again (by the unprivileged user:
	 * docs/tls.md), for the listeners in effect (a changed listener waits
	 * for a restart). Live sessions keep the context they started with. */
	memcpy(fresh->listeners, live->listeners, sizeof(fresh->listeners));
	{
		struct tls_context *tls[2];
		uint64_t stamp_default, stamp_names;
		size_t names;

		daemon_tls_stamps(fresh, &stamp_default, &stamp_names);
		if (stamp_default == daemon->tls_stamp_default &&
		    stamp_names == daemon->tls_stamp_names) {
			log_debug("reload tls unchanged");
		} else if (daemon_tls_load(fresh,
					   stamp_default == daemon->tls_stamp_default ? daemon->tls
										      : NULL,
					   tls, &names, &err) < 0) {
			log_error("reload tls failed, the old certificates stay: %s", err.message);
		} else {
			daemon->tls_stamp_default = stamp_default;
			daemon->tls_stamp_names = stamp_names;
			for (int i = 0; i < 2; i++) {
				tls_context_free(daemon->tls[i]);
				daemon->tls[i] = tls[i];
			}
			memcpy(live->tls_cert, fresh->tls_cert, sizeof(live->tls_cert));
			memcpy(live->tls_key, fresh->tls_key, sizeof(live->tls_key));
			memcpy(live->tls_cert_dir, fresh->tls_cert_dir, sizeof(live->tls_cert_dir));
			log_info("reload applied tls names=%zu", names);
		}
	}
	free(fresh);
	/* Accounts may have been given their CRAM-MD5 secrets since. */
	daemon_cram_md5_check(daemon, false);
	log_info("reload ok");
}

void daemon_signals_start(struct daemon *daemon)
{
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_LEN(shutdown_signals); i++)
		daemon->signal_events[n++] =
			evsignal_new(daemon->base, shutdown_signals[i], on_shutdown_signal, daemon);
	daemon->signal_events[n++] = evsignal_new(daemon->base, SIGHUP, on_reload_signal, daemon);
	daemon->shutdown_timer = evtimer_new(daemon->base, on_shutdown_timeout, daemon);
	if (daemon->shutdown_timer == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot set up the shutdown timer");
	for (size_t i = 0; i < n; i++)
		if (daemon->signal_events[i] == NULL ||
		    evsignal_add(daemon->signal_events[i], NULL) != 0)
			daemon_fatal(DAEMON_EXIT_FAILURE, "cannot set up signal handling");
}

void daemon_signals_free(struct daemon *daemon)
{
	for (size_t i = 0; i < ARRAY_LEN(daemon->signal_events); i++) {
		if (daemon->signal_events[i] != NULL)
			event_free(daemon->signal_events[i]);
		daemon->signal_events[i] = NULL;
	}
	if (daemon->shutdown_timer != NULL)
		event_free(daemon->shutdown_timer);
	daemon->shutdown_timer = NULL;
	/* Already on the way out (finishing worker jobs): another signal must
	 * not kill the process half-way through its clean-up. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
}
