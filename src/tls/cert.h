/*
 * cert: certificate files — making a self-signed certificate for a new
 * instance, and checking that a certificate and key belong together.
 */
#ifndef POSTGATE_TLS_CERT_H
#define POSTGATE_TLS_CERT_H

#include <stddef.h>

#include "core/error.h"

/*
 * Write an ECDSA P-256 key (mode 0600) and a self-signed certificate valid
 * for `days`, with CN = the first name and every name in subjectAltName.
 */
int tls_cert_make_selfsigned(const char *const *names, size_t name_count, unsigned days,
			     const char *cert_path, const char *key_path, struct error *err);

/* 0 when both files load and the key matches the certificate; else -1 with the reason. */
int tls_cert_check_pair(const char *cert_path, const char *key_path, struct error *err);

#endif
