/*
 * auth: logging in to POP3 — USER/PASS (RFC 1939 7) and AUTH (RFC 5034),
 * with the RFC 3206 response codes ([AUTH], [SYS/TEMP]). The mechanisms
 * are src/sasl/ and the checks are the auth service's (src/auth/), exactly
 * as for SMTP AUTH (src/smtp/auth.c): the same user name and password work
 * on both, with the same throttle, cache and log lines. This file frames:
 * "+ <base64>" continuations, "*" cancels, "=" is an empty initial response.
 */
#include "pop3/internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "auth/secret.h"
#include "core/log.h"
#include "tls/upgrade.h"

bool pop3_auth_is_plaintext_ok(const struct pop3_session *s)
{
	return s->is_tls || s->is_plaintext_auth_allowed;
}

/* What this session allows now; src/sasl/ decides which mechanisms that
 * means, as for SMTP AUTH: PLAIN and LOGIN only where USER/PASS would be,
 * CRAM-MD5 where the listener offers it and every account has its secret,
 * -PLUS where the TLS connection has a tls-exporter binding (binding_out
 * receives it; NULL: not wanted). */
static void offer_get(const struct pop3_session *s, struct sasl_offer *offer,
		      unsigned char binding_out[TLS_CHANNEL_BINDING_LEN])
{
	unsigned char binding[TLS_CHANNEL_BINDING_LEN];
	SSL *ssl = s->is_tls && s->is_handshake_done && s->bev != NULL ? tls_bufferevent_ssl(s->bev)
								       : NULL;

	*offer = (struct sasl_offer){
		.is_tls = s->is_tls,
		.is_plaintext_allowed = s->is_plaintext_auth_allowed,
		.is_cram_md5_enabled = s->is_cram_md5_offered,
		.has_channel_binding =
			ssl != NULL && tls_exporter_channel_binding(ssl, binding) == 0,
	};
	if (binding_out != NULL && offer->has_channel_binding)
		memcpy(binding_out, binding, sizeof(binding));
	sodium_memzero(binding, sizeof(binding));
}

static bool is_scram(enum sasl_mechanism mechanism)
{
	return mechanism == SASL_MECHANISM_SCRAM_SHA_256 ||
	       mechanism == SASL_MECHANISM_SCRAM_SHA_256_PLUS;
}

static bool secret_kind_for(enum sasl_mechanism mechanism, enum auth_secret_kind *kind_out)
{
	switch (mechanism) {
	case SASL_MECHANISM_SCRAM_SHA_256:
	case SASL_MECHANISM_SCRAM_SHA_256_PLUS:
		*kind_out = AUTH_SECRET_SCRAM_SHA_256;
		return true;
	case SASL_MECHANISM_CRAM_MD5:
		*kind_out = AUTH_SECRET_CRAM_MD5;
		return true;
	case SASL_MECHANISM_PLAIN:
	case SASL_MECHANISM_LOGIN:
		break;
	}
	return false;
}

void pop3_auth_mechanisms(const struct pop3_session *s, char *out, size_t cap)
{
	struct sasl_offer offer;

	offer_get(s, &offer, NULL);
	sasl_mechanisms_list(&offer, out, cap);
}

void pop3_auth_end(struct pop3_session *s)
{
	if (s->auth_ticket != 0 && s->server->auth != NULL)
		auth_cancel(s->server->auth, s->auth_ticket);
	s->auth_ticket = 0;
	s->is_auth_waiting = false;
	s->is_scram_reporting = false;
	sasl_exchange_free(s->sasl);
	s->sasl = NULL;
	if (s->input_mode == POP3_INPUT_AUTH)
		s->input_mode = POP3_INPUT_COMMAND;
}

static struct pop3_reply failed(struct pop3_session *s)
{
	pop3_auth_end(s);
	s->has_user = false;
	/* RFC 3206 4: [AUTH] says the credentials were the problem. */
	if (++s->auth_failures >= POP3_AUTH_FAILURES_MAX)
		return POP3_CLOSE("AUTH", "Authentication failed; too many failures, closing");
	return POP3_ERR("AUTH", "Authentication failed");
}

