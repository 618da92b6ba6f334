/*
 * config: `postgate config check` — does the configuration work? Loads it
 * (a syntax or value error is FILE:LINE), then checks what loading alone
 * cannot: the TLS certificate and key load and match, the accounts store
 * opens, and, when run as root, the daemon's user exists and is not root;
 * where a listener has cram_md5 = yes, it lists the accounts without a
 * CRAM-MD5 secret (a warning: the daemon then does not advertise CRAM-MD5);
 * and it warns about each server name clients use that the default
 * certificate does not cover (clients without SNI get only that one).
 * The effective settings go to stdout (a valid configuration file), every
 * problem to stderr. Changes nothing on disk.
 */
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "auth/service.h"
#include "cli/internal.h"
#include "core/span.h"
#include "tls/cert.h"
#include "tls/context.h"

static void report(const char *what, const struct error *problem)
{
	fprintf(stderr, "postgate: %s: %s\n", what, problem->message);
}

static int report_no_cram(void *ctx, const char *address)
{
	(void) ctx;
	fprintf(stderr, "postgate: cram_md5:   %s\n", address);
	return 0;
}

/* The accounts that keep CRAM-MD5 from being advertised. */
static void check_cram_md5(struct store *store)
{
	struct error problem;
	size_t missing = 0;

	error_clear(&problem);
	fprintf(stderr, "postgate: cram_md5: accounts without a CRAM-MD5 secret:\n");
	if (auth_cram_md5_missing(store, report_no_cram, NULL, &missing, &problem) < 0) {
		report("cram_md5", &problem);
		return;
	}
	if (missing == 0) {
		fprintf(stderr, "postgate: cram_md5:   none: CRAM-MD5 is advertised\n");
		return;
	}
	fprintf(stderr,
		"postgate: cram_md5: warning: %zu account%s without it: CRAM-MD5 is not "
		"advertised until each has one (postgate user passwd ADDRESS, then reload)\n",
		missing, missing == 1 ? "" : "s");
}

struct cover_walk {
	const char *cert_path;
	size_t missing;
	struct error *problem;
};

static int check_cover(void *ctx, const char *name)
{
	struct cover_walk *walk = ctx;
	int rc = tls_cert_file_covers(walk->cert_path, name, walk->problem);

	if (rc < 0)
		return 1;
	if (rc == 0) {
		fprintf(stderr,
			"postgate: tls_cert: warning: %s does not cover %s (clients without SNI "
			"get this certificate)\n",
			walk->cert_path, name);
		walk->missing++;
	}
	return 0;
}

/* Every server name the customers are given, against the default certificate. */
static void check_names(struct cli *cli, struct store *store)
{
	struct error problem;
	struct cover_walk walk = { cli->config->tls_cert, 0, &problem };

	error_clear(&problem);
	cli->store = store;
	if (cli_tls_names_each(cli, check_cover, &walk, &problem) != 0 &&
	    problem.kind != ERROR_NONE)
		report("tls_cert", &problem);
	cli->store = NULL;
}

static int report_no_plain(void *ctx, const char *address)
{
	(void) ctx;
	fprintf(stderr, "postgate: apop:   %s\n", address);
	return 0;
}

/* The accounts that keep APOP from being offered. */
static void check_apop(struct store *store)
{
	struct error problem;
	size_t missing = 0;

	error_clear(&problem);
	fprintf(stderr, "postgate: apop: accounts without the {PLAIN} secret APOP needs:\n");
	if (auth_plain_missing(store, report_no_plain, NULL, &missing, &problem) < 0) {
		report("apop", &problem);
		return;
	}
	if (missing == 0) {
		fprintf(stderr, "postgate: apop:   none: APOP is offered\n");
		return;
	}
	fprintf(stderr,
		"postgate: apop: warning: %zu account%s without it: APOP is not offered until "
		"each has one (postgate user passwd ADDRESS, then reload)\n",
		missing, missing == 1 ? "" : "s");
}

static int do_check(struct cli *cli, const struct cli_args *args, struct error *err)
{
	const struct config *config = cli->config;
	struct error problem;
	struct store *store = NULL;
	size_t problem_count = 0;
	bool tls_problem = false;

	(void) args;
	config_print(config, cli->out);

	error_clear(&problem);
	if (tls_cert_check_pair(config->tls_cert, config->tls_key, &problem) < 0) {
		report("tls_cert/tls_key", &problem);
		problem_count++;
		tls_problem = true;
	}
	/* The named certificates load as the daemon would load them. */
	if (!tls_problem && config->tls_cert_dir[0] != '\0') {
		struct tls_context *ctx = NULL;
		size_t names = 0;

		error_clear(&problem);
		if (tls_context_new(config->tls_cert, config->tls_key, TLS_PROFILE_MODERN, &ctx,
				    &problem) < 0 ||
		    tls_context_load_names(ctx, config->tls_cert_dir, &names, &problem) < 0) {
			report("tls_cert_dir", &problem);
			problem_count++;
		}
		tls_context_free(ctx);
	}

	error_clear(&problem);
	if (store_open(config->accounts_db, false, &store, &problem) < 0) {
		if (strstr(problem.message, config->accounts_db) != NULL) {
			report("accounts_db", &problem);
		} else {
			fprintf(stderr, "postgate: accounts_db: cannot open %s: %s\n",
				config->accounts_db, problem.message);
		}
		problem_count++;
	} else {
		if (config_cram_md5_wanted(config))
			check_cram_md5(store);
		if (config_apop_wanted(config))
			check_apop(store);
		if (!tls_problem)
			check_names(cli, store);
	}
	store_close(store);

	/* As root the daemon drops to `user` before reading from the network. */
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(config->user);

		if (pw == NULL) {
			fprintf(stderr, "postgate: user: no such user %s\n", config->user);
			problem_count++;
		} else if (pw->pw_uid == 0) {
			fprintf(stderr,
				"postgate: user: %s is root; postgated must drop to an "
				"unprivileged user\n",
				config->user);
			problem_count++;
		}
	}

	if (problem_count > 0)
		return error_set(err, ERROR_CONFIG, "%s: %zu problem%s found", cli->config_path,
				 problem_count, problem_count == 1 ? "" : "s");
	fprintf(stderr, "configuration %s is valid\n", cli->config_path);
	return 0;
}

static const struct cli_option no_options[] = {
	{ NULL, false },
};

static const struct cli_verb config_verbs[] = {
	{ "check", "",
	  "check the configuration, certificate, key, store and user; print the settings", 0, 0,
	  no_options, CLI_NEEDS_CONFIG, do_check },
};

const struct cli_command cli_config_command = { "config", config_verbs, ARRAY_LEN(config_verbs) };
