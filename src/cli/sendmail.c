/*
 * sendmail: `postgate sendmail` (also run as `sendmail` through a symbolic
 * link, e.g. /usr/sbin/sendmail), the sendmail-compatible command local
 * programs use: cron, PHP's mail(), scripts. It reads a message on stdin and
 * hands it to the running daemon over <state_dir>/submit.sock with SMTP; the
 * daemon learns the submitting user from the kernel (SO_PEERCRED) and
 * records it (src/daemon/submit.c). It writes nothing to the spool itself
 * and needs no privilege. docs/sendmail.md lists the options.
 *
 * Here the message is turned into what SMTP carries: lines end in CRLF, a
 * line starting with "." is dot-stuffed, a lone "." ends the input unless -i,
 * Bcc: is removed, and a missing From:, Date: or Message-ID: is added (RFC
 * 6409 8 lets a submission agent complete a message). With -t the recipients
 * come from To:, Cc: and Bcc: (RFC 5322 3.4 address lists).
 *
 * Exit codes are sendmail's (sysexits.h), through the one table in exit.c.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli/internal.h"
#include "core/span.h"
#include "smtp/header.h"

#define SENDMAIL_SOCKET		"submit.sock" /* in state_dir (src/daemon/submit.c) */
#define SENDMAIL_WAIT_S		300	      /* for each reply: RFC 5321 4.5.3.2 */
#define SENDMAIL_RECIPIENTS_MAX 1000
#define SENDMAIL_REPLY_MAX	4096
#define SENDMAIL_ADDRESS_MAX	(64 + 1 + 255)

struct sendmail_options {
	bool extract;	      /* -t */
	bool ignore_dots;     /* -i, -oi */
	bool smtp_mode;	      /* -bs */
	const char *sender;   /* -f / -r */
	const char *fullname; /* -F */
	const char *notify;   /* -N */
	const char *ret;      /* -R */
	const char *envid;    /* -V */
	const char *body;     /* -B */
	const char *config;   /* -C */
	const char **recipients;
	size_t recipient_count;
};

/* ---- options ------------------------------------------------------------ */

/* An option's value: the rest of the word ("-fuser") or the next word. */
static int option_value(int argc, char **argv, int *i, const char **out, struct error *err)
{
	const char *arg = argv[*i];

	if (arg[2] != '\0') {
		*out = arg + 2;
		return 0;
	}
	if (*i + 1 >= argc)
		return error_set(err, ERROR_USAGE, "option %s needs a value", arg);
	*out = argv[++*i];
	return 0;
}

static int options_parse(int argc, char **argv, struct sendmail_options *o, struct error *err)
{
	const char *ignored;
	int i;

	o->recipients = calloc((size_t) argc + 1, sizeof(*o->recipients));
	if (o->recipients == NULL)
		return error_set(err, ERROR_SOFTWARE, "out of memory");
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0') {
			o->recipients[o->recipient_count++] = arg;
			continue;
		}
		switch (arg[1]) {
		case 't':
		case 'i':
		case 'v':
		case 'm':
		case 'n':
		case 'U':
			if (arg[2] != '\0')
				return error_set(err, ERROR_USAGE, "unknown option %s", arg);
			if (arg[1] == 't')
				o->extract = true;
			else if (arg[1] == 'i')
				o->ignore_dots = true;
			/* -v, -m (me too), -n (no aliasing), -U (initial
			 * submission): nothing for us to do. */
			break;
		case 'o':
			/* -oi as -i; every other -oX (-oem, -odb, -oQ...) is a
			 * setting of sendmail's own queue with no meaning here. */
			if (strcmp(arg, "-oi") == 0)
				o->ignore_dots = true;
			else if (arg[2] == '\0')
				return error_set(err, ERROR_USAGE, "option -o needs a letter");
			break;
		case 'b':
			if (strcmp(arg, "-bs") == 0)
				o->smtp_mode = true;
			else if (strcmp(arg, "-bm") != 0)
				return error_set(err, ERROR_USAGE,
						 "%s is not supported (only -bm and -bs; the queue "
						 "is `postgate queue`)",
						 arg);
			break;
		case 'f':
		case 'r':
			if (option_value(argc, argv, &i, &o->sender, err) < 0)
				return -1;
			break;
		case 'F':
			if (option_value(argc, argv, &i, &o->fullname, err) < 0)
				return -1;
			break;
		case 'N':
			if (option_value(argc, argv, &i, &o->notify, err) < 0)
				return -1;
			break;
		case 'R':
			if (option_value(argc, argv, &i, &o->ret, err) < 0)
				return -1;
			break;
		case 'V':
			if (option_value(argc, argv, &i, &o->envid, err) < 0)
				return -1;
			break;
		case 'B':
			if (option_value(argc, argv, &i, &o->body, err) < 0)
				return -1;
			break;
		case 'C':
			if (option_value(argc, argv, &i, &o->config, err) < 0)
				return -1;
			break;
		case 'h': /* hop count */
		case 'L': /* syslog tag */
		case 'O': /* Option=value */
		case 'X': /* traffic log */
			if (option_value(argc, argv, &i, &ignored, err) < 0)
				return -1;
			break;
		case 'q':
			return error_set(err, ERROR_USAGE,
					 "queue runs are `postgate queue flush` (docs/queue.md)");
		default:
			return error_set(err, ERROR_USAGE, "unknown option %s", arg);
		}
	}
	for (; i < argc; i++)
		o->recipients[o->recipient_count++] = argv[i];
	return 0;
}

