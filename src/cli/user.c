/*
 * user: `postgate user add|passwd|del|list|show|disable|enable` — the
 * mailboxes whose complete address is also the login name for SMTP AUTH and
 * POP3. Passwords come from stdin or the terminal, never from the command
 * line; only the argon2id and SCRAM-SHA-256 secrets made from them reach the
 * store — and the CRAM-MD5 secret while a listener offers CRAM-MD5
 * (config_cram_md5_wanted; it is removed again by a passwd without) — and
 * every copy of the password is wiped. `show` and `list` name the
 * secret schemes a user has, never the secrets.
 */
#include <string.h>

#include <sodium.h>

#include "auth/secret.h"
#include "cli/internal.h"
#include "core/span.h"
#include "sasl/sasl.h"

/* The secrets made from a new password; wiped by the caller. */
struct user_secrets {
	char argon2id[AUTH_SECRET_MAX];
	char scram[AUTH_SECRET_MAX];
	char cram_md5[SASL_CRAM_MD5_SECRET_MAX]; /* "" unless CRAM-MD5 is wanted */
	char plain[AUTH_SECRET_MAX];		 /* "{PLAIN}..." for APOP, else "" */
};

static int read_secrets(const struct cli *cli, const struct cli_args *args, const char *address,
			struct user_secrets *secrets_out, struct error *err)
{
	char password[AUTH_PASSWORD_MAX + 1];
	size_t password_len = 0;
	int rc;

	if (cli_password_read(cli_args_has(args, "password-stdin"), address, password,
			      &password_len, err) < 0)
		return -1;
	rc = auth_secret_make_argon2id(password, password_len, secrets_out->argon2id,
				       sizeof(secrets_out->argon2id), err);
	if (rc == 0)
		rc = auth_secret_make_scram(password, password_len, AUTH_SCRAM_ITERATIONS_DEFAULT,
					    secrets_out->scram, sizeof(secrets_out->scram), err);
	secrets_out->cram_md5[0] = '\0';
	if (rc == 0 && config_cram_md5_wanted(cli->config))
		rc = sasl_cram_md5_secret_make(password, password_len, secrets_out->cram_md5,
					       sizeof(secrets_out->cram_md5), err);
	secrets_out->plain[0] = '\0';
	if (rc == 0 && config_apop_wanted(cli->config)) {
		/* APOP needs the password itself (decision 0100). */
		if (password_len + 8 > sizeof(secrets_out->plain))
			rc = error_set(err, ERROR_DATA, "the password is too long for APOP");
		else
			snprintf(secrets_out->plain, sizeof(secrets_out->plain), "{PLAIN}%.*s",
				 (int) password_len, password);
	}
	sodium_memzero(password, sizeof(password));
	return rc;
}

/* The domain must be hosted here before anything else is asked. */
static int check_domain(struct cli *cli, const char *address, struct error *err)
{
	char domain_name[ADDRESS_DOMAIN_MAX + 1];
	struct store_domain domain;

	if (!span_copy_cstr(store_address_domain(address), domain_name, sizeof(domain_name)))
		return error_set(err, ERROR_DATA, "bad address %s", address);
	if (store_domain_get(cli->store, domain_name, &domain, err) < 0) {
		if (err->kind == ERROR_NOT_FOUND)
			return error_set(
				err, ERROR_NOT_FOUND,
				"domain %s is not hosted here (add it with `postgate domain "
				"add %s`)",
				domain_name, domain_name);
		return -1;
	}
	return 0;
}

