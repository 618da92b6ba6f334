/*
 * control: request and reply lines of the control socket (see control.h).
 */
#include "queue/control.h"

#include <stdio.h>
#include <string.h>

// clang-format off
static const char *const verb_names[] = {
	[QUEUE_CONTROL_FLUSH]   = "flush",
	[QUEUE_CONTROL_DELETE]  = "delete",
	[QUEUE_CONTROL_HOLD]    = "hold",
	[QUEUE_CONTROL_RELEASE] = "release",
	[QUEUE_CONTROL_STATUS]  = "status",
	[QUEUE_CONTROL_ACTIVITY] = "activity",
};

static const char *const error_names[] = {
	[ERROR_NONE]        = "none",
	[ERROR_USAGE]       = "usage",
	[ERROR_DATA]        = "data",
	[ERROR_NOT_FOUND]   = "not-found",
	[ERROR_EXISTS]      = "exists",
	[ERROR_CONFIG]      = "config",
	[ERROR_IO]          = "io",
	[ERROR_PERMISSION]  = "permission",
	[ERROR_SOFTWARE]    = "software",
	[ERROR_TEMPORARY]   = "temporary",
	[ERROR_UNAVAILABLE] = "unavailable",
};
// clang-format on

const char *queue_control_verb_name(enum queue_control_verb verb)
{
	return (size_t) verb < ARRAY_LEN(verb_names) ? verb_names[verb] : "?";
}

const char *queue_control_error_name(enum error_kind kind)
{
	if ((size_t) kind >= ARRAY_LEN(error_names) || error_names[kind] == NULL)
		return "software";
	return error_names[kind];
}

bool queue_control_error_kind(struct span name, enum error_kind *kind_out)
{
	for (size_t i = 0; i < ARRAY_LEN(error_names); i++) {
		if (error_names[i] != NULL && span_eq_cstr(name, error_names[i])) {
			*kind_out = (enum error_kind) i;
			return true;
		}
	}
	return false;
}

static bool is_printable(struct span s)
{
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char) s.ptr[i] < 0x20 || (unsigned char) s.ptr[i] > 0x7E)
			return false;
	return true;
}

static struct span drop_cr(struct span line)
{
	if (line.len > 0 && line.ptr[line.len - 1] == '\r')
		line.len--;
	return line;
}

static int parse_request(struct span line, struct queue_control_request *out, struct error *err)
{
	struct span verb, arg, extra;
	bool has_verb = false;

	line = drop_cr(line);
	if (line.len == 0)
		return error_set(err, ERROR_USAGE, "empty request");
	if (line.len + 1 > QUEUE_CONTROL_REQUEST_MAX)
		return error_set(err, ERROR_USAGE, "request longer than %d bytes",
				 QUEUE_CONTROL_REQUEST_MAX);
	if (!is_printable(line))
		return error_set(err, ERROR_USAGE,
				 "request holds a byte that is not printable ASCII");
	if (!span_split_first(line, ' ', &verb, &arg)) {
		verb = line;
		arg = span_make(line.ptr + line.len, 0);
	} else if (arg.len == 0 || span_split_first(arg, ' ', &arg, &extra)) {
		return error_set(err, ERROR_USAGE, "a request is a verb and at most one argument");
	}
	for (size_t i = 0; i < ARRAY_LEN(verb_names); i++) {
		if (span_eq_cstr(verb, verb_names[i])) {
			out->verb = (enum queue_control_verb) i;
			has_verb = true;
		}
	}
	if (!has_verb)
		return error_set(
			err, ERROR_USAGE,
			"unknown request (flush, delete, hold, release, status, activity)");
	if (out->verb == QUEUE_CONTROL_STATUS)
		return arg.len == 0 ? 0 : error_set(err, ERROR_USAGE, "status takes no argument");
	if (out->verb == QUEUE_CONTROL_ACTIVITY) {
		struct span local, domain;

		/* The shape only: the daemon looks the name up, it need not be
		 * more valid than that to find nothing. */
		if (arg.len == 0 || arg.len > ADDRESS_TEXT_MAX ||
		    !span_split_last(arg, '@', &local, &domain) || local.len == 0 ||
		    domain.len == 0 || !span_copy_cstr(arg, out->address, sizeof(out->address)))
			return error_set(err, ERROR_USAGE, "activity needs a user's address");
		return 0;
	}
	if (arg.len == 0) {
		if (out->verb != QUEUE_CONTROL_FLUSH)
			return error_set(err, ERROR_USAGE, "%s needs a queue ID",
					 verb_names[out->verb]);
		return 0;
	}
	if (!queue_id_is_valid(arg) || !span_copy_cstr(arg, out->id, sizeof(out->id)))
		return error_set(err, ERROR_USAGE, "not a queue ID");
	out->has_id = true;
	return 0;
}

