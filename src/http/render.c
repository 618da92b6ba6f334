/*
 * render: autoconfig, Autodiscover and mobileconfig documents (see
 * render.h). Formats: Thunderbird's clientConfig 1.1 (the ISPDB format),
 * [MS-OXDSCLI] and the Outlook 2006a response schema, Apple's
 * Configuration Profile Reference (com.apple.mail.managed).
 */
#include "http/render.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

void http_escape_add(struct evbuffer *out, const char *text)
{
	const char *run = text;

	for (const char *p = text; *p != '\0'; p++) {
		const char *entity;

		switch (*p) {
		case '&':
			entity = "&amp;";
			break;
		case '<':
			entity = "&lt;";
			break;
		case '>':
			entity = "&gt;";
			break;
		case '"':
			entity = "&quot;";
			break;
		case '\'':
			entity = "&#39;";
			break;
		default:
			continue;
		}
		evbuffer_add(out, run, (size_t) (p - run));
		evbuffer_add(out, entity, strlen(entity));
		run = p + 1;
	}
	evbuffer_add(out, run, strlen(run));
}

/* <tag>escaped text</tag> and a newline, indented. */
static void element(struct evbuffer *out, const char *indent, const char *tag, const char *text)
{
	evbuffer_add_printf(out, "%s<%s>", indent, tag);
	http_escape_add(out, text);
	evbuffer_add_printf(out, "</%s>\n", tag);
}

static void autoconfig_server(struct evbuffer *out, const struct http_endpoint *e)
{
	char port[8];

	snprintf(port, sizeof(port), "%u", (unsigned) e->port);
	evbuffer_add_printf(out, "    <%s type=\"%s\">\n",
			    e->service == HTTP_SERVICE_SMTP ? "outgoingServer" : "incomingServer",
			    e->service == HTTP_SERVICE_SMTP ? "smtp" : "pop3");
	element(out, "      ", "hostname", e->host);
	element(out, "      ", "port", port);
	element(out, "      ", "socketType", http_security_name(e->security));
	/* PLAIN or LOGIN inside TLS: the password as the user typed it. */
	element(out, "      ", "authentication", "password-cleartext");
	element(out, "      ", "username", "%EMAILADDRESS%");
	if (e->service == HTTP_SERVICE_POP3)
		evbuffer_add_printf(out,
				    "      <pop3>\n"
				    "        <leaveMessagesOnServer>false</leaveMessagesOnServer>\n"
				    "      </pop3>\n");
	evbuffer_add_printf(out, "    </%s>\n",
			    e->service == HTTP_SERVICE_SMTP ? "outgoingServer" : "incomingServer");
}

void http_render_autoconfig(const struct http_settings *s, struct evbuffer *out)
{
	evbuffer_add_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				 "<clientConfig version=\"1.1\">\n"
				 "  <emailProvider id=\"");
	http_escape_add(out, s->domain);
	evbuffer_add_printf(out, "\">\n");
	element(out, "    ", "domain", s->domain);
	evbuffer_add_printf(out, "    <displayName>");
	http_escape_add(out, s->domain);
	evbuffer_add_printf(out, " mail</displayName>\n");
	element(out, "    ", "displayShortName", s->domain);
	for (size_t i = 0; i < s->pop3_count; i++)
		autoconfig_server(out, &s->pop3[i]);
	for (size_t i = 0; i < s->smtp_count; i++)
		autoconfig_server(out, &s->smtp[i]);
	evbuffer_add_printf(out, "  </emailProvider>\n"
				 "</clientConfig>\n");
}

#define AUTODISCOVER_NS "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
#define OUTLOOK_NS	"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

