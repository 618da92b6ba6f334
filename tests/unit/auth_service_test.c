/* Tests for src/auth/service.c with a real event_base, a real worker pool
 * and a real SQLite store in a temporary directory, users made with
 * store_user_add and auth_secret_make_*: the results and their log lines,
 * the credential cache (a reconnect costs no hash; a password change or a
 * disable through another store connection counts at once), failure
 * delays, refusal, cancellation, a failing store, SCRAM secrets and their
 * decoys. The clock the service reads for throttle windows and cache
 * expiry is faked; delays are real timers.
 *
 * AUTH_SERVICE_TEST_FILTER=<cmocka pattern> runs only matching tests:
 * tests/e2e/test_fail2ban.py runs test_log_lines_for_fail2ban that way and
 * feeds its stderr (the real log lines) to fail2ban-regex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/cache.h"
#include "auth/secret.h"
#include "auth/service.h"
#include "auth/throttle.h"
#include "auth/vault.h"
#include "core/log.h"
#include "core/span.h"
#include "core/worker.h"
#include "sasl/sasl.h"
#include "store/store.h"

#define WAIT_MS		  30000 /* the longest any single wait may take */
#define PW_ALICE	  "correct horse"
#define PW_OTHER	  "battery staple"
#define SQLITE_HEADER_LEN 100
/* libevent's timers read CLOCK_MONOTONIC_COARSE (a few ms per tick). */
#define TIMER_SLACK_MS 20

/* ---- the store, made once for every test ---- */

struct user_spec {
	const char *address, *password;
	bool has_argon2id, has_scram, is_enabled;
	bool has_cram_md5;
};

/* clang-format off */
static const struct user_spec users[] = {
	{ "alice@example.test", PW_ALICE, true,  true,  true,  true  }, /* and CRAM-MD5 */
	{ "carol@example.test", PW_ALICE, true,  true,  false, false }, /* disabled */
	{ "dave@example.test",  PW_ALICE, false, true,  true,  false }, /* SCRAM only */
	{ "erin@example.test",  PW_ALICE, false, false, true,  false }, /* no secret at all */
	{ "frank@example.test", PW_ALICE, true,  false, true,  false }, /* argon2id only */
	{ "grace@example.test", PW_ALICE, true,  true,  true,  false }, /* for the passwd test */
	{ "heidi@example.test", PW_ALICE, true,  true,  true,  false }, /* for the disable test */
};
/* clang-format on */

struct world {
	char dir[64];
	char db[PATH_MAX];
	struct store *store; /* the service's connection */
	struct store *admin; /* another connection: what `postgate user ...` would do */
	pthread_mutex_t store_lock;
};

static struct world world;

static int world_setup(void **state)
{
	struct error err = { 0 };
	struct store_domain d = { 0 };

	(void) state;
	if (auth_secret_global_init(&err) < 0)
		return -1;
	snprintf(world.dir, sizeof(world.dir), "/tmp/auth_service_test.XXXXXX");
	if (mkdtemp(world.dir) == NULL)
		return -1;
	snprintf(world.db, sizeof(world.db), "%s/accounts.db", world.dir);
	if (store_open(world.db, true, &world.admin, &err) < 0 ||
	    store_open(world.db, false, &world.store, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err.message);
		return -1;
	}
	snprintf(d.name, sizeof(d.name), "example.test");
	if (store_domain_add(world.admin, &d, &err) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_LEN(users); i++) {
		const struct user_spec *s = &users[i];
		struct store_user u;

		memset(&u, 0, sizeof(u));
		snprintf(u.address, sizeof(u.address), "%s", s->address);
		u.is_enabled = s->is_enabled;
		if ((s->has_argon2id &&
		     auth_secret_make_argon2id(s->password, strlen(s->password), u.secret_argon2id,
					       sizeof(u.secret_argon2id), &err) < 0) ||
		    (s->has_scram &&
		     auth_secret_make_scram(s->password, strlen(s->password),
					    AUTH_SCRAM_ITERATIONS_DEFAULT, u.secret_scram,
					    sizeof(u.secret_scram), &err) < 0) ||
		    (s->has_cram_md5 &&
		     sasl_cram_md5_secret_make(s->password, strlen(s->password), u.secret_cram_md5,
					       sizeof(u.secret_cram_md5), &err) < 0) ||
		    store_user_add(world.admin, &u, &err) < 0) {
			fprintf(stderr, "%s: %s\n", s->address, err.message);
			return -1;
		}
	}
	pthread_mutex_init(&world.store_lock, NULL);
	return 0;
}

static int world_teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void) state;
	store_close(world.store);
	store_close(world.admin);
	pthread_mutex_destroy(&world.store_lock);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", world.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- a service per test ---- */

/* Holds a pool's thread until the test opens it. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool is_holding, is_open;
};

struct fixture {
	struct event_base *base;
	struct worker_pool *pool;
	struct worker_pool *hash_pool; /* the service's hash threads, when the test gives them */
	struct gate hash_gate;
	struct auth_service *svc;
	struct event *tick;
	int64_t fake_now_ms;
};

static int64_t fake_clock(void *ctx)
{
	return ((struct fixture *) ctx)->fake_now_ms;
}

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps EVLOOP_ONCE returning so that waits can check their deadline. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void) fd;
	(void) what;
	(void) arg;
}

static int fixture_setup_with(void **state, bool is_hash_pool_given)
{
	static struct fixture f;
	struct auth_service_params p;
	struct error err = { 0 };
	struct timeval tick = { 0, 10000 };

	memset(&f, 0, sizeof(f));
	f.fake_now_ms = 1000000000;
	f.base = event_base_new();
	f.pool = worker_pool_new(f.base, 2, &err);
	if (f.base == NULL || f.pool == NULL)
		return -1;
	f.tick = event_new(f.base, -1, EV_PERSIST, on_tick, NULL);
	event_add(f.tick, &tick);
	memset(&p, 0, sizeof(p));
	p.base = f.base;
	p.workers = f.pool;
	p.store = world.store;
	p.store_lock = &world.store_lock;
	p.clock = fake_clock;
	p.clock_ctx = &f;
	pthread_mutex_init(&f.hash_gate.lock, NULL);
	pthread_cond_init(&f.hash_gate.cond, NULL);
	if (is_hash_pool_given) {
		f.hash_pool = worker_pool_new(f.base, 1, &err);
		if (f.hash_pool == NULL)
			return -1;
		p.hash_workers = f.hash_pool;
	}
	f.svc = auth_service_new(&p, &err);
	if (f.svc == NULL) {
		fprintf(stderr, "auth_service_new: %s\n", err.message);
		return -1;
	}
	*state = &f;
	return 0;
}

