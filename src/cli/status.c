/*
 * status: `postgate status` — the running daemon's state, asked over the
 * control socket (docs/queue.md): uptime, sessions per listener, the queue
 * by place, users on a sending hold, logins and failed logins (also in the
 * last minute). `--json` for scripts and monitoring. Exit 69 when the
 * daemon is not running.
 */
#include <string.h>

#include "cli/internal.h"
#include "core/span.h"
#include "queue/control.h"

static int do_status(struct cli *cli, const struct cli_args *args, struct error *err)
{
	struct queue_control_request request = { .verb = QUEUE_CONTROL_STATUS };
	char text[QUEUE_CONTROL_REPLY_MAX + 1];
	bool is_json = cli_args_has(args, "json");
	struct span rest, word, key, value;
	struct cli_json json;

	if (cli_control_ask(cli, &request, text, sizeof(text), err) < 0)
		return -1;
	if (is_json) {
		cli_json_init(&json, cli->out);
		cli_json_begin_object(&json);
	}
	for (rest = span_from_cstr(text); rest.len > 0;) {
		char name[64], shown[64];
		uint64_t n;

		span_split_word(rest, &word, &rest);
		if (!span_split_first(word, '=', &key, &value) ||
		    !span_copy_cstr(key, name, sizeof(name)) ||
		    !span_copy_cstr(value, shown, sizeof(shown)))
			continue; /* a word this version does not know how to show */
		if (!is_json) {
			for (char *p = name; *p != '\0'; p++)
				if (*p == '_')
					*p = ' ';
			{
				char label[sizeof(name) + 1];

				snprintf(label, sizeof(label), "%s:", name);
				fprintf(cli->out, "%-26s %s\n", label, shown);
			}
			continue;
		}
		cli_json_key(&json, name);
		if (span_parse_u64(value, &n))
			cli_json_int(&json, (int64_t) n);
		else if (span_eq_cstr(value, "yes") || span_eq_cstr(value, "no"))
			cli_json_bool(&json, span_eq_cstr(value, "yes"));
		else
			cli_json_string(&json, shown);
	}
	if (is_json) {
		cli_json_end_object(&json);
		cli_json_finish(&json);
	}
	return 0;
}

static const struct cli_option json_options[] = {
	{ "json", false },
	{ NULL, false },
};

static const struct cli_verb status_verbs[] = {
	{ NULL, "[--json]",
	  "the running daemon: uptime, sessions, queue, holds, logins (via the control socket)", 0,
	  0, json_options, CLI_NEEDS_CONFIG, do_status },
};

const struct cli_command cli_status_command = { "status", status_verbs, ARRAY_LEN(status_verbs) };
