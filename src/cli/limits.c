/*
 * limits: `postgate user limits ADDRESS` and `postgate domain limits DOMAIN`
 * — the sending limits of one user or one domain (messages and recipients
 * per hour and per day), which override the configuration's
 * (user_messages_per_hour, ...): a user's own limit first, then its
 * domain's, then the configuration's (docs/auth.md). Each option takes a
 * number (0: no limit) or `inherit`; options not given keep their value;
 * without options the limits are printed.
 */
#include <string.h>

#include "cli/internal.h"
#include "core/span.h"

static const char *const option_names[] = { "messages-per-hour", "messages-per-day",
					    "recipients-per-hour", "recipients-per-day" };

static int64_t *field(struct store_limits *limits, size_t i)
{
	int64_t *const fields[] = { &limits->messages_per_hour, &limits->messages_per_day,
				    &limits->recipients_per_hour, &limits->recipients_per_day };

	return fields[i];
}

void cli_limits_format(const struct store_limits *limits, char *out, size_t cap)
{
	struct store_limits copy = *limits;
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(option_names) && used < cap; i++) {
		int64_t v = *field(&copy, i);
		int n = v == STORE_LIMIT_INHERIT
				? snprintf(out + used, cap - used, "%s%s=inherit", i ? " " : "",
					   option_names[i])
				: snprintf(out + used, cap - used, "%s%s=%lld", i ? " " : "",
					   option_names[i], (long long) v);

		if (n < 0)
			break;
		used += (size_t) n;
	}
}

/* Apply the options given to limits; *changed_out says whether any was. */
static int parse(const struct cli_args *args, struct store_limits *limits, bool *changed_out,
		 struct error *err)
{
	*changed_out = false;
	for (size_t i = 0; i < ARRAY_LEN(option_names); i++) {
		const char *value = cli_args_value(args, option_names[i]);
		uint64_t n;

		if (value == NULL)
			continue;
		*changed_out = true;
		if (strcmp(value, "inherit") == 0) {
			*field(limits, i) = STORE_LIMIT_INHERIT;
			continue;
		}
		if (!span_parse_u64(span_from_cstr(value), &n) || n > STORE_LIMIT_MAX)
			return error_set(err, ERROR_USAGE,
					 "--%s: expected a number from 0 to %d, or inherit",
					 option_names[i], STORE_LIMIT_MAX);
		*field(limits, i) = (int64_t) n;
	}
	return 0;
}

static int print_limits(struct cli *cli, const char *what, const char *name,
			const struct store_limits *limits)
{
	char text[256];

	cli_limits_format(limits, text, sizeof(text));
	fprintf(cli->out, "sending limits of %s %s: %s\n", what, name, text);
	return 0;
}

int cli_user_limits(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct store_user user;
	char address[ADDRESS_MAX + 1];
	bool changed;

	if (cli_address_normalize(args->values[0], "address", address, err) < 0 ||
	    store_user_get(cli->store, address, &user, err) < 0 ||
	    parse(args, &user.limits, &changed, err) < 0)
		return -1;
	if (changed && store_user_set_limits(cli->store, user.address, &user.limits, err) < 0)
		return -1;
	return print_limits(cli, "user", user.address, &user.limits);
}

int cli_domain_limits(struct cli *cli, const struct cli_args *args, struct error *err)
{
	struct store_domain domain;
	char name[ADDRESS_DOMAIN_MAX + 1];
	bool changed;

	if (cli_domain_normalize(args->values[0], "domain", name, err) < 0 ||
	    store_domain_get(cli->store, name, &domain, err) < 0 ||
	    parse(args, &domain.limits, &changed, err) < 0)
		return -1;
	if (changed && store_domain_set_limits(cli->store, domain.name, &domain.limits, err) < 0)
		return -1;
	return print_limits(cli, "domain", domain.name, &domain.limits);
}

const struct cli_option cli_limits_options[] = {
	{ "messages-per-hour", true },
	{ "messages-per-day", true },
	{ "recipients-per-hour", true },
	{ "recipients-per-day", true },
	{ NULL, false },
};
