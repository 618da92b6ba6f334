/*
 * path: where a user's Maildir lives. One mapping, used by delivery and by
 * POP3, so both always agree: MAILDIR_ROOT/<domain>/<local part>/ with the
 * local part lower-cased (ASCII) — addresses match case-insensitively, so
 * Alice@ and alice@ share one mailbox — and every byte that could mean
 * something to the file system ('/', '%', a leading '.', controls, space)
 * written as %XX. Pure: no I/O.
 */
#ifndef POSTGATE_MAILBOX_PATH_H
#define POSTGATE_MAILBOX_PATH_H

#include <stddef.h>

#include "core/error.h"

/* address is normalized (store/address.h). 0, or -1 (ERROR_DATA) when it has
 * no '@' or the path does not fit out_cap. */
int mailbox_path_for(const char *maildir_root, const char *address, char *out, size_t out_cap,
		     struct error *err);

#endif