/* ---- the message ---------------------------------------------------------- */

struct line {
	const char *ptr;
	size_t len; /* without the line end */
};

struct message {
	char *data;
	size_t len;
	struct line *lines;
	size_t line_count, line_cap;
	size_t header_count; /* lines[0..header_count) are the header section */
	bool has_from, has_date, has_message_id, has_8bit;
};

/* Read stdin to its end (or a lone "." unless ignore_dots), at most max
 * bytes, and split it into lines (LF or CRLF; a last line without one
 * counts). */
static int message_read(struct message *m, bool ignore_dots, uint64_t max, struct error *err)
{
	size_t cap = 0, scanned = 0; /* lines before scanned hold no lone "." */
	bool has_end = false;

	while (!has_end) {
		ssize_t n;

		if (m->len == cap) {
			char *data;

			cap = cap ? cap * 2 : 65536;
			if (cap > max + 65536)
				cap = (size_t) max + 65536;
			if (m->len == cap)
				return error_set(
					err, ERROR_DATA,
					"the message is larger than max_message_size (%llu "
					"bytes)",
					(unsigned long long) max);
			data = realloc(m->data, cap);
			if (data == NULL)
				return error_set(err, ERROR_SOFTWARE, "out of memory");
			m->data = data;
		}
		n = read(STDIN_FILENO, m->data + m->len, cap - m->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, ERROR_IO, "reading the message: %s", strerror(errno));
		if (n == 0)
			break;
		m->len += (size_t) n;
		/* Stop reading at the lone "." as sendmail does: an interactive
		 * writer may keep stdin open after it. */
		while (!ignore_dots && !has_end) {
			const char *lf = memchr(m->data + scanned, '\n', m->len - scanned);
			size_t end;

			if (lf == NULL)
				break;
			end = (size_t) (lf - m->data);
			has_end = (end - scanned == 1 && m->data[scanned] == '.') ||
				  (end - scanned == 2 && memcmp(m->data + scanned, ".\r", 2) == 0);
			scanned = end + 1;
		}
	}
	for (size_t pos = 0; pos < m->len;) {
		const char *lf = memchr(m->data + pos, '\n', m->len - pos);
		size_t end = lf ? (size_t) (lf - m->data) : m->len;
		struct line line = { m->data + pos, end - pos };

		if (line.len > 0 && line.ptr[line.len - 1] == '\r')
			line.len--;
		pos = lf ? end + 1 : m->len;
		if (!ignore_dots && line.len == 1 && line.ptr[0] == '.')
			break;
		if (m->line_count == m->line_cap) {
			size_t lines_cap = m->line_cap ? m->line_cap * 2 : 256;
			struct line *lines = realloc(m->lines, lines_cap * sizeof(*lines));

			if (lines == NULL)
				return error_set(err, ERROR_SOFTWARE, "out of memory");
			m->lines = lines;
			m->line_cap = lines_cap;
		}
		m->lines[m->line_count++] = line;
		for (size_t k = 0; k < line.len; k++)
			if ((unsigned char) line.ptr[k] >= 0x80)
				m->has_8bit = true;
	}
	return 0;
}

