/*
 * queue: `postgate queue list|show|flush|delete|hold|release`.
 *
 * list and show read the spool directly and change nothing (queue_spool_list
 * and the loaders are safe while the daemon runs), so they work whether or
 * not postgated is running; a message that leaves the spool while we read it
 * is simply not shown. flush, delete, hold and release ask the running daemon
 * through its control socket (queue/control.h), because only the queue
 * manager may move a message it may be delivering; without the daemon they
 * fail with ERROR_UNAVAILABLE (exit 69). docs/queue.md describes it all.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli/internal.h"
#include "core/span.h"
#include "queue/control.h"
#include "queue/envelope.h"
#include "queue/spool.h"

#define CLI_QUEUE_HEADERS_MAX	 (64 * 1024) /* bytes of a message's header shown by show */
#define CLI_QUEUE_CONTROL_WAIT_S 30	     /* for the daemon's reply */

static const char *const place_names[] = {
	[QUEUE_PLACE_ACTIVE] = "queue",
	[QUEUE_PLACE_DEFERRED] = "deferred",
	[QUEUE_PLACE_HOLD] = "hold",
};

static const char *const status_names[] = {
	[QUEUE_RECIPIENT_PENDING] = "pending",
	[QUEUE_RECIPIENT_DELIVERED] = "delivered",
	[QUEUE_RECIPIENT_FAILED] = "failed",
};

/* ---- reading the spool ---------------------------------------------------- */

/*
 * Open the spool read-only in spirit: queue_spool_open would create missing
 * directories, and a directory made by root here would lock the daemon out
 * of it, so every one must exist first. No spool at all (nothing was ever
 * accepted): *spool_out NULL, 0.
 */
static int spool_open(const struct cli *cli, struct queue_spool **spool_out, struct error *err)
{
	static const char *const dirs[] = { "", "/tmp", "/queue", "/deferred", "/hold" };
	char path[CONFIG_PATH_MAX + 32];
	struct stat st;

	*spool_out = NULL;
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
		snprintf(path, sizeof(path), "%s/spool%s", cli->config->state_dir, dirs[i]);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			continue;
		if (i == 0 && errno == ENOENT)
			return 0;
		if (errno == EACCES)
			return error_set(err, ERROR_PERMISSION,
					 "cannot read the spool %s: %s (run as root or as the "
					 "daemon's user)",
					 path, strerror(errno));
		return error_set(err, ERROR_IO,
				 "the spool is incomplete: %s is missing (start postgated once)",
				 path);
	}
	snprintf(path, sizeof(path), "%s/spool", cli->config->state_dir);
	return queue_spool_open(path, spool_out, err);
}

struct queue_item {
	char id[QUEUE_ID_MAX + 1];
	enum queue_place place;
};

struct item_list {
	struct queue_item *items;
	size_t count, cap;
	bool is_short;
};

static void item_collect(void *ctx, const char *id, enum queue_place place)
{
	struct item_list *list = ctx;

	if (list->is_short)
		return;
	if (list->count == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 64;
		struct queue_item *items = realloc(list->items, cap * sizeof(*items));

		if (items == NULL) {
			list->is_short = true;
			return;
		}
		list->items = items;
		list->cap = cap;
	}
	snprintf(list->items[list->count].id, sizeof(list->items[list->count].id), "%s", id);
	list->items[list->count++].place = place;
}

/* One message as list and show present it. */
struct queue_view {
	char id[QUEUE_ID_MAX + 1];
	enum queue_place place;
	uint64_t size;
	struct queue_envelope env;
	struct queue_state state;
	char *headers; /* show only: the header section, NUL-terminated */
};

static void view_clear(struct queue_view *v)
{
	queue_envelope_clear(&v->env);
	queue_state_clear(&v->state);
	free(v->headers);
	v->headers = NULL;
}

/* Read up to the blank line that ends the header section (or the bound). */
static int headers_read(int fd, char **out, struct error *err)
{
	char *buf = malloc(CLI_QUEUE_HEADERS_MAX + 1);
	size_t len = 0;

	if (buf == NULL)
		return error_set(err, ERROR_SOFTWARE, "out of memory");
	while (len < CLI_QUEUE_HEADERS_MAX) {
		ssize_t n = read(fd, buf + len, CLI_QUEUE_HEADERS_MAX - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return error_set(err, ERROR_IO, "reading the message: %s", strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t) n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL)
			break;
	}
	buf[len] = '\0';
	{
		char *end = strstr(buf, "\r\n\r\n");

		if (end != NULL)
			end[2] = '\0';
		else if ((end = strstr(buf, "\n\n")) != NULL)
			end[1] = '\0';
	}
	*out = buf;
	return 0;
}

