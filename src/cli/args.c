/*
 * args: the arguments after a verb, checked against that verb's row of the
 * command table. Options may come before, between or after the positional
 * arguments; "--" ends them. Every problem is ERROR_USAGE. Also the
 * normalization of the addresses and domains typed as arguments, which turns
 * the store's reason into ERROR_DATA naming the argument.
 */
#include <string.h>

#include "cli/internal.h"
#include "core/span.h"
#include "store/address.h"

static const struct cli_option *find_option(const struct cli_verb *verb, const char *name,
					    size_t name_len)
{
	for (const struct cli_option *o = verb->options; o != NULL && o->name != NULL; o++)
		if (strlen(o->name) == name_len && memcmp(o->name, name, name_len) == 0)
			return o;
	return NULL;
}

static int add_option(struct cli_args *args, const char *name, const char *value, struct error *err)
{
	for (size_t i = 0; i < args->option_count; i++)
		if (strcmp(args->options[i].name, name) == 0)
			return error_set(err, ERROR_USAGE, "option --%s given twice", name);
	if (args->option_count == CLI_OPTIONS_MAX)
		return error_set(err, ERROR_USAGE, "too many options");
	args->options[args->option_count].name = name;
	args->options[args->option_count].value = value;
	args->option_count++;
	return 0;
}

int cli_args_parse(const struct cli_verb *verb, int argc, char **argv, struct cli_args *args_out,
		   struct error *err)
{
	bool options_ended = false;

	memset(args_out, 0, sizeof(*args_out));
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (!options_ended && strcmp(arg, "--") == 0) {
			options_ended = true;
		} else if (!options_ended && strncmp(arg, "--", 2) == 0) {
			const char *name = arg + 2;
			const char *equals = strchr(name, '=');
			size_t name_len = equals ? (size_t) (equals - name) : strlen(name);
			const struct cli_option *option = find_option(verb, name, name_len);
			const char *value = "";

			if (option == NULL)
				return error_set(err, ERROR_USAGE, "unknown option --%.*s",
						 (int) name_len, name);
			if (option->takes_value) {
				if (equals != NULL)
					value = equals + 1;
				else if (i + 1 < argc)
					value = argv[++i];
				else
					return error_set(err, ERROR_USAGE,
							 "option --%s needs a value", option->name);
			} else if (equals != NULL) {
				return error_set(err, ERROR_USAGE, "option --%s takes no value",
						 option->name);
			}
			if (add_option(args_out, option->name, value, err) < 0)
				return -1;
		} else if (!options_ended && arg[0] == '-' && arg[1] != '\0') {
			return error_set(err, ERROR_USAGE, "unknown option %s", arg);
		} else {
			if (args_out->count == CLI_ARGS_MAX)
				return error_set(err, ERROR_USAGE, "too many arguments");
			args_out->values[args_out->count++] = arg;
		}
	}
	if (args_out->count < verb->min_args)
		return error_set(err, ERROR_USAGE, "missing argument");
	if (args_out->count > verb->max_args)
		return error_set(err, ERROR_USAGE, "unexpected argument %s",
				 args_out->values[verb->max_args]);
	return 0;
}

bool cli_args_has(const struct cli_args *args, const char *name)
{
	return cli_args_value(args, name) != NULL;
}

const char *cli_args_value(const struct cli_args *args, const char *name)
{
	for (size_t i = 0; i < args->option_count; i++)
		if (strcmp(args->options[i].name, name) == 0)
			return args->options[i].value;
	return NULL;
}

int cli_domain_normalize(const char *input, const char *what, char *out, struct error *err)
{
	struct error reason;

	if (store_address_domain_normalize(span_from_cstr(input), out, &reason) < 0)
		return error_set(err, ERROR_DATA, "bad %s %s: %s", what, input, reason.message);
	return 0;
}

int cli_address_normalize(const char *input, const char *what, char *out, struct error *err)
{
	struct error reason;

	if (store_address_normalize(span_from_cstr(input), out, &reason) < 0)
		return error_set(err, ERROR_DATA, "bad %s %s: %s", what, input, reason.message);
	return 0;
}