static bool is_field_line(struct line l, size_t *name_len_out)
{
	struct span name;

	if (!smtp_header_field_name(span_make(l.ptr, l.len), &name))
		return false;
	*name_len_out = name.len;
	return true;
}

static bool field_is(struct line l, size_t name_len, const char *name)
{
	return span_eq_cstr_nocase(span_make(l.ptr, name_len), name);
}

/* ---- addresses in To:, Cc:, Bcc: ----------------------------------------- */

struct recipients {
	char (*list)[SENDMAIL_ADDRESS_MAX + 1];
	size_t count;
};

struct recipient_walk {
	struct recipients *recipients;
	struct error *err;
};

/* The addresses postgated could take: no space, no angle bracket. */
static int recipient_add(void *ctx, struct span address)
{
	struct recipient_walk *w = ctx;
	struct recipients *r = w->recipients;

	if (r->count >= SENDMAIL_RECIPIENTS_MAX)
		return error_set(w->err, ERROR_DATA, "more than %d recipients",
				 SENDMAIL_RECIPIENTS_MAX);
	if (!span_copy_cstr(address, r->list[r->count], sizeof(r->list[r->count])))
		return error_set(w->err, ERROR_DATA, "recipient address too long: %.*s...",
				 (int) (address.len < 60 ? address.len : 60), address.ptr);
	for (const char *p = r->list[r->count]; *p != '\0'; p++)
		if ((unsigned char) *p <= ' ' || *p == '<' || *p == '>')
			return error_set(w->err, ERROR_DATA, "bad recipient address: %s",
					 r->list[r->count]);
	r->count++;
	return 0;
}

/* An address-list (RFC 5322 3.4, smtp/header.h) into r. */
static int address_list_parse(struct span value, struct recipients *r, struct error *err)
{
	struct recipient_walk walk = { r, err };

	error_clear(err);
	if (smtp_header_address_list(value, recipient_add, &walk) == 0)
		return 0;
	if (err->kind == ERROR_NONE)
		error_set(err, ERROR_DATA, "an address is too long in: %.*s...",
			  (int) (value.len < 60 ? value.len : 60), value.ptr);
	return -1;
}

/* Unfold the field starting at lines[*i] (its continuation lines follow)
 * into out; *i ends on its last line. */
static struct span field_value(const struct message *m, size_t *i, size_t name_len, char *out,
			       size_t cap)
{
	size_t len = 0;
	struct line l = m->lines[*i];

	for (size_t k = name_len + 1; k < l.len && len < cap; k++)
		out[len++] = l.ptr[k];
	while (*i + 1 < m->header_count && m->lines[*i + 1].len > 0 &&
	       (m->lines[*i + 1].ptr[0] == ' ' || m->lines[*i + 1].ptr[0] == '\t')) {
		l = m->lines[++*i];
		for (size_t k = 0; k < l.len && len < cap; k++)
			out[len++] = l.ptr[k];
	}
	return span_make(out, len);
}

/*
 * Find the header section, note which fields are there, collect To/Cc/Bcc
 * recipients (when extract), and blank out Bcc (its lines get len
 * SIZE_MAX so they are skipped when sending).
 */
