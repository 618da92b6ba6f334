/*
 * log: one line per event, decided and written in one place. Lines go to
 * stderr (foreground) or syslog with the mail facility. The subject id comes
 * first (sid= for a connection, qid= for a message), then a fixed event word,
 * then key=value pairs. Client text is passed through log_escape() before it
 * is logged. Never log a password, an AUTH payload or a message body.
 *
 * Only the event-loop thread and start-up code call these; the functions are
 * not thread-safe with respect to log_open().
 */
#ifndef POSTGATE_CORE_LOG_H
#define POSTGATE_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

enum log_level {
	LOG_LEVEL_ERROR = 0, /* needs an administrator */
	LOG_LEVEL_WARNING,   /* we coped */
	LOG_LEVEL_INFO,	     /* one per event */
	LOG_LEVEL_DEBUG,     /* protocol trace, off by default */
};

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
};

/* ident is the program name ("postgated"); syslog is opened at once so the
 * socket survives a later privilege drop or chroot. */
void log_open(const char *ident, enum log_target target, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
void log_close(void);

/* Writes "<level word> <formatted text>" as one line. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)	 log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...)	 log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                           \
	do {                                                     \
		if (log_enabled(LOG_LEVEL_DEBUG))                \
			log_write(LOG_LEVEL_DEBUG, __VA_ARGS__); \
	} while (0)

/* The words used in config files and log lines: "error", "warning", "info", "debug". */
const char *log_level_name(enum log_level level);
bool log_level_parse(struct span word, enum log_level *level_out);

/*
 * Escape client-supplied text for a log line: bytes outside printable ASCII,
 * backslash and double quote become \xNN; the result is wrapped in double
 * quotes when it holds a space or is empty, and cut to LOG_ESCAPE_MAX input
 * bytes with a trailing "..." marker. out must hold LOG_ESCAPED_CAP bytes.
 */
#define LOG_ESCAPE_MAX	256
#define LOG_ESCAPED_CAP (LOG_ESCAPE_MAX * 4 + 8)
const char *log_escape(struct span text, char out[LOG_ESCAPED_CAP]);

#endif
