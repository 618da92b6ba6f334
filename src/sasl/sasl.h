/*
 * sasl: the one SASL (RFC 4422) server implementation that SMTP AUTH
 * (RFC 4954) and POP3 AUTH (RFC 5034) share. It owns the mechanisms PLAIN
 * (RFC 4616), LOGIN (draft-murchison-sasl-login, MS-XLOGIN), CRAM-MD5
 * (RFC 2195) and SCRAM-SHA-256 / SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677,
 * RFC 9266) as step functions over decoded bytes, and the framing both
 * protocols use for client responses (base64, "*" cancels, "=" is empty).
 *
 * It knows no protocol and does no I/O: no sockets, no store, no clock
 * beyond the CRAM-MD5 challenge's time stamp, no logging. Whatever needs
 * the accounts store or slow hashing is handed back to the caller as a step
 * result (SASL_STEP_CHECK_PASSWORD, SASL_STEP_NEED_SECRET), and the caller
 * answers with sasl_exchange_password_result() or sasl_exchange_secret().
 * Passwords, keys and proofs are wiped with sodium_memzero when the exchange
 * no longer needs them and when it is freed.
 *
 * Threads: an exchange is used by one thread at a time (the event loop of
 * its session). The functions here take microseconds: the slow parts
 * (argon2id, PBKDF2) are the caller's.
 */
#ifndef POSTGATE_SASL_SASL_H
#define POSTGATE_SASL_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/span.h"

/* One client response line as sent, base64 text without CRLF: the AUTH
 * command line limit of RFC 4954 4, applied to every response line. */
#define SASL_RESPONSE_LINE_MAX 12288 /* RFC 4954 4 */
/* A decoded client message: what SASL_RESPONSE_LINE_MAX base64 octets
 * decode to. sasl_exchange_step refuses longer input. */
#define SASL_MESSAGE_MAX (SASL_RESPONSE_LINE_MAX / 4 * 3)
/* A server challenge before base64 (the largest is SCRAM's server-first
 * message: a client nonce of SASL_SCRAM_NONCE_MAX, ours, salt, count). */
#define SASL_CHALLENGE_MAX 1024
/* A base64-encoded challenge with its terminating NUL. */
#define SASL_CHALLENGE_ENCODED_MAX ((SASL_CHALLENGE_MAX + 2) / 3 * 4 + 1)
/* An authentication or authorization identity: RFC 4616 2 requires 255
 * octets, which holds any address an SMTP path can carry (RFC 5321
 * 4.5.3.1.3: 256 octets with the angle brackets). */
#define SASL_USERNAME_MAX 255 /* RFC 4616 2 */
/* A password: the same bound as AUTH_PASSWORD_MAX (auth/secret.h), so any
 * password that can be set can be sent (RFC 4616 2 asks for at least 255). */
#define SASL_PASSWORD_MAX 1024
/* The server's host name in the CRAM-MD5 challenge. */
#define SASL_HOSTNAME_MAX 255 /* RFC 1035 2.3.4 */
/* A client nonce in SCRAM's client-first message; RFC 5802 sets no bound. */
#define SASL_SCRAM_NONCE_MAX 512
/* tls-exporter channel binding data (RFC 9266 2); TLS_CHANNEL_BINDING_LEN
 * in tls/upgrade.h. */
#define SASL_CHANNEL_BINDING_LEN 32
/* The per-process key from which SCRAM's mock salts for unknown users are
 * derived (RFC 5802 5.1, decision 0043). */
#define SASL_MOCK_KEY_LEN 32
/* "{CRAM-MD5}" and 64 hex digits, with its NUL: the cap that
 * sasl_cram_md5_secret_make always fits. */
#define SASL_CRAM_MD5_SECRET_MAX (10 + 64 + 1)

enum sasl_mechanism {
	SASL_MECHANISM_PLAIN,		   /* RFC 4616 */
	SASL_MECHANISM_LOGIN,		   /* draft-murchison-sasl-login, MS-XLOGIN */
	SASL_MECHANISM_CRAM_MD5,	   /* RFC 2195 */
	SASL_MECHANISM_SCRAM_SHA_256,	   /* RFC 5802, RFC 7677 */
	SASL_MECHANISM_SCRAM_SHA_256_PLUS, /* the same, bound to tls-exporter (RFC 9266) */
};

/* The registered name, case-insensitively ("cram-md5" is Eudora's
 * spelling). false for any other name. */
bool sasl_mechanism_parse(struct span name, enum sasl_mechanism *mechanism_out);
/* The registered name in upper case, as EHLO and CAPA advertise it. */
const char *sasl_mechanism_name(enum sasl_mechanism mechanism);
/* true for PLAIN and LOGIN, which send the password itself: listeners offer
 * them only over TLS unless the legacy profile allows plaintext. */
