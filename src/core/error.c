/* error: filling an error report. Messages that do not fit are cut with "...". */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int error_set(struct error *err, enum error_kind kind, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL)
		return -1;
	err->kind = kind;
	va_start(ap, fmt);
	n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	if (n >= (int) sizeof(err->message))
		memcpy(err->message + sizeof(err->message) - 4, "...", 4);
	return -1;
}

void error_clear(struct error *err)
{
	if (err == NULL)
		return;
	err->kind = ERROR_NONE;
	err->message[0] = '\0';
}