static int headers_scan(struct message *m, bool extract, struct recipients *r, struct error *err)
{
	static char value[65536];
	size_t name_len;

	m->header_count = 0;
	while (m->header_count < m->line_count) {
		struct line l = m->lines[m->header_count];

		if (l.len == 0)
			break;
		if (!is_field_line(l, &name_len) &&
		    !(m->header_count > 0 && (l.ptr[0] == ' ' || l.ptr[0] == '\t')))
			break;
		m->header_count++;
	}
	for (size_t i = 0; i < m->header_count; i++) {
		struct line l = m->lines[i];
		size_t first = i;
		bool is_bcc, is_recipient_field;

		if (!is_field_line(l, &name_len))
			continue;
		m->has_from |= field_is(l, name_len, "From");
		m->has_date |= field_is(l, name_len, "Date");
		m->has_message_id |= field_is(l, name_len, "Message-ID");
		is_bcc = field_is(l, name_len, "Bcc");
		is_recipient_field =
			is_bcc || field_is(l, name_len, "To") || field_is(l, name_len, "Cc");
		if (!is_recipient_field)
			continue;
		{
			struct span v = field_value(m, &i, name_len, value, sizeof(value));

			if (extract && address_list_parse(v, r, err) < 0)
				return -1;
		}
		/* RFC 5322 3.6.3: Bcc recipients are not shown to the others. */
		for (size_t k = first; is_bcc && k <= i; k++)
			m->lines[k].len = SIZE_MAX;
	}
	return 0;
}

/* ---- SMTP over the submit socket ---------------------------------------- */

struct smtp_client {
	int fd;
	char buf[SENDMAIL_REPLY_MAX];
	size_t len;
	char out[65536];
	size_t out_len;
};

static int client_flush(struct smtp_client *c, struct error *err)
{
	size_t sent = 0;

	while (sent < c->out_len) {
		ssize_t n = send(c->fd, c->out + sent, c->out_len - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return error_set(err, ERROR_TEMPORARY,
					 "postgated closed the connection: %s",
					 n < 0 ? strerror(errno) : "end of file");
		sent += (size_t) n;
	}
	c->out_len = 0;
	return 0;
}

static int client_write(struct smtp_client *c, const char *data, size_t len, struct error *err)
{
	while (len > 0) {
		size_t take = sizeof(c->out) - c->out_len;

		if (take > len)
			take = len;
		memcpy(c->out + c->out_len, data, take);
		c->out_len += take;
		data += take;
		len -= take;
		if (c->out_len == sizeof(c->out) && client_flush(c, err) < 0)
			return -1;
	}
	return 0;
}

/* Read one reply (all its lines); *code_out gets its code, text_out its
 * last line's text (after "NNN "), and all_out (when not NULL) the text of
 * every line, each ending in '\n' (an EHLO reply's keywords). */
static int client_reply(struct smtp_client *c, int *code_out, char *text_out, size_t cap,
			char *all_out, size_t all_cap, struct error *err)
{
	size_t all_len = 0;

	if (all_out != NULL)
		all_out[0] = '\0';
	for (;;) {
		char *lf = memchr(c->buf, '\n', c->len);
		size_t line_len;

		if (lf == NULL) {
			ssize_t n;

			if (c->len == sizeof(c->buf))
				return error_set(err, ERROR_SOFTWARE,
						 "postgated sent a line too long");
			n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return error_set(err, ERROR_TEMPORARY,
						 "postgated did not answer within %d s",
						 SENDMAIL_WAIT_S);
			if (n <= 0)
				return error_set(err, ERROR_TEMPORARY,
						 "postgated closed the connection");
			c->len += (size_t) n;
			continue;
		}
		line_len = (size_t) (lf - c->buf);
		if (line_len > 0 && c->buf[line_len - 1] == '\r')
			line_len--;
		if (line_len < 3 || !isdigit((unsigned char) c->buf[0]) ||
		    !isdigit((unsigned char) c->buf[1]) || !isdigit((unsigned char) c->buf[2]) ||
		    (line_len > 3 && c->buf[3] != ' ' && c->buf[3] != '-'))
			return error_set(err, ERROR_SOFTWARE, "postgated sent no SMTP reply");
		*code_out = (c->buf[0] - '0') * 100 + (c->buf[1] - '0') * 10 + (c->buf[2] - '0');
		{
			size_t tlen = line_len > 4 ? line_len - 4 : 0;

			if (tlen >= cap)
				tlen = cap - 1;
			memcpy(text_out, c->buf + 4, tlen);
			text_out[tlen] = '\0';
			if (all_out != NULL && all_len < all_cap) {
				int n = snprintf(all_out + all_len, all_cap - all_len, "%s\n",
						 text_out);

				all_len = n < 0 ? all_cap : all_len + (size_t) n;
			}
		}
		{
			bool is_last = line_len == 3 || c->buf[3] == ' ';
			size_t used = (size_t) (lf - c->buf) + 1;

			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			if (is_last)
				return 0;
		}
	}
}

/* Send one command line and read its reply. */
static int client_command(struct smtp_client *c, const char *line, int *code_out, char *text_out,
			  size_t cap, struct error *err)
{
	if (client_write(c, line, strlen(line), err) < 0 || client_write(c, "\r\n", 2, err) < 0 ||
	    client_flush(c, err) < 0)
		return -1;
	return client_reply(c, code_out, text_out, cap, NULL, 0, err);
}

static int client_connect(const char *state_dir, struct error *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval wait = { SENDMAIL_WAIT_S, 0 };
	int fd, n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", state_dir,
			     SENDMAIL_SOCKET);

	if (n < 0 || (size_t) n >= sizeof(sun.sun_path))
		return error_set(err, ERROR_CONFIG, "state_dir is too long for a unix socket path");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, ERROR_IO, "socket: %s", strerror(errno));
	(void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
	(void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait));
	if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
		int e = errno;

		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return error_set(err, ERROR_UNAVAILABLE,
					 "postgated is not running (nothing answers on %s); the "
					 "message was not sent",
					 sun.sun_path);
		return error_set(err, ERROR_UNAVAILABLE,
				 "cannot reach postgated on %s: %s; the message was not sent",
				 sun.sun_path, strerror(e));
	}
	return fd;
}

