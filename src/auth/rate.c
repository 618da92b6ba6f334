/*
 * rate: per-user sending counts in sliding windows (rate.h). The last hour
 * is 60 one-minute buckets, the last day 24 one-hour buckets (so "per day"
 * means the last 24 clock hours, counted to the hour). Users live in a
 * chained hash table and a list ordered by last activity, from which idle
 * and surplus users are dropped.
 */
#include "auth/rate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/address.h"

#define RATE_BUCKETS 16384 /* hash chains */
#define RATE_IDLE_S  86400 /* a user idle this long is forgotten */
#define RATE_MINUTES 60
#define RATE_HOURS   24

struct rate_bucket {
	int64_t start; /* the bucket's minute or hour, in Unix seconds */
	uint32_t messages, recipients;
	uint32_t refused_messages, refused_recipients;
	uint32_t logins_ok, logins_failed;
};

struct rate_user {
	struct rate_user *chain;       /* in its hash chain */
	struct rate_user *prev, *next; /* by last activity, most recent first */
	char name[ADDRESS_MAX + 1];    /* ASCII lower case */
	int64_t last_s;
	struct rate_bucket minutes[RATE_MINUTES];
	struct rate_bucket hours[RATE_HOURS];
	bool is_burst_signalled;
	bool is_login_signalled;
	size_t login_count;
	struct {
		char ip[AUTH_RATE_IP_MAX];
		int64_t at;
	} logins[AUTH_RATE_LOGIN_ADDRS_MAX];
	/* For `postgate user show`: where the logins came from, and the last
	 * automatic hold. */
	size_t history_count;
	struct auth_rate_address history[AUTH_RATE_HISTORY_ADDRS_MAX];
	int64_t hold_s;
	char hold_reason[AUTH_RATE_REASON_MAX];
};

struct auth_rates {
	struct rate_user *chains[RATE_BUCKETS];
	struct rate_user *newest, *oldest;
	size_t count;
};

struct auth_rates *auth_rates_new(void)
{
	return calloc(1, sizeof(struct auth_rates));
}

void auth_rates_free(struct auth_rates *rates)
{
	if (rates == NULL)
		return;
	while (rates->newest != NULL) {
		struct rate_user *u = rates->newest;

		rates->newest = u->next;
		free(u);
	}
	free(rates);
}

size_t auth_rates_count(const struct auth_rates *rates)
{
	return rates->count;
}

static void key_of(const char *user, char out[ADDRESS_MAX + 1])
{
	size_t i = 0;

	for (; user[i] != '\0' && i < ADDRESS_MAX; i++)
		out[i] = (char) tolower((unsigned char) user[i]);
	out[i] = '\0';
}

static size_t chain_of(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *) key; *p != '\0'; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return (size_t) (h % RATE_BUCKETS);
}

static void list_unlink(struct auth_rates *rates, struct rate_user *u)
{
	if (u->prev != NULL)
		u->prev->next = u->next;
	else
		rates->newest = u->next;
	if (u->next != NULL)
		u->next->prev = u->prev;
	else
		rates->oldest = u->prev;
	u->prev = u->next = NULL;
}

static void list_push(struct auth_rates *rates, struct rate_user *u)
{
	u->next = rates->newest;
	if (rates->newest != NULL)
		rates->newest->prev = u;
	rates->newest = u;
	if (rates->oldest == NULL)
		rates->oldest = u;
}

static void drop(struct auth_rates *rates, struct rate_user *u)
{
	struct rate_user **p = &rates->chains[chain_of(u->name)];

	while (*p != NULL && *p != u)
		p = &(*p)->chain;
	if (*p == u)
		*p = u->chain;
	list_unlink(rates, u);
	rates->count--;
	free(u);
}

static struct rate_user *find(const struct auth_rates *rates, const char *key)
{
	for (struct rate_user *u = rates->chains[chain_of(key)]; u != NULL; u = u->chain)
		if (strcmp(u->name, key) == 0)
			return u;
	return NULL;
}