static int fixture_setup(void **state)
{
	return fixture_setup_with(state, false);
}

/* The hash threads are the test's: one thread, which a gate can hold. */
static int fixture_setup_hash_pool(void **state)
{
	return fixture_setup_with(state, true);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->is_open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	gate_open(&f->hash_gate); /* a failed test must not leave a thread held */
	auth_service_free(f->svc);
	worker_pool_free(f->hash_pool);
	pthread_cond_destroy(&f->hash_gate.cond);
	pthread_mutex_destroy(&f->hash_gate.lock);
	worker_pool_free(f->pool);
	event_free(f->tick);
	event_base_free(f->base);
	return 0;
}

/* ---- waiting for callbacks ---- */

struct outcome {
	int calls;
	enum auth_result result;
	char user[ADDRESS_MAX + 1];
	char secret[STORE_SECRET_MAX];
	bool has_secret;
	int64_t started_ms, answered_ms;
};

static void on_done(void *ctx, enum auth_result result, const char *canonical_user)
{
	struct outcome *o = ctx;

	o->calls++;
	o->result = result;
	o->answered_ms = real_ms();
	snprintf(o->user, sizeof(o->user), "%s", canonical_user != NULL ? canonical_user : "");
}

static void on_secret(void *ctx, enum auth_result result, const char *secret,
		      const char *canonical_user)
{
	struct outcome *o = ctx;

	o->calls++;
	o->result = result;
	o->answered_ms = real_ms();
	o->has_secret = secret != NULL;
	snprintf(o->secret, sizeof(o->secret), "%s", secret != NULL ? secret : "");
	snprintf(o->user, sizeof(o->user), "%s", canonical_user != NULL ? canonical_user : "");
}

typedef bool condition_fn(struct fixture *f, void *arg);

static bool run_until(struct fixture *f, condition_fn *cond, void *arg, int64_t timeout_ms)
{
	int64_t deadline = real_ms() + timeout_ms;

	while (!cond(f, arg)) {
		if (real_ms() > deadline)
			return false;
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	return true;
}

static bool is_answered(struct fixture *f, void *arg)
{
	(void) f;
	return ((struct outcome *) arg)->calls > 0;
}

static bool is_idle(struct fixture *f, void *arg)
{
	struct auth_service_stats s;

	(void) arg;
	auth_service_stats_get(f->svc, &s);
	return s.in_flight == 0;
}

static bool has_concluded(struct fixture *f, void *arg)
{
	struct auth_service_stats s;
	const uint64_t *want = arg;

	auth_service_stats_get(f->svc, &s);
	return s.ok + s.failed + s.tempfail + s.throttled >= *want;
}

/* Runs the loop for ms of real time. */
static void run_for(struct fixture *f, int64_t ms)
{
	int64_t until = real_ms() + ms;

	while (real_ms() < until)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static struct auth_request request(const char *client, const char *mech, const char *user)
{
	struct auth_request r = { client, "submission", mech, "s0000test1", user };

	return r;
}

static struct outcome login(struct fixture *f, const char *client, const char *user,
			    const char *password)
{
	struct outcome o;
	struct auth_request req = request(client, "PLAIN", user);
	uint64_t ticket;

	memset(&o, 0, sizeof(o));
	o.started_ms = real_ms();
	ticket = auth_check_password(f->svc, &req, password, strlen(password), on_done, &o);
	assert_true(ticket != 0);
	assert_int_equal(o.calls, 0); /* never from inside the call */
	assert_true(run_until(f, is_answered, &o, WAIT_MS));
	assert_int_equal(o.calls, 1);
	return o;
}

static struct auth_service_stats stats(struct fixture *f)
{
	struct auth_service_stats s;

	auth_service_stats_get(f->svc, &s);
	return s;
}

/* ---- stderr capture: the log lines a test produced ---- */

struct capture {
	int saved_fd;
	char path[64];
};

static void capture_begin(struct capture *c)
{
	int fd;

	snprintf(c->path, sizeof(c->path), "/tmp/auth_service_log.XXXXXX");
	fd = mkstemp(c->path);
	assert_true(fd >= 0);
	fflush(stderr);
	c->saved_fd = dup(STDERR_FILENO);
	assert_true(c->saved_fd >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

/* The captured text (malloc'd), also passed on to the real stderr. */
static char *capture_end(struct capture *c)
{
	FILE *in;
	char *text;
	long len;

	fflush(stderr);
	assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
	close(c->saved_fd);
	in = fopen(c->path, "r");
	assert_non_null(in);
	fseek(in, 0, SEEK_END);
	len = ftell(in);
	fseek(in, 0, SEEK_SET);
	text = calloc(1, (size_t) len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t) len, in), (size_t) len);
	fclose(in);
	unlink(c->path);
	fputs(text, stderr);
	return text;
}

static size_t line_count(const char *text)
{
	size_t n = 0;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/* ---- the store failing under the service ---- */

static unsigned char saved_header[SQLITE_HEADER_LEN];

/* Overwrites the database header: every statement of the service's
 * connection now fails with "file is not a database". */
static void store_break(void)
{
	unsigned char zeros[SQLITE_HEADER_LEN] = { 0 };
	int fd = open(world.db, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, saved_header, sizeof(saved_header), 0), SQLITE_HEADER_LEN);
	assert_int_equal(pwrite(fd, zeros, sizeof(zeros), 0), SQLITE_HEADER_LEN);
	close(fd);
}

static void store_mend(void)
{
	int fd = open(world.db, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, saved_header, sizeof(saved_header), 0), SQLITE_HEADER_LEN);
	close(fd);
}

/* ---- tests ---- */

static const struct result_case {
	const char *name, *client, *user, *password;
	enum auth_result want;
	const char *want_user; /* canonical user for AUTH_OK */
	bool is_hashed;	       /* an argon2id or SCRAM check ran */
	const char *want_log;
} result_cases[] = {
	{ "right password", "192.0.2.1", "alice@example.test", PW_ALICE, AUTH_OK,
	  "alice@example.test", true,
	  "info sid=s0000test1 auth ok listener=submission client=192.0.2.1 mech=PLAIN "
	  "user=alice@example.test cached=no" },
	{ "name in another case", "192.0.2.2", "ALICE@Example.TEST", PW_ALICE, AUTH_OK,
	  "alice@example.test", false /* cached by the case before */,
	  "auth ok listener=submission client=192.0.2.2 mech=PLAIN user=alice@example.test "
	  "cached=yes" },
	{ "wrong password", "192.0.2.3", "alice@example.test", PW_OTHER, AUTH_FAILED, NULL, true,
	  "warning sid=s0000test1 auth failed listener=submission client=192.0.2.3 mech=PLAIN "
	  "user=alice@example.test reason=bad-password delay_ms=0" },
	{ "unknown user", "192.0.2.4", "mallory@example.test", PW_ALICE, AUTH_FAILED, NULL, true,
	  "auth failed listener=submission client=192.0.2.4 mech=PLAIN user=mallory@example.test "
	  "reason=unknown-user delay_ms=0" },
	{ "unknown domain", "192.0.2.5", "alice@example.invalid", PW_ALICE, AUTH_FAILED, NULL, true,
	  "client=192.0.2.5 mech=PLAIN user=alice@example.invalid reason=unknown-user" },
	{ "disabled user, right password", "192.0.2.6", "carol@example.test", PW_ALICE, AUTH_FAILED,
	  NULL, true, "client=192.0.2.6 mech=PLAIN user=carol@example.test reason=disabled" },
	{ "SCRAM-only user by PLAIN", "192.0.2.7", "dave@example.test", PW_ALICE, AUTH_OK,
	  "dave@example.test", true,
	  "client=192.0.2.7 mech=PLAIN user=dave@example.test cached=no" },
	{ "user without a secret", "192.0.2.8", "erin@example.test", PW_ALICE, AUTH_FAILED, NULL,
	  true, "client=192.0.2.8 mech=PLAIN user=erin@example.test reason=no-secret" },
	{ "malformed name", "192.0.2.9", "alice at example", PW_ALICE, AUTH_FAILED, NULL, false,
	  "client=192.0.2.9 mech=PLAIN user=\"alice at example\" reason=malformed delay_ms=0" },
	{ "name that injects a key", "192.0.2.10", "x client=10.9.9.9", PW_ALICE, AUTH_FAILED, NULL,
	  false, "client=192.0.2.10 mech=PLAIN user=\"x client\\x3d10.9.9.9\" reason=malformed" },
	{ "empty password", "192.0.2.11", "alice@example.test", "", AUTH_FAILED, NULL, false,
	  "client=192.0.2.11 mech=PLAIN user=alice@example.test reason=malformed" },
};

static void test_results_and_log_lines(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_LEN(result_cases); i++) {
		const struct result_case *c = &result_cases[i];
		struct capture cap;
		struct outcome o;
		uint64_t hashes = stats(f).hash_runs;
		char *log;

		print_message("case: %s\n", c->name);
		capture_begin(&cap);
		o = login(f, c->client, c->user, c->password);
		log = capture_end(&cap);
		assert_int_equal(o.result, c->want);
		assert_string_equal(o.user, c->want == AUTH_OK ? c->want_user : "");
		assert_int_equal(stats(f).hash_runs - hashes, c->is_hashed ? 1 : 0);
		if (strstr(log, c->want_log) == NULL)
			fail_msg("log has no \"%s\":\n%s", c->want_log, log);
		/* One line per result, and never the password. */
		assert_int_equal(line_count(log), 1);
		if (c->password[0] != '\0')
			assert_null(strstr(log, c->password));
		free(log);
	}
}

