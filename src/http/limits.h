/*
 * limits: every bound the HTTP listener enforces, each with its reason. Only
 * constants live here.
 */
#ifndef POSTGATE_HTTP_LIMITS_H
#define POSTGATE_HTTP_LIMITS_H

/* The request line and all header lines together. 8 KiB is what nginx and
 * Apache allow by default; our clients send a few hundred octets. */
#define HTTP_HEADERS_MAX 8192
/* A request body: only Autodiscover POSTs one, about 400 octets (the
 * [MS-OXDSCLI] 2.2.3 request). */
#define HTTP_BODY_MAX 16384
/* A query string (after '?'), and the decoded value of one parameter. */
#define HTTP_QUERY_MAX	      2048
#define HTTP_QUERY_PARAMS_MAX 32
#define HTTP_VALUE_MAX	      512
/* Seconds of silence while a request is read or a reply written, and the
 * idle time of a kept-alive connection. */
#define HTTP_TIMEOUT_S 30
/* Open connections per daemon: at the limit the listeners stop accepting and
 * new clients wait in the kernel's backlog until one ends. */
#define HTTP_CONNECTIONS_MAX 256
/* Seconds a connection over the daemon's session limits (max_sessions,
 * max_sessions_per_ip) has to send the request its 503 answers. */
#define HTTP_REFUSED_TIMEOUT_S 5
/* Domains the /setup/ index lists (setup_index = yes); past that it is cut
 * and says so. */
#define HTTP_INDEX_DOMAINS_MAX 5000

#endif
