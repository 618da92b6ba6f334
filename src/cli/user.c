/*
 * user: `postgate user add|passwd|del|list|show|disable|enable` — the
 * mailboxes whose complete address is also the login name for SMTP AUTH and
 * POP3. Passwords come from stdin or the terminal, never from the command
 * line; only the argon2id and SCRAM-SHA-256 secrets made from them reach the
 * store — and the CRAM-MD5 secret while a listener offers CRAM-MD5
 * (config_cram_md5_wanted; it is removed again by a passwd without) — and
 * every copy of the password is wiped. `show` and `list` name the
 * secret schemes a user has, never the secrets. `show` adds the user's
 * recent activity, which only the running daemon knows (in memory: a
 * restart forgets it), asked over the control socket.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/rate.h"
#include "auth/secret.h"
#include "cli/internal.h"
#include "core/span.h"
#include "queue/control.h"
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

static void activity_json(struct cli_json *json, int rc, const struct auth_rate_activity *a,
			  const struct error *err);

/* activity: NULL leaves the recent activity out (user list). */
static void json_user(struct cli_json *json, const struct store_user *user, int activity_rc,
		      const struct auth_rate_activity *activity, const struct error *activity_err)
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
	if (activity != NULL)
		activity_json(json, activity_rc, activity, activity_err);
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
		json_user(walk->json, user, 0, NULL, NULL);
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

/* ---- recent activity, from the daemon -------------------------------------- */

/* One "address=IP,OK,FAILED,LAST" word of an activity reply. */
static bool parse_address(struct span value, struct auth_rate_address *out)
{
	struct span rest, ok, failed, last;
	uint64_t n_ok, n_failed, n_last;

	if (!span_split_last(value, ',', &rest, &last) ||
	    !span_split_last(rest, ',', &rest, &failed) ||
	    !span_split_last(rest, ',', &rest, &ok) || !span_parse_u64(ok, &n_ok) ||
	    !span_parse_u64(failed, &n_failed) || !span_parse_u64(last, &n_last) ||
	    n_ok > UINT32_MAX || n_failed > UINT32_MAX || n_last > INT64_MAX ||
	    !span_copy_cstr(rest, out->ip, sizeof(out->ip)))
		return false;
	out->ok = (uint32_t) n_ok;
	out->failed = (uint32_t) n_failed;
	out->last_s = (int64_t) n_last;
	return true;
}

/* The daemon's "activity" reply (daemon/control.c) into *out; words this
 * version does not know are skipped. */
static void parse_activity(const char *text, struct auth_rate_activity *out)
{
	struct {
		const char *key;
		uint64_t *value;
	} const numbers[] = {
		{ "messages_hour", &out->usage.messages_hour },
		{ "messages_day", &out->usage.messages_day },
		{ "recipients_hour", &out->usage.recipients_hour },
		{ "recipients_day", &out->usage.recipients_day },
		{ "refused_hour", &out->usage.refused_hour },
		{ "logins_ok_hour", &out->logins_ok_hour },
		{ "logins_ok_day", &out->logins_ok_day },
		{ "logins_failed_hour", &out->logins_failed_hour },
		{ "logins_failed_day", &out->logins_failed_day },
	};
	struct span rest, word, key, value;
	uint64_t n;

	*out = (struct auth_rate_activity){ 0 };
	for (rest = span_from_cstr(text); rest.len > 0;) {
		span_split_word(rest, &word, &rest);
		if (!span_split_first(word, '=', &key, &value))
			continue;
		if (span_eq_cstr(key, "tracked")) {
			out->is_tracked = span_eq_cstr(value, "yes");
		} else if (span_eq_cstr(key, "hold_at")) {
			if (span_parse_u64(value, &n) && n <= INT64_MAX)
				out->hold_s = (int64_t) n;
		} else if (span_eq_cstr(key, "hold_reason")) {
			if (!span_eq_cstr(value, "-"))
				span_copy_cstr(value, out->hold_reason, sizeof(out->hold_reason));
		} else if (span_eq_cstr(key, "address")) {
			if (out->address_count < AUTH_RATE_HISTORY_ADDRS_MAX &&
			    parse_address(value, &out->addresses[out->address_count]))
				out->address_count++;
		} else {
			for (size_t i = 0; i < ARRAY_LEN(numbers); i++)
				if (span_eq_cstr(key, numbers[i].key) && span_parse_u64(value, &n))
					*numbers[i].value = n;
		}
	}
}

/* 0 with the user's activity; -1 with err when the daemon does not answer. */
static int activity_ask(struct cli *cli, const char *address, struct auth_rate_activity *out,
			struct error *err)
{
	struct queue_control_request request = { .verb = QUEUE_CONTROL_ACTIVITY };
	char text[QUEUE_CONTROL_REPLY_MAX + 1];

	if (!span_copy_cstr(span_from_cstr(address), request.address, sizeof(request.address)))
		return error_set(err, ERROR_DATA, "the address is longer than %d octets",
				 ADDRESS_TEXT_MAX);
	if (cli_control_ask(cli, &request, text, sizeof(text), err) < 0)
		return -1;
	parse_activity(text, out);
	return 0;
}

/* Why there is no activity to show, in a few words. */
static const char *activity_unavailable(const struct error *err)
{
	return err->kind == ERROR_UNAVAILABLE ? "postgated is not running" : err->message;
}

#define ACTIVITY_LABEL_WIDTH 26