/* -bs: the caller speaks SMTP itself; copy both ways until the daemon
 * closes. */
static int relay_smtp(int fd, struct error *err)
{
	struct pollfd fds[2] = { { STDIN_FILENO, POLLIN, 0 }, { fd, POLLIN, 0 } };
	char buf[16384];

	for (;;) {
		int n = poll(fds, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, ERROR_IO, "poll: %s", strerror(errno));
		if (fds[1].revents) {
			ssize_t got = read(fd, buf, sizeof(buf));

			if (got <= 0)
				return 0; /* the daemon ended the session */
			for (ssize_t off = 0; off < got;) {
				ssize_t w = write(STDOUT_FILENO, buf + off, (size_t) (got - off));

				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					return error_set(err, ERROR_IO, "writing to stdout: %s",
							 strerror(errno));
				off += w;
			}
		}
		if (fds[0].revents) {
			ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));

			if (got <= 0) {
				/* End of our input: the daemon answers what it has
				 * and closes (or times out). */
				shutdown(fd, SHUT_WR);
				fds[0].fd = -1;
				continue;
			}
			if (send(fd, buf, (size_t) got, MSG_NOSIGNAL) != got)
				return error_set(err, ERROR_TEMPORARY,
						 "postgated closed the connection");
		}
	}
}

/* ---- putting it together -------------------------------------------------- */

/* A bare local name ("root") is a mailbox on this host. */
static int address_complete(const char *address, const char *hostname, char *out, size_t cap,
			    struct error *err)
{
	int n = strchr(address, '@') != NULL ? snprintf(out, cap, "%s", address)
					     : snprintf(out, cap, "%s@%s", address, hostname);

	if (n < 0 || (size_t) n >= cap)
		return error_set(err, ERROR_DATA, "address too long: %.60s", address);
	return 0;
}

static bool is_plain_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7F)
			return false;
	return true;
}

/* The headers we add: From (from -F or the user's full name), Date and
 * Message-ID, each when missing. */
