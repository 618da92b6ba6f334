/*
 * log: formatting and writing event lines to stderr or syslog. A line that
 * does not fit LOG_LINE_MAX is cut, never split across two events.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static enum log_target log_target = LOG_TARGET_STDERR;
static enum log_level log_level = LOG_LEVEL_INFO;
static const char *log_ident = "postgate";

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const int syslog_priorities[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARNING] = LOG_WARNING,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

void log_open(const char *ident, enum log_target target, enum log_level level)
{
	log_ident = ident;
	log_target = target;
	log_level = level;
	if (target == LOG_TARGET_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

bool log_enabled(enum log_level level)
{
	return level <= log_level;
}

void log_close(void)
{
	if (log_target == LOG_TARGET_SYSLOG)
		closelog();
	log_target = LOG_TARGET_STDERR;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n >= (int) sizeof(line))
		memcpy(line + sizeof(line) - 4, "...", 4);
	/* A format argument must never smuggle a second event into the log. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (log_target == LOG_TARGET_SYSLOG) {
		syslog(syslog_priorities[level], "%s %s", level_names[level], line);
		return;
	}
	{
		char stamp[32];
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%ld] %s %s\n", stamp, ts.tv_nsec / 1000000, log_ident,
			(long) getpid(), level_names[level], line);
	}
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

bool log_level_parse(struct span word, enum log_level *level_out)
{
	for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
		if (span_eq_cstr_nocase(word, level_names[i])) {
			*level_out = (enum log_level) i;
			return true;
		}
	}
	return false;
}

const char *log_escape(struct span text, char out[LOG_ESCAPED_CAP])
{
	static const char hex[] = "0123456789abcdef";
	bool needs_quotes = text.len == 0;
	size_t n = text.len > LOG_ESCAPE_MAX ? LOG_ESCAPE_MAX : text.len;
	size_t o = 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) text.ptr[i];

		if (c == ' ')
			needs_quotes = true;
		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '"' || c == '=') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char) c;
		}
	}
	if (n < text.len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	if (needs_quotes) {
		out[0] = '"';
		out[o++] = '"';
		out[o] = '\0';
		return out;
	}
	out[o] = '\0';
	return out + 1;
}
