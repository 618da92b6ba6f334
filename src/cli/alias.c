/*
 * alias: `postgate alias add|del|list` — addresses in a hosted domain that
 * forward to one or more targets (local users or remote addresses), with an
 * optional owner: the user who may send as the alias. The address, every
 * target and the owner are normalized before the store sees them.
 */
#include <string.h>

#include "cli/internal.h"
#include "core/span.h"

static int do_add(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct store_alias alias;
	const char *owner = cli_args_value(args, "owner");
	size_t target_count = args->count - 1;

	memset(&alias, 0, sizeof(alias));
	if (target_count > STORE_ALIAS_TARGETS_MAX)
		return error_set(err, ERROR_DATA, "an alias has at most %d targets",
				 STORE_ALIAS_TARGETS_MAX);
	if (cli_address_normalize(args->values[0], "alias address", alias.address, err) < 0)
		return -1;
	for (size_t i = 0; i < target_count; i++)
		if (cli_address_normalize(args->values[i + 1], "target", alias.targets[i], err) < 0)
			return -1;
	alias.target_count = target_count;
	if (owner != NULL) {
		static struct store_user user;

		if (cli_address_normalize(owner, "owner", alias.owner, err) < 0)
			return -1;
		/* The owner is a user; say so plainly rather than "not found". */
		if (store_user_get(cli->store, alias.owner, &user, err) < 0) {
			if (err->kind == ERROR_NOT_FOUND)
				return error_set(err, ERROR_NOT_FOUND,
						 "owner %s is not a user here", alias.owner);
			return -1;
		}
		snprintf(alias.owner, sizeof(alias.owner), "%s", user.address);
	}
	if (store_alias_add(cli->store, &alias, err) < 0)
		return -1;
	if (store_alias_get(cli->store, alias.address, &alias, err) < 0)
		return -1;
	fprintf(cli->out, "alias %s now has %zu target%s%s%s\n", alias.address, alias.target_count,
		alias.target_count == 1 ? "" : "s", alias.owner[0] ? ", owner " : "", alias.owner);
	return 0;
}

static int do_del(struct cli *cli, const struct cli_args *args, struct error *err)
{
	char address[ADDRESS_MAX + 1], target[ADDRESS_MAX + 1];

	if (cli_address_normalize(args->values[0], "alias address", address, err) < 0)
		return -1;
	if (args->count == 2 && cli_address_normalize(args->values[1], "target", target, err) < 0)
		return -1;
	if (store_alias_del(cli->store, address, args->count == 2 ? target : NULL, err) < 0)
		return -1;
	if (args->count == 2)
		fprintf(cli->out, "removed target %s from alias %s\n", target, address);
	else
		fprintf(cli->out, "deleted alias %s\n", address);
	return 0;
}

/* "a@example.test,b@example.net": the last column, so no padding needed. */
static void targets_join(const struct store_alias *alias, char *out, size_t out_cap)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < alias->target_count && used < out_cap; i++) {
		int n = snprintf(out + used, out_cap - used, "%s%s", i ? "," : "",
				 alias->targets[i]);

		if (n < 0)
			break;
		used += (size_t) n;
	}
}

static void json_alias(struct cli_json *json, const struct store_alias *alias)
{
	char created[32], changed[32];

	cli_json_begin_object(json);
	cli_json_key(json, "address");
	cli_json_string(json, alias->address);
	cli_json_key(json, "owner");
	cli_json_string(json, alias->owner[0] ? alias->owner : NULL);
	cli_json_key(json, "targets");
	cli_json_begin_array(json);
	for (size_t i = 0; i < alias->target_count; i++)
		cli_json_string(json, alias->targets[i]);
	cli_json_end_array(json);
	cli_json_key(json, "created");
	cli_json_string(json, cli_time_format(alias->created, created, sizeof(created)));
	cli_json_key(json, "changed");
	cli_json_string(json, cli_time_format(alias->changed, changed, sizeof(changed)));
	cli_json_end_object(json);
}

struct list_walk {
	struct cli_table *table; /* text output, or */
	struct cli_json *json;	 /* JSON output */
	struct error *err;
};

static int list_one(void *ctx, const struct store_alias *alias)
{
	static char targets[STORE_ALIAS_TARGETS_MAX * (ADDRESS_MAX + 1) + 1];
	struct list_walk *walk = ctx;
	const char *cells[3];

	if (walk->json != NULL) {
		json_alias(walk->json, alias);
		return 0;
	}
	targets_join(alias, targets, sizeof(targets));
	cells[0] = alias->address;
	cells[1] = alias->owner[0] ? alias->owner : NULL;
	cells[2] = targets;
	return cli_table_add_row(walk->table, cells, walk->err) < 0 ? 1 : 0;
}

static int do_list(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static const char *const headers[] = { "ADDRESS", "OWNER", "TARGETS" };
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
	rc = store_alias_list(cli->store, domain, list_one, &walk, err);
	if (rc == 0 && walk.json != NULL) {
		cli_json_end_array(&json);
		cli_json_finish(&json);
	} else if (rc == 0) {
		cli_table_print(walk.table, cli->out);
	}
	cli_table_free(walk.table);
	return rc == 0 ? 0 : -1;
}

static const struct cli_option add_options[] = {
	{ "owner", true },
	{ NULL, false },
};
static const struct cli_option no_options[] = {
	{ NULL, false },
};
static const struct cli_option json_options[] = {
	{ "json", false },
	{ NULL, false },
};

static const struct cli_verb alias_verbs[] = {
	{ "add", "ADDRESS TARGET [TARGET...] [--owner USER]",
	  "add an alias, or add targets to it; --owner names the user who may send as it", 2,
	  1 + STORE_ALIAS_TARGETS_MAX, add_options, CLI_NEEDS_STORE, do_add },
	{ "del", "ADDRESS [TARGET]",
	  "delete an alias, or one target of it (the last one takes the alias with it)", 1, 2,
	  no_options, CLI_NEEDS_STORE, do_del },
	{ "list", "[DOMAIN] [--json]", "list the aliases, of every domain or of one", 0, 1,
	  json_options, CLI_NEEDS_STORE, do_list },
};

const struct cli_command cli_alias_command = { "alias", alias_verbs, ARRAY_LEN(alias_verbs) };