static void autodiscover_protocol(struct evbuffer *out, const struct http_endpoint *e,
				  const char *address)
{
	char port[8];
	bool is_tls = e->security != HTTP_SECURITY_NONE;

	snprintf(port, sizeof(port), "%u", (unsigned) e->port);
	evbuffer_add_printf(out, "      <Protocol>\n");
	element(out, "        ", "Type", http_service_name(e->service));
	element(out, "        ", "Server", e->host);
	element(out, "        ", "Port", port);
	element(out, "        ", "LoginName", address);
	element(out, "        ", "DomainRequired", "off");
	/* SPA is NTLM, which we do not offer. */
	element(out, "        ", "SPA", "off");
	/* Outlook 2007 reads <SSL> (on: implicit TLS on any port but 25);
	 * Outlook 2010 and later prefer <Encryption>: SSL (implicit), TLS
	 * (STARTTLS), None ([MS-OXDSCLI] 2.2.4.1.1.2.7.18). */
	element(out, "        ", "SSL", is_tls ? "on" : "off");
	element(out, "        ", "Encryption",
		e->security == HTTP_SECURITY_SSL	? "SSL"
		: e->security == HTTP_SECURITY_STARTTLS ? "TLS"
							: "None");
	element(out, "        ", "AuthRequired", "on");
	if (e->service == HTTP_SERVICE_SMTP) {
		/* The SMTP login is the POP3 login (same name and password). */
		element(out, "        ", "UsePOPAuth", "on");
		element(out, "        ", "SMTPLast", "off");
	}
	evbuffer_add_printf(out, "      </Protocol>\n");
}

void http_render_autodiscover(const struct http_settings *s, const char *address,
			      struct evbuffer *out)
{
	const struct http_endpoint *pop3 = http_settings_preferred(s, HTTP_SERVICE_POP3);
	const struct http_endpoint *smtp = http_settings_preferred(s, HTTP_SERVICE_SMTP);

	evbuffer_add_printf(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
				 "<Autodiscover xmlns=\"" AUTODISCOVER_NS "\">\n"
				 "  <Response xmlns=\"" OUTLOOK_NS "\">\n"
				 "    <User>\n");
	element(out, "      ", "DisplayName", address);
	evbuffer_add_printf(out, "    </User>\n"
				 "    <Account>\n"
				 "      <AccountType>email</AccountType>\n"
				 "      <Action>settings</Action>\n");
	if (pop3 != NULL)
		autodiscover_protocol(out, pop3, address);
	if (smtp != NULL)
		autodiscover_protocol(out, smtp, address);
	evbuffer_add_printf(out, "    </Account>\n"
				 "  </Response>\n"
				 "</Autodiscover>\n");
}

void http_render_autodiscover_error(int code, const char *message, struct evbuffer *out)
{
	evbuffer_add_printf(out,
			    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			    "<Autodiscover xmlns=\"" AUTODISCOVER_NS "\">\n"
			    "  <Response>\n"
			    "    <Error Id=\"0\">\n"
			    "      <ErrorCode>%d</ErrorCode>\n",
			    code);
	element(out, "      ", "Message", message);
	evbuffer_add_printf(out, "      <DebugData />\n"
				 "    </Error>\n"
				 "  </Response>\n"
				 "</Autodiscover>\n");
}

/* A UUID-shaped name (RFC 4122 layout, version 5 bits) from SHA-256 of
 * label and address: the same address always gets the same UUIDs. */
static void derived_uuid(const char *label, const char *address, char out[37])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	char input[ADDRESS_MAX + 64];
	int n = snprintf(input, sizeof(input), "postgate-mobileconfig:%s:%s", label, address);

	memset(digest, 0, sizeof(digest));
	if (n > 0)
		(void) EVP_Digest(input,
				  (size_t) n < sizeof(input) ? (size_t) n : sizeof(input) - 1,
				  digest, NULL, EVP_sha256(), NULL);
	digest[6] = (unsigned char) ((digest[6] & 0x0F) | 0x50);
	digest[8] = (unsigned char) ((digest[8] & 0x3F) | 0x80);
	snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		 digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6],
		 digest[7], digest[8], digest[9], digest[10], digest[11], digest[12], digest[13],
		 digest[14], digest[15]);
}

