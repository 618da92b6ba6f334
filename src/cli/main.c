/*
 * main: `postgate [-c FILE] COMMAND ...`. Finds the command and verb in the
 * tables the noun files export, parses the verb's arguments, loads what the
 * verb needs (configuration, accounts store, libsodium), runs it, prints an
 * error as `postgate: <message>` and exits with the code exit.c maps it to.
 * The verbs themselves live in one file per noun and print nothing on error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/secret.h"
#include "cli/internal.h"
#include "core/span.h"

static const struct cli_command *const commands[] = {
	&cli_init_command,  &cli_config_command, &cli_domain_command, &cli_user_command,
	&cli_alias_command, &cli_tls_command,	 &cli_queue_command,  &cli_status_command,
};

void cli_usage_print(FILE *out, const struct cli_command *command)
{
	if (command == NULL) {
		fputs("usage: postgate [-c FILE] COMMAND [ARGUMENTS]\n"
		      "       postgate --version\n"
		      "       postgate help [COMMAND]\n"
		      "\n"
		      "  -c FILE  configuration file (default " CLI_DEFAULT_CONFIG ")\n"
		      "\n"
		      "commands:\n",
		      out);
	} else {
		fputs("usage:\n", out);
	}
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		const struct cli_command *c = commands[i];

		if (command != NULL && command != c)
			continue;
		for (size_t v = 0; v < c->verb_count; v++) {
			const struct cli_verb *verb = &c->verbs[v];

			fprintf(out, "  postgate %s%s", c == &cli_init_command ? "" : "[-c FILE] ",
				c->name);
			if (verb->name != NULL)
				fprintf(out, " %s", verb->name);
			if (verb->synopsis[0] != '\0')
				fprintf(out, " %s", verb->synopsis);
			fprintf(out, "\n      %s\n", verb->summary);
		}
	}
	if (command == NULL)
		fputs("  postgate [-c FILE] sendmail [OPTIONS] [RECIPIENT...]\n"
		      "      send the message on stdin as the local user; sendmail's options "
		      "(docs/sendmail.md)\n"
		      "\nExit codes and every command are described in docs/cli.md.\n",
		      out);
}

/* Output that never reached stdout (a full disk, a closed pipe) is a failure. */
static int flush_output(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	fprintf(stderr, "postgate: cannot write to standard output: %s\n", strerror(errno));
	return cli_exit_code(ERROR_IO);
}

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static const struct cli_verb *find_verb(const struct cli_command *command, const char *name)
{
	for (size_t v = 0; v < command->verb_count; v++)
		if (command->verbs[v].name != NULL && strcmp(command->verbs[v].name, name) == 0)
			return &command->verbs[v];
	return NULL;
}

static bool asks_for_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

/* Load the configuration and open the store as the verb's row asks. */
static int prepare(struct cli *cli, enum cli_needs needs, struct error *err)
{
	if (needs & CLI_NEEDS_SECRETS) {
		if (auth_secret_global_init(err) < 0)
			return -1;
	}
	if (needs & CLI_NEEDS_CONFIG) {
		struct error reason;

		cli->config = calloc(1, sizeof(*cli->config));
		if (cli->config == NULL)
			return error_set(err, ERROR_SOFTWARE, "out of memory");
		error_clear(&reason);
		if (config_load(cli->config_path, cli->config, &reason) < 0)
			return error_set(err, ERROR_CONFIG, "%s", reason.message);
	}
	if ((needs & CLI_NEEDS_STORE) == CLI_NEEDS_STORE) {
		struct error reason;

		error_clear(&reason);
		if (store_open(cli->config->accounts_db, false, &cli->store, &reason) < 0) {
			enum error_kind kind = reason.kind == ERROR_NONE ? ERROR_IO : reason.kind;

			/* Whatever the backend said, the message names the file. */
			if (strstr(reason.message, cli->config->accounts_db) != NULL)
				return error_set(err, kind, "%s", reason.message);
			return error_set(err, kind, "cannot open the accounts store %s: %s",
					 cli->config->accounts_db, reason.message);
		}
	}
	return 0;
}

/*
 * Dispatch argv (from the command on). A usage error found here shows the
 * usage of the command (or of everything) after the message: *usage_out says
 * which; errors from the verb itself are shown alone.
 */
