/*
 * limits: every bound the POP3 server enforces, each with the text that sets
 * it. Only constants live here.
 */
#ifndef POSTGATE_POP3_LIMITS_H
#define POSTGATE_POP3_LIMITS_H

#include "sasl/sasl.h"

/* A command line, keyword and CRLF included. */
#define POP3_COMMAND_LINE_MAX 255 /* RFC 2449 4 */
/* An AUTH command with an initial response, and each response line of an
 * AUTH exchange, may be longer (RFC 5034 4: the 255-octet limit does not
 * apply to them); the same bound as SMTP AUTH's. CRLF not counted. */
#define POP3_AUTH_LINE_MAX SASL_RESPONSE_LINE_MAX /* RFC 4954 4, RFC 5034 4 */
/* A keyword: 3 or 4 printable characters (RFC 2449 3). */
#define POP3_KEYWORD_MIN 3
#define POP3_KEYWORD_MAX 4 /* RFC 2449 3 */
/* Arguments any command takes: TOP msg n, AUTH mechanism initial-response. */
#define POP3_ARGS_MAX 2
/* A unique-id listing: 1 to 70 characters 0x21..0x7E (RFC 1939 7). */
#define POP3_UID_MAX 70 /* RFC 1939 7 */
/* Autologout: at least 10 minutes of inactivity (RFC 1939 3). */
#define POP3_TIMEOUT_IDLE_S 600 /* RFC 1939 3 */
/* -ERR answers to bad commands (unknown, wrong state, bad syntax, too long)
 * before the server hangs up. */
#define POP3_ERRORS_MAX 20
/* Failed logins (PASS or AUTH) in one session before the server hangs up. */
#define POP3_AUTH_FAILURES_MAX 3

#endif