static void plist_string(struct evbuffer *out, const char *indent, const char *key,
			 const char *value)
{
	evbuffer_add_printf(out, "%s<key>%s</key>\n%s<string>", indent, key, indent);
	http_escape_add(out, value);
	evbuffer_add_printf(out, "</string>\n");
}

static void plist_server(struct evbuffer *out, const char *prefix, const struct http_endpoint *e,
			 const char *address)
{
	const char *in = "      ";
	char key[64];

	snprintf(key, sizeof(key), "%sMailServerAuthentication", prefix);
	plist_string(out, in, key, "EmailAuthPassword");
	snprintf(key, sizeof(key), "%sMailServerHostName", prefix);
	plist_string(out, in, key, e->host);
	evbuffer_add_printf(out, "%s<key>%sMailServerPortNumber</key>\n%s<integer>%u</integer>\n",
			    in, prefix, in, (unsigned) e->port);
	/* UseSSL: TLS, implicit on 465/995 and STARTTLS on 587/110 (Mail
	 * chooses by port). */
	evbuffer_add_printf(out, "%s<key>%sMailServerUseSSL</key>\n%s<%s/>\n", in, prefix, in,
			    e->security != HTTP_SECURITY_NONE ? "true" : "false");
	snprintf(key, sizeof(key), "%sMailServerUsername", prefix);
	plist_string(out, in, key, address);
}

void http_render_mobileconfig(const struct http_settings *s, const char *address,
			      struct evbuffer *out)
{
	const struct http_endpoint *pop3 = http_settings_preferred(s, HTTP_SERVICE_POP3);
	const struct http_endpoint *smtp = http_settings_preferred(s, HTTP_SERVICE_SMTP);
	char uuid_profile[37], uuid_payload[37], id[ADDRESS_MAX + 64],
		name[ADDRESS_DOMAIN_MAX + 16];

	derived_uuid("profile", address, uuid_profile);
	derived_uuid("mail", address, uuid_payload);
	snprintf(id, sizeof(id), "postgate.mail.%s", address);
	snprintf(name, sizeof(name), "%s mail", s->domain);
	evbuffer_add_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				 "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
				 "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
				 "<plist version=\"1.0\">\n"
				 "  <dict>\n"
				 "    <key>PayloadContent</key>\n"
				 "    <array>\n"
				 "      <dict>\n");
	plist_string(out, "      ", "EmailAccountDescription", name);
	plist_string(out, "      ", "EmailAccountType", "EmailTypePOP");
	plist_string(out, "      ", "EmailAddress", address);
	if (pop3 != NULL)
		plist_server(out, "Incoming", pop3, address);
	if (smtp != NULL)
		plist_server(out, "Outgoing", smtp, address);
	evbuffer_add_printf(out, "      <key>OutgoingPasswordSameAsIncomingPassword</key>\n"
				 "      <true/>\n");
	plist_string(out, "      ", "PayloadDescription", "Mail account");
	plist_string(out, "      ", "PayloadDisplayName", name);
	plist_string(out, "      ", "PayloadIdentifier", id);
	plist_string(out, "      ", "PayloadType", "com.apple.mail.managed");
	plist_string(out, "      ", "PayloadUUID", uuid_payload);
	evbuffer_add_printf(out, "      <key>PayloadVersion</key>\n"
				 "      <integer>1</integer>\n"
				 "      </dict>\n"
				 "    </array>\n");
	plist_string(out, "    ", "PayloadDescription", "Mail settings for your address");
	plist_string(out, "    ", "PayloadDisplayName", name);
	snprintf(id, sizeof(id), "postgate.profile.%s", address);
	plist_string(out, "    ", "PayloadIdentifier", id);
	evbuffer_add_printf(out, "    <key>PayloadRemovalDisallowed</key>\n"
				 "    <false/>\n");
	plist_string(out, "    ", "PayloadType", "Configuration");
	plist_string(out, "    ", "PayloadUUID", uuid_profile);
	evbuffer_add_printf(out, "    <key>PayloadVersion</key>\n"
				 "    <integer>1</integer>\n"
				 "  </dict>\n"
				 "</plist>\n");
}