static int run(struct cli *cli, int argc, char **argv, struct error *err, bool *shows_usage_out,
	       const struct cli_command **usage_out)
{
	const struct cli_command *command;
	const struct cli_verb *verb;
	struct cli_args args;

	*shows_usage_out = true;
	if (argc == 0)
		return error_set(err, ERROR_USAGE, "no command given");
	command = find_command(argv[0]);
	if (command == NULL)
		return error_set(err, ERROR_USAGE, "unknown command %s", argv[0]);
	*usage_out = command;
	argc--;
	argv++;
	if (command->verbs[0].name == NULL) {
		verb = &command->verbs[0];
	} else {
		if (argc == 0)
			return error_set(err, ERROR_USAGE, "%s needs a verb", command->name);
		if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "-h") == 0 ||
		    strcmp(argv[0], "--help") == 0) {
			cli_usage_print(cli->out, command);
			return 0;
		}
		verb = find_verb(command, argv[0]);
		if (verb == NULL)
			return error_set(err, ERROR_USAGE, "unknown verb %s %s", command->name,
					 argv[0]);
		argc--;
		argv++;
	}
	if (asks_for_help(argc, argv)) {
		cli_usage_print(cli->out, command);
		return 0;
	}
	if (cli_args_parse(verb, argc, argv, &args, err) < 0)
		return -1;
	*shows_usage_out = false;
	if (prepare(cli, verb->needs, err) < 0)
		return -1;
	return verb->run(cli, &args, err);
}

int main(int argc, char **argv)
{
	const struct cli_command *usage = NULL;
	bool shows_usage = false;
	struct cli cli = { .config_path = CLI_DEFAULT_CONFIG, .out = stdout };
	struct error err;
	int i = 1, rc;

	error_clear(&err);
	/* Installed as sendmail (a link to postgate): sendmail's command line. */
	{
		const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;

		if (argc > 0 && strcmp(slash != NULL ? slash + 1 : argv[0], "sendmail") == 0)
			return cli_sendmail_main(CLI_DEFAULT_CONFIG, argc, argv);
	}
	/* Global options come before the command. */
	while (i < argc && argv[i][0] == '-') {
		const char *arg = argv[i];

		if (strcmp(arg, "--version") == 0) {
			printf("postgate %s\n", POSTGATE_VERSION);
			return flush_output();
		} else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			cli_usage_print(stdout, NULL);
			return flush_output();
		} else if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "postgate: %s needs a file name\n", arg);
				cli_usage_print(stderr, NULL);
				return cli_exit_code(ERROR_USAGE);
			}
			cli.config_path = argv[i + 1];
			i += 2;
		} else if (strncmp(arg, "-c", 2) == 0) {
			cli.config_path = arg + 2;
			i++;
		} else if (strncmp(arg, "--config=", 9) == 0) {
			cli.config_path = arg + 9;
			i++;
		} else if (strcmp(arg, "--") == 0) {
			i++;
			break;
		} else {
			fprintf(stderr, "postgate: unknown option %s\n", arg);
			cli_usage_print(stderr, NULL);
			return cli_exit_code(ERROR_USAGE);
		}
	}
	if (i < argc && strcmp(argv[i], "sendmail") == 0)
		return cli_sendmail_main(cli.config_path, argc - i, argv + i);
	if (i < argc && strcmp(argv[i], "help") == 0) {
		const struct cli_command *command = NULL;

		if (i + 1 < argc && (command = find_command(argv[i + 1])) == NULL) {
			fprintf(stderr, "postgate: unknown command %s\n", argv[i + 1]);
			cli_usage_print(stderr, NULL);
			return cli_exit_code(ERROR_USAGE);
		}
		cli_usage_print(stdout, command);
		return flush_output();
	}

	rc = run(&cli, argc - i, argv + i, &err, &shows_usage, &usage);
	store_close(cli.store);
	free(cli.config);
	if (rc == 0)
		return flush_output();
	if (err.kind == ERROR_NONE)
		err.kind = ERROR_SOFTWARE;
	fprintf(stderr, "postgate: %s\n", err.message);
	if (shows_usage)
		cli_usage_print(stderr, usage);
	return cli_exit_code(err.kind);
}
