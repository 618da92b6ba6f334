/*
 * auth: SMTP AUTH (RFC 4954) — the AUTH command, its exchange of 334
 * challenges and responses, and the verdicts of the auth service. The
 * mechanisms themselves are src/sasl/ (shared with POP3); checking
 * credentials is src/auth/ (on worker threads). This file only frames.
 */
#include "smtp/internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/log.h"
#include "tls/upgrade.h"

/* What this session allows now (src/sasl/ decides which mechanisms that
 * means, for POP3 too): PLAIN and LOGIN send the password itself, so they
 * need TLS or a legacy listener that allows plaintext; CRAM-MD5 needs the
 * listener's switch and every account's secret; -PLUS needs the
 * tls-exporter binding, which binding_out receives (NULL: not wanted). */
static void offer_get(const struct smtp_session *s, struct sasl_offer *offer,
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

/* SCRAM's two forms share the secret and the report of the proof. */
static bool is_scram(enum sasl_mechanism mechanism)
{
	return mechanism == SASL_MECHANISM_SCRAM_SHA_256 ||
	       mechanism == SASL_MECHANISM_SCRAM_SHA_256_PLUS;
}

/* Mechanisms whose verdict comes from the session against a fetched
 * secret, reported back to the auth service. */
static bool is_secret_based(enum sasl_mechanism mechanism)
{
	return is_scram(mechanism) || mechanism == SASL_MECHANISM_CRAM_MD5;
}

void smtp_auth_mechanisms(const struct smtp_session *s, char *out, size_t cap)
{
	struct sasl_offer offer;

	out[0] = '\0';
	if (s->server->auth == NULL || s->is_authenticated)
		return;
	offer_get(s, &offer, NULL);
	sasl_mechanisms_list(&offer, out, cap);
}

void smtp_auth_end(struct smtp_session *s)
{
	if (s->auth_ticket != 0 && s->server->auth != NULL)
		auth_cancel(s->server->auth, s->auth_ticket);
	s->auth_ticket = 0;
	s->is_auth_waiting = false;
	s->is_scram_reporting = false;
	sasl_exchange_free(s->sasl);
	s->sasl = NULL;
	if (s->input_mode == SMTP_INPUT_AUTH)
		s->input_mode = SMTP_INPUT_COMMAND;
}

static struct smtp_reply failed(struct smtp_session *s)
{
	smtp_auth_end(s);
	if (++s->auth_failures >= SMTP_AUTH_FAILURES_MAX)
		return REPLY_CLOSE(
			535, "5.7.8",
			"Authentication credentials invalid; too many failures, closing");
	return REPLY(535, "5.7.8", "Authentication credentials invalid");
}

static struct smtp_reply temporary(struct smtp_session *s)
{
	smtp_auth_end(s);
	return REPLY(454, "4.7.0", "Temporary authentication failure");
}

static struct smtp_reply malformed(struct smtp_session *s)
{
	smtp_auth_end(s);
	return REPLY(501, "5.5.2", "Malformed authentication response");
}

static struct smtp_reply succeeded(struct smtp_session *s, const char *user)
{
	snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
	s->is_authenticated = true;
	if (s->server->rates != NULL) {
		struct auth_rate_limits limits;

		/* Logins from many addresses at once: a password in many hands. */
		smtp_server_rate_limits(s->server->config, &limits);
		if (auth_rate_login(s->server->rates, user, s->client_ip, (int64_t) time(NULL),
				    &limits))
			smtp_server_hold_user(s->server, user, "logins-from-many-addresses");
	}
	smtp_auth_end(s);
	return REPLY(235, "2.7.0", "Authentication successful");
}

static struct smtp_reply challenge(struct smtp_session *s, const unsigned char *bytes, size_t len)
{
	size_t encoded_len;

	if (!sasl_challenge_encode(bytes, len, s->reply_text, sizeof(s->reply_text),
				   &encoded_len)) {
		smtp_auth_end(s);
		return REPLY(454, "4.7.0", "Temporary authentication failure");
	}
	s->input_mode = SMTP_INPUT_AUTH;
	/* "334 " and the base64 alone: no enhanced code (RFC 4954 4). */
	return REPLY(334, NULL, s->reply_text);
}

static struct auth_request request(const struct smtp_session *s, const char *username)
{
	return (struct auth_request){
		.client_ip = s->client_ip,
		.listener = s->listener,
		.mechanism = sasl_mechanism_name(s->sasl_mechanism),
		.session_id = s->sid,
		.username = username,
	};
}

static struct smtp_reply step_result(struct smtp_session *s, enum sasl_step step,
				     struct sasl_output *out);

/* The answers of the auth service come back on the loop. */
static void resume(struct smtp_session *s, struct smtp_reply reply)
{
	smtp_session_reply(s, reply);
	smtp_session_resume(s);
}

static void on_password_checked(void *ctx, enum auth_result result, const char *canonical_user)
{
	struct smtp_session *s = ctx;
	struct sasl_output out = { 0 };

	s->auth_ticket = 0;
	s->is_auth_waiting = false;
	switch (result) {
	case AUTH_OK:
		if (sasl_exchange_password_result(s->sasl, true, &out) == SASL_STEP_SUCCESS) {
			resume(s, succeeded(s, canonical_user));
			return;
		}
		resume(s, failed(s));
		return;
	case AUTH_FAILED:
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
	struct smtp_session *s = ctx;

	s->auth_ticket = 0;
	s->is_auth_waiting = false;
	switch (result) {
	case AUTH_OK:
		if (!is_scram(s->sasl_mechanism)) {
			/* CRAM-MD5: the digest matched a real secret. */
			resume(s, succeeded(s, canonical_user));
			return;
		}
		/* The proof was right: send the server-final message; the
		 * client's empty answer completes the exchange. */
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
	struct smtp_session *s = ctx;
	struct sasl_output out = { 0 };
	enum sasl_step step;

	(void) canonical_user;
	s->is_auth_waiting = false;
	if (result != AUTH_OK) {
		s->auth_ticket = 0; /* ended by the service with this answer */
		resume(s, result == AUTH_FAILED ? failed(s) : temporary(s));
		return;
	}
	/* The fetch ticket stays open until auth_report gives the verdict. */
	step = sasl_exchange_secret(s->sasl, secret, &out);
	resume(s, step_result(s, step, &out));
}

static struct smtp_reply step_result(struct smtp_session *s, enum sasl_step step,
				     struct sasl_output *out)
{
	struct auth_request req;

	switch (step) {
	case SASL_STEP_CHALLENGE:
		if (s->auth_ticket != 0 && !s->is_scram_reporting && is_scram(s->sasl_mechanism) &&
		    s->scram_final_len == 0 && out->challenge_len > 0 && out->challenge[0] == 'v') {
			/* SCRAM's server-final: the proof verified against the
			 * secret; the service must still say whether that secret
			 * was real (not a decoy) and count the attempt. */
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
			return REPLY_LATER;
		}
		return challenge(s, out->challenge, out->challenge_len);
	case SASL_STEP_CHECK_PASSWORD:
		req = request(s, out->username);
		s->is_auth_waiting = true;
		s->auth_ticket = auth_check_password(s->server->auth, &req, out->password,
						     out->password_len, on_password_checked, s);
		if (s->auth_ticket == 0)
			return temporary(s);
		return REPLY_LATER;
	case SASL_STEP_NEED_SECRET:
		if (!is_secret_based(s->sasl_mechanism))
			return temporary(s);
		req = request(s, out->username);
		s->is_auth_waiting = true;
		s->auth_ticket =
			auth_fetch_secret(s->server->auth, &req,
					  is_scram(s->sasl_mechanism) ? AUTH_SECRET_SCRAM_SHA_256
								      : AUTH_SECRET_CRAM_MD5,
					  on_secret, s);
		if (s->auth_ticket == 0)
			return temporary(s);
		return REPLY_LATER;
	case SASL_STEP_SUCCESS:
		if (s->auth_ticket != 0 && s->sasl_mechanism == SASL_MECHANISM_CRAM_MD5) {
			/* The digest matched the fetched secret: the service says
			 * whether it was a real one, logs and counts. */
			s->is_auth_waiting = true;
			s->auth_ticket =
				auth_report(s->server->auth, s->auth_ticket, true, on_reported, s);
			if (s->auth_ticket == 0)
				return temporary(s);
			return REPLY_LATER;
		}
		/* SCRAM after the server-final: auth_user was set by the verdict. */
		{
			char user[SMTP_ADDRESS_MAX + 1];

			snprintf(user, sizeof(user), "%s", s->auth_user);
			return succeeded(s, user);
		}
	case SASL_STEP_FAILURE:
		if (s->auth_ticket != 0 && is_secret_based(s->sasl_mechanism)) {
			/* A wrong proof: the service counts and delays it. */
			s->is_auth_waiting = true;
			s->auth_ticket =
				auth_report(s->server->auth, s->auth_ticket, false, on_reported, s);
			if (s->auth_ticket == 0)
				return failed(s);
			return REPLY_LATER;
		}
		return failed(s);
	case SASL_STEP_MALFORMED:
		break;
	}
	return malformed(s);
}

/* A response line (or an initial response): decode and step. */
static struct smtp_reply respond(struct smtp_session *s, struct span line, bool has_input)
{
	unsigned char *decoded = NULL;
	size_t decoded_len = 0;
	struct sasl_output out = { 0 };
	struct smtp_reply reply;

	if (has_input) {
		static unsigned char buffer[SASL_MESSAGE_MAX]; /* the loop thread only */

		decoded = buffer;
		switch (sasl_response_decode(line, decoded, sizeof(buffer), &decoded_len)) {
		case SASL_RESPONSE_OK:
			break;
		case SASL_RESPONSE_CANCEL:
			smtp_auth_end(s);
			return REPLY(501, "5.7.0", "Authentication cancelled");
		case SASL_RESPONSE_BAD_BASE64:
			smtp_auth_end(s);
			return REPLY(501, "5.5.2", "Cannot decode the response (base64)");
		case SASL_RESPONSE_TOO_LONG:
			smtp_auth_end(s);
			return REPLY(500, "5.5.6", "Authentication exchange line is too long");
		}
	}
	reply = step_result(s,
			    sasl_exchange_step(s->sasl, has_input,
					       span_make((const char *) decoded, decoded_len),
					       &out),
			    &out);
	if (decoded != NULL)
		sodium_memzero(decoded, decoded_len);
	return reply;
}

struct smtp_reply smtp_auth_start(struct smtp_session *s, struct span args)
{
	struct span name, initial, extra;
	struct sasl_server_info info = { .hostname = s->server->config->hostname,
					 .mock_key = s->server->mock_key };
	unsigned char binding[TLS_CHANNEL_BINDING_LEN];
	struct sasl_offer offer;
	struct error err;

	if (s->server->auth == NULL)
		return REPLY(502, "5.5.1", "AUTH is not offered here");
	if (s->is_authenticated)
		return REPLY(503, "5.5.1", "Already authenticated");
	if (!s->is_esmtp)
		return REPLY(503, "5.5.1", "Bad sequence of commands: send EHLO first");
	span_split_word(args, &name, &initial);
	span_split_word(initial, &initial, &extra);
	if (name.len == 0 || extra.len > 0)
		return REPLY(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
	offer_get(s, &offer, binding);
	if (offer.has_channel_binding) {
		/* Given to SCRAM-SHA-256 too: a client that could bind and says
		 * it thinks we cannot ("y") is refused (RFC 5802 6). */
		info.channel_binding = binding;
		info.channel_binding_len = sizeof(binding);
	}
	if (!sasl_mechanism_parse(name, &s->sasl_mechanism) ||
	    !sasl_mechanism_is_offered(s->sasl_mechanism, &offer)) {
		if (sasl_mechanism_parse(name, &s->sasl_mechanism) &&
		    sasl_mechanism_is_plaintext(s->sasl_mechanism))
			/* RFC 4954 6: a mechanism that needs encryption first. */
			return REPLY(538, "5.7.11",
				     "Encryption required for requested authentication mechanism");
		return REPLY(504, "5.5.4", "Unrecognized authentication type");
	}
	s->scram_final_len = 0;
	s->sasl = sasl_exchange_new(s->sasl_mechanism, &info, &err);
	sodium_memzero(binding, sizeof(binding));
	if (s->sasl == NULL) {
		log_warning("sid=%s smtp auth: %s", s->sid, err.message);
		return REPLY(454, "4.7.0", "Temporary authentication failure");
	}
	return respond(s, initial, initial.len > 0);
}

struct smtp_reply smtp_auth_response(struct smtp_session *s, struct span line)
{
	if (s->sasl == NULL || s->is_auth_waiting)
		return malformed(s);
	return respond(s, line, true);
}