/*
 * Load one message; ERROR_NOT_FOUND when it left the spool meanwhile. With
 * want_headers, its header section too.
 */
static int view_load(struct queue_spool *spool, const char *id, bool want_headers,
		     struct queue_view *v, struct error *err)
{
	struct stat st;
	int fd = -1, rc = -1;

	memset(v, 0, sizeof(*v));
	queue_envelope_init(&v->env);
	snprintf(v->id, sizeof(v->id), "%s", id);
	if (queue_spool_locate(spool, id, &v->place, err) < 0 ||
	    queue_spool_envelope_load(spool, id, &v->env, err) < 0 ||
	    queue_spool_state_load(spool, id, v->env.recipient_count, &v->state, err) < 0 ||
	    queue_spool_message_open(spool, id, &fd, err) < 0)
		goto out;
	if (fstat(fd, &st) != 0) {
		error_set(err, ERROR_IO, "%s: %s", id, strerror(errno));
		goto out;
	}
	v->size = (uint64_t) st.st_size;
	if (want_headers && headers_read(fd, &v->headers, err) < 0)
		goto out;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static const char *age_format(uint64_t received_at, char *out, size_t cap)
{
	uint64_t now = (uint64_t) time(NULL);
	uint64_t age = now > received_at ? now - received_at : 0;

	if (age < 60)
		snprintf(out, cap, "%llus", (unsigned long long) age);
	else if (age < 3600)
		snprintf(out, cap, "%llum", (unsigned long long) (age / 60));
	else if (age < 86400)
		snprintf(out, cap, "%lluh", (unsigned long long) (age / 3600));
	else
		snprintf(out, cap, "%llud", (unsigned long long) (age / 86400));
	return out;
}

static const char *sender_of(const struct queue_envelope *env)
{
	return env->reverse_path[0] != '\0' ? env->reverse_path : "<>";
}

/* "success,failure", "never", or NULL when not given. */
static const char *notify_format(unsigned notify, char *out, size_t cap)
{
	static const struct {
		unsigned bit;
		const char *word;
	} words[] = {
		{ QUEUE_NOTIFY_NEVER, "never" },
		{ QUEUE_NOTIFY_SUCCESS, "success" },
		{ QUEUE_NOTIFY_FAILURE, "failure" },
		{ QUEUE_NOTIFY_DELAY, "delay" },
	};
	size_t used = 0;

	if (notify == 0)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(words); i++)
		if ((notify & words[i].bit) && used < cap)
			used += (size_t) snprintf(out + used, cap - used, "%s%s", used ? "," : "",
						  words[i].word);
	return out;
}

static const char *ret_name(enum queue_ret ret)
{
	return ret == QUEUE_RET_FULL ? "full" : ret == QUEUE_RET_HDRS ? "hdrs" : NULL;
}

static const char *body_name(enum queue_body_type body)
{
	return body == QUEUE_BODY_8BITMIME     ? "8bitmime"
	       : body == QUEUE_BODY_BINARYMIME ? "binarymime"
					       : "7bit";
}

