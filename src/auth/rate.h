/*
 * rate: what each authenticated user has sent lately, against that user's
 * limits — messages and recipients per hour and per day — and the two signs
 * of a stolen password that put an account on a sending hold: sending far
 * over the limit (as many attempts refused in an hour as the hourly limit
 * itself), and logins from many client addresses within a few minutes.
 *
 * In memory, per daemon: a restart forgets the counts (the hold itself is
 * in the store). Pure bookkeeping: no I/O, no clock (callers pass the time),
 * no locking (the event-loop thread only), so tests drive it directly.
 * Memory: about 2 KiB per user who sent or logged in within a day; users
 * idle for a day are dropped, and at most AUTH_RATE_USERS_MAX are kept (the
 * least recently active gives way).
 */
#ifndef POSTGATE_AUTH_RATE_H
#define POSTGATE_AUTH_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_RATE_USERS_MAX	  100000
#define AUTH_RATE_LOGIN_WINDOW_S  600 /* "at once": logins within 10 minutes */
#define AUTH_RATE_LOGIN_ADDRS_MAX 32  /* distinct addresses remembered per user */

/* 0 means no limit. */
struct auth_rate_limits {
	uint64_t messages_per_hour;
	uint64_t messages_per_day;
	uint64_t recipients_per_hour;
	uint64_t recipients_per_day;
	uint64_t hold_login_addresses; /* more distinct addresses than this in the window: hold */
};

enum auth_rate_verdict {
	AUTH_RATE_OK = 0,
	AUTH_RATE_MESSAGES_HOUR,
	AUTH_RATE_MESSAGES_DAY,
	AUTH_RATE_RECIPIENTS_HOUR,
	AUTH_RATE_RECIPIENTS_DAY,
};

struct auth_rates;

struct auth_rates *auth_rates_new(void);
void auth_rates_free(struct auth_rates *rates); /* NULL ok */

/*
 * One more message (messages = 1) or recipient (recipients = 1) for user at
 * now_s (Unix seconds): counted and AUTH_RATE_OK when it stays within
 * limits, else the limit it would pass, counted as a refusal. *should_hold
 * becomes true exactly once per burst, when the refused messages (or
 * recipients) of the last hour reach the hourly limit of their kind (the
 * user tried to send twice the limit).
 * user is matched without regard to ASCII case.
 */
enum auth_rate_verdict auth_rate_take(struct auth_rates *rates, const char *user, int64_t now_s,
				      unsigned messages, unsigned recipients,
				      const struct auth_rate_limits *limits, bool *should_hold);

/*
 * A successful login of user from client_ip at now_s. true exactly once
 * when the distinct addresses of the last AUTH_RATE_LOGIN_WINDOW_S exceed
 * limits->hold_login_addresses (0: never).
 */
bool auth_rate_login(struct auth_rates *rates, const char *user, const char *client_ip,
		     int64_t now_s, const struct auth_rate_limits *limits);

/* What user sent in the last hour and day, for logs and status. */
struct auth_rate_usage {
	uint64_t messages_hour, messages_day;
	uint64_t recipients_hour, recipients_day;
	uint64_t refused_hour;
};
void auth_rate_usage_get(const struct auth_rates *rates, const char *user, int64_t now_s,
			 struct auth_rate_usage *usage_out);

/* "messages-per-hour", ... for logs and replies. */
const char *auth_rate_verdict_name(enum auth_rate_verdict verdict);

/* Users tracked now. */
size_t auth_rates_count(const struct auth_rates *rates);

#endif
