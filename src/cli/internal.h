/*
 * cli/internal.h: what the files of the `postgate` command share — the
 * command and verb tables, argument parsing, the exit-code table, table and
 * JSON output, and password prompting. Nothing outside src/cli/ includes it.
 */
#ifndef POSTGATE_CLI_INTERNAL_H
#define POSTGATE_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "store/store.h"

#define CLI_DEFAULT_CONFIG "/etc/postgate/postgate.conf"
#define CLI_ARGS_MAX	   (STORE_ALIAS_TARGETS_MAX + 8) /* positional arguments of one verb */
#define CLI_OPTIONS_MAX	   8

/* What the dispatcher prepares before a verb runs. */
enum cli_needs {
	CLI_NEEDS_NOTHING = 0,
	CLI_NEEDS_CONFIG = 1,	 /* config_load of -c FILE */
	CLI_NEEDS_STORE = 2 | 1, /* the above, and the accounts store opened */
	CLI_NEEDS_SECRETS = 4,	 /* auth_secret_global_init */
};

/* The state of one run of the command. */
struct cli {
	const char *config_path;
	struct config *config; /* loaded when the verb needs it */
	struct store *store;   /* opened when the verb needs it */
	FILE *out;	       /* stdout */
};

/* An option a verb accepts: "--json" or "--owner USER". */
struct cli_option {
	const char *name; /* without the dashes */
	bool takes_value;
};

struct cli_args {
	size_t count;
	const char *values[CLI_ARGS_MAX]; /* positional arguments in order */
	size_t option_count;
	struct {
		const char *name;
		const char *value; /* "" for a flag */
	} options[CLI_OPTIONS_MAX];
};

struct cli_verb;
typedef int cli_verb_fn(struct cli *cli, const struct cli_args *args, struct error *err);

struct cli_verb {
	const char *name;     /* NULL: the command takes no verb (init) */
	const char *synopsis; /* the arguments after the verb */
	const char *summary;
	size_t min_args, max_args;
	const struct cli_option *options; /* ends with { NULL } */
	enum cli_needs needs;
	cli_verb_fn *run;
};

struct cli_command {
	const char *name;
	const struct cli_verb *verbs;
	size_t verb_count;
};

extern const struct cli_command cli_init_command;
extern const struct cli_command cli_config_command;
extern const struct cli_command cli_domain_command;
extern const struct cli_command cli_user_command;
extern const struct cli_command cli_alias_command;
extern const struct cli_command cli_queue_command;
extern const struct cli_command cli_status_command;

/* queue.c: one request on the daemon's control socket, its "ok" text into
 * text_out; ERROR_UNAVAILABLE when the daemon is not running. */
struct queue_control_request;
int cli_control_ask(const struct cli *cli, const struct queue_control_request *request,
		    char *text_out, size_t text_cap, struct error *err);
extern const struct cli_command cli_tls_command;

/* limits.c: `user limits` and `domain limits` (their options:
 * cli_limits_options), and the one-line form of a set of limits. */
extern const struct cli_option cli_limits_options[];
int cli_user_limits(struct cli *cli, const struct cli_args *args, struct error *err);
int cli_domain_limits(struct cli *cli, const struct cli_args *args, struct error *err);
void cli_limits_format(const struct store_limits *limits, char *out, size_t cap);

/* tls.c: each server name clients use (hostname, every domain's SMTP and
 * POP3 names), sorted, once each. A non-zero return from each stops. */
typedef int cli_tls_name_fn(void *ctx, const char *name);
int cli_tls_names_each(struct cli *cli, cli_tls_name_fn *each, void *ctx, struct error *err);

/* args.c: parse argv (after the verb) against the verb's options. "--" ends
 * options; "--name=value" and "--name value" are both accepted. ERROR_USAGE. */
int cli_args_parse(const struct cli_verb *verb, int argc, char **argv, struct cli_args *args_out,
		   struct error *err);
bool cli_args_has(const struct cli_args *args, const char *name);
const char *cli_args_value(const struct cli_args *args, const char *name); /* NULL when absent */

/* sendmail.c: `postgate sendmail ARGS` or a program named sendmail; argv[0]
 * is the command's name, options follow sendmail's. Returns the exit code. */
int cli_sendmail_main(const char *config_path, int argc, char **argv);

/* exit.c: the one table from error kind to sysexits.h code. */
int cli_exit_code(enum error_kind kind);

/* main.c: usage text for one command (or every command when NULL). */
void cli_usage_print(FILE *out, const struct cli_command *command);

/* Normalize a domain or address typed by the administrator; ERROR_DATA naming `what`. */
int cli_domain_normalize(const char *input, const char *what, char *out, struct error *err);
int cli_address_normalize(const char *input, const char *what, char *out, struct error *err);

/* output.c: a table of text cells printed with columns as wide as their
 * widest cell (counted in UTF-8 characters) and two spaces between them. */
struct cli_table;
struct cli_table *cli_table_new(size_t column_count, const char *const *headers, struct error *err);
/* Copies the cells; NULL cells print as "-". */
int cli_table_add_row(struct cli_table *table, const char *const *cells, struct error *err);
void cli_table_print(const struct cli_table *table, FILE *out);
void cli_table_free(struct cli_table *table);

/* Aligned "key: value" lines for `show`. */
void cli_fields_print(FILE *out, size_t count, const char *const *keys, const char *const *values);

/* output.c: a JSON writer (RFC 8259) that indents and places commas itself. */
#define CLI_JSON_DEPTH_MAX 8
struct cli_json {
	FILE *out;
	size_t depth;
	bool has_items[CLI_JSON_DEPTH_MAX];
	bool after_key;
};
void cli_json_init(struct cli_json *json, FILE *out);
void cli_json_begin_object(struct cli_json *json);
void cli_json_end_object(struct cli_json *json);
void cli_json_begin_array(struct cli_json *json);
void cli_json_end_array(struct cli_json *json);
void cli_json_key(struct cli_json *json, const char *key);
void cli_json_string(struct cli_json *json, const char *value); /* NULL writes null */
void cli_json_int(struct cli_json *json, int64_t value);
void cli_json_bool(struct cli_json *json, bool value);
void cli_json_finish(struct cli_json *json); /* the final newline */

/* "2024-05-01T12:00:00Z" (UTC); out holds at least 32 bytes. */
const char *cli_time_format(int64_t unix_seconds, char *out, size_t out_cap);

/* password.c: a new password for `address`, from one line of stdin
 * (from_stdin) or typed twice at the terminal with echo off. password_out
 * holds AUTH_PASSWORD_MAX + 1 bytes, NUL-terminated; wipe it after use. */
int cli_password_read(bool from_stdin, const char *address, char *password_out, size_t *len_out,
		      struct error *err);

#endif