int queue_control_request_parse(struct span line, struct queue_control_request *out,
				struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (parse_request(line, out, err) == 0)
		return 0;
	memset(out, 0, sizeof(*out));
	return -1;
}

size_t queue_control_request_format(const struct queue_control_request *request, char *out,
				    size_t cap)
{
	const char *arg = request->verb == QUEUE_CONTROL_ACTIVITY ? request->address
			  : request->has_id			  ? request->id
								  : "";
	int n = snprintf(out, cap, "%s%s%s\n", queue_control_verb_name(request->verb),
			 arg[0] != '\0' ? " " : "", arg);

	if (n < 0)
		return 0;
	return (size_t) n < cap ? (size_t) n : cap - 1;
}

/* Append text to out[*used..cap-2], '?' for any byte that is not printable
 * ASCII, leaving room for the LF and the NUL. */
static void append_clean(char *out, size_t cap, size_t *used, const char *text)
{
	for (; *text != '\0' && *used + 2 < cap; text++) {
		unsigned char c = (unsigned char) *text;

		out[(*used)++] = c >= 0x20 && c <= 0x7E ? (char) c : '?';
	}
}

size_t queue_control_reply_format(const struct error *err, const char *text, char *out, size_t cap)
{
	size_t used = 0;

	if (cap > QUEUE_CONTROL_REPLY_MAX + 1)
		cap = QUEUE_CONTROL_REPLY_MAX + 1;
	if (cap < 3) {
		if (cap > 0)
			out[0] = '\0';
		return 0;
	}
	if (err == NULL) {
		append_clean(out, cap, &used, "ok");
		if (text != NULL && text[0] != '\0') {
			append_clean(out, cap, &used, " ");
			append_clean(out, cap, &used, text);
		}
	} else {
		append_clean(out, cap, &used, "error ");
		append_clean(out, cap, &used, queue_control_error_name(err->kind));
		append_clean(out, cap, &used, " ");
		append_clean(out, cap, &used, err->message);
	}
	out[used++] = '\n';
	out[used] = '\0';
	return used;
}

int queue_control_reply_parse(struct span line, char *text_out, size_t cap, struct error *err)
{
	struct span word, rest;
	enum error_kind kind;

	if (cap > 0)
		text_out[0] = '\0';
	line = drop_cr(line);
	if (line.len + 1 > QUEUE_CONTROL_REPLY_MAX || !is_printable(line))
		return error_set(err, ERROR_SOFTWARE, "the daemon's reply is not a reply line");
	if (!span_split_first(line, ' ', &word, &rest)) {
		word = line;
		rest = span_make(line.ptr + line.len, 0);
	}
	if (span_eq_cstr(word, "ok")) {
		if (!span_copy_cstr(rest, text_out, cap))
			return error_set(err, ERROR_SOFTWARE, "the daemon's reply is too long");
		return 0;
	}
	if (span_eq_cstr(word, "error") && span_split_first(rest, ' ', &word, &rest) &&
	    queue_control_error_kind(word, &kind) && kind != ERROR_NONE && rest.len > 0)
		return error_set(err, kind, "%.*s", (int) rest.len, rest.ptr);
	return error_set(err, ERROR_SOFTWARE, "the daemon's reply is not a reply line");
}