static struct pop3_reply temporary(struct pop3_session *s)
{
	pop3_auth_end(s);
	s->has_user = false;
	return POP3_ERR("SYS/TEMP", "Temporary authentication failure, try again later");
}

static struct pop3_reply malformed(struct pop3_session *s)
{
	pop3_auth_end(s);
	return POP3_BAD("Malformed authentication response");
}

/* The credentials are right: the maildrop decides the answer. */
static struct pop3_reply succeeded(struct pop3_session *s, const char *user)
{
	char copy[sizeof(s->auth_user)];

	snprintf(copy, sizeof(copy), "%s", user); /* user may point into the exchange */
	pop3_auth_end(s);
	snprintf(s->auth_user, sizeof(s->auth_user), "%s", copy);
	s->has_user = false;
	pop3_session_open_maildrop(s);
	return POP3_LATER;
}

static struct pop3_reply challenge(struct pop3_session *s, const unsigned char *bytes, size_t len)
{
	size_t encoded_len;

	if (!sasl_challenge_encode(bytes, len, s->reply_text, sizeof(s->reply_text), &encoded_len))
		return temporary(s);
	s->input_mode = POP3_INPUT_AUTH;
	return POP3_CONTINUE(s->reply_text);
}

static struct auth_request request(const struct pop3_session *s, const char *username)
{
	return (struct auth_request){
		.client_ip = s->client_ip,
		.listener = s->listener,
		.mechanism = s->login_mechanism,
		.session_id = s->sid,
		.username = username,
	};
}

static struct pop3_reply step_result(struct pop3_session *s, enum sasl_step step,
				     struct sasl_output *out);

static void resume(struct pop3_session *s, struct pop3_reply reply)
{
	pop3_session_reply(s, reply);
	pop3_session_resume(s);
}

static void on_password_checked(void *ctx, enum auth_result result, const char *canonical_user)
{
	struct pop3_session *s = ctx;
	struct sasl_output out = { 0 };

	s->auth_ticket = 0;
	s->is_auth_waiting = false;
	switch (result) {
	case AUTH_OK:
		/* USER/PASS has no exchange; PLAIN and LOGIN hear the verdict. */
		if (s->sasl == NULL ||
		    sasl_exchange_password_result(s->sasl, true, &out) == SASL_STEP_SUCCESS) {
			resume(s, succeeded(s, canonical_user));
			return;
		}
		resume(s, failed(s));
		return;
	case AUTH_FAILED:
		if (s->sasl != NULL)
			sasl_exchange_password_result(s->sasl, false, &out);
		resume(s, failed(s));
		return;
	case AUTH_TEMPFAIL:
	case AUTH_THROTTLED:
		break;
	}
	resume(s, temporary(s));
}

static void on_reported(void *ctx, enum auth_result result, const char *canonical_user)
{
	struct pop3_session *s = ctx;

	s->auth_ticket = 0;
	s->is_auth_waiting = false;
	switch (result) {
	case AUTH_OK:
		if (!is_scram(s->sasl_mechanism)) {
			/* CRAM-MD5: the digest matched a real secret. */
			resume(s, succeeded(s, canonical_user));
			return;
		}
		/* The proof was right: the server-final message, then the
		 * client's empty answer completes the exchange (RFC 5034 4). */
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", canonical_user);
		s->is_scram_reporting = false;
		resume(s, challenge(s, s->scram_final, s->scram_final_len));
		return;
	case AUTH_FAILED:
		resume(s, failed(s));
		return;
	case AUTH_TEMPFAIL:
	case AUTH_THROTTLED:
		break;
	}
	resume(s, temporary(s));
}

static void on_secret(void *ctx, enum auth_result result, const char *secret,
		      const char *canonical_user)
{
	struct pop3_session *s = ctx;
	struct sasl_output out = { 0 };
	enum sasl_step step;

	(void) canonical_user;
	s->is_auth_waiting = false;
	if (result != AUTH_OK) {
		s->auth_ticket = 0;
		resume(s, result == AUTH_FAILED ? failed(s) : temporary(s));
		return;
	}
	step = sasl_exchange_secret(s->sasl, secret, &out);
	resume(s, step_result(s, step, &out));
}

