/*
 * error: the report a fallible function fills for its caller to log or
 * print. Functions return 0 or -1 and leave the message here; the message is
 * complete ("FILE:LINE: what is wrong", "accounts.db: database is locked") and
 * never holds a secret.
 */
#ifndef POSTGATE_CORE_ERROR_H
#define POSTGATE_CORE_ERROR_H

#define ERROR_MESSAGE_MAX 512

/* What went wrong, for callers that must branch (the postgate command maps
 * each kind to one exit code). */
enum error_kind {
	ERROR_NONE = 0,
	ERROR_USAGE,	  /* bad command-line use */
	ERROR_DATA,	  /* malformed input: address, value */
	ERROR_NOT_FOUND,  /* unknown domain, user, alias */
	ERROR_EXISTS,	  /* duplicate */
	ERROR_CONFIG,	  /* bad configuration */
	ERROR_IO,	  /* a file or database could not be read or written */
	ERROR_PERMISSION, /* refused: not allowed */
	ERROR_SOFTWARE,	  /* our own bug or an unexpected library failure */
	ERROR_TEMPORARY,  /* try again later: locked, busy */
	/* A service needed is not running (postgated, its control socket). */
	ERROR_UNAVAILABLE,
};

struct error {
	enum error_kind kind;
	char message[ERROR_MESSAGE_MAX];
};

/* Fill err (when not NULL) and return -1, so callers can `return error_set(...)`. */
int error_set(struct error *err, enum error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void error_clear(struct error *err);

#endif