static void test_reconnect_costs_no_hash(void **state)
{
	struct fixture *f = *state;
	struct outcome o;

	o = login(f, "198.51.100.1", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).hash_runs, 1);
	assert_int_equal(stats(f).cache_entries, 1);
	/* A POP3 client polling: five more logins, no more argon2id runs. */
	for (int i = 0; i < 5; i++) {
		f->fake_now_ms += 60 * 1000;
		o = login(f, "198.51.100.1", "alice@example.test", PW_ALICE);
		assert_int_equal(o.result, AUTH_OK);
		assert_string_equal(o.user, "alice@example.test");
	}
	assert_int_equal(stats(f).hash_runs, 1);
	assert_int_equal(stats(f).cache_hits, 5);
	/* The cache is per (user, password): a wrong password is checked. */
	o = login(f, "198.51.100.1", "alice@example.test", PW_OTHER);
	assert_int_equal(o.result, AUTH_FAILED);
	assert_int_equal(stats(f).hash_runs, 2);
	/* After the lifetime (15 minutes from the first check) it is hashed again. */
	f->fake_now_ms += AUTH_CACHE_TTL_MS;
	o = login(f, "198.51.100.1", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).hash_runs, 3);
	assert_int_equal(stats(f).cache_hits, 5);
}

static void gate_job(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	g->is_holding = true;
	while (!g->is_open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static bool is_gate_holding(struct fixture *f, void *arg)
{
	bool is_holding;

	(void) arg;
	pthread_mutex_lock(&f->hash_gate.lock);
	is_holding = f->hash_gate.is_holding;
	pthread_mutex_unlock(&f->hash_gate.lock);
	return is_holding;
}

static bool are_two_hashes_queued(struct fixture *f, void *arg)
{
	(void) arg;
	return worker_pool_pending(f->hash_pool) == 2;
}

static bool are_both_answered(struct fixture *f, void *arg)
{
	struct outcome *o = arg;

	(void) f;
	return o[0].calls > 0 && o[1].calls > 0;
}

/*
 * Hashes run on the hash threads only: with those held, uncached checks
 * (a known user, an unknown one) wait, while a cached re-login is answered
 * from the shared workers without a hash. Opening the gate lets the two
 * hashes run.
 */
static void test_hashes_on_their_own_threads(void **state)
{
	struct fixture *f = *state;
	struct auth_request frank = request("198.51.100.70", "PLAIN", "frank@example.test");
	struct auth_request nobody = request("198.51.100.71", "PLAIN", "nobody@example.test");
	struct outcome o, waiting[2];

	o = login(f, "198.51.100.72", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).hash_runs, 1);

	assert_int_equal(worker_pool_submit(f->hash_pool, gate_job, NULL, &f->hash_gate), 0);
	assert_true(run_until(f, is_gate_holding, NULL, WAIT_MS));
	memset(waiting, 0, sizeof(waiting));
	assert_true(auth_check_password(f->svc, &frank, PW_ALICE, strlen(PW_ALICE), on_done,
					&waiting[0]) != 0);
	assert_true(auth_check_password(f->svc, &nobody, PW_ALICE, strlen(PW_ALICE), on_done,
					&waiting[1]) != 0);
	/* Both looked up on the shared workers, both hashes queued behind the gate. */
	assert_true(run_until(f, are_two_hashes_queued, NULL, WAIT_MS));
	o = login(f, "198.51.100.72", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).cache_hits, 1);
	assert_int_equal(stats(f).hash_runs, 1);
	assert_int_equal(waiting[0].calls, 0);
	assert_int_equal(waiting[1].calls, 0);
	assert_int_equal(stats(f).in_flight, 2);

	gate_open(&f->hash_gate);
	assert_true(run_until(f, are_both_answered, waiting, WAIT_MS));
	assert_int_equal(waiting[0].result, AUTH_OK);
	assert_string_equal(waiting[0].user, "frank@example.test");
	assert_int_equal(waiting[1].result, AUTH_FAILED);
	assert_int_equal(stats(f).hash_runs, 3);
}