static struct pop3_reply step_result(struct pop3_session *s, enum sasl_step step,
				     struct sasl_output *out)
{
	struct auth_request req;
	enum auth_secret_kind kind;

	switch (step) {
	case SASL_STEP_CHALLENGE:
		if (s->auth_ticket != 0 && !s->is_scram_reporting && is_scram(s->sasl_mechanism) &&
		    s->scram_final_len == 0 && out->challenge_len > 0 && out->challenge[0] == 'v') {
			/* SCRAM's server-final: the service must still say
			 * whether the secret was real and count the attempt. */
			if (out->challenge_len > sizeof(s->scram_final))
				return temporary(s);
			memcpy(s->scram_final, out->challenge, out->challenge_len);
			s->scram_final_len = out->challenge_len;
			s->is_scram_reporting = true;
			s->is_auth_waiting = true;
			s->auth_ticket =
				auth_report(s->server->auth, s->auth_ticket, true, on_reported, s);
			if (s->auth_ticket == 0)
				return temporary(s);
			return POP3_LATER;
		}
		return challenge(s, out->challenge, out->challenge_len);
	case SASL_STEP_CHECK_PASSWORD:
		req = request(s, out->username);
		s->is_auth_waiting = true;
		s->auth_ticket = auth_check_password(s->server->auth, &req, out->password,
						     out->password_len, on_password_checked, s);
		if (s->auth_ticket == 0)
			return temporary(s);
		return POP3_LATER;
	case SASL_STEP_NEED_SECRET:
		if (!secret_kind_for(s->sasl_mechanism, &kind))
			return temporary(s);
		req = request(s, out->username);
		s->is_auth_waiting = true;
		s->auth_ticket = auth_fetch_secret(s->server->auth, &req, kind, on_secret, s);
		if (s->auth_ticket == 0)
			return temporary(s);
		return POP3_LATER;
	case SASL_STEP_SUCCESS: {
		if (s->auth_ticket != 0 && s->sasl_mechanism == SASL_MECHANISM_CRAM_MD5) {
			/* The digest matched the fetched secret: the service says
			 * whether it was a real one, logs and counts. */
			s->is_auth_waiting = true;
			s->auth_ticket =
				auth_report(s->server->auth, s->auth_ticket, true, on_reported, s);
			if (s->auth_ticket == 0)
				return temporary(s);
			return POP3_LATER;
		}
		/* SCRAM after the server-final: the verdict set auth_user. */
		char user[SASL_USERNAME_MAX + 1];

		snprintf(user, sizeof(user), "%s", s->auth_user);
		return succeeded(s, user);
	}
	case SASL_STEP_FAILURE:
		if (s->auth_ticket != 0 && secret_kind_for(s->sasl_mechanism, &kind)) {
			/* A wrong proof: the service counts and delays it. */
			s->is_auth_waiting = true;
			s->auth_ticket =
				auth_report(s->server->auth, s->auth_ticket, false, on_reported, s);
			if (s->auth_ticket == 0)
				return failed(s);
			return POP3_LATER;
		}
		return failed(s);
	case SASL_STEP_MALFORMED:
		break;
	}
	return malformed(s);
}

/* A response line (or an initial response): decode and step. */
static struct pop3_reply respond(struct pop3_session *s, struct span line, bool has_input)
{
	static unsigned char decoded[SASL_MESSAGE_MAX]; /* the loop thread only */
	size_t decoded_len = 0;
	struct sasl_output out = { 0 };
	struct pop3_reply reply;

