/*
 * domain: `postgate domain add|del|list|show` — the hosted domains and the
 * server names their customers configure (smtp.<domain>, pop.<domain>).
 * Every name typed goes through store_address_domain_normalize first, so
 * `bücher.example` is stored as its A-label form. `domain show` also prints
 * what a customer's client must be set to, and with --dns the records to
 * publish, both from http/settings.h: the same derivation the HTTP
 * auto-configuration documents use (docs/http.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "core/span.h"
#include "http/settings.h"

struct domain_counts {
	size_t user_count;
	size_t alias_count;
};

static int count_user(void *ctx, const struct store_user *user)
{
	(void) user;
	((struct domain_counts *) ctx)->user_count++;
	return 0;
}

static int count_alias(void *ctx, const struct store_alias *alias)
{
	(void) alias;
	((struct domain_counts *) ctx)->alias_count++;
	return 0;
}

static int do_add(struct cli *cli, const struct cli_args *args, struct error *err)
{
	const char *smtp_name = cli_args_value(args, "smtp-name");
	const char *pop3_name = cli_args_value(args, "pop3-name");
	struct store_domain domain;

	memset(&domain, 0, sizeof(domain));
	if (cli_domain_normalize(args->values[0], "domain", domain.name, err) < 0)
		return -1;
	if (smtp_name &&
	    cli_domain_normalize(smtp_name, "SMTP server name", domain.smtp_name, err) < 0)
		return -1;
	if (pop3_name &&
	    cli_domain_normalize(pop3_name, "POP3 server name", domain.pop3_name, err) < 0)
		return -1;
	if (store_domain_add(cli->store, &domain, err) < 0)
		return -1;
	if (store_domain_get(cli->store, domain.name, &domain, err) < 0)
		return -1;
	fprintf(cli->out, "added domain %s (SMTP server %s, POP3 server %s)\n", domain.name,
		domain.smtp_name, domain.pop3_name);
	return 0;
}

static int do_del(struct cli *cli, const struct cli_args *args, struct error *err)
{
	char name[ADDRESS_DOMAIN_MAX + 1];
	bool is_forced = cli_args_has(args, "force");
	struct domain_counts counts = { 0, 0 };
	struct store_domain domain;

	if (cli_domain_normalize(args->values[0], "domain", name, err) < 0)
		return -1;
	if (store_domain_get(cli->store, name, &domain, err) < 0)
		return -1;
	if (store_user_list(cli->store, name, count_user, &counts, err) < 0 ||
	    store_alias_list(cli->store, name, count_alias, &counts, err) < 0)
		return -1;
	if (store_domain_del(cli->store, name, is_forced, err) < 0) {
		if (err->kind == ERROR_PERMISSION)
			return error_set(err, ERROR_PERMISSION,
					 "domain %s has %zu user%s and %zu alias%s: not deleted "
					 "(--force deletes them with it)",
					 name, counts.user_count, counts.user_count == 1 ? "" : "s",
					 counts.alias_count, counts.alias_count == 1 ? "" : "es");
		return -1;
	}
	if (counts.user_count + counts.alias_count > 0)
		fprintf(cli->out,
			"deleted domain %s with %zu user%s and %zu alias%s (their Maildirs are "
			"left "
			"in place)\n",
			name, counts.user_count, counts.user_count == 1 ? "" : "s",
			counts.alias_count, counts.alias_count == 1 ? "" : "es");
	else
		fprintf(cli->out, "deleted domain %s\n", name);
	return 0;
}

static void json_domain_fields(struct cli_json *json, const struct store_domain *domain,
			       const struct domain_counts *counts)
{
	char created[32], changed[32];

	cli_json_key(json, "domain");
	cli_json_string(json, domain->name);
	cli_json_key(json, "smtp_name");
	cli_json_string(json, domain->smtp_name);
	cli_json_key(json, "pop3_name");
	cli_json_string(json, domain->pop3_name);
	cli_json_key(json, "created");
	cli_json_string(json, cli_time_format(domain->created, created, sizeof(created)));
	cli_json_key(json, "changed");
	cli_json_string(json, cli_time_format(domain->changed, changed, sizeof(changed)));
	if (counts != NULL) {
		cli_json_key(json, "users");
		cli_json_int(json, (int64_t) counts->user_count);
		cli_json_key(json, "aliases");
		cli_json_int(json, (int64_t) counts->alias_count);
	}
}

static void json_domain(struct cli_json *json, const struct store_domain *domain,
			const struct domain_counts *counts)
{
	cli_json_begin_object(json);
	json_domain_fields(json, domain, counts);
	cli_json_end_object(json);
}

struct list_walk {
	struct cli_table *table; /* text output, or */
	struct cli_json *json;	 /* JSON output */
	struct error *err;
};

