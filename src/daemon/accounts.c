/*
 * accounts: what the daemon must know about the accounts store as a whole.
 * Today two facts: whether every account has a CRAM-MD5 secret, without
 * which no listener may advertise CRAM-MD5 (Eudora picks it whenever it is
 * offered and never falls back; docs/auth.md), and whether every account
 * has the {PLAIN} secret APOP needs (a POP3 client that uses APOP when the
 * greeting offers it; decision 0100). Checked at start, before the loop
 * runs, and again on each reload, on a worker.
 */
#include <stdlib.h>

#include "auth/service.h"
#include "core/log.h"
#include "daemon/internal.h"

struct cram_check {
	struct daemon *daemon;
	bool is_cram_wanted, is_apop_wanted;
	size_t missing, missing_plain;
	int rc;
	struct error err;
};

static void cram_check_run(void *arg)
{
	struct cram_check *check = arg;
	struct daemon *daemon = check->daemon;

	pthread_mutex_lock(&daemon->store_lock);
	check->rc = 0;
	if (check->is_cram_wanted)
		check->rc = auth_cram_md5_missing(daemon->store, NULL, NULL, &check->missing,
						  &check->err);
	if (check->rc == 0 && check->is_apop_wanted)
		check->rc = auth_plain_missing(daemon->store, NULL, NULL, &check->missing_plain,
					       &check->err);
	pthread_mutex_unlock(&daemon->store_lock);
}

static void cram_check_apply(struct cram_check *check)
{
	struct daemon *daemon = check->daemon;

	if (check->rc < 0) {
		/* Keep what was decided before: the store may be busy a moment. */
		log_warning("auth secrets check failed: %s; cram_md5 offered=%s apop offered=%s",
			    check->err.message, daemon->is_cram_md5_ready ? "yes" : "no",
			    daemon->is_apop_ready ? "yes" : "no");
		return;
	}
	daemon->is_cram_md5_ready = check->is_cram_wanted && check->missing == 0;
	daemon->is_apop_ready = check->is_apop_wanted && check->missing_plain == 0;
	if (check->is_cram_wanted && daemon->is_cram_md5_ready)
		log_info("auth cram_md5 offered=yes");
	else if (check->is_cram_wanted)
		log_warning("auth cram_md5 offered=no accounts_without_secret=%zu (postgate config "
			    "check lists them; postgate user passwd stores the secret)",
			    check->missing);
	if (check->is_apop_wanted && daemon->is_apop_ready)
		log_info("auth apop offered=yes");
	else if (check->is_apop_wanted)
		log_warning("auth apop offered=no accounts_without_secret=%zu (postgate config "
			    "check lists them; postgate user passwd stores the secret)",
			    check->missing_plain);
}

static void cram_check_done(void *arg)
{
	struct cram_check *check = arg;

	cram_check_apply(check);
	free(check);
}

void daemon_cram_md5_check(struct daemon *daemon, bool is_blocking)
{
	struct cram_check *check;

	if (!config_cram_md5_wanted(&daemon->config) && !config_apop_wanted(&daemon->config)) {
		daemon->is_cram_md5_ready = false;
		daemon->is_apop_ready = false;
		return;
	}
	check = calloc(1, sizeof(*check));
	if (check == NULL) {
		log_error("auth secrets check: out of memory");
		return;
	}
	check->daemon = daemon;
	check->is_cram_wanted = config_cram_md5_wanted(&daemon->config);
	check->is_apop_wanted = config_apop_wanted(&daemon->config);
	if (is_blocking) {
		cram_check_run(check);
		cram_check_done(check);
		return;
	}
	if (worker_pool_submit(daemon->workers, cram_check_run, cram_check_done, check) < 0) {
		log_error("auth secrets check: cannot start a job");
		free(check);
	}
}
