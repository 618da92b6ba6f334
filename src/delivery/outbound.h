/*
 * outbound: remote delivery as a service for the queue. Takes jobs (one
 * message for the recipients of one domain), finds where they go (a `route`,
 * the `relayhost`, or the domain's MX via dns.h), and runs SMTP connections
 * (smtp_client.h) within the limits max_outbound_connections (all) and
 * max_destination_connections (per destination: a domain, or a route's
 * host). Jobs for a destination wait in a FIFO; a connection that finishes a
 * message takes the next job of its destination over the same connection.
 *
 * Loop thread only. Knows nothing of the spool: a job's done callback gets
 * the job back with each recipient's reply filled in.
 */
#ifndef POSTGATE_DELIVERY_OUTBOUND_H
#define POSTGATE_DELIVERY_OUTBOUND_H

#include "core/config.h"
#include "core/error.h"
#include "delivery/smtp_client.h"

struct event_base;
struct delivery_outbound;
struct delivery_outbound_job;

typedef void delivery_outbound_done_fn(void *ctx, struct delivery_outbound_job *job);

struct delivery_outbound_job {
	char domain[DELIVERY_HOST_NAME_MAX]; /* the recipients' domain */
	struct delivery_message message;     /* recipients all in domain */
	delivery_outbound_done_fn *done;     /* called once, never inside submit */
	void *ctx;
	struct delivery_outbound_job *next; /* the outbound module's */
};

struct delivery_outbound *delivery_outbound_new(struct event_base *base,
						const struct config *config, struct error *err);

/* Queue job; its done comes later on the loop. */
void delivery_outbound_submit(struct delivery_outbound *outbound,
			      struct delivery_outbound_job *job);

/* Shutting down: every job waiting or in flight is done now with 421 (no
 * remote has acknowledged them), connections are dropped. */
void delivery_outbound_stop(struct delivery_outbound *outbound);

/* After stop. NULL ok. */
void delivery_outbound_free(struct delivery_outbound *outbound);

#endif