static int list_one(void *ctx, const struct store_domain *domain)
{
	struct list_walk *walk = ctx;
	char created[32];
	const char *cells[4];

	if (walk->json != NULL) {
		json_domain(walk->json, domain, NULL);
		return 0;
	}
	cells[0] = domain->name;
	cells[1] = domain->smtp_name;
	cells[2] = domain->pop3_name;
	cells[3] = cli_time_format(domain->created, created, sizeof(created));
	return cli_table_add_row(walk->table, cells, walk->err) < 0 ? 1 : 0;
}

static int do_list(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static const char *const headers[] = { "DOMAIN", "SMTP_NAME", "POP3_NAME", "CREATED" };
	struct list_walk walk = { NULL, NULL, err };
	struct cli_json json;
	int rc;

	if (cli_args_has(args, "json")) {
		cli_json_init(&json, cli->out);
		walk.json = &json;
		cli_json_begin_array(&json);
	} else if ((walk.table = cli_table_new(ARRAY_LEN(headers), headers, err)) == NULL) {
		return -1;
	}
	rc = store_domain_list(cli->store, list_one, &walk, err);
	if (rc == 0 && walk.json != NULL) {
		cli_json_end_array(&json);
		cli_json_finish(&json);
	} else if (rc == 0) {
		cli_table_print(walk.table, cli->out);
	}
	cli_table_free(walk.table);
	return rc == 0 ? 0 : -1;
}

static void json_endpoints(struct cli_json *json, const char *key, const struct http_endpoint *list,
			   size_t count)
{
	cli_json_key(json, key);
	cli_json_begin_array(json);
	for (size_t i = 0; i < count; i++) {
		cli_json_begin_object(json);
		cli_json_key(json, "protocol");
		cli_json_string(json, http_service_name(list[i].service));
		cli_json_key(json, "listener");
		cli_json_string(json, config_listener_name(list[i].listener));
		cli_json_key(json, "host");
		cli_json_string(json, list[i].host);
		cli_json_key(json, "port");
		cli_json_int(json, list[i].port);
		cli_json_key(json, "security");
		cli_json_string(json, http_security_name(list[i].security));
		cli_json_end_object(json);
	}
	cli_json_end_array(json);
}

/* DNS records as JSON strings: the zone lines without the comments. */
static void json_dns(struct cli_json *json, const struct http_settings *settings)
{
	char *text = NULL, *line, *next;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);

	cli_json_key(json, "dns");
	cli_json_begin_array(json);
	if (mem != NULL) {
		http_settings_dns_write(settings, mem);
		fclose(mem);
		for (line = text; line != NULL && *line != '\0'; line = next) {
			next = strchr(line, '\n');
			if (next != NULL)
				*next++ = '\0';
			if (line[0] != ';' && line[0] != '\0')
				cli_json_string(json, line);
		}
	}
	free(text);
	cli_json_end_array(json);
}

static const char *security_words(enum http_security security)
{
	switch (security) {
	case HTTP_SECURITY_SSL:
		return "SSL/TLS (implicit TLS)";
	case HTTP_SECURITY_STARTTLS:
		return "STARTTLS";
	case HTTP_SECURITY_NONE:
		break;
	}
	return "none (password in plaintext)";
}

static void print_endpoints(FILE *out, const char *what, const struct http_endpoint *list,
			    size_t count)
{
	if (count == 0)
		fprintf(out, "%-12s not offered (no listener takes a password login)\n", what);
	for (size_t i = 0; i < count; i++)
		fprintf(out, "%-12s %s port %u, %s (listener %s)%s\n", i == 0 ? what : "",
			list[i].host, (unsigned) list[i].port, security_words(list[i].security),
			config_listener_name(list[i].listener), i == 0 ? "" : ", also");
}