static bool is_one_hash_queued(struct fixture *f, void *arg)
{
	(void) arg;
	return worker_pool_pending(f->hash_pool) == 1;
}

static bool are_three_answered(struct fixture *f, void *arg)
{
	struct outcome *o = arg;

	(void) f;
	return o[0].calls > 0 && o[1].calls > 0 && o[2].calls > 0;
}

/*
 * Three connections log in with the same password at once (Outlook opening
 * several): one hash, the other two wait for it and are answered from the
 * cache. A wrong password at the same moment is not held up by them and is
 * hashed on its own. With the hash thread held, only two hashes are queued:
 * the right password's leader and the wrong one.
 */
static void test_concurrent_same_password_one_hash(void **state)
{
	struct fixture *f = *state;
	struct auth_request req = request("198.51.100.90", "PLAIN", "frank@example.test");
	struct outcome o[3], wrong;

	memset(o, 0, sizeof(o));
	memset(&wrong, 0, sizeof(wrong));
	assert_int_equal(worker_pool_submit(f->hash_pool, gate_job, NULL, &f->hash_gate), 0);
	assert_true(run_until(f, is_gate_holding, NULL, WAIT_MS));
	assert_true(auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done, &o[0]) !=
		    0);
	assert_true(run_until(f, is_one_hash_queued, NULL, WAIT_MS));
	for (int i = 1; i < 3; i++)
		assert_true(auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done,
						&o[i]) != 0);
	assert_true(auth_check_password(f->svc, &req, PW_OTHER, strlen(PW_OTHER), on_done,
					&wrong) != 0);
	assert_true(run_until(f, are_two_hashes_queued, NULL, WAIT_MS));
	gate_open(&f->hash_gate);
	assert_true(run_until(f, are_three_answered, o, WAIT_MS));
	assert_true(run_until(f, is_answered, &wrong, WAIT_MS));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(o[i].result, AUTH_OK);
		assert_string_equal(o[i].user, "frank@example.test");
	}
	assert_int_equal(wrong.result, AUTH_FAILED);
	assert_int_equal(stats(f).hash_runs, 2);
	assert_int_equal(stats(f).cache_hits, 2);
	assert_int_equal(worker_pool_pending(f->hash_pool), 0);
}

/* A waiting check whose session goes away is dropped at once; the others
 * are answered. */
static void test_cancel_while_waiting(void **state)
{
	struct fixture *f = *state;
	struct auth_request req = request("198.51.100.91", "PLAIN", "frank@example.test");
	struct outcome o[3];
	uint64_t ticket;

	memset(o, 0, sizeof(o));
	assert_int_equal(worker_pool_submit(f->hash_pool, gate_job, NULL, &f->hash_gate), 0);
	assert_true(run_until(f, is_gate_holding, NULL, WAIT_MS));
	assert_true(auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done, &o[0]) !=
		    0);
	assert_true(run_until(f, is_one_hash_queued, NULL, WAIT_MS));
	ticket = auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done, &o[1]);
	assert_true(auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done, &o[2]) !=
		    0);
	auth_cancel(f->svc, ticket);
	assert_int_equal(stats(f).in_flight, 2);
	gate_open(&f->hash_gate);
	assert_true(run_until(f, is_answered, &o[2], WAIT_MS));
	assert_true(run_until(f, is_answered, &o[0], WAIT_MS));
	assert_int_equal(o[1].calls, 0);
	assert_int_equal(o[0].result, AUTH_OK);
	assert_int_equal(o[2].result, AUTH_OK);
	assert_int_equal(stats(f).hash_runs, 1);
	assert_int_equal(stats(f).in_flight, 0);
}

struct many {
	struct outcome o[AUTH_VAULT_SLOTS + 6];
};

static bool are_all_answered(struct fixture *f, void *arg)
{
	struct many *m = arg;

	(void) f;
	for (size_t i = 0; i < ARRAY_LEN(m->o); i++)
		if (m->o[i].calls == 0)
			return false;
	return true;
}

/* More checks in flight than the password vault has slots: the rest get
 * sodium_malloc, and every one is answered. */
static void test_more_checks_in_flight_than_vault_slots(void **state)
{
	struct fixture *f = *state;
	struct auth_request req = request("198.51.100.80", "PLAIN", "alice@example.test");
	static struct many m;
	struct outcome o;

	o = login(f, "198.51.100.80", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < ARRAY_LEN(m.o); i++)
		assert_true(auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done,
						&m.o[i]) != 0);
	assert_int_equal(stats(f).in_flight, ARRAY_LEN(m.o));
	assert_true(run_until(f, are_all_answered, &m, WAIT_MS));
	for (size_t i = 0; i < ARRAY_LEN(m.o); i++) {
		assert_int_equal(m.o[i].calls, 1);
		assert_int_equal(m.o[i].result, AUTH_OK);
	}
	assert_int_equal(stats(f).cache_hits, ARRAY_LEN(m.o));
	assert_int_equal(stats(f).hash_runs, 1);
	/* And again, with every slot back. */
	o = login(f, "198.51.100.80", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
}