/* The user's record, made if need be and marked as active now; NULL only
 * when memory runs out (the caller then lets the action through). */
static struct rate_user *touch(struct auth_rates *rates, const char *user, int64_t now_s)
{
	char key[ADDRESS_MAX + 1];
	struct rate_user *u;

	/* Forget the idle, oldest first. */
	while (rates->oldest != NULL && now_s - rates->oldest->last_s > RATE_IDLE_S)
		drop(rates, rates->oldest);
	key_of(user, key);
	u = find(rates, key);
	if (u == NULL) {
		if (rates->count >= AUTH_RATE_USERS_MAX)
			drop(rates, rates->oldest);
		u = calloc(1, sizeof(*u));
		if (u == NULL)
			return NULL;
		memcpy(u->name, key, sizeof(u->name));
		u->chain = rates->chains[chain_of(key)];
		rates->chains[chain_of(key)] = u;
		rates->count++;
	} else {
		list_unlink(rates, u);
	}
	list_push(rates, u);
	u->last_s = now_s;
	return u;
}

static struct rate_bucket *bucket(struct rate_bucket *buckets, size_t n, int64_t width,
				  int64_t now_s)
{
	int64_t start = now_s - now_s % width;
	struct rate_bucket *b = &buckets[(size_t) (now_s / width) % n];

	if (b->start != start)
		*b = (struct rate_bucket){ .start = start };
	return b;
}

static void sum(const struct rate_bucket *buckets, size_t n, int64_t width, int64_t now_s,
		struct rate_bucket *out)
{
	int64_t since = now_s - now_s % width - (int64_t) (n - 1) * width;

	*out = (struct rate_bucket){ 0 };
	for (size_t i = 0; i < n; i++) {
		if (buckets[i].start < since || buckets[i].start > now_s)
			continue;
		out->messages += buckets[i].messages;
		out->recipients += buckets[i].recipients;
		out->refused_messages += buckets[i].refused_messages;
		out->refused_recipients += buckets[i].refused_recipients;
		out->logins_ok += buckets[i].logins_ok;
		out->logins_failed += buckets[i].logins_failed;
	}
}

/* The last hour's and the last day's buckets of u summed. */
static void sums_of(const struct rate_user *u, int64_t now_s, struct rate_bucket *hour,
		    struct rate_bucket *day)
{
	sum(u->minutes, RATE_MINUTES, 60, now_s, hour);
	sum(u->hours, RATE_HOURS, 3600, now_s, day);
}

static bool over(uint64_t used, unsigned adding, uint64_t limit)
{
	return limit != 0 && adding > 0 && used + adding > limit;
}