static int headers_added(const struct message *m, const struct sendmail_options *o,
			 const char *sender, const char *user_address, const char *gecos,
			 const char *hostname, struct smtp_client *c, struct error *err)
{
	char line[2048];
	int n;

	if (!m->has_from) {
		const char *name = o->fullname ? o->fullname : gecos;
		const char *from = sender[0] != '\0' ? sender : user_address;

		if (name != NULL && name[0] != '\0' && is_plain_ascii(name)) {
			char quoted[600];
			size_t q = 0;

			for (const char *p = name; *p != '\0' && q + 3 < sizeof(quoted); p++) {
				if (*p == '"' || *p == '\\')
					quoted[q++] = '\\';
				quoted[q++] = *p;
			}
			quoted[q] = '\0';
			n = snprintf(line, sizeof(line), "From: \"%s\" <%s>\r\n", quoted, from);
		} else {
			n = snprintf(line, sizeof(line), "From: <%s>\r\n", from);
		}
		if (client_write(c, line, (size_t) n, err) < 0)
			return -1;
	}
	if (!m->has_date) {
		time_t now = time(NULL);
		struct tm tm;
		char date[64];

		localtime_r(&now, &tm);
		/* RFC 5322 3.3; %a and %b are English in the C locale. */
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		n = snprintf(line, sizeof(line), "Date: %s\r\n", date);
		if (client_write(c, line, (size_t) n, err) < 0)
			return -1;
	}
	if (!m->has_message_id) {
		unsigned char random[8];
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		if (getrandom(random, sizeof(random), 0) != (ssize_t) sizeof(random))
			memset(random, 0, sizeof(random));
		n = snprintf(line, sizeof(line),
			     "Message-ID: <%lld.%02x%02x%02x%02x%02x%02x%02x%02x@%s>\r\n",
			     (long long) ts.tv_sec, random[0], random[1], random[2], random[3],
			     random[4], random[5], random[6], random[7], hostname);
		if (client_write(c, line, (size_t) n, err) < 0)
			return -1;
	}
	return 0;
}

/* The message's lines with CRLF, dot-stuffed (RFC 5321 4.5.2), Bcc left
 * out, our headers at the end of the header section. */
static int message_send(const struct message *m, const struct sendmail_options *o,
			const char *sender, const char *user_address, const char *gecos,
			const char *hostname, struct smtp_client *c, struct error *err)
{
	for (size_t i = 0; i <= m->line_count; i++) {
		if (i == m->header_count) {
			if (headers_added(m, o, sender, user_address, gecos, hostname, c, err) < 0)
				return -1;
			/* No header section at all: ours must not run into
			 * the body. */
			if (i == 0 && m->line_count > 0 && m->lines[0].len != 0 &&
			    client_write(c, "\r\n", 2, err) < 0)
				return -1;
		}
		if (i == m->line_count)
			break;
		if (m->lines[i].len == SIZE_MAX)
			continue; /* Bcc */
		if (m->lines[i].len > 0 && m->lines[i].ptr[0] == '.' &&
		    client_write(c, ".", 1, err) < 0)
			return -1;
		if (client_write(c, m->lines[i].ptr, m->lines[i].len, err) < 0 ||
		    client_write(c, "\r\n", 2, err) < 0)
			return -1;
	}
	return client_write(c, ".\r\n", 3, err) < 0 ? -1 : client_flush(c, err);
}

static enum error_kind kind_for(int code, enum error_kind permanent)
{
	return code >= 400 && code < 500 ? ERROR_TEMPORARY : permanent;
}