static void json_view(struct cli_json *json, const struct queue_view *v)
{
	char when[32], notify[48];

	cli_json_begin_object(json);
	cli_json_key(json, "id");
	cli_json_string(json, v->id);
	cli_json_key(json, "place");
	cli_json_string(json, place_names[v->place]);
	cli_json_key(json, "held");
	cli_json_bool(json, v->place == QUEUE_PLACE_HOLD);
	cli_json_key(json, "size");
	cli_json_int(json, (int64_t) v->size);
	cli_json_key(json, "received");
	cli_json_string(json, cli_time_format((int64_t) v->env.received_at, when, sizeof(when)));
	cli_json_key(json, "age_s");
	{
		uint64_t now = (uint64_t) time(NULL);

		cli_json_int(json,
			     (int64_t) (now > v->env.received_at ? now - v->env.received_at : 0));
	}
	cli_json_key(json, "sender");
	cli_json_string(json, v->env.reverse_path);
	cli_json_key(json, "auth_user");
	cli_json_string(json, v->env.auth_user);
	cli_json_key(json, "client_address");
	cli_json_string(json, v->env.client_address);
	cli_json_key(json, "helo");
	cli_json_string(json, v->env.helo);
	cli_json_key(json, "smtputf8");
	cli_json_bool(json, v->env.is_smtputf8);
	cli_json_key(json, "body");
	cli_json_string(json, body_name(v->env.body_type));
	cli_json_key(json, "ret");
	cli_json_string(json, ret_name(v->env.ret));
	cli_json_key(json, "envid");
	cli_json_string(json, v->env.envid);
	cli_json_key(json, "attempts");
	cli_json_int(json, v->state.attempt_count);
	cli_json_key(json, "next_attempt");
	cli_json_string(json, v->state.next_attempt_at == 0
				      ? NULL
				      : cli_time_format((int64_t) v->state.next_attempt_at, when,
							sizeof(when)));
	cli_json_key(json, "recipients");
	cli_json_begin_array(json);
	for (size_t i = 0; i < v->env.recipient_count; i++) {
		const struct queue_recipient *r = &v->env.recipients[i];

		cli_json_begin_object(json);
		cli_json_key(json, "address");
		cli_json_string(json, r->address);
		cli_json_key(json, "state");
		cli_json_string(json, status_names[v->state.recipients[i].status]);
		cli_json_key(json, "reply");
		cli_json_string(json, v->state.recipients[i].reply);
		cli_json_key(json, "alias");
		cli_json_string(json, r->alias);
		cli_json_key(json, "orcpt");
		cli_json_string(json, r->orcpt);
		cli_json_key(json, "notify");
		cli_json_string(json, notify_format(r->notify, notify, sizeof(notify)));
		cli_json_end_object(json);
	}
	cli_json_end_array(json);
	if (v->headers != NULL) {
		cli_json_key(json, "headers");
		cli_json_string(json, v->headers);
	}
	cli_json_end_object(json);
}

/* Bytes a terminal would act on (escape sequences, bare CR) are shown as
 * "\xNN"; the message's own line breaks stay. */
static void print_clean(FILE *out, const char *text)
{
	for (const unsigned char *p = (const unsigned char *) text; *p != '\0'; p++) {
		if (*p == '\r' && p[1] == '\n')
			continue;
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7F)
			fprintf(out, "\\x%02X", *p);
		else
			fputc(*p, out);
	}
}

static int do_list(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static const char *const headers[] = { "ID",	 "PLACE",     "SIZE",  "AGE",
					       "SENDER", "RECIPIENT", "STATE", "LAST_REPLY" };
	struct queue_spool *spool;
	struct item_list list = { 0 };
	struct cli_table *table = NULL;
	struct cli_json json;
	bool is_json = cli_args_has(args, "json");
	size_t shown = 0;
	uint64_t bytes = 0;
	int rc = -1;

	if (spool_open(cli, &spool, err) < 0)
		return -1;
	if (spool != NULL && queue_spool_list(spool, item_collect, &list, err) < 0)
		goto out;
	if (list.is_short) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		goto out;
	}
	if (is_json) {
		cli_json_init(&json, cli->out);
		cli_json_begin_array(&json);
	} else if ((table = cli_table_new(ARRAY_LEN(headers), headers, err)) == NULL) {
		goto out;
	}
	for (size_t i = 0; i < list.count; i++) {
		struct queue_view v;
		char size[24], age[24];

		if (view_load(spool, list.items[i].id, false, &v, err) < 0) {
			view_clear(&v);
			if (err->kind == ERROR_NOT_FOUND)
				continue; /* delivered or deleted while we read */
			goto out;
		}
		shown++;
		bytes += v.size;
		if (is_json) {
			json_view(&json, &v);
			view_clear(&v);
			continue;
		}
		snprintf(size, sizeof(size), "%llu", (unsigned long long) v.size);
		age_format(v.env.received_at, age, sizeof(age));
		for (size_t r = 0; r < v.env.recipient_count; r++) {
			const char *cells[] = {
				v.id,
				place_names[v.place],
				size,
				age,
				sender_of(&v.env),
				v.env.recipients[r].address,
				v.place == QUEUE_PLACE_HOLD && v.state.recipients[r].status ==
								       QUEUE_RECIPIENT_PENDING
					? "held"
					: status_names[v.state.recipients[r].status],
				v.state.recipients[r].reply,
			};

			if (cli_table_add_row(table, cells, err) < 0) {
				view_clear(&v);
				goto out;
			}
		}
		view_clear(&v);
	}
	if (is_json) {
		cli_json_end_array(&json);
		cli_json_finish(&json);
	} else if (shown == 0) {
		fprintf(cli->out, "the queue is empty\n");
	} else {
		cli_table_print(table, cli->out);
		fprintf(cli->out, "%zu message%s, %llu bytes\n", shown, shown == 1 ? "" : "s",
			(unsigned long long) bytes);
	}
	rc = 0;
