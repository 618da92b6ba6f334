/*
 * exit: the one table from an error kind to the exit status of `postgate`
 * (sysexits.h codes, documented in docs/cli.md). No other file picks an exit
 * status.
 */
#include <sysexits.h>

#include "cli/internal.h"
#include "core/span.h"

// clang-format off
static const int exit_codes[] = {
	[ERROR_NONE]       = EX_OK,          /*  0 */
	[ERROR_USAGE]      = EX_USAGE,       /* 64 */
	[ERROR_DATA]       = EX_DATAERR,     /* 65 */
	[ERROR_NOT_FOUND]  = EX_NOUSER,      /* 67 */
	[ERROR_EXISTS]     = EX_CANTCREAT,   /* 73 */
	[ERROR_CONFIG]     = EX_CONFIG,      /* 78 */
	[ERROR_IO]         = EX_IOERR,       /* 74 */
	[ERROR_PERMISSION] = EX_NOPERM,      /* 77 */
	[ERROR_SOFTWARE]   = EX_SOFTWARE,    /* 70 */
	[ERROR_TEMPORARY]  = EX_TEMPFAIL,    /* 75 */
	[ERROR_UNAVAILABLE] = EX_UNAVAILABLE, /* 69 */
};
// clang-format on

int cli_exit_code(enum error_kind kind)
{
	/* A kind added to core/error.h without a row here is our bug. */
	if ((size_t) kind >= ARRAY_LEN(exit_codes) || (kind != ERROR_NONE && exit_codes[kind] == 0))
		return EX_SOFTWARE;
	return exit_codes[kind];
}