static int submit(const struct config *config, const struct sendmail_options *o, struct error *err)
{
	static struct recipients rcpts;
	static struct message m;
	struct smtp_client *c = NULL;
	struct passwd *pw = getpwuid(getuid());
	char user[256], gecos[256] = "", hostname[300], sender[SENDMAIL_ADDRESS_MAX + 1];
	char user_address[SENDMAIL_ADDRESS_MAX + 1], line[2048], text[SENDMAIL_REPLY_MAX];
	char ehlo[SENDMAIL_REPLY_MAX];
	char refused[1024] = "";
	size_t accepted = 0, refused_count = 0;
	enum error_kind refused_kind = ERROR_NONE;
	bool has_dsn = false, has_8bitmime = false, has_smtputf8 = false;
	int code, rc = -1, fd;

	snprintf(user, sizeof(user), "%s", pw != NULL ? pw->pw_name : "nobody");
	if (pw != NULL && pw->pw_gecos != NULL) {
		snprintf(gecos, sizeof(gecos), "%s", pw->pw_gecos);
		gecos[strcspn(gecos, ",")] = '\0';
	}
	rcpts.list = calloc(SENDMAIL_RECIPIENTS_MAX, sizeof(*rcpts.list));
	if (rcpts.list == NULL)
		return error_set(err, ERROR_SOFTWARE, "out of memory");
	for (size_t i = 0; i < o->recipient_count; i++)
		if (address_list_parse(span_from_cstr(o->recipients[i]), &rcpts, err) < 0)
			goto out;
	if (message_read(&m, o->ignore_dots, config->max_message_size, err) < 0 ||
	    headers_scan(&m, o->extract, &rcpts, err) < 0)
		goto out;
	if (rcpts.count == 0) {
		error_set(err, ERROR_USAGE,
			  o->extract ? "no recipient addresses found in the header"
				     : "no recipients given (name them, or use -t)");
		goto out;
	}
	if ((fd = client_connect(config->state_dir, err)) < 0)
		goto out;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		error_set(err, ERROR_SOFTWARE, "out of memory");
		goto out;
	}
	c->fd = fd;
	if (client_reply(c, &code, text, sizeof(text), NULL, 0, err) < 0)
		goto out;
	if (code != 220) {
		error_set(err, kind_for(code, ERROR_UNAVAILABLE), "postgated refused: %d %s", code,
			  text);
		goto out;
	}
	/* The host name comes from the daemon's EHLO reply: the configuration
	 * says the same, but this way it is the one the daemon uses. */
	if (client_write(c, "EHLO localhost\r\n", 16, err) < 0 || client_flush(c, err) < 0 ||
	    client_reply(c, &code, text, sizeof(text), ehlo, sizeof(ehlo), err) < 0)
		goto out;
	if (code != 250) {
		error_set(err, ERROR_SOFTWARE, "postgated refused EHLO: %d %s", code, text);
		goto out;
	}
	snprintf(hostname, sizeof(hostname), "%.*s", (int) strcspn(ehlo, " \n"), ehlo);
	has_dsn = strstr(ehlo, "\nDSN\n") != NULL;
	has_8bitmime = strstr(ehlo, "\n8BITMIME\n") != NULL;
	has_smtputf8 = strstr(ehlo, "\nSMTPUTF8\n") != NULL;
	if (address_complete(user, hostname, user_address, sizeof(user_address), err) < 0)
		goto out;
	if (o->sender == NULL)
		snprintf(sender, sizeof(sender), "%s", user_address);
	else if (strcmp(o->sender, "<>") == 0 || o->sender[0] == '\0')
		sender[0] = '\0';
	else {
		char given[SENDMAIL_ADDRESS_MAX + 3];
		size_t len = strlen(o->sender);

		/* -f '<a@b>' as some scripts write it. */
		if (len >= 2 && o->sender[0] == '<' && o->sender[len - 1] == '>')
			snprintf(given, sizeof(given), "%.*s", (int) (len - 2), o->sender + 1);
		else
			snprintf(given, sizeof(given), "%s", o->sender);
		if (address_complete(given, hostname, sender, sizeof(sender), err) < 0)
			goto out;
	}
	{
		bool is_utf8 = !is_plain_ascii(sender);

		for (size_t i = 0; i < rcpts.count; i++)
			is_utf8 |= !is_plain_ascii(rcpts.list[i]);
		snprintf(line, sizeof(line), "MAIL FROM:<%s>%s%s%s%s%s%s%s", sender,
			 m.has_8bit && has_8bitmime && o->body == NULL ? " BODY=8BITMIME" : "",
			 o->body ? " BODY=" : "", o->body ? o->body : "",
			 is_utf8 && has_smtputf8 ? " SMTPUTF8" : "",
			 o->ret && has_dsn ? " RET=" : "", o->ret && has_dsn ? o->ret : "",
			 o->envid && has_dsn ? " ENVID=" : "");
		if (o->envid && has_dsn) {
			size_t used = strlen(line);

			/* ENVID is xtext (RFC 3461 4): "+", "=" and others as +HH. */
			for (const unsigned char *p = (const unsigned char *) o->envid;
			     *p != '\0' && used + 4 < sizeof(line); p++)
				used += (size_t) snprintf(
					line + used, sizeof(line) - used,
					*p > 0x20 && *p < 0x7F && *p != '+' && *p != '=' ? "%c"
											 : "+%02X",
					*p);
		}
	}
	if (client_command(c, line, &code, text, sizeof(text), err) < 0)
		goto out;
	if (code != 250) {
		error_set(err, kind_for(code, ERROR_DATA), "sender <%s> refused: %d %s", sender,
			  code, text);
		goto out;
	}
	for (size_t i = 0; i < rcpts.count; i++) {
		char address[SENDMAIL_ADDRESS_MAX + 1];

		if (address_complete(rcpts.list[i], hostname, address, sizeof(address), err) < 0)
			goto out;
		snprintf(line, sizeof(line), "RCPT TO:<%s>%s%s", address,
			 o->notify && has_dsn ? " NOTIFY=" : "",
			 o->notify && has_dsn ? o->notify : "");
		if (client_command(c, line, &code, text, sizeof(text), err) < 0)
			goto out;
		if (code == 250 || code == 251) {
			accepted++;
			continue;
		}
		fprintf(stderr, "sendmail: recipient <%s> refused: %d %s\n", address, code, text);
		if (refused_count++ == 0) {
			refused_kind = kind_for(code, ERROR_NOT_FOUND);
			snprintf(refused, sizeof(refused), "<%s>: %d %.600s", address, code, text);
		}
	}
	if (accepted == 0) {
		error_set(err, refused_kind,
			  "no recipient was accepted (%s); the message was not sent", refused);
		goto out;
	}
	if (client_command(c, "DATA", &code, text, sizeof(text), err) < 0)
		goto out;
	if (code != 354) {
		error_set(err, kind_for(code, ERROR_DATA), "DATA refused: %d %s", code, text);
		goto out;
	}
	if (message_send(&m, o, sender, user_address, gecos, hostname, c, err) < 0 ||
	    client_reply(c, &code, text, sizeof(text), NULL, 0, err) < 0)
		goto out;
	if (code != 250) {
		error_set(err, kind_for(code, ERROR_DATA), "the message was refused: %d %s", code,
			  text);
		goto out;
	}
	(void) client_command(c, "QUIT", &code, line, sizeof(line), err);
	if (refused_count > 0) {
		/* As sendmail: the others get it, the exit status says someone
		 * did not. */
		error_set(err, refused_kind, "%s; sent to the other %zu recipient%s (%s)", refused,
			  accepted, accepted == 1 ? "" : "s", text);
		goto out;
	}
	rc = 0;
