/*
 * postgated: start-up and the main loop.
 *
 * Start-up runs in a fixed order so that every mistake is reported on the
 * terminal, with a non-zero exit, before the daemon detaches or accepts
 * anyone (docs/daemon.md "Start-up"): arguments, configuration, log, (as
 * root) the daemon's user and its directories, the TLS key pair, binding
 * every listener, dropping root, the accounts store; then detaching, the pid
 * file, the event loop. The daemon never reads a byte from the network as
 * root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"
#include <sodium.h>

#include "daemon/internal.h"
#include "store/store.h"
#include "tls/cert.h"

#define DAEMON_DEFAULT_CONFIG "/etc/postgate/postgate.conf"
#define DAEMON_FATAL_MAX      1024

static struct daemon the_daemon;

static bool is_log_open;
/* Write end of the pipe to the parent that waits in detach(); -1 otherwise. */
static int ready_fd = -1;

uint64_t daemon_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void daemon_fatal(int code, const char *fmt, ...)
{
	char message[DAEMON_FATAL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (is_log_open)
		log_error("%s", message);
	/* In the foreground the log line is already on stderr. */
	if (!is_log_open || !the_daemon.is_foreground)
		fprintf(stderr, "postgated: %s\n", message);
	if (ready_fd >= 0) {
		/* The parent still waits on the terminal: it prints this and exits with code. */
		unsigned char status = (unsigned char) code;

		if (write(ready_fd, &status, 1) == 1)
			(void) !write(ready_fd, message, strlen(message));
	}
	exit(code);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: postgated [-f] [-c FILE]\n"
		     "       postgated -h | -V\n"
		     "  -c FILE  configuration file (default " DAEMON_DEFAULT_CONFIG ")\n"
		     "  -f       stay in the foreground and log to stderr\n"
		     "  -h       show this help\n"
		     "  -V       show the version\n");
}

/*
 * Detach from the terminal: fork, setsid, fork again so the daemon can never
 * regain a controlling terminal, chdir /, stdio to /dev/null. The original
 * process waits on a pipe until the daemon reports that it is running (exit
 * 0) or why it failed (its message on stderr, its exit code), so an init
 * script still sees start-up errors after the fork.
 */
static void detach(void)
{
	int fds[2], devnull;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot detach: pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot detach: fork: %s", strerror(errno));
	if (pid > 0) {
		char message[DAEMON_FATAL_MAX + 1];
		size_t len = 0;
		ssize_t n;

		close(fds[1]);
		while (len < sizeof(message) - 1) {
			n = read(fds[0], message + len, sizeof(message) - 1 - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t) n;
		}
		message[len] = '\0';
		(void) waitpid(pid, NULL, 0);
		if (len == 0) {
			fprintf(stderr, "postgated: the daemon exited during start-up\n");
			_exit(DAEMON_EXIT_FAILURE);
		}
		if (message[0] != 0)
			fprintf(stderr, "postgated: %s\n", message + 1);
		_exit((unsigned char) message[0]);
	}
	close(fds[0]);
	ready_fd = fds[1];
	if (setsid() < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot detach: setsid: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot detach: fork: %s", strerror(errno));
	if (pid > 0)
		_exit(DAEMON_EXIT_OK);
	if (chdir("/") != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot detach: chdir /: %s", strerror(errno));
	devnull = open("/dev/null", O_RDWR);
	if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0 ||
	    dup2(devnull, STDERR_FILENO) < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot detach: /dev/null: %s", strerror(errno));
	if (devnull > STDERR_FILENO)
		close(devnull);
}

/* Tell the waiting parent (if any) that the daemon runs. */
static void report_ready(void)
{
	unsigned char ok = 0;

	if (ready_fd < 0)
		return;
	if (write(ready_fd, &ok, 1) != 1)
		log_warning("cannot report start-up to the parent: %s", strerror(errno));
	close(ready_fd);
	ready_fd = -1;
}

static void write_pid_file(struct daemon *daemon)
{
	char text[32];
	struct error err;
	int n;

	n = snprintf(daemon->pid_path, sizeof(daemon->pid_path), "%s/%s", daemon->config.state_dir,
		     DAEMON_PID_FILE);
	if (n < 0 || (size_t) n >= sizeof(daemon->pid_path))
		daemon_fatal(DAEMON_EXIT_FAILURE, "state_dir is too long for the pid file");
	n = snprintf(text, sizeof(text), "%ld\n", (long) getpid());
	if (fsutil_file_write_atomic(daemon->pid_path, text, (size_t) n, 0644, &err) < 0) {
		daemon->pid_path[0] = '\0';
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot write the pid file: %s", err.message);
	}
}

/* Not root: the daemon runs as whoever started it; say so once if the
 * configuration names someone else. */
static void warn_if_other_user(const struct config *config)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found) == 0 && found != NULL &&
	    strcmp(found->pw_name, config->user) == 0)
		return;
	log_warning("not started as root: running as uid=%ld, not as user %s", (long) geteuid(),
		    config->user);
}