out:
	cli_table_free(table);
	free(list.items);
	queue_spool_free(spool);
	return rc;
}

static int id_check(const char *id, struct error *err)
{
	if (!queue_id_is_valid(span_from_cstr(id)))
		return error_set(err, ERROR_USAGE, "%s is not a queue ID", id);
	return 0;
}

static int do_show(struct cli *cli, const struct cli_args *args, struct error *err)
{
	const char *id = args->values[0];
	struct queue_spool *spool;
	struct queue_view v;
	char when[32], next[32], age[24], size[24], attempts[16], notify[48];
	int rc = -1;

	if (id_check(id, err) < 0 || spool_open(cli, &spool, err) < 0)
		return -1;
	if (spool == NULL)
		return error_set(err, ERROR_NOT_FOUND, "no message %s in the queue", id);
	if (view_load(spool, id, true, &v, err) < 0) {
		if (err->kind == ERROR_NOT_FOUND)
			error_set(err, ERROR_NOT_FOUND, "no message %s in the queue", id);
		goto out;
	}
	if (cli_args_has(args, "json")) {
		struct cli_json json;

		cli_json_init(&json, cli->out);
		json_view(&json, &v);
		cli_json_finish(&json);
		rc = 0;
		goto out;
	}
	snprintf(size, sizeof(size), "%llu bytes", (unsigned long long) v.size);
	snprintf(attempts, sizeof(attempts), "%u", v.state.attempt_count);
	{
		const char *const keys[] = { "id",    "place",	  "size",	 "received",
					     "age",   "sender",	  "auth user",	 "client",
					     "helo",  "smtputf8", "body",	 "ret",
					     "envid", "attempts", "next attempt" };
		const char *const values[] = {
			v.id,
			place_names[v.place],
			size,
			cli_time_format((int64_t) v.env.received_at, when, sizeof(when)),
			age_format(v.env.received_at, age, sizeof(age)),
			sender_of(&v.env),
			v.env.auth_user,
			v.env.client_address,
			v.env.helo,
			v.env.is_smtputf8 ? "yes" : "no",
			body_name(v.env.body_type),
			ret_name(v.env.ret),
			v.env.envid,
			attempts,
			v.state.next_attempt_at == 0
				? NULL
				: cli_time_format((int64_t) v.state.next_attempt_at, next,
						  sizeof(next)),
		};

		cli_fields_print(cli->out, ARRAY_LEN(keys), keys, values);
	}
	fprintf(cli->out, "recipients:\n");
	for (size_t i = 0; i < v.env.recipient_count; i++) {
		const struct queue_recipient *r = &v.env.recipients[i];
		const struct queue_recipient_state *s = &v.state.recipients[i];

		fprintf(cli->out, "  %s %s", status_names[s->status], r->address);
		if (r->alias != NULL)
			fprintf(cli->out, " (via %s)", r->alias);
		if (r->orcpt != NULL)
			fprintf(cli->out, " orcpt=%s", r->orcpt);
		if (r->notify != 0)
			fprintf(cli->out, " notify=%s",
				notify_format(r->notify, notify, sizeof(notify)));
		if (s->reply != NULL)
			fprintf(cli->out, ": %s", s->reply);
		fputc('\n', cli->out);
	}
	fprintf(cli->out, "headers:\n");
	print_clean(cli->out, v.headers);
	rc = 0;
out:
	view_clear(&v);
	queue_spool_free(spool);
	return rc;
}

/* ---- asking the daemon ------------------------------------------------------ */

/* Send one request on the control socket and read the reply: 0 with its
 * text, or -1 with the daemon's error or ERROR_UNAVAILABLE when nobody
 * answers. */
