/*
 * tls: `postgate tls names` — every server name clients are told to use:
 * the configured hostname and each hosted domain's SMTP and POP3 names,
 * sorted, each once. One per line, for an ACME client (`certbot -d` each) or
 * a certificate signing request; `--json` for scripts. `config check` uses
 * the same list to warn when the default certificate misses a name (clients
 * without SNI get that certificate: docs/tls.md).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"

struct names {
	size_t count, cap;
	char (*items)[ADDRESS_DOMAIN_MAX + 1];
	struct error *err;
};

static int names_add(struct names *n, const char *name)
{
	if (name[0] == '\0')
		return 0;
	if (n->count == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 32;
		void *items = realloc(n->items, cap * sizeof(*n->items));

		if (items == NULL)
			return error_set(n->err, ERROR_SOFTWARE, "out of memory");
		n->items = items;
		n->cap = cap;
	}
	snprintf(n->items[n->count++], sizeof(n->items[0]), "%s", name);
	return 0;
}

static int add_domain(void *ctx, const struct store_domain *domain)
{
	struct names *n = ctx;

	return names_add(n, domain->smtp_name) < 0 || names_add(n, domain->pop3_name) < 0 ? 1 : 0;
}

static int compare(const void *a, const void *b)
{
	return strcmp(a, b);
}

int cli_tls_names_each(struct cli *cli, cli_tls_name_fn *each, void *ctx, struct error *err)
{
	struct names n = { 0, 0, NULL, err };
	int rc = -1;

	if (names_add(&n, cli->config->hostname) < 0)
		goto out;
	if (store_domain_list(cli->store, add_domain, &n, err) != 0)
		goto out;
	qsort(n.items, n.count, sizeof(*n.items), compare);
	rc = 0;
	for (size_t i = 0; i < n.count && rc == 0; i++)
		if (i == 0 || strcmp(n.items[i], n.items[i - 1]) != 0)
			rc = each(ctx, n.items[i]);
out:
	free(n.items);
	return rc;
}

static int print_name(void *ctx, const char *name)
{
	FILE *out = ctx;

	fprintf(out, "%s\n", name);
	return 0;
}

static int json_name(void *ctx, const char *name)
{
	cli_json_string(ctx, name);
	return 0;
}

static int do_names(struct cli *cli, const struct cli_args *args, struct error *err)
{
	struct cli_json json;
	int rc;

	if (!cli_args_has(args, "json"))
		return cli_tls_names_each(cli, print_name, cli->out, err);
	cli_json_init(&json, cli->out);
	cli_json_begin_array(&json);
	rc = cli_tls_names_each(cli, json_name, &json, err);
	if (rc == 0) {
		cli_json_end_array(&json);
		cli_json_finish(&json);
	}
	return rc;
}

static const struct cli_option json_options[] = {
	{ "json", false },
	{ NULL, false },
};

static const struct cli_verb tls_verbs[] = {
	{ "names", "[--json]",
	  "print every server name clients use (hostname, each domain's SMTP and POP3 names)", 0, 0,
	  json_options, CLI_NEEDS_STORE, do_names },
};

const struct cli_command cli_tls_command = { "tls", tls_verbs, ARRAY_LEN(tls_verbs) };