static void test_passwd_elsewhere_invalidates(void **state)
{
	struct fixture *f = *state;
	char secret[AUTH_SECRET_MAX];
	struct error err;
	struct outcome o;

	o = login(f, "198.51.100.2", "grace@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	o = login(f, "198.51.100.2", "grace@example.test", PW_ALICE);
	assert_int_equal(stats(f).cache_hits, 1);

	/* `postgate user passwd` in another process. */
	assert_int_equal(
		auth_secret_make_argon2id(PW_OTHER, strlen(PW_OTHER), secret, sizeof(secret), &err),
		0);
	assert_int_equal(store_user_set_secrets(world.admin, "grace@example.test", secret, "", NULL,
						NULL, &err),
			 0);

	o = login(f, "198.51.100.2", "grace@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_FAILED);
	assert_int_equal(stats(f).cache_hits, 1);
	assert_int_equal(stats(f).hash_runs, 2);
	o = login(f, "198.51.100.2", "grace@example.test", PW_OTHER);
	assert_int_equal(o.result, AUTH_OK);
	o = login(f, "198.51.100.2", "grace@example.test", PW_OTHER);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).cache_hits, 2);
	/* The old password stays refused, cache or not. */
	o = login(f, "198.51.100.2", "grace@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_FAILED);
}

static void test_disable_elsewhere_invalidates(void **state)
{
	struct fixture *f = *state;
	struct error err;
	struct outcome o;
	struct capture cap;
	char *log;

	o = login(f, "198.51.100.3", "heidi@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).cache_entries, 1);

	assert_int_equal(store_user_set_enabled(world.admin, "heidi@example.test", false, &err), 0);
	capture_begin(&cap);
	o = login(f, "198.51.100.3", "heidi@example.test", PW_ALICE);
	log = capture_end(&cap);
	assert_int_equal(o.result, AUTH_FAILED);
	assert_non_null(strstr(log, "user=heidi@example.test reason=disabled"));
	free(log);
	assert_int_equal(stats(f).cache_hits, 0);
	assert_int_equal(stats(f).cache_entries, 0);

	assert_int_equal(store_user_set_enabled(world.admin, "heidi@example.test", true, &err), 0);
	o = login(f, "198.51.100.3", "heidi@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).hash_runs, 3);
}

static void test_failure_delay_and_success_not_delayed(void **state)
{
	struct fixture *f = *state;
	struct outcome o;
	struct capture cap;
	char wrong[32], *log;
	int64_t delayed_ms;

	for (int i = 1; i <= AUTH_THROTTLE_ADDRESS_FREE; i++) {
		snprintf(wrong, sizeof(wrong), "wrong %d", i);
		o = login(f, "203.0.113.9", "frank@example.test", wrong);
		assert_int_equal(o.result, AUTH_FAILED);
	}
	capture_begin(&cap);
	o = login(f, "203.0.113.9", "frank@example.test", "wrong 4");
	log = capture_end(&cap);
	assert_int_equal(o.result, AUTH_FAILED);
	assert_true(o.answered_ms - o.started_ms >= AUTH_THROTTLE_DELAY_FIRST_MS - TIMER_SLACK_MS);
	delayed_ms = o.answered_ms - o.started_ms; /* one hash and the delay */
	assert_non_null(strstr(log, "reason=bad-password delay_ms=1000"));
	free(log);
	/* The same wrong password again is a repeat: not counted, no longer wait. */
	capture_begin(&cap);
	o = login(f, "203.0.113.9", "frank@example.test", "wrong 4");
	log = capture_end(&cap);
	assert_non_null(strstr(log, "reason=bad-password delay_ms=1000"));
	free(log);
	/* The right password is answered without a delay. */
	o = login(f, "203.0.113.9", "frank@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	/* One hash, no delay: quicker than the delayed failure, compared
	 * within this run (the machine may be slow, but not a second slower
	 * between two consecutive hashes). */
	assert_true(o.answered_ms - o.started_ms < delayed_ms);
	/* ...and took frank's failures back: the next wrong one is not delayed. */
	capture_begin(&cap);
	o = login(f, "203.0.113.9", "frank@example.test", "wrong 5");
	log = capture_end(&cap);
	assert_non_null(strstr(log, "reason=bad-password delay_ms=0"));
	free(log);
}

/* Over-long passwords: failures the loop decides at once, no hash. */
static void fail_fast(struct fixture *f, const char *client, const char *user, unsigned count)
{
	char password[AUTH_PASSWORD_MAX + 16];
	struct auth_request req = request(client, "LOGIN", user);
	struct outcome o;

	memset(password, 'x', sizeof(password));
	for (unsigned n = 0; n < count; n++) {
		uint64_t ticket;

		memset(&o, 0, sizeof(o));
		snprintf(password, 16, "%010u", n); /* distinct: each counts */
		password[10] = 'x';
		ticket = auth_check_password(f->svc, &req, password, sizeof(password), on_done, &o);
		assert_true(ticket != 0);
		/* Decided and counted already; the delayed reply is not wanted. */
		auth_cancel(f->svc, ticket);
	}
	assert_int_equal(o.calls, 0);
}

static void test_throttled_without_a_check(void **state)
{
	struct fixture *f = *state;
	struct auth_request req = request("203.0.113.30", "PLAIN", "alice@example.test");
	struct auth_request scram = request("203.0.113.30", "SCRAM-SHA-256", "alice@example.test");
	struct outcome o, s;
	struct capture cap;
	uint64_t hashes;
	char *log;

	fail_fast(f, "203.0.113.30", "alice@example.test", AUTH_THROTTLE_ADDRESS_REFUSE);
	assert_int_equal(stats(f).failed, AUTH_THROTTLE_ADDRESS_REFUSE);
	hashes = stats(f).hash_runs;

	memset(&o, 0, sizeof(o));
	memset(&s, 0, sizeof(s));
	capture_begin(&cap);
	o.started_ms = real_ms();
	assert_true(auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done, &o) !=
		    0);
	assert_true(auth_fetch_secret(f->svc, &scram, AUTH_SECRET_SCRAM_SHA_256, on_secret, &s) !=
		    0);
	log = capture_end(&cap);
	assert_non_null(strstr(log, "client=203.0.113.30 mech=PLAIN user=alice@example.test "
				    "reason=throttled delay_ms=15000"));
	assert_non_null(strstr(log, "mech=SCRAM-SHA-256 user=alice@example.test reason=throttled"));
	free(log);
	assert_true(run_until(f, is_answered, &o, WAIT_MS));
	assert_true(run_until(f, is_answered, &s, WAIT_MS));
	assert_int_equal(o.result, AUTH_THROTTLED);
	assert_true(o.answered_ms - o.started_ms >= AUTH_THROTTLE_DELAY_MAX_MS - TIMER_SLACK_MS);
	assert_int_equal(s.result, AUTH_THROTTLED);
	assert_false(s.has_secret);
	assert_int_equal(stats(f).throttled, 2);
	assert_int_equal(stats(f).hash_runs, hashes);

	/* Another address is not affected; ten minutes later neither is this one. */
	o = login(f, "203.0.113.31", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	f->fake_now_ms += AUTH_THROTTLE_WINDOW_MS;
	o = login(f, "203.0.113.30", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
}

static void test_cancel_means_no_callback(void **state)
{
	struct fixture *f = *state;
	struct auth_request req = request("198.51.100.50", "PLAIN", "alice@example.test");
	struct outcome o, late;
	uint64_t ticket, want;

	/* Cancelled while the worker checks: the check completes and counts,
	 * the callback never comes. */
	memset(&o, 0, sizeof(o));
	ticket = auth_check_password(f->svc, &req, PW_OTHER, strlen(PW_OTHER), on_done, &o);
	auth_cancel(f->svc, ticket);
	want = 1;
	assert_true(run_until(f, has_concluded, &want, WAIT_MS));
	assert_true(run_until(f, is_idle, NULL, WAIT_MS));
	run_for(f, 200);
	assert_int_equal(o.calls, 0);
	assert_int_equal(stats(f).failed, 1);
	assert_int_equal(stats(f).cancelled, 1);

	/* Cancelled while its failure delay runs. */
	fail_fast(f, "198.51.100.51", "alice@example.test", AUTH_THROTTLE_ADDRESS_FREE);
	memset(&late, 0, sizeof(late));
	req = request("198.51.100.51", "PLAIN", "alice@example.test");
	ticket = auth_check_password(f->svc, &req, PW_OTHER, strlen(PW_OTHER), on_done, &late);
	want = 2 + AUTH_THROTTLE_ADDRESS_FREE;
	assert_true(run_until(f, has_concluded, &want, WAIT_MS));
	assert_int_equal(stats(f).in_flight, 1); /* waiting for its 1 s */
	auth_cancel(f->svc, ticket);
	assert_int_equal(stats(f).in_flight, 0);
	run_for(f, AUTH_THROTTLE_DELAY_FIRST_MS + 300);
	assert_int_equal(late.calls, 0);

	/* Cancelling twice, or a ticket that never was, does nothing. */
	auth_cancel(f->svc, ticket);
	auth_cancel(f->svc, 987654321);
}

static void test_free_with_work_in_flight(void **state)
{
	struct fixture *f = *state;
	struct auth_request req = request("198.51.100.60", "PLAIN", "alice@example.test");
	struct outcome o[4];

	memset(o, 0, sizeof(o));
	for (int i = 0; i < 4; i++)
		assert_true(auth_check_password(f->svc, &req, PW_OTHER, strlen(PW_OTHER), on_done,
						&o[i]) != 0);
	/* The service goes first; its jobs finish in the pool's free. */
	auth_service_free(f->svc);
	f->svc = NULL;
	worker_pool_free(f->pool);
	f->pool = NULL;
	for (int i = 0; i < 4; i++)
		assert_int_equal(o[i].calls, 0);
}

static void test_store_failure_is_tempfail(void **state)
{
	struct fixture *f = *state;
	struct outcome o, s;
	struct capture cap;
	struct auth_request scram = request("192.0.2.50", "SCRAM-SHA-256", "alice@example.test");
	char *log;

	o = login(f, "192.0.2.50", "alice@example.test", PW_ALICE); /* cached now */
	assert_int_equal(o.result, AUTH_OK);
	store_break();
	capture_begin(&cap);
	o = login(f, "192.0.2.50", "alice@example.test", PW_ALICE);
	memset(&s, 0, sizeof(s));
	assert_true(auth_fetch_secret(f->svc, &scram, AUTH_SECRET_SCRAM_SHA_256, on_secret, &s) !=
		    0);
	assert_true(run_until(f, is_answered, &s, WAIT_MS));
	log = capture_end(&cap);
	store_mend();
	/* Even a cached password is not accepted without the store's word. */
	assert_int_equal(o.result, AUTH_TEMPFAIL);
	assert_int_equal(s.result, AUTH_TEMPFAIL);
	assert_false(s.has_secret);
	assert_int_equal(stats(f).tempfail, 2);
	if (strstr(log,
		   "warning sid=s0000test1 auth tempfail listener=submission client=192.0.2.50 "
		   "mech=PLAIN user=alice@example.test reason=store error=") == NULL)
		fail_msg("no tempfail line in:\n%s", log);
	assert_null(strstr(log, "auth failed"));
	free(log);
	/* A temporary failure is no failed login: nothing to throttle. */
	assert_int_equal(stats(f).failed, 0);
	o = login(f, "192.0.2.50", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	assert_int_equal(stats(f).cache_hits, 1);
}

/* Fetch a secret of kind and wait for it. */
static struct outcome fetch_kind(struct fixture *f, enum auth_secret_kind kind, const char *client,
				 const char *user, uint64_t *ticket_out)
{
	struct auth_request req =
		request(client, kind == AUTH_SECRET_CRAM_MD5 ? "CRAM-MD5" : "SCRAM-SHA-256", user);
	struct outcome o;

	memset(&o, 0, sizeof(o));
	*ticket_out = auth_fetch_secret(f->svc, &req, kind, on_secret, &o);
	assert_true(*ticket_out != 0);
	assert_int_equal(o.calls, 0);
	assert_true(run_until(f, is_answered, &o, WAIT_MS));
	return o;
}

/* Fetch a SCRAM secret and wait for it. */
static struct outcome fetch(struct fixture *f, const char *client, const char *user,
			    uint64_t *ticket_out)
{
	return fetch_kind(f, AUTH_SECRET_SCRAM_SHA_256, client, user, ticket_out);
}

static struct outcome report(struct fixture *f, uint64_t ticket, bool is_valid)
{
	struct outcome o;

	memset(&o, 0, sizeof(o));
	assert_int_equal(auth_report(f->svc, ticket, is_valid, on_done, &o), ticket);
	assert_int_equal(o.calls, 0);
	assert_true(run_until(f, is_answered, &o, WAIT_MS));
	return o;
}

static void salt_of(const char *secret, unsigned char salt[AUTH_SCRAM_SALT_MAX], size_t *len)
{
	unsigned iterations;
	unsigned char stored[AUTH_SCRAM_KEY_LEN], server[AUTH_SCRAM_KEY_LEN];

	assert_int_equal(auth_secret_parse_scram(secret, &iterations, salt, AUTH_SCRAM_SALT_MAX,
						 len, stored, server),
			 0);
	assert_int_equal(iterations, AUTH_SCRAM_ITERATIONS_DEFAULT);
}

static const struct decoy_case {
	const char *name, *user, *want_reason;
} decoy_cases[] = {
	{ "unknown user", "mallory@example.test", "user=mallory@example.test reason=unknown-user" },
	{ "disabled user", "carol@example.test", "user=carol@example.test reason=disabled" },
	{ "user without SCRAM secret", "frank@example.test",
	  "user=frank@example.test reason=no-secret" },
	{ "malformed name", "frank", "user=frank reason=malformed" },
};

static void test_scram_secrets_and_decoys(void **state)
{
	struct fixture *f = *state;
	struct store_user dave;
	struct error err;
	struct outcome o, r;
	struct capture cap;
	uint64_t ticket, other;
	unsigned char salt1[AUTH_SCRAM_SALT_MAX], salt2[AUTH_SCRAM_SALT_MAX];
	size_t len1, len2;
	char *log;

	/* A real secret, a valid proof. */
	assert_int_equal(store_user_get(world.admin, "dave@example.test", &dave, &err), 0);
	o = fetch(f, "192.0.2.70", "Dave@Example.Test", &ticket);
	assert_int_equal(o.result, AUTH_OK);
	assert_string_equal(o.secret, dave.secret_scram);
	assert_string_equal(o.user, "dave@example.test");
	capture_begin(&cap);
	r = report(f, ticket, true);
	log = capture_end(&cap);
	assert_int_equal(r.result, AUTH_OK);
	assert_string_equal(r.user, "dave@example.test");
	assert_non_null(strstr(log, "auth ok listener=submission client=192.0.2.70 "
				    "mech=SCRAM-SHA-256 user=dave@example.test cached=no"));
	free(log);
	/* The ticket is over: a second report is refused. */
	assert_int_equal(auth_report(f->svc, ticket, true, on_done, &r), 0);

	/* A real secret, a wrong proof. */
	o = fetch(f, "192.0.2.71", "dave@example.test", &ticket);
	capture_begin(&cap);
	r = report(f, ticket, false);
	log = capture_end(&cap);
	assert_int_equal(r.result, AUTH_FAILED);
	assert_non_null(strstr(log, "user=dave@example.test reason=bad-password delay_ms=0"));
	free(log);

	/* Decoys: look real, stay the same per name, never succeed. */
	for (size_t i = 0; i < ARRAY_LEN(decoy_cases); i++) {
		const struct decoy_case *c = &decoy_cases[i];

		print_message("case: %s\n", c->name);
		o = fetch(f, "192.0.2.72", c->user, &ticket);
		assert_int_equal(o.result, AUTH_OK);
		assert_true(o.has_secret);
		assert_true(o.user[0] != '\0');
		salt_of(o.secret, salt1, &len1);
		assert_int_equal(len1, AUTH_SCRAM_SALT_LEN);
		capture_begin(&cap);
		r = report(f, ticket, true); /* a mechanism that claims a match */
		log = capture_end(&cap);
		assert_int_equal(r.result, AUTH_FAILED);
		if (strstr(log, c->want_reason) == NULL)
			fail_msg("log has no \"%s\":\n%s", c->want_reason, log);
		free(log);
		o = fetch(f, "192.0.2.72", c->user, &ticket);
		salt_of(o.secret, salt2, &len2);
		assert_memory_equal(salt1, salt2, len1);
		auth_cancel(f->svc, ticket);
	}
	o = fetch(f, "192.0.2.72", "mallory@example.test", &ticket);
	salt_of(o.secret, salt1, &len1);
	o = fetch(f, "192.0.2.72", "oscar@example.test", &other);
	salt_of(o.secret, salt2, &len2);
	assert_memory_not_equal(salt1, salt2, len1);
	/* A real user's salt does not change with the case of the name, and
	 * neither does a decoy's. */
	auth_cancel(f->svc, other);
	o = fetch(f, "192.0.2.72", "MALLORY@example.test", &other);
	salt_of(o.secret, salt2, &len2);
	assert_memory_equal(salt1, salt2, len1);

	/* An open fetch can be cancelled; then it cannot be reported. */
	auth_cancel(f->svc, ticket);
	assert_int_equal(auth_report(f->svc, ticket, false, on_done, &r), 0);
	auth_cancel(f->svc, other);
	assert_int_equal(stats(f).in_flight, 0);
	/* A password ticket is not a fetch. */
	{
		struct auth_request req = request("192.0.2.73", "PLAIN", "alice@example.test");
		struct outcome p;

		memset(&p, 0, sizeof(p));
		ticket = auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done, &p);
		assert_int_equal(auth_report(f->svc, ticket, true, on_done, &r), 0);
		assert_true(run_until(f, is_answered, &p, WAIT_MS));
	}
}

static const struct decoy_case cram_decoy_cases[] = {
	{ "unknown user", "mallory@example.test", "user=mallory@example.test reason=unknown-user" },
	{ "disabled user", "carol@example.test", "user=carol@example.test reason=disabled" },
	{ "user without a CRAM-MD5 secret", "dave@example.test",
	  "user=dave@example.test reason=no-secret" },
	{ "malformed name", "frank", "user=frank reason=malformed" },
};

struct missing_walk {
	size_t count;
	char first[ADDRESS_MAX + 1];
	size_t stop_after; /* 0: never stop */
};

static int missing_one(void *ctx, const char *address)
{
	struct missing_walk *walk = ctx;

	if (walk->count++ == 0)
		snprintf(walk->first, sizeof(walk->first), "%s", address);
	return walk->stop_after != 0 && walk->count == walk->stop_after ? 7 : 0;
}

static void test_cram_md5_secrets_and_decoys(void **state)
{
	struct fixture *f = *state;
	struct store_user alice;
	struct error err;
	struct outcome o, r;
	struct capture cap;
	struct missing_walk walk;
	uint64_t ticket;
	size_t missing = 0;
	char *log;

	print_message("case: a real secret, a matching response\n");
	assert_int_equal(store_user_get(world.admin, "alice@example.test", &alice, &err), 0);
	assert_true(auth_secret_is_cram_md5(alice.secret_cram_md5));
	o = fetch_kind(f, AUTH_SECRET_CRAM_MD5, "192.0.2.80", "ALICE@example.test", &ticket);
	assert_int_equal(o.result, AUTH_OK);
	assert_string_equal(o.secret, alice.secret_cram_md5);
	assert_string_equal(o.user, "alice@example.test");
	capture_begin(&cap);
	r = report(f, ticket, true);
	log = capture_end(&cap);
	assert_int_equal(r.result, AUTH_OK);
	assert_non_null(strstr(log, "auth ok listener=submission client=192.0.2.80 "
				    "mech=CRAM-MD5 user=alice@example.test"));
	free(log);

	print_message("case: a real secret, a wrong response\n");
	o = fetch_kind(f, AUTH_SECRET_CRAM_MD5, "192.0.2.81", "alice@example.test", &ticket);
	capture_begin(&cap);
	r = report(f, ticket, false);
	log = capture_end(&cap);
	assert_int_equal(r.result, AUTH_FAILED);
	assert_non_null(strstr(log, "mech=CRAM-MD5 user=alice@example.test reason=bad-password"));
	free(log);

	/* Decoys have the real form (the client cannot tell) and never pass. */
	for (size_t i = 0; i < ARRAY_LEN(cram_decoy_cases); i++) {
		const struct decoy_case *c = &cram_decoy_cases[i];

		print_message("case: decoy for %s\n", c->name);
		o = fetch_kind(f, AUTH_SECRET_CRAM_MD5, "192.0.2.82", c->user, &ticket);
		assert_int_equal(o.result, AUTH_OK);
		assert_true(auth_secret_is_cram_md5(o.secret));
		capture_begin(&cap);
		r = report(f, ticket, true);
		log = capture_end(&cap);
		assert_int_equal(r.result, AUTH_FAILED);
		if (strstr(log, c->want_reason) == NULL)
			fail_msg("log has no \"%s\":\n%s", c->want_reason, log);
		free(log);
	}

	print_message("case: accounts without the secret\n");
	memset(&walk, 0, sizeof(walk));
	assert_int_equal(auth_cram_md5_missing(world.admin, missing_one, &walk, &missing, &err), 0);
	assert_int_equal(missing, ARRAY_LEN(users) - 1); /* alice alone has one */
	assert_int_equal(walk.count, missing);
	assert_string_equal(walk.first, "carol@example.test"); /* disabled ones count too */
	assert_int_equal(auth_cram_md5_missing(world.admin, NULL, NULL, &missing, &err), 0);
	assert_int_equal(missing, ARRAY_LEN(users) - 1);
	memset(&walk, 0, sizeof(walk));
	walk.stop_after = 2;
	assert_int_equal(auth_cram_md5_missing(world.admin, missing_one, &walk, &missing, &err), 0);
	assert_int_equal(walk.count, 2);
}

/*
 * The lines tests/e2e/test_fail2ban.py hands to fail2ban-regex: failures
 * from 192.0.2.7 (3), 2001:db8::77 (1), 198.51.100.23 (1), 203.0.113.45
 * (1, a name built to look like another client=), 198.51.100.77 (1, SCRAM),
 * and 203.0.113.99 (30 failures and 1 refusal); successes from 192.0.2.99
 * and a store failure from 192.0.2.50, which must not match.
 */
static void test_log_lines_for_fail2ban(void **state)
{
	struct fixture *f = *state;
	struct outcome o, r;
	struct auth_request req;
	uint64_t ticket;

	o = login(f, "192.0.2.99", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);
	o = login(f, "192.0.2.7", "alice@example.test", "guess 1");
	o = login(f, "192.0.2.7", "alice@example.test", "guess 2");
	o = login(f, "192.0.2.7", "root@example.test", "guess 3");
	assert_int_equal(o.result, AUTH_FAILED);
	o = login(f, "2001:db8::77", "alice@example.test", "guess 4");
	o = login(f, "198.51.100.23", "carol@example.test", PW_ALICE);
	o = login(f, "203.0.113.45", "\"a b\" client=192.0.2.200 ", "guess 5");
	assert_int_equal(o.result, AUTH_FAILED);
	o = fetch(f, "198.51.100.77", "dave@example.test", &ticket);
	r = report(f, ticket, false);
	assert_int_equal(r.result, AUTH_FAILED);
	o = login(f, "192.0.2.99", "alice@example.test", PW_ALICE);
	assert_int_equal(o.result, AUTH_OK);

	store_break();
	o = login(f, "192.0.2.50", "frank@example.test", PW_ALICE);
	store_mend();
	assert_int_equal(o.result, AUTH_TEMPFAIL);

	fail_fast(f, "203.0.113.99", "alice@example.test", AUTH_THROTTLE_ADDRESS_REFUSE);
	req = request("203.0.113.99", "PLAIN", "alice@example.test");
	memset(&o, 0, sizeof(o));
	ticket = auth_check_password(f->svc, &req, PW_ALICE, strlen(PW_ALICE), on_done, &o);
	auth_cancel(f->svc, ticket);
	assert_int_equal(stats(f).throttled, 1);
	assert_int_equal(stats(f).failed, 7 + AUTH_THROTTLE_ADDRESS_REFUSE);
}

int main(void)
{
	const char *filter = getenv("AUTH_SERVICE_TEST_FILTER");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_results_and_log_lines, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_costs_no_hash, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_hashes_on_their_own_threads,
						fixture_setup_hash_pool, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_same_password_one_hash,
						fixture_setup_hash_pool, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_waiting, fixture_setup_hash_pool,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_more_checks_in_flight_than_vault_slots,
						fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_passwd_elsewhere_invalidates, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_disable_elsewhere_invalidates, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_failure_delay_and_success_not_delayed,
						fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_throttled_without_a_check, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_means_no_callback, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_free_with_work_in_flight, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_store_failure_is_tempfail, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_scram_secrets_and_decoys, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_cram_md5_secrets_and_decoys, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_log_lines_for_fail2ban, fixture_setup,
						fixture_teardown),
	};

	log_open("postgated", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	if (filter != NULL)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