enum auth_rate_verdict auth_rate_take(struct auth_rates *rates, const char *user, int64_t now_s,
				      unsigned messages, unsigned recipients,
				      const struct auth_rate_limits *limits, bool *should_hold)
{
	struct rate_user *u = touch(rates, user, now_s);
	struct rate_bucket hour, day;
	enum auth_rate_verdict verdict = AUTH_RATE_OK;
	uint64_t threshold = 0;

	*should_hold = false;
	if (u == NULL)
		return AUTH_RATE_OK;
	sums_of(u, now_s, &hour, &day);
	if (over(hour.messages, messages, limits->messages_per_hour)) {
		verdict = AUTH_RATE_MESSAGES_HOUR;
		threshold = limits->messages_per_hour;
	} else if (over(day.messages, messages, limits->messages_per_day)) {
		verdict = AUTH_RATE_MESSAGES_DAY;
		threshold = limits->messages_per_hour ? limits->messages_per_hour
						      : limits->messages_per_day;
	} else if (over(hour.recipients, recipients, limits->recipients_per_hour)) {
		verdict = AUTH_RATE_RECIPIENTS_HOUR;
		threshold = limits->recipients_per_hour;
	} else if (over(day.recipients, recipients, limits->recipients_per_day)) {
		verdict = AUTH_RATE_RECIPIENTS_DAY;
		threshold = limits->recipients_per_hour ? limits->recipients_per_hour
							: limits->recipients_per_day;
	}
	if (verdict == AUTH_RATE_OK) {
		struct rate_bucket *m = bucket(u->minutes, RATE_MINUTES, 60, now_s);
		struct rate_bucket *h = bucket(u->hours, RATE_HOURS, 3600, now_s);

		m->messages += messages;
		h->messages += messages;
		m->recipients += recipients;
		h->recipients += recipients;
		if (hour.refused_messages + hour.refused_recipients == 0)
			u->is_burst_signalled = false; /* a new burst may hold again */
		return AUTH_RATE_OK;
	}
	{
		struct rate_bucket *m = bucket(u->minutes, RATE_MINUTES, 60, now_s);
		struct rate_bucket *h = bucket(u->hours, RATE_HOURS, 3600, now_s);
		uint64_t refused;

		if (messages > 0) {
			m->refused_messages++;
			h->refused_messages++;
			refused = hour.refused_messages + 1;
		} else {
			m->refused_recipients++;
			h->refused_recipients++;
			refused = hour.refused_recipients + 1;
		}
		/* Twice the limit tried within the hour: someone else is sending. */
		if (u->is_burst_signalled || refused < threshold)
			return verdict;
	}
	u->is_burst_signalled = true;
	*should_hold = true;
	return verdict;
}

bool auth_rate_login(struct auth_rates *rates, const char *user, const char *client_ip,
		     int64_t now_s, const struct auth_rate_limits *limits)
{
	struct rate_user *u = touch(rates, user, now_s);
	size_t kept = 0, oldest = 0;
	bool is_known = false;

	if (u == NULL)
		return false;
	/* Keep the addresses of the window; note this one. */
	for (size_t i = 0; i < u->login_count; i++) {
		if (now_s - u->logins[i].at > AUTH_RATE_LOGIN_WINDOW_S)
			continue;
		u->logins[kept] = u->logins[i];
		if (strcmp(u->logins[kept].ip, client_ip) == 0) {
			u->logins[kept].at = now_s;
			is_known = true;
		}
		kept++;
	}
	u->login_count = kept;
	if (!is_known) {
		size_t at = u->login_count;

		if (at == AUTH_RATE_LOGIN_ADDRS_MAX) {
			for (size_t i = 1; i < at; i++)
				if (u->logins[i].at < u->logins[oldest].at)
					oldest = i;
			at = oldest;
		} else {
			u->login_count++;
		}
		snprintf(u->logins[at].ip, sizeof(u->logins[at].ip), "%s", client_ip);
		u->logins[at].at = now_s;
	}
	if (u->login_count <= 1)
		u->is_login_signalled = false;
	if (limits->hold_login_addresses != 0 && !u->is_login_signalled &&
	    u->login_count > limits->hold_login_addresses) {
		u->is_login_signalled = true;
		return true;
	}
	return false;
}

static struct auth_rate_usage usage_of(const struct rate_bucket *hour,
				       const struct rate_bucket *day)
{
	return (struct auth_rate_usage){
		.messages_hour = hour->messages,
		.messages_day = day->messages,
		.recipients_hour = hour->recipients,
		.recipients_day = day->recipients,
		.refused_hour = hour->refused_messages + hour->refused_recipients,
	};
}

void auth_rate_usage_get(const struct auth_rates *rates, const char *user, int64_t now_s,
			 struct auth_rate_usage *usage_out)
{
	char key[ADDRESS_MAX + 1];
	const struct rate_user *u;
	struct rate_bucket hour, day;