bool sasl_mechanism_is_plaintext(enum sasl_mechanism mechanism);

/* What a connection allows: the facts that decide which mechanisms SMTP's
 * EHLO and POP3's CAPA advertise (and accept). */
struct sasl_offer {
	bool is_tls;
	bool is_plaintext_allowed; /* PLAIN/LOGIN without TLS: the legacy listener */
	bool is_cram_md5_enabled;  /* the listener's cram_md5, and every account has the secret */
	bool has_channel_binding;  /* tls-exporter exists on this connection (decision 0054) */
};

/* Whether mechanism is offered under offer. */
bool sasl_mechanism_is_offered(enum sasl_mechanism mechanism, const struct sasl_offer *offer);

/* The offered mechanisms' names, space-separated, in a fixed order (PLAIN
 * LOGIN CRAM-MD5 SCRAM-SHA-256 SCRAM-SHA-256-PLUS), into out; "" when none.
 * A cap of SASL_MECHANISMS_LIST_MAX is always enough. */
#define SASL_MECHANISMS_LIST_MAX 64
void sasl_mechanisms_list(const struct sasl_offer *offer, char *out, size_t cap);

/* What one client response line is. */
enum sasl_response_kind {
	SASL_RESPONSE_OK,	  /* decoded into out (maybe empty) */
	SASL_RESPONSE_CANCEL,	  /* the line is exactly "*": 501 (RFC 4954 4), -ERR (RFC 5034 4) */
	SASL_RESPONSE_BAD_BASE64, /* not strict base64: 501 5.5.2 / -ERR */
	SASL_RESPONSE_TOO_LONG,	  /* more than SASL_RESPONSE_LINE_MAX, or more than cap decoded */
};

/*
 * Decode one client response (the line without CRLF, or an AUTH command's
 * initial response). "*" cancels. "=" is an empty response (RFC 4954 4,
 * RFC 5034 4 use it for an empty initial response; it is accepted on any
 * line since it is not base64). An empty line is an empty response.
 * Otherwise the line must be RFC 4648 4 base64: the standard alphabet,
 * padding present, zero pad bits, no white space or line breaks.
 * Writes at most cap octets to out and the decoded length to *len_out
 * (0 for anything but SASL_RESPONSE_OK); out is wiped again on failure.
 * A cap of SASL_MESSAGE_MAX holds any line that is not TOO_LONG.
 */
enum sasl_response_kind sasl_response_decode(struct span line, unsigned char *out, size_t cap,
					     size_t *len_out);

/*
 * Base64 of a challenge into out, NUL-terminated, for "334 <text>" or
 * "+ <text>" (an empty challenge gives ""). false when out_cap cannot hold
 * it; a cap of SASL_CHALLENGE_ENCODED_MAX holds every challenge an exchange
 * makes.
 */
bool sasl_challenge_encode(const unsigned char *challenge, size_t challenge_len, char *out,
			   size_t out_cap, size_t *len_out);

/* What the server brings to an exchange. sasl_exchange_new copies it. */
struct sasl_server_info {
	/* The server's host name: CRAM-MD5's challenge
	 * "<digits.time@hostname>" (RFC 2195 2). Required for CRAM-MD5:
	 * printable ASCII without space, '<', '>', at most SASL_HOSTNAME_MAX. */
	const char *hostname;
	/* tls-exporter channel binding data (RFC 9266), exactly
	 * SASL_CHANNEL_BINDING_LEN octets, or NULL when the connection has
	 * none (no TLS, or TLS 1.2 without extended master secret: decision
	 * 0054). Required for SCRAM-SHA-256-PLUS. Offer -PLUS exactly when
	 * this is set: a SCRAM-SHA-256 client that says "y" (it could bind
	 * but thinks we cannot) then fails, as RFC 5802 6 requires. */
	const unsigned char *channel_binding;
	size_t channel_binding_len;
	/* SASL_MOCK_KEY_LEN secret random octets made once per process
	 * (randombytes_buf): SCRAM derives the salt it shows for an unknown
	 * user from it (decision 0043). Required for the SCRAM mechanisms. */
	const unsigned char *mock_key;
};

struct sasl_exchange;

/*
 * A new exchange for one AUTH command. Fails with ERROR_USAGE when info
 * lacks what the mechanism needs (see struct sasl_server_info), or
 * ERROR_SOFTWARE when memory or the random generator fails. NULL with err
 * filled on failure.
 */
struct sasl_exchange *sasl_exchange_new(enum sasl_mechanism mechanism,
					const struct sasl_server_info *info, struct error *err);