	if (has_input) {
		switch (sasl_response_decode(line, decoded, sizeof(decoded), &decoded_len)) {
		case SASL_RESPONSE_OK:
			break;
		case SASL_RESPONSE_CANCEL:
			/* RFC 5034 4: "*" cancels, and the server says -ERR. */
			pop3_auth_end(s);
			return POP3_ERR(NULL, "Authentication cancelled");
		case SASL_RESPONSE_BAD_BASE64:
			pop3_auth_end(s);
			return POP3_BAD("Cannot decode the response (base64)");
		case SASL_RESPONSE_TOO_LONG:
			pop3_auth_end(s);
			return POP3_BAD("Authentication exchange line is too long");
		}
	}
	reply = step_result(s,
			    sasl_exchange_step(s->sasl, has_input,
					       span_make((const char *) decoded, decoded_len),
					       &out),
			    &out);
	sodium_memzero(decoded, decoded_len);
	return reply;
}

static struct pop3_reply plaintext_refused(void)
{
	/* RFC 3206 4: [AUTH] also covers a login against policy. */
	return (struct pop3_reply){
		.is_bad = true,
		.code = "AUTH",
		.text = "Plaintext authentication is not allowed without TLS; use STLS first",
	};
}

struct pop3_reply pop3_auth_user(struct pop3_session *s, struct span name)
{
	s->has_user = false;
	if (!pop3_auth_is_plaintext_ok(s))
		return plaintext_refused();
	if (name.len == 0 || !span_copy_cstr(name, s->user, sizeof(s->user)))
		return POP3_BAD("Syntax: USER name");
	s->has_user = true;
	return POP3_OK("Send PASS");
}

struct pop3_reply pop3_auth_pass(struct pop3_session *s, struct span password)
{
	struct auth_request req;

	if (!s->has_user)
		return POP3_BAD("Send USER first");
	if (!pop3_auth_is_plaintext_ok(s)) {
		s->has_user = false;
		return plaintext_refused();
	}
	if (s->server->auth == NULL)
		return temporary(s);
	s->login_mechanism = "USER";
	req = request(s, s->user);
	s->is_auth_waiting = true;
	s->auth_ticket = auth_check_password(s->server->auth, &req, password.ptr, password.len,
					     on_password_checked, s);
	if (s->auth_ticket == 0)
		return temporary(s);
	return POP3_LATER;
}

/* RFC 1939 7: the digest is MD5(timestamp + password) in lower-case hex. */
static bool apop_digest_matches(const char *timestamp, const char *secret, const char *digest)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	const char *password = secret + 7; /* after "{PLAIN}" */
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool is_match = false;

	if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	    EVP_DigestUpdate(ctx, password, strlen(password)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 16) {
		sodium_bin2hex(hex, sizeof(hex), md, md_len);
		is_match = sodium_memcmp(hex, digest, 32) == 0;
	}
	EVP_MD_CTX_free(ctx);
	sodium_memzero(md, sizeof(md));
	sodium_memzero(hex, sizeof(hex));
	return is_match;
}

static void on_apop_secret(void *ctx, enum auth_result result, const char *secret,
			   const char *canonical_user)
{
	struct pop3_session *s = ctx;
	bool is_match;

	(void) canonical_user;
	s->is_auth_waiting = false;
	if (result != AUTH_OK) {
		s->auth_ticket = 0;
		resume(s, result == AUTH_FAILED ? failed(s) : temporary(s));
		return;
	}
	/* The verdict goes back to the service, which knows a decoy. */
	is_match = auth_secret_is_plain(secret) &&
		   apop_digest_matches(s->apop_timestamp, secret, s->apop_digest);
	sodium_memzero(s->apop_digest, sizeof(s->apop_digest));
	s->is_auth_waiting = true;
	s->auth_ticket = auth_report(s->server->auth, s->auth_ticket, is_match, on_reported, s);
	if (s->auth_ticket == 0) {
		s->is_auth_waiting = false;
		resume(s, temporary(s));
	}
}

struct pop3_reply pop3_auth_apop(struct pop3_session *s, struct span name, struct span digest)
{
	struct auth_request req;