static int do_show(struct cli *cli, const struct cli_args *args, struct error *err)
{
	struct http_settings settings;
	bool is_dns = cli_args_has(args, "dns");
	char name[ADDRESS_DOMAIN_MAX + 1], created[32], changed[32], users[24], aliases[24];
	struct domain_counts counts = { 0, 0 };
	struct store_domain domain;

	if (cli_domain_normalize(args->values[0], "domain", name, err) < 0)
		return -1;
	if (store_domain_get(cli->store, name, &domain, err) < 0)
		return -1;
	if (store_user_list(cli->store, domain.name, count_user, &counts, err) < 0 ||
	    store_alias_list(cli->store, domain.name, count_alias, &counts, err) < 0)
		return -1;
	http_settings_build(cli->config, &domain, &settings);
	if (cli_args_has(args, "json")) {
		struct cli_json json;

		cli_json_init(&json, cli->out);
		cli_json_begin_object(&json);
		json_domain_fields(&json, &domain, &counts);
		cli_json_key(&json, "client_settings");
		cli_json_begin_object(&json);
		json_endpoints(&json, "incoming", settings.pop3, settings.pop3_count);
		json_endpoints(&json, "outgoing", settings.smtp, settings.smtp_count);
		cli_json_key(&json, "authentication");
		cli_json_string(&json, "password-cleartext");
		cli_json_key(&json, "username");
		cli_json_string(&json, "complete email address");
		cli_json_end_object(&json);
		if (is_dns)
			json_dns(&json, &settings);
		cli_json_end_object(&json);
		cli_json_finish(&json);
		return 0;
	}
	if (is_dns) {
		http_settings_dns_write(&settings, cli->out);
		return 0;
	}
	snprintf(users, sizeof(users), "%zu", counts.user_count);
	snprintf(aliases, sizeof(aliases), "%zu", counts.alias_count);
	{
		const char *const keys[] = { "domain",	"SMTP server", "POP3 server", "users",
					     "aliases", "created",     "changed" };
		const char *const values[] = {
			domain.name,
			domain.smtp_name,
			domain.pop3_name,
			users,
			aliases,
			cli_time_format(domain.created, created, sizeof(created)),
			cli_time_format(domain.changed, changed, sizeof(changed)),
		};

		cli_fields_print(cli->out, ARRAY_LEN(keys), keys, values);
	}
	fprintf(cli->out, "\nWhat customers set (from the listeners in %s):\n", cli->config->path);
	print_endpoints(cli->out, "incoming:", settings.pop3, settings.pop3_count);
	print_endpoints(cli->out, "outgoing:", settings.smtp, settings.smtp_count);
	fprintf(cli->out,
		"%-12s normal password (PLAIN or LOGIN inside TLS), also for sending\n"
		"%-12s the complete email address (name@%s)\n",
		"auth:", "user name:", domain.name);
	return 0;
}

static const struct cli_option add_options[] = {
	{ "smtp-name", true },
	{ "pop3-name", true },
	{ NULL, false },
};
static const struct cli_option del_options[] = {
	{ "force", false },
	{ NULL, false },
};
static const struct cli_option json_options[] = {
	{ "json", false },
	{ NULL, false },
};
static const struct cli_option show_options[] = {
	{ "json", false },
	{ "dns", false },
	{ NULL, false },
};

static const struct cli_verb domain_verbs[] = {
	{ "add", "DOMAIN [--smtp-name NAME] [--pop3-name NAME]",
	  "add a hosted domain (server names default to smtp.DOMAIN and pop.DOMAIN)", 1, 1,
	  add_options, CLI_NEEDS_STORE, do_add },
	{ "del", "DOMAIN [--force]", "delete a domain; --force also deletes its users and aliases",
	  1, 1, del_options, CLI_NEEDS_STORE, do_del },
	{ "list", "[--json]", "list the domains", 0, 0, json_options, CLI_NEEDS_STORE, do_list },
	{ "show", "DOMAIN [--dns] [--json]",
	  "show a domain, its counts and its client settings; --dns: the DNS records to publish", 1,
	  1, show_options, CLI_NEEDS_STORE, do_show },
	{ "limits",
	  "DOMAIN [--messages-per-hour N|inherit] [--messages-per-day ...] "
	  "[--recipients-per-hour ...] [--recipients-per-day ...]",
	  "show or set the domain's sending limits (over the configuration's)", 1, 1,
	  cli_limits_options, CLI_NEEDS_STORE, cli_domain_limits },
};

const struct cli_command cli_domain_command = { "domain", domain_verbs, ARRAY_LEN(domain_verbs) };