int cli_control_ask(const struct cli *cli, const struct queue_control_request *request,
		    char *text_out, size_t text_cap, struct error *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval wait = { CLI_QUEUE_CONTROL_WAIT_S, 0 };
	char line[QUEUE_CONTROL_REQUEST_MAX + 1], reply[QUEUE_CONTROL_REPLY_MAX + 1];
	size_t len, got = 0;
	int fd, n, rc = -1;

	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", cli->config->state_dir,
		     QUEUE_CONTROL_SOCKET);
	if (n < 0 || (size_t) n >= sizeof(sun.sun_path))
		return error_set(err, ERROR_CONFIG, "state_dir is too long for a unix socket path");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, ERROR_IO, "socket: %s", strerror(errno));
	(void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
	(void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait));
	if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			error_set(err, ERROR_UNAVAILABLE,
				  "postgated is not running (nothing answers on %s)", sun.sun_path);
		else if (errno == EACCES || errno == EPERM)
			error_set(err, ERROR_PERMISSION,
				  "%s: %s (run as root or as the daemon's user)", sun.sun_path,
				  strerror(errno));
		else
			error_set(err, ERROR_UNAVAILABLE, "cannot reach postgated on %s: %s",
				  sun.sun_path, strerror(errno));
		goto out;
	}
	len = queue_control_request_format(request, line, sizeof(line));
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t) len) {
		error_set(err, ERROR_UNAVAILABLE, "cannot send to postgated: %s", strerror(errno));
		goto out;
	}
	while (got < sizeof(reply) - 1 && memchr(reply, '\n', got) == NULL) {
		ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			error_set(err, ERROR_TEMPORARY, "postgated did not answer within %d s",
				  CLI_QUEUE_CONTROL_WAIT_S);
			goto out;
		}
		if (r <= 0)
			break;
		got += (size_t) r;
	}
	{
		char *lf = memchr(reply, '\n', got);

		if (lf == NULL) {
			error_set(err, ERROR_UNAVAILABLE,
				  "postgated closed the control connection without a reply");
			goto out;
		}
		rc = queue_control_reply_parse(span_make(reply, (size_t) (lf - reply)), text_out,
					       text_cap, err);
	}
out:
	close(fd);
	return rc;
}

static int ask(struct cli *cli, enum queue_control_verb verb, const char *id, const char *done,
	       struct error *err)
{
	struct queue_control_request request = { .verb = verb, .has_id = id != NULL };
	char text[QUEUE_CONTROL_REPLY_MAX + 1];

	if (id != NULL) {
		if (id_check(id, err) < 0)
			return -1;
		snprintf(request.id, sizeof(request.id), "%s", id);
	}
	if (cli_control_ask(cli, &request, text, sizeof(text), err) < 0)
		return -1;
	fprintf(cli->out, "%s %s%s\n", id != NULL ? id : "every message not held", done,
		verb == QUEUE_CONTROL_FLUSH || verb == QUEUE_CONTROL_RELEASE ? ", tried now" : "");
	return 0;
}

static int do_flush(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return ask(cli, QUEUE_CONTROL_FLUSH, args->count == 1 ? args->values[0] : NULL, "flushed",
		   err);
}

static int do_delete(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return ask(cli, QUEUE_CONTROL_DELETE, args->values[0], "deleted", err);
}

static int do_hold(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return ask(cli, QUEUE_CONTROL_HOLD, args->values[0], "held", err);
}

static int do_release(struct cli *cli, const struct cli_args *args, struct error *err)
{
	return ask(cli, QUEUE_CONTROL_RELEASE, args->values[0], "released", err);
}

static const struct cli_option no_options[] = {
	{ NULL, false },
};
static const struct cli_option json_options[] = {
	{ "json", false },
	{ NULL, false },
};

static const struct cli_verb queue_verbs[] = {
	{ "list", "[--json]",
	  "list the messages in the spool, one line per recipient with its state (read-only)", 0, 0,
	  json_options, CLI_NEEDS_CONFIG, do_list },
	{ "show", "ID [--json]", "show a message's envelope, recipients and headers (read-only)", 1,
	  1, json_options, CLI_NEEDS_CONFIG, do_show },
	{ "flush", "[ID]", "try a message (or every message not held) now (needs postgated)", 0, 1,
	  no_options, CLI_NEEDS_CONFIG, do_flush },
	{ "delete", "ID", "remove a message from the spool, without a bounce (needs postgated)", 1,
	  1, no_options, CLI_NEEDS_CONFIG, do_delete },
	{ "hold", "ID", "set a message aside: it is not tried until released (needs postgated)", 1,
	  1, no_options, CLI_NEEDS_CONFIG, do_hold },
	{ "release", "ID", "put a held message back in the queue and try it (needs postgated)", 1,
	  1, no_options, CLI_NEEDS_CONFIG, do_release },
};

const struct cli_command cli_queue_command = { "queue", queue_verbs, ARRAY_LEN(queue_verbs) };