out:
	if (c != NULL) {
		close(c->fd);
		free(c);
	}
	free(rcpts.list);
	free(m.data);
	free(m.lines);
	return rc;
}

int cli_sendmail_main(const char *config_path, int argc, char **argv)
{
	struct sendmail_options o = { 0 };
	struct config *config = calloc(1, sizeof(*config));
	struct error err;
	int rc = -1;

	error_clear(&err);
	if (config == NULL) {
		error_set(&err, ERROR_SOFTWARE, "out of memory");
	} else if (options_parse(argc, argv, &o, &err) == 0) {
		struct error reason;

		error_clear(&reason);
		if (config_load(o.config ? o.config : config_path, config, &reason) < 0) {
			error_set(&err, ERROR_CONFIG, "%s", reason.message);
		} else if (o.smtp_mode) {
			int fd = client_connect(config->state_dir, &err);

			if (fd >= 0) {
				rc = relay_smtp(fd, &err);
				close(fd);
			}
		} else {
			rc = submit(config, &o, &err);
		}
	}
	free(o.recipients);
	free(config);
	if (rc == 0)
		return 0;
	if (err.kind == ERROR_NONE)
		err.kind = ERROR_SOFTWARE;
	fprintf(stderr, "sendmail: %s\n", err.message);
	return cli_exit_code(err.kind);
}