	s->has_user = false;
	if (s->apop_timestamp[0] == '\0')
		return POP3_BAD("APOP is not offered here");
	if (digest.len != 32)
		return POP3_BAD("Syntax: APOP name digest (32 hex digits)");
	for (size_t i = 0; i < digest.len; i++)
		if (!((digest.ptr[i] >= '0' && digest.ptr[i] <= '9') ||
		      (digest.ptr[i] >= 'a' && digest.ptr[i] <= 'f') ||
		      (digest.ptr[i] >= 'A' && digest.ptr[i] <= 'F')))
			return POP3_BAD("Syntax: APOP name digest (32 hex digits)");
	if (name.len == 0 || !span_copy_cstr(name, s->user, sizeof(s->user)))
		return POP3_BAD("Syntax: APOP name digest");
	if (s->server->auth == NULL)
		return temporary(s);
	for (size_t i = 0; i < digest.len; i++) {
		char c = digest.ptr[i];

		s->apop_digest[i] = (char) (c >= 'A' && c <= 'F' ? c + ('a' - 'A') : c);
	}
	s->apop_digest[32] = '\0';
	s->login_mechanism = "APOP";
	s->sasl_mechanism = SASL_MECHANISM_PLAIN; /* not SCRAM: the verdict ends it */
	req = request(s, s->user);
	s->is_auth_waiting = true;
	s->auth_ticket =
		auth_fetch_secret(s->server->auth, &req, AUTH_SECRET_PLAIN, on_apop_secret, s);
	if (s->auth_ticket == 0)
		return temporary(s);
	return POP3_LATER;
}

struct pop3_reply pop3_auth_start(struct pop3_session *s, const struct pop3_command *command)
{
	struct sasl_server_info info = { .hostname = s->server->config->hostname,
					 .mock_key = s->server->mock_key };
	struct span initial = command->arg_count > 1 ? command->args[1] : span_make(NULL, 0);
	unsigned char binding[TLS_CHANNEL_BINDING_LEN];
	struct sasl_offer offer;
	struct error err;

	s->has_user = false;
	if (command->arg_count == 0) {
		/* "AUTH" alone lists the mechanisms, as before RFC 5034 (RFC
		 * 1734 drafts; Outlook Express asks this way). */
		char names[256];
		struct span rest, name;

		pop3_auth_mechanisms(s, names, sizeof(names));
		pop3_session_reply(s, POP3_OK("Methods supported:"));
		for (rest = span_from_cstr(names); rest.len > 0;) {
			span_split_word(rest, &name, &rest);
			pop3_session_line(s, "%.*s", (int) name.len, name.ptr);
		}
		pop3_session_line(s, ".");
		return POP3_LATER;
	}
	offer_get(s, &offer, binding);
	if (offer.has_channel_binding) {
		/* Given to SCRAM-SHA-256 too: a client that could bind and says
		 * it thinks we cannot ("y") is refused (RFC 5802 6). */
		info.channel_binding = binding;
		info.channel_binding_len = sizeof(binding);
	}
	if (!sasl_mechanism_parse(command->args[0], &s->sasl_mechanism) ||
	    !sasl_mechanism_is_offered(s->sasl_mechanism, &offer)) {
		if (sasl_mechanism_parse(command->args[0], &s->sasl_mechanism) &&
		    sasl_mechanism_is_plaintext(s->sasl_mechanism) && !pop3_auth_is_plaintext_ok(s))
			return plaintext_refused();
		return POP3_BAD("Unrecognized authentication mechanism");
	}
	if (s->server->auth == NULL)
		return temporary(s);
	s->login_mechanism = sasl_mechanism_name(s->sasl_mechanism);
	s->scram_final_len = 0;
	s->sasl = sasl_exchange_new(s->sasl_mechanism, &info, &err);
	sodium_memzero(binding, sizeof(binding));
	if (s->sasl == NULL) {
		log_warning("sid=%s pop3 auth: %s", s->sid, err.message);
		return temporary(s);
	}
	return respond(s, initial, initial.len > 0);
}

struct pop3_reply pop3_auth_response(struct pop3_session *s, struct span line)
{
	if (s->sasl == NULL || s->is_auth_waiting)
		return malformed(s);
	return respond(s, line, true);
}
