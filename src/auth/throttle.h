/*
 * throttle: how much to slow down or refuse login attempts after failures.
 * Pure bookkeeping: no I/O, no clock (the caller passes now_ms, a monotonic
 * millisecond count), no threads, no allocation after auth_throttle_new. It
 * never sees a password: callers hand it a short keyed tag of a wrong one.
 *
 * Three fixed-size tables, each set-associative (a key hashes to a bucket of
 * AUTH_THROTTLE_WAYS records; a new key takes a free record or evicts the
 * one seen least recently in its bucket):
 *   client address   failures from it (IPv6 grouped by /64), when it last failed
 *   account          failures on it, from every address
 *   address+account  failures of that pair and the tags of its last wrong passwords
 * Failures are counted over the last AUTH_THROTTLE_WINDOW_MS in
 * AUTH_THROTTLE_SLOTS one-minute slots (a failure leaves the count between 9
 * and 10 minutes after it happened).
 *
 * Rules (docs/decisions/0062-login-throttling.md has the reasoning):
 *  - A failing attempt's reply is delayed by the address's failure count n:
 *    nothing up to AUTH_THROTTLE_ADDRESS_FREE, then 1, 2, 4, 8 s, at most
 *    AUTH_THROTTLE_DELAY_MAX_MS. A successful attempt is never delayed.
 *  - An address with AUTH_THROTTLE_ADDRESS_REFUSE failures in the window is
 *    refused without a check until its count drops below.
 *  - An account with more than AUTH_THROTTLE_ACCOUNT_FREE failures (from any
 *    number of addresses) delays, and from AUTH_THROTTLE_ACCOUNT_REFUSE on
 *    refuses, attempts from addresses that failed themselves within
 *    AUTH_THROTTLE_DIRTY_MS. An
 *    address without a failure in that time is never delayed or refused
 *    because of the account.
 *  - A wrong password the same (address, account) pair already failed with
 *    (one of its last AUTH_THROTTLE_TAGS) is a repeat: not counted again.
 *  - A success removes the pair's failures from the address's and the
 *    account's counts; an address left with none is clean again.
 *
 * Not thread-safe: one thread (the event loop) owns a struct auth_throttle.
 */
#ifndef POSTGATE_AUTH_THROTTLE_H
#define POSTGATE_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define AUTH_THROTTLE_SLOT_MS	      (60 * 1000) /* failures are counted per minute */
#define AUTH_THROTTLE_SLOTS	      10	  /* ... over the last 10 minutes */
#define AUTH_THROTTLE_WINDOW_MS	      (AUTH_THROTTLE_SLOTS * AUTH_THROTTLE_SLOT_MS)
#define AUTH_THROTTLE_ADDRESS_FREE    3	 /* failures per address answered without delay */
#define AUTH_THROTTLE_ADDRESS_REFUSE  30 /* failures per address that refuse further attempts */
#define AUTH_THROTTLE_ACCOUNT_FREE    10 /* failures per account before dirty addresses wait */
#define AUTH_THROTTLE_ACCOUNT_REFUSE  50 /* failures per account that refuse dirty addresses */
#define AUTH_THROTTLE_DIRTY_MS	      (60 * 60 * 1000) /* an address failed within this: dirty */
#define AUTH_THROTTLE_DELAY_FIRST_MS  1000	       /* first delay; each next one doubles */
#define AUTH_THROTTLE_DELAY_MAX_MS    15000	       /* the longest delay */
#define AUTH_THROTTLE_TAGS	      4	 /* wrong passwords remembered per address+account */
#define AUTH_THROTTLE_TAG_LEN	      8	 /* bytes of a wrong-password tag */
#define AUTH_THROTTLE_KEY_LEN	      32 /* the table hash key */
#define AUTH_THROTTLE_WAYS	      8	 /* records per bucket */
#define AUTH_THROTTLE_ADDRESS_RECORDS 16384
#define AUTH_THROTTLE_ACCOUNT_RECORDS 16384
#define AUTH_THROTTLE_PAIR_RECORDS    32768

struct auth_throttle_params {
	/* Keys the table hashes so that no client can aim at one bucket; the
	 * service fills it with random bytes, tests with a fixed value. */
	unsigned char key[AUTH_THROTTLE_KEY_LEN];
	/* Table sizes in records (rounded up to a multiple of
	 * AUTH_THROTTLE_WAYS); 0 takes the AUTH_THROTTLE_*_RECORDS default. */
	size_t address_records;
	size_t account_records;
	size_t pair_records;
};

enum auth_throttle_verdict {
	AUTH_THROTTLE_ALLOW,
	AUTH_THROTTLE_REFUSE,
};

/* What auth_throttle_failure decided. */
struct auth_throttle_outcome {
	uint32_t delay_ms; /* how long to hold back the failing reply */
	bool is_repeat;	   /* a wrong password this pair already failed with: not counted */
};

/* Memory in use, for tests and metrics. */
struct auth_throttle_usage {
	size_t address_used, address_records;
	size_t account_used, account_records;
	size_t pair_used, pair_records;
	uint64_t evictions;
	size_t bytes; /* everything auth_throttle_new allocated */
};

/* NULL with err filled (ERROR_USAGE for absurd sizes, ERROR_TEMPORARY when
 * memory runs out). All memory is allocated here, once. */
struct auth_throttle *auth_throttle_new(const struct auth_throttle_params *params,
					struct error *err);
void auth_throttle_free(struct auth_throttle *throttle); /* NULL does nothing */

/*
 * client: the client's address as text ("192.0.2.7", "2001:db8::1"); text
 * that is not an IP address is keyed as it is. account: the normalized user
 * name, or NULL when the name is malformed (then only the address counts).
 * Both must be NUL-ended; neither is kept.
 */

/* Before a check: may this attempt be checked at all? Reads, never adds a record. */
enum auth_throttle_verdict auth_throttle_check(struct auth_throttle *throttle, int64_t now_ms,
					       const char *client, const char *account);

/* After a failed check. tag: AUTH_THROTTLE_TAG_LEN bytes identifying the
 * wrong password (a keyed hash), or NULL when there is none (a SCRAM proof). */
struct auth_throttle_outcome auth_throttle_failure(struct auth_throttle *throttle, int64_t now_ms,
						   const char *client, const char *account,
						   const unsigned char *tag);

/* After a successful check. */
void auth_throttle_success(struct auth_throttle *throttle, int64_t now_ms, const char *client,
			   const char *account);

/* The failure counts the rules use: failures in the window. */
unsigned auth_throttle_address_failures(struct auth_throttle *throttle, int64_t now_ms,
					const char *client);
unsigned auth_throttle_account_failures(struct auth_throttle *throttle, int64_t now_ms,
					const char *account);

/* Client addresses (IPv6 by /64) held back now: more than
 * AUTH_THROTTLE_ADDRESS_FREE failures in the window, so that their next
 * failure is delayed, or refused from AUTH_THROTTLE_ADDRESS_REFUSE on. A
 * scan of the address table (AUTH_THROTTLE_ADDRESS_RECORDS records), for
 * metrics and status, not for every attempt. */
size_t auth_throttle_throttled_clients(struct auth_throttle *throttle, int64_t now_ms);

void auth_throttle_usage_get(const struct auth_throttle *throttle,
			     struct auth_throttle_usage *usage_out);

#endif
