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
 * Also the login history `postgate user show` prints (successes and
 * failures, client addresses, the last automatic hold): in memory too, so a
 * restart forgets it (docs/decisions/0190-recent-activity-in-memory.md).
 * Memory: about 6.5 KiB per user who sent or logged in (or failed to)
 * within a day; users idle for a day are dropped, and at most
 * AUTH_RATE_USERS_MAX are kept (the least recently active gives way).
 */
#ifndef POSTGATE_AUTH_RATE_H
#define POSTGATE_AUTH_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_RATE_USERS_MAX	    100000
#define AUTH_RATE_LOGIN_WINDOW_S    600 /* "at once": logins within 10 minutes */
#define AUTH_RATE_LOGIN_ADDRS_MAX   32	/* distinct addresses remembered per user */
#define AUTH_RATE_HISTORY_ADDRS_MAX 16	/* login addresses kept for `postgate user show` */
#define AUTH_RATE_IP_MAX	    64	/* an IPv6 address with a zone, and its NUL */
#define AUTH_RATE_REASON_MAX	    32	/* a hold reason word, and its NUL */

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

/*
 * The login history `postgate user show` prints (docs/auth.md, "Recent
 * activity"). The auth service notes every checked login of a user that
 * exists — successes and failures (wrong password, disabled) — never one for
 * an unknown name, so a guesser cannot make records grow. Per user: logins
 * ok and failed per minute and hour (the same windows as the sending
 * counts), and the last AUTH_RATE_HISTORY_ADDRS_MAX distinct client
 * addresses (a new one replaces the one seen least recently).
 */
void auth_rate_login_note(struct auth_rates *rates, const char *user, const char *client_ip,
			  int64_t now_s, bool is_ok);

/* An automatic sending hold was put on user for reason ("burst", ...). */
void auth_rate_hold_note(struct auth_rates *rates, const char *user, int64_t now_s,
			 const char *reason);

struct auth_rate_address {
	char ip[AUTH_RATE_IP_MAX];
	uint32_t ok, failed; /* logins from it since it was first kept */
	int64_t last_s;	     /* the latest login from it, Unix seconds */
};

struct auth_rate_activity {
	bool is_tracked; /* false: nothing of user in memory (all zero) */
	struct auth_rate_usage usage;
	uint64_t logins_ok_hour, logins_ok_day;
	uint64_t logins_failed_hour, logins_failed_day;
	int64_t hold_s;				/* the last automatic hold; 0: none */
	char hold_reason[AUTH_RATE_REASON_MAX]; /* "" when hold_s is 0 */
	size_t address_count;
	struct auth_rate_address addresses[AUTH_RATE_HISTORY_ADDRS_MAX]; /* newest first */
};

/* Everything kept of user at now_s; addresses not seen for a day are left out. */
void auth_rate_activity_get(const struct auth_rates *rates, const char *user, int64_t now_s,
			    struct auth_rate_activity *out);

/* "messages-per-hour", ... for logs and replies. */
const char *auth_rate_verdict_name(enum auth_rate_verdict verdict);

/* Users tracked now. */
size_t auth_rates_count(const struct auth_rates *rates);

#endif