static int do_add(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct store_user user;
	static struct store_alias alias;
	struct user_secrets secrets;
	char address[ADDRESS_MAX + 1];
	struct error lookup;
	int rc;

	if (cli_address_normalize(args->values[0], "address", address, err) < 0)
		return -1;
	if (check_domain(cli, address, err) < 0)
		return -1;
	error_clear(&lookup);
	/* Refuse a duplicate before asking for a password that would be thrown away. */
	if (store_user_get(cli->store, address, &user, &lookup) == 0)
		return error_set(err, ERROR_EXISTS, "user %s exists already", user.address);
	if (lookup.kind != ERROR_NOT_FOUND)
		return error_set(err, lookup.kind, "%s", lookup.message);
	if (store_alias_get(cli->store, address, &alias, &lookup) == 0)
		return error_set(err, ERROR_EXISTS, "%s is an alias already", alias.address);
	if (lookup.kind != ERROR_NOT_FOUND)
		return error_set(err, lookup.kind, "%s", lookup.message);

	if (read_secrets(cli, args, address, &secrets, err) < 0) {
		sodium_memzero(&secrets, sizeof(secrets));
		return -1;
	}
	memset(&user, 0, sizeof(user));
	snprintf(user.address, sizeof(user.address), "%s", address);
	snprintf(user.secret_argon2id, sizeof(user.secret_argon2id), "%s", secrets.argon2id);
	snprintf(user.secret_scram, sizeof(user.secret_scram), "%s", secrets.scram);
	snprintf(user.secret_cram_md5, sizeof(user.secret_cram_md5), "%s", secrets.cram_md5);
	snprintf(user.secret_plain, sizeof(user.secret_plain), "%s", secrets.plain);
	user.is_enabled = true;
	user.is_held = false;
	rc = store_user_add(cli->store, &user, err);
	sodium_memzero(&secrets, sizeof(secrets));
	sodium_memzero(&user, sizeof(user));
	if (rc < 0)
		return -1;
	fprintf(cli->out, "added user %s\n", address);
	return 0;
}

static int do_passwd(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct store_user user;
	struct user_secrets secrets;
	char address[ADDRESS_MAX + 1];
	int rc;

	if (cli_address_normalize(args->values[0], "address", address, err) < 0)
		return -1;
	if (store_user_get(cli->store, address, &user, err) < 0)
		return -1;
	if (read_secrets(cli, args, user.address, &secrets, err) < 0) {
		sodium_memzero(&secrets, sizeof(secrets));
		return -1;
	}
	/* Without CRAM-MD5 (APOP) wanted, "" removes a password-equivalent
	 * secret left from when it was. */
	rc = store_user_set_secrets(cli->store, user.address, secrets.argon2id, secrets.scram,
				    secrets.cram_md5, secrets.plain, err);
	sodium_memzero(&secrets, sizeof(secrets));
	if (rc < 0)
		return -1;
	fprintf(cli->out, "changed the password of %s\n", user.address);
	return 0;
}

static int do_del(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct store_user user;
	char address[ADDRESS_MAX + 1];

	if (cli_address_normalize(args->values[0], "address", address, err) < 0)
		return -1;
	if (store_user_get(cli->store, address, &user, err) < 0 ||
	    store_user_del(cli->store, user.address, err) < 0)
		return -1;
	fprintf(cli->out, "deleted user %s (its Maildir is left in place)\n", user.address);
	return 0;
}

static int set_enabled(struct cli *cli, const struct cli_args *args, bool is_enabled,
		       struct error *err)
{
	static struct store_user user;
	char address[ADDRESS_MAX + 1];

	if (cli_address_normalize(args->values[0], "address", address, err) < 0)
		return -1;
	if (store_user_get(cli->store, address, &user, err) < 0 ||
	    store_user_set_enabled(cli->store, user.address, is_enabled, err) < 0)
		return -1;
	fprintf(cli->out, "%s user %s\n", is_enabled ? "enabled" : "disabled", user.address);
	return 0;
}

static int do_disable(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return set_enabled(cli, args, false, err);
}

/* A sending hold: SMTP refuses the user's next message (550 5.7.1); POP3
 * goes on. The daemon sets it by itself on a burst over the sending limits
 * or logins from many addresses (docs/auth.md). */
static int set_held(struct cli *cli, const struct cli_args *args, bool is_held, struct error *err)
{
	static struct store_user user;
	char address[ADDRESS_MAX + 1];

	if (cli_address_normalize(args->values[0], "address", address, err) < 0)
		return -1;
	if (store_user_get(cli->store, address, &user, err) < 0 ||
	    store_user_set_held(cli->store, user.address, is_held, err) < 0)
		return -1;
	fprintf(cli->out, "%s %s\n",
		is_held ? "put on a sending hold:" : "released from its sending hold:",
		user.address);
	return 0;
}