static void activity_line(FILE *out, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void activity_line(FILE *out, const char *label, const char *fmt, ...)
{
	va_list ap;

	/* An empty label continues the line above (the list of addresses). */
	fprintf(out, "%s%s%*s", label, label[0] != '\0' ? ":" : " ",
		(int) (ACTIVITY_LABEL_WIDTH - strlen(label)), "");
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

static void activity_print(FILE *out, int rc, const struct auth_rate_activity *a,
			   const struct error *err)
{
	char when[32];

	fputc('\n', out);
	if (rc < 0) {
		fprintf(out, "recent activity: unavailable (%s)\n", activity_unavailable(err));
		return;
	}
	activity_line(out, "recent activity", "in postgated's memory since it started");
	activity_line(out, "messages hour/day", "%llu / %llu",
		      (unsigned long long) a->usage.messages_hour,
		      (unsigned long long) a->usage.messages_day);
	activity_line(out, "recipients hour/day", "%llu / %llu",
		      (unsigned long long) a->usage.recipients_hour,
		      (unsigned long long) a->usage.recipients_day);
	activity_line(out, "refused last hour", "%llu", (unsigned long long) a->usage.refused_hour);
	activity_line(out, "logins ok hour/day", "%llu / %llu",
		      (unsigned long long) a->logins_ok_hour,
		      (unsigned long long) a->logins_ok_day);
	activity_line(out, "logins failed hour/day", "%llu / %llu",
		      (unsigned long long) a->logins_failed_hour,
		      (unsigned long long) a->logins_failed_day);
	if (a->hold_s != 0)
		activity_line(out, "automatic hold", "%s reason=%s",
			      cli_time_format(a->hold_s, when, sizeof(when)), a->hold_reason);
	else
		activity_line(out, "automatic hold", "none");
	if (a->address_count == 0)
		activity_line(out, "login addresses", "none in the last day");
	for (size_t i = 0; i < a->address_count; i++)
		activity_line(out, i == 0 ? "login addresses" : "", "%s ok=%lu failed=%lu last=%s",
			      a->addresses[i].ip, (unsigned long) a->addresses[i].ok,
			      (unsigned long) a->addresses[i].failed,
			      cli_time_format(a->addresses[i].last_s, when, sizeof(when)));
}

static void activity_json(struct cli_json *json, int rc, const struct auth_rate_activity *a,
			  const struct error *err)
{
	char when[32];
	struct {
		const char *key;
		uint64_t value;
	} const numbers[] = {
		{ "messages_hour", a->usage.messages_hour },
		{ "messages_day", a->usage.messages_day },
		{ "recipients_hour", a->usage.recipients_hour },
		{ "recipients_day", a->usage.recipients_day },
		{ "refused_hour", a->usage.refused_hour },
		{ "logins_ok_hour", a->logins_ok_hour },
		{ "logins_ok_day", a->logins_ok_day },
		{ "logins_failed_hour", a->logins_failed_hour },
		{ "logins_failed_day", a->logins_failed_day },
	};

	cli_json_key(json, "recent_activity");
	cli_json_begin_object(json);
	cli_json_key(json, "available");
	cli_json_bool(json, rc == 0);
	if (rc < 0) {
		cli_json_key(json, "reason");
		cli_json_string(json, activity_unavailable(err));
		cli_json_end_object(json);
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(numbers); i++) {
		cli_json_key(json, numbers[i].key);
		cli_json_int(json, (int64_t) numbers[i].value);
	}
	cli_json_key(json, "automatic_hold");
	if (a->hold_s == 0) {
		cli_json_string(json, NULL);
	} else {
		cli_json_begin_object(json);
		cli_json_key(json, "at");
		cli_json_string(json, cli_time_format(a->hold_s, when, sizeof(when)));
		cli_json_key(json, "reason");
		cli_json_string(json, a->hold_reason);
		cli_json_end_object(json);
	}
	cli_json_key(json, "login_addresses");
	cli_json_begin_array(json);
	for (size_t i = 0; i < a->address_count; i++) {
		cli_json_begin_object(json);
		cli_json_key(json, "address");
		cli_json_string(json, a->addresses[i].ip);
		cli_json_key(json, "ok");
		cli_json_int(json, a->addresses[i].ok);
		cli_json_key(json, "failed");
		cli_json_int(json, a->addresses[i].failed);
		cli_json_key(json, "last");
		cli_json_string(json, cli_time_format(a->addresses[i].last_s, when, sizeof(when)));
		cli_json_end_object(json);
	}
	cli_json_end_array(json);
	cli_json_end_object(json);
}

static int do_show(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct store_user user;
	char address[ADDRESS_MAX + 1], domain[ADDRESS_DOMAIN_MAX + 1];
	char created[32], changed[32], scheme_list[160];
	struct user_schemes schemes;
	static struct auth_rate_activity activity;
	struct error activity_err;
	int activity_rc;

	if (cli_address_normalize(args->values[0], "address", address, err) < 0)
		return -1;
	if (store_user_get(cli->store, address, &user, err) < 0)
		return -1;
	activity_rc = activity_ask(cli, user.address, &activity, &activity_err);
	if (cli_args_has(args, "json")) {
		struct cli_json json;

		cli_json_init(&json, cli->out);
		json_user(&json, &user, activity_rc, &activity, &activity_err);
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
	activity_print(cli->out, activity_rc, &activity, &activity_err);
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