/* Keep an absolute path for SIGHUP: a detached daemon has changed to /. */
static void remember_config_path(const char *given, char *out, size_t out_cap)
{
	char cwd[PATH_MAX];
	int n;

	if (given[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		n = snprintf(out, out_cap, "%s", given);
	else
		n = snprintf(out, out_cap, "%s/%s", cwd, given);
	if (n < 0 || (size_t) n >= out_cap)
		daemon_fatal(DAEMON_EXIT_CONFIG, "%s: path too long", given);
}

/* HTTP connections get session ids from the daemon's one generator. */
static void http_session_id(void *ctx, char out[ID_CAP])
{
	struct daemon *daemon = ctx;

	id_generator_next(&daemon->session_ids, id_clock_ms(), out);
}

/* The spool, the queue manager, the workers and the SMTP server, once the
 * process is the final (detached) one: threads do not survive a fork. */
static void start_mail_services(struct daemon *daemon)
{
	struct config *config = &daemon->config;
	char spool_dir[CONFIG_PATH_MAX + 8];
	struct error err;

	pthread_mutex_init(&daemon->store_lock, NULL);
	daemon->workers = worker_pool_new(daemon->base, (unsigned) config->worker_threads, &err);
	if (daemon->workers != NULL)
		daemon->commit_workers =
			worker_pool_new(daemon->base, (unsigned) config->commit_threads, &err);
	if (daemon->workers == NULL || daemon->commit_workers == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot start the worker threads: %s",
			     err.message);
	snprintf(spool_dir, sizeof(spool_dir), "%s/spool", config->state_dir);
	if (queue_spool_open(spool_dir, &daemon->spool, &err) < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot open the spool: %s", err.message);
	daemon->queue =
		queue_manager_new(&(struct queue_manager_params){ .base = daemon->base,
								  .workers = daemon->workers,
								  .spool = daemon->spool,
								  .store = daemon->store,
								  .store_lock = &daemon->store_lock,
								  .config = config },
				  &err);
	if (daemon->queue == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot start the queue: %s", err.message);
	/* What was acknowledged before a crash or a stop is delivered now. */
	if (queue_manager_recover(daemon->queue, &err) < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot recover the spool: %s", err.message);
	daemon->rates = auth_rates_new();
	if (daemon->rates == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot start the sending limits: out of memory");
	daemon->auth = auth_service_new(
		&(struct auth_service_params){ .base = daemon->base,
					       .workers = daemon->workers,
					       .store = daemon->store,
					       .store_lock = &daemon->store_lock,
					       .rates = daemon->rates,
					       .hash_threads = (unsigned) config->auth_threads },
		&err);
	if (daemon->auth == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot start the auth service: %s", err.message);
	randombytes_buf(daemon->sasl_mock_key, sizeof(daemon->sasl_mock_key));
	daemon_cram_md5_check(daemon, true);
	daemon->smtp = (struct smtp_server){
		.config = config,
		.workers = daemon->workers,
		.commit_workers = daemon->commit_workers,
		.spool = daemon->spool,
		.store = daemon->store,
		.store_lock = &daemon->store_lock,
		.on_queued = daemon_message_queued,
		.on_queued_ctx = daemon,
		.auth = daemon->auth,
		.mock_key = daemon->sasl_mock_key,
		.rates = daemon->rates,
	};
	daemon->pop3 = (struct pop3_server){
		.config = config,
		.workers = daemon->workers,
		.auth = daemon->auth,
		.mock_key = daemon->sasl_mock_key,
	};
	if (config->listeners[CONFIG_LISTENER_HTTP].is_enabled) {
		daemon->http = http_server_new(
			&(struct http_server_params){ .base = daemon->base,
						      .workers = daemon->workers,
						      .config = config,
						      .store = daemon->store,
						      .store_lock = &daemon->store_lock,
						      .tls = daemon->tls,
						      .new_sid = http_session_id,
						      .new_sid_ctx = daemon,
						      .spool = daemon->spool,
						      .session_counts = daemon->session_counts,
						      .auth = daemon->auth,
						      .admit = daemon_limits_admit_http,
						      .release = daemon_limits_release_http,
						      .limits_ctx = daemon,
						      .started_at_s = (uint64_t) time(NULL) },
			&err);
		if (daemon->http == NULL)
			daemon_fatal(DAEMON_EXIT_FAILURE, "cannot start the HTTP server: %s",
				     err.message);
	}
}

static void stop_mail_services(struct daemon *daemon)
{
	/* Open HTTP connections close now; their jobs still out only free
	 * themselves when the pool runs their results below. */
	http_server_free(daemon->http);
	daemon->http = NULL;
	/* Jobs still out finish (a commit in flight completes); their results
	 * start nothing new. */
	if (daemon->queue != NULL)
		queue_manager_stop(daemon->queue);
	worker_pool_free(daemon->commit_workers);
	daemon->commit_workers = NULL;
	worker_pool_free(daemon->workers);
	daemon->workers = NULL;
	auth_service_free(daemon->auth);
	auth_rates_free(daemon->rates);
	daemon->rates = NULL;
	daemon->auth = NULL;
	queue_manager_free(daemon->queue);
	daemon->queue = NULL;
	queue_spool_free(daemon->spool);
	daemon->spool = NULL;
	pthread_mutex_destroy(&daemon->store_lock);
}

void daemon_message_queued(void *ctx, const char *queue_id)
{
	struct daemon *daemon = ctx;

	if (daemon->queue != NULL)
		queue_manager_submit(daemon->queue, queue_id, true);
}

/* FNV-1a, 64 bits: a change detector for file metadata, not a MAC. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* What stat() says of path (no read permission needed): which file, how
 * big, when written; or the error. */
static uint64_t file_stamp(uint64_t h, const char *dir, const char *path)
{
	struct stat st;
	char full[CONFIG_PATH_MAX * 2];
	int rc;

	snprintf(full, sizeof(full), "%s%s%s", dir != NULL ? dir : "", dir != NULL ? "/" : "",
		 path);
	rc = stat(full, &st) == 0 ? 0 : errno;
	h = fnv(h, full, strlen(full) + 1);
	h = fnv(h, &rc, sizeof(rc));
	if (rc == 0) {
		uint64_t fields[] = { st.st_dev,
				      st.st_ino,
				      (uint64_t) st.st_size,
				      (uint64_t) st.st_mtim.tv_sec,
				      (uint64_t) st.st_mtim.tv_nsec,
				      (uint64_t) st.st_ctim.tv_sec,
				      (uint64_t) st.st_ctim.tv_nsec };

		h = fnv(h, fields, sizeof(fields));
	}
	return h;
}

void daemon_tls_stamps(const struct config *config, uint64_t *default_out, uint64_t *names_out)
{
	const uint64_t basis = 0xcbf29ce484222325ULL;
	DIR *dp;
	struct dirent *d;

	*default_out = file_stamp(file_stamp(basis, NULL, config->tls_cert), NULL, config->tls_key);
	*names_out = fnv(basis, config->tls_cert_dir, strlen(config->tls_cert_dir));
	if (config->tls_cert_dir[0] == '\0')
		return;
	dp = opendir(config->tls_cert_dir);
	if (dp == NULL) {
		*names_out = fnv(*names_out, &errno, sizeof(errno));
		return;
	}
	/* Summed per entry: the order readdir gives does not matter. */
	while ((d = readdir(dp)) != NULL) {
		char entry[CONFIG_PATH_MAX * 2];

		if (d->d_name[0] == '.')
			continue;
		snprintf(entry, sizeof(entry), "%s/%s", config->tls_cert_dir, d->d_name);
		*names_out +=
			file_stamp(file_stamp(basis, entry, "fullchain.pem"), entry, "privkey.pem");
	}
	closedir(dp);
}

int daemon_tls_load(const struct config *config, struct tls_context *const reuse[2],
		    struct tls_context *out[2], size_t *names_out, struct error *err)
{
	bool is_legacy_used = false;

	out[0] = out[1] = NULL;
	*names_out = 0;
	for (int kind = 0; kind < CONFIG_LISTENER_KIND_COUNT; kind++)
		if (config->listeners[kind].is_enabled &&
		    config->listeners[kind].tls_profile == CONFIG_TLS_PROFILE_LEGACY)
			is_legacy_used = true;
	for (int profile = 0; profile < 2; profile++) {
		if (profile == CONFIG_TLS_PROFILE_LEGACY && !is_legacy_used)
			break;
		if ((reuse != NULL && reuse[profile] != NULL
			     ? tls_context_renew(reuse[profile], &out[profile], err)
			     : tls_context_new(config->tls_cert, config->tls_key,
					       (enum tls_profile) profile, &out[profile], err)) <
			    0 ||
		    (config->tls_cert_dir[0] != '\0' &&
		     tls_context_load_names(out[profile], config->tls_cert_dir, names_out, err) <
			     0)) {
			tls_context_free(out[0]);
			tls_context_free(out[1]);
			out[0] = out[1] = NULL;
			return -1;
		}
	}
	return 0;
}

/* Still root: the key may be readable by root alone. The modern profile
 * always exists (it also checks the certificate and key at start); the
 * legacy one when a listener asks for it. */
static void load_tls_contexts(struct daemon *daemon)
{
	struct error err;
	size_t names;

	if (daemon_tls_load(&daemon->config, NULL, daemon->tls, &names, &err) < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "TLS certificate and key: %s", err.message);
	daemon_tls_stamps(&daemon->config, &daemon->tls_stamp_default, &daemon->tls_stamp_names);
	if (daemon->config.tls_cert_dir[0] != '\0')
		log_info("tls names=%zu dir=%s", names, daemon->config.tls_cert_dir);
}

static void shut_down(struct daemon *daemon)
{
	daemon_sessions_close_all(daemon, "shutdown");
	daemon_listeners_free(daemon);
	daemon_control_free(daemon);
	daemon_submit_free(daemon);
	stop_mail_services(daemon);
	/* A bufferevent freed just before the loop stopped may still have its
	 * deferred callbacks queued; it is released only when they run. */
	for (int i = 0; i < 4; i++)
		event_base_loop(daemon->base, EVLOOP_NONBLOCK);
	daemon_signals_free(daemon);
	event_base_free(daemon->base);
	daemon->base = NULL;
	for (size_t i = 0; i < ARRAY_LEN(daemon->tls); i++) {
		tls_context_free(daemon->tls[i]);
		daemon->tls[i] = NULL;
	}
	store_close(daemon->store);
	daemon->store = NULL;
	if (daemon->pid_path[0] != '\0' && unlink(daemon->pid_path) != 0)
		log_warning("cannot remove %s: %s", daemon->pid_path, strerror(errno));
	log_info("stopped");
	log_close();
	libevent_global_shutdown();
}

/*
 * glibc gives the top of a heap back to the kernel once 128 KiB of it are
 * free, and grows it again on the next burst: under load the loop thread
 * did one brk(2) every other session, each a munmap with a TLB shootdown
 * of the other CPUs, and page faults to grow back (9 % of the loop's time
 * in a profile of workload (b)). Keeping up to 8 MiB free at the top, and
 * growing 1 MiB at a time, makes that one brk per run (decision 0201).
 * Setting these fixes the mmap threshold, which glibc would otherwise
 * raise as it goes: 1 MiB, so that argon2id's memory is still mapped on
 * its own (auth/hashmem.h).
 */
static void malloc_tune(void)
{
	(void) mallopt(M_TRIM_THRESHOLD, 8 << 20);
	(void) mallopt(M_TOP_PAD, 1 << 20);
	(void) mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

int main(int argc, char **argv)
{
	struct daemon *daemon = &the_daemon;
	const char *config_path = DAEMON_DEFAULT_CONFIG;
	struct daemon_user user;
	struct error err;
	int opt;

	while ((opt = getopt(argc, argv, "c:fhV")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			daemon->is_foreground = true;
			break;
		case 'h':
			usage(stdout);
			return DAEMON_EXIT_OK;
		case 'V':
			printf("postgated %s\n", POSTGATE_VERSION);
			return DAEMON_EXIT_OK;
		default:
			usage(stderr);
			return DAEMON_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return DAEMON_EXIT_USAGE;
	}
	malloc_tune();
	/* A client that goes away mid-write must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	/* A reload asked for while starting (the file is being read anyway) must
	 * not kill the daemon before its handler exists. */
	signal(SIGHUP, SIG_IGN);

	if (config_load(config_path, &daemon->config, &err) < 0) {
		fprintf(stderr, "postgated: %s\n", err.message);
		return DAEMON_EXIT_CONFIG;
	}
	remember_config_path(config_path, daemon->config.path, sizeof(daemon->config.path));
	log_open("postgated", daemon->is_foreground ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG,
		 daemon->config.log_level);
	is_log_open = true;

	daemon->is_root = geteuid() == 0;
	if (daemon->is_root) {
		daemon_user_lookup(&daemon->config, &user);
		daemon_dirs_prepare(&daemon->config, &user);
	} else {
		warn_if_other_user(&daemon->config);
		daemon_dirs_prepare(&daemon->config, NULL);
	}
	daemon_files_limit_raise(&daemon->config);
	/* Still root here: the key may be readable by root alone. */
	load_tls_contexts(daemon);
	daemon_listeners_bind(daemon);
	if (daemon->is_root)
		daemon_privileges_drop(&user);
	if (store_open(daemon->config.accounts_db, false, &daemon->store, &err) < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE,
			     "cannot open the accounts store: %s (run postgate init)", err.message);

	/* The store is open across the forks, but only the final child ever
	 * uses it; the parents leave with _exit() and touch nothing. */
	if (!daemon->is_foreground) {
		detach();
		write_pid_file(daemon);
	}
	daemon->started_ms = daemon_clock_ms();
	{
		/* epoll's changelist: a session that stops reading for a
		 * worker trip and starts again before the loop next waits costs
		 * no epoll_ctl. We never dup() a watched descriptor, the case
		 * libevent's documentation warns about. */
		struct event_config *cfg = event_config_new();

		if (cfg != NULL)
			event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		daemon->base = cfg != NULL ? event_base_new_with_config(cfg) : NULL;
		if (cfg != NULL)
			event_config_free(cfg);
	}
	if (daemon->base == NULL)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot create the event loop");
	id_generator_init(&daemon->session_ids);
	start_mail_services(daemon);
	daemon_control_start(daemon);
	daemon_submit_start(daemon);
	daemon_signals_start(daemon);
	daemon_listeners_start(daemon);
	log_info("started version=%s pid=%ld uid=%ld gid=%ld listeners=%zu", POSTGATE_VERSION,
		 (long) getpid(), (long) getuid(), (long) getgid(), daemon->listener_count);
	report_ready();

	if (event_base_dispatch(daemon->base) < 0) {
		log_error("event loop failed");
		shut_down(daemon);
		return DAEMON_EXIT_FAILURE;
	}
	shut_down(daemon);
	return DAEMON_EXIT_OK;
}