static int do_hold(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return set_held(cli, args, true, err);
}

static int do_release(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return set_held(cli, args, false, err);
}

static int do_enable(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return set_enabled(cli, args, true, err);
}

/* "{ARGON2ID}$argon2id$..." -> "ARGON2ID"; false when there is no scheme. */
static bool secret_scheme(const char *secret, char *out, size_t out_cap)
{
	const char *close;

	if (secret[0] != '{' || (close = strchr(secret, '}')) == NULL || close == secret + 1)
		return false;
	return span_copy_cstr(span_make(secret + 1, (size_t) (close - secret - 1)), out, out_cap);
}

struct user_schemes {
	size_t count;
	char names[4][64];
};

static void user_schemes_get(const struct store_user *user, struct user_schemes *schemes_out)
{
	const char *const secrets[] = { user->secret_argon2id, user->secret_scram,
					user->secret_cram_md5, user->secret_plain };

	schemes_out->count = 0;
	for (size_t i = 0; i < ARRAY_LEN(secrets); i++)
		if (secret_scheme(secrets[i], schemes_out->names[schemes_out->count],
				  sizeof(schemes_out->names[0])))
			schemes_out->count++;
}

static void json_user(struct cli_json *json, const struct store_user *user)
{
	char created[32], changed[32], domain[ADDRESS_DOMAIN_MAX + 1];
	struct user_schemes schemes;

	span_copy_cstr(store_address_domain(user->address), domain, sizeof(domain));
	user_schemes_get(user, &schemes);
	cli_json_begin_object(json);
	cli_json_key(json, "address");
	cli_json_string(json, user->address);
	cli_json_key(json, "domain");
	cli_json_string(json, domain);
	cli_json_key(json, "enabled");
	cli_json_bool(json, user->is_enabled);
	cli_json_key(json, "sending_hold");
	cli_json_bool(json, user->is_held);
	cli_json_key(json, "created");
	cli_json_string(json, cli_time_format(user->created, created, sizeof(created)));
	cli_json_key(json, "changed");
	cli_json_string(json, cli_time_format(user->changed, changed, sizeof(changed)));
	cli_json_key(json, "secret_schemes");
	cli_json_begin_array(json);
	for (size_t i = 0; i < schemes.count; i++)
		cli_json_string(json, schemes.names[i]);
	cli_json_end_array(json);
	cli_json_end_object(json);
}

struct list_walk {
	struct cli_table *table; /* text output, or */
	struct cli_json *json;	 /* JSON output */
	struct error *err;
};

static int list_one(void *ctx, const struct store_user *user)
{
	struct list_walk *walk = ctx;
	char created[32];
	const char *cells[4];

	if (walk->json != NULL) {
		json_user(walk->json, user);
		return 0;
	}
	cells[0] = user->address;
	cells[1] = user->is_enabled ? "yes" : "no";
	cells[2] = user->is_held ? "yes" : "no";
	cells[3] = cli_time_format(user->created, created, sizeof(created));
	return cli_table_add_row(walk->table, cells, walk->err) < 0 ? 1 : 0;
}

static int do_list(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static const char *const headers[] = { "ADDRESS", "ENABLED", "SENDING_HOLD", "CREATED" };
	char domain_name[ADDRESS_DOMAIN_MAX + 1];
	const char *domain = NULL;
	struct list_walk walk = { NULL, NULL, err };
	struct cli_json json;
	int rc;

	if (args->count == 1) {
		struct store_domain row;

		if (cli_domain_normalize(args->values[0], "domain", domain_name, err) < 0 ||
		    store_domain_get(cli->store, domain_name, &row, err) < 0)
			return -1;
		domain = domain_name;
	}
	if (cli_args_has(args, "json")) {
		cli_json_init(&json, cli->out);
		walk.json = &json;
		cli_json_begin_array(&json);
	} else if ((walk.table = cli_table_new(ARRAY_LEN(headers), headers, err)) == NULL) {
		return -1;
	}
	rc = store_user_list(cli->store, domain, list_one, &walk, err);
	if (rc == 0 && walk.json != NULL) {
		cli_json_end_array(&json);
		cli_json_finish(&json);
	} else if (rc == 0) {
		cli_table_print(walk.table, cli->out);
	}
	cli_table_free(walk.table);
	return rc == 0 ? 0 : -1;
}

