/*
 * tls/internal.h: what the files of src/tls/ share. Not a public API.
 */
#ifndef POSTGATE_TLS_INTERNAL_H
#define POSTGATE_TLS_INTERNAL_H

#include <openssl/ssl.h>

/* The SNI callback every context installs (names.c): chooses a named
 * certificate and records the name (RFC 6066 3). */
int tls_names_on_server_name(SSL *ssl, int *alert, void *arg);

#endif