/* Wipes every secret the exchange holds and frees it. NULL does nothing. */
void sasl_exchange_free(struct sasl_exchange *exchange);

enum sasl_step {
	/* Send out->challenge (334 / "+"), read one response line, decode it
	 * with sasl_response_decode and step again. */
	SASL_STEP_CHALLENGE,
	/* PLAIN or LOGIN has the credentials: out->username, out->authzid,
	 * out->password. Check them (auth_check_password), then call
	 * sasl_exchange_password_result. */
	SASL_STEP_CHECK_PASSWORD,
	/* CRAM-MD5 or SCRAM has the user name (out->username): fetch the
	 * stored secret (auth_fetch_secret), then call sasl_exchange_secret. */
	SASL_STEP_NEED_SECRET,
	/* Authenticated as out->username (235 / +OK). */
	SASL_STEP_SUCCESS,
	/* Wrong credentials, or an authzid other than the user: a failed login
	 * (535 5.7.8 / -ERR). */
	SASL_STEP_FAILURE,
	/* The client sent something the mechanism cannot parse, or a response
	 * where none belongs: a protocol error (501 5.5.2 / -ERR), not a
	 * failed login. */
	SASL_STEP_MALFORMED,
};

/*
 * What a step hands back. Every pointer points into the exchange and is
 * valid until the next call on it or its free. Fields a step does not set
 * are NULL and 0.
 */
struct sasl_output {
	const unsigned char *challenge; /* SASL_STEP_CHALLENGE; may be empty */
	size_t challenge_len;
	const char *username; /* CHECK_PASSWORD, NEED_SECRET, SUCCESS: the authentication
				 identity (authcid), NUL-terminated UTF-8 */
	const char *authzid;  /* CHECK_PASSWORD, SUCCESS: "" or equal to username */
	const char *password; /* CHECK_PASSWORD: NUL-terminated, password_len octets,
				 wiped by sasl_exchange_password_result */
	size_t password_len;
};

/*
 * One step. has_input is false only for an AUTH command without an initial
 * response; input is then ignored. Otherwise input is the decoded response
 * (sasl_response_decode), possibly empty. Call it only at the start and
 * after SASL_STEP_CHALLENGE (anything else is a caller bug: assert).
 * After SUCCESS, FAILURE or MALFORMED the exchange is over: free it.
 */
enum sasl_step sasl_exchange_step(struct sasl_exchange *exchange, bool has_input, struct span input,
				  struct sasl_output *out);

/*
 * The verdict on the credentials of SASL_STEP_CHECK_PASSWORD: is_valid
 * when they are right (auth said AUTH_OK). Wipes the password; returns
 * SASL_STEP_SUCCESS (out->username, out->authzid) or SASL_STEP_FAILURE.
 */
enum sasl_step sasl_exchange_password_result(struct sasl_exchange *exchange, bool is_valid,
					     struct sasl_output *out);

/*
 * The stored secret for SASL_STEP_NEED_SECRET: "{CRAM-MD5}<64 hex>" for
 * CRAM-MD5 (decision 0044), "{SCRAM-SHA-256}iterations,salt,StoredKey,
 * ServerKey" for SCRAM (decision 0003); the scheme name matches without
 * regard to case. NULL when there is no such user, or no secret of that
 * kind; a malformed secret counts as NULL. CRAM-MD5 then gives its verdict
 * (SUCCESS or FAILURE). SCRAM gives its server-first message
 * (SASL_STEP_CHALLENGE) for everyone: without a usable secret it carries
 * on with a mock salt and fails at the proof like a wrong password
 * (decision 0043).
 *
 * A SCRAM exchange that verifies the client's proof answers with one more
 * challenge, the server-final message "v=..."; the client's empty response
 * to it brings SASL_STEP_SUCCESS (decision 0042).
 */
enum sasl_step sasl_exchange_secret(struct sasl_exchange *exchange, const char *stored_secret,
				    struct sasl_output *out);

/*
 * The {CRAM-MD5} secret of a password, Dovecot's form: "{CRAM-MD5}" and
 * the hex of the HMAC-MD5 outer and inner MD5 states after absorbing the
 * key (RFC 2104 4). It is password-equivalent for CRAM-MD5: store it only
 * where an administrator enables the mechanism. Refused with ERROR_DATA
 * like auth_secret_make_*: an empty password, one longer than
 * SASL_PASSWORD_MAX, one holding a NUL byte. out_cap of
 * SASL_CRAM_MD5_SECRET_MAX is enough; out is "" after a failure.
 */
int sasl_cram_md5_secret_make(const char *password, size_t password_len, char *out, size_t out_cap,
			      struct error *err);

#endif