static int do_show(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct store_user user;
	char address[ADDRESS_MAX + 1], domain[ADDRESS_DOMAIN_MAX + 1];
	char created[32], changed[32], scheme_list[160];
	struct user_schemes schemes;

	if (cli_address_normalize(args->values[0], "address", address, err) < 0)
		return -1;
	if (store_user_get(cli->store, address, &user, err) < 0)
		return -1;
	if (cli_args_has(args, "json")) {
		struct cli_json json;

		cli_json_init(&json, cli->out);
		json_user(&json, &user);
		cli_json_finish(&json);
		return 0;
	}
	span_copy_cstr(store_address_domain(user.address), domain, sizeof(domain));
	user_schemes_get(&user, &schemes);
	scheme_list[0] = '\0';
	for (size_t i = 0, used = 0; i < schemes.count; i++)
		used += (size_t) snprintf(scheme_list + used, sizeof(scheme_list) - used, "%s%s",
					  i ? " " : "", schemes.names[i]);
	{
		char limits[256];

		cli_limits_format(&user.limits, limits, sizeof(limits));
		const char *const keys[] = { "address",	       "domain",	"enabled",
					     "sending hold",   "created",	"changed",
					     "secret schemes", "sending limits" };
		const char *const values[] = {
			user.address,
			domain,
			user.is_enabled ? "yes" : "no",
			user.is_held ? "yes" : "no",
			cli_time_format(user.created, created, sizeof(created)),
			cli_time_format(user.changed, changed, sizeof(changed)),
			schemes.count ? scheme_list : "none",
			limits,
		};

		cli_fields_print(cli->out, ARRAY_LEN(keys), keys, values);
	}
	return 0;
}

static const struct cli_option no_options[] = {
	{ NULL, false },
};
static const struct cli_option password_options[] = {
	{ "password-stdin", false },
	{ NULL, false },
};
static const struct cli_option json_options[] = {
	{ "json", false },
	{ NULL, false },
};

static const struct cli_verb user_verbs[] = {
	{ "add", "ADDRESS [--password-stdin]",
	  "add a user; the password is typed twice, or read from stdin with --password-stdin", 1, 1,
	  password_options, CLI_NEEDS_STORE | CLI_NEEDS_SECRETS, do_add },
	{ "passwd", "ADDRESS [--password-stdin]", "set a new password, read as for add", 1, 1,
	  password_options, CLI_NEEDS_STORE | CLI_NEEDS_SECRETS, do_passwd },
	{ "del", "ADDRESS", "delete a user (the Maildir stays on disk)", 1, 1, no_options,
	  CLI_NEEDS_STORE, do_del },
	{ "list", "[DOMAIN] [--json]", "list the users, of every domain or of one", 0, 1,
	  json_options, CLI_NEEDS_STORE, do_list },
	{ "show", "ADDRESS [--json]",
	  "show a user and the secret schemes stored (never the secrets)", 1, 1, json_options,
	  CLI_NEEDS_STORE, do_show },
	{ "disable", "ADDRESS", "mark the user disabled (enabled: no)", 1, 1, no_options,
	  CLI_NEEDS_STORE, do_disable },
	{ "enable", "ADDRESS", "mark the user enabled again", 1, 1, no_options, CLI_NEEDS_STORE,
	  do_enable },
	{ "hold", "ADDRESS", "put the user on a sending hold (POP3 goes on)", 1, 1, no_options,
	  CLI_NEEDS_STORE, do_hold },
	{ "release", "ADDRESS", "release the user from a sending hold", 1, 1, no_options,
	  CLI_NEEDS_STORE, do_release },
	{ "limits",
	  "ADDRESS [--messages-per-hour N|inherit] [--messages-per-day ...] "
	  "[--recipients-per-hour ...] [--recipients-per-day ...]",
	  "show or set the user's sending limits (over its domain's and the configuration's)", 1, 1,
	  cli_limits_options, CLI_NEEDS_STORE, cli_user_limits },
};

const struct cli_command cli_user_command = { "user", user_verbs, ARRAY_LEN(user_verbs) };