	*usage_out = (struct auth_rate_usage){ 0 };
	key_of(user, key);
	u = find(rates, key);
	if (u == NULL)
		return;
	sums_of(u, now_s, &hour, &day);
	*usage_out = usage_of(&hour, &day);
}

void auth_rate_login_note(struct auth_rates *rates, const char *user, const char *client_ip,
			  int64_t now_s, bool is_ok)
{
	struct rate_user *u = touch(rates, user, now_s);
	struct rate_bucket *m, *h;
	struct auth_rate_address *a = NULL;

	if (u == NULL)
		return;
	m = bucket(u->minutes, RATE_MINUTES, 60, now_s);
	h = bucket(u->hours, RATE_HOURS, 3600, now_s);
	if (is_ok) {
		m->logins_ok++;
		h->logins_ok++;
	} else {
		m->logins_failed++;
		h->logins_failed++;
	}
	for (size_t i = 0; i < u->history_count && a == NULL; i++)
		if (strcmp(u->history[i].ip, client_ip) == 0)
			a = &u->history[i];
	if (a == NULL) {
		if (u->history_count < AUTH_RATE_HISTORY_ADDRS_MAX) {
			a = &u->history[u->history_count++];
		} else {
			/* Full: the address seen least recently gives way. */
			a = &u->history[0];
			for (size_t i = 1; i < u->history_count; i++)
				if (u->history[i].last_s < a->last_s)
					a = &u->history[i];
		}
		*a = (struct auth_rate_address){ 0 };
		snprintf(a->ip, sizeof(a->ip), "%s", client_ip);
	}
	if (is_ok)
		a->ok++;
	else
		a->failed++;
	a->last_s = now_s;
}

void auth_rate_hold_note(struct auth_rates *rates, const char *user, int64_t now_s,
			 const char *reason)
{
	struct rate_user *u = touch(rates, user, now_s);

	if (u == NULL)
		return;
	u->hold_s = now_s;
	snprintf(u->hold_reason, sizeof(u->hold_reason), "%s", reason);
}

static int newest_first(const void *a, const void *b)
{
	const struct auth_rate_address *x = a, *y = b;

	return x->last_s < y->last_s ? 1 : x->last_s > y->last_s ? -1 : strcmp(x->ip, y->ip);
}

void auth_rate_activity_get(const struct auth_rates *rates, const char *user, int64_t now_s,
			    struct auth_rate_activity *out)
{
	char key[ADDRESS_MAX + 1];
	const struct rate_user *u;
	struct rate_bucket hour, day;

	*out = (struct auth_rate_activity){ 0 };
	key_of(user, key);
	u = find(rates, key);
	if (u == NULL)
		return;
	out->is_tracked = true;
	sums_of(u, now_s, &hour, &day);
	out->usage = usage_of(&hour, &day);
	out->logins_ok_hour = hour.logins_ok;
	out->logins_ok_day = day.logins_ok;
	out->logins_failed_hour = hour.logins_failed;
	out->logins_failed_day = day.logins_failed;
	out->hold_s = u->hold_s;
	memcpy(out->hold_reason, u->hold_reason, sizeof(out->hold_reason));
	for (size_t i = 0; i < u->history_count; i++)
		if (now_s - u->history[i].last_s <= RATE_IDLE_S)
			out->addresses[out->address_count++] = u->history[i];
	qsort(out->addresses, out->address_count, sizeof(out->addresses[0]), newest_first);
}

const char *auth_rate_verdict_name(enum auth_rate_verdict verdict)
{
	switch (verdict) {
	case AUTH_RATE_OK:
		return "ok";
	case AUTH_RATE_MESSAGES_HOUR:
		return "messages-per-hour";
	case AUTH_RATE_MESSAGES_DAY:
		return "messages-per-day";
	case AUTH_RATE_RECIPIENTS_HOUR:
		return "recipients-per-hour";
	case AUTH_RATE_RECIPIENTS_DAY:
		return "recipients-per-day";
	}
	return "unknown";
}
