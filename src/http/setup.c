/*
 * setup: the customer setup pages (/setup/<domain>, /setup/), the live
 * successor of the printed setup guide (shared/seed/). One card per client:
 * the guide's (Outlook Express, Outlook 2002/2003, Outlook 2007, Windows
 * Mail, Netscape 6/7, Eudora 5/6, Mac OS X Mail, Entourage) and today's.
 *
 * Today's clients get the domain's preferred settings (settings.h), the same
 * the autoconfig documents give. The old clients can do less (docs/clients.md):
 * Windows XP's clients cannot do TLS with us at all, and the other old ones
 * only TLS 1.0, which only a listener with tls_profile = legacy speaks; so
 * for each of them the card names the listener this configuration really
 * lets them use, or says plainly that none does.
 *
 * The page is plain HTML with one inline stylesheet: semantic headings, no
 * script, a print style, a viewport for phones. Every value is escaped.
 */
#include <string.h>

#include "http/render.h"

#define STEPS_MAX 10

/* What an old client's TLS can do with us. */
enum client_tls {
	CLIENT_TLS_MODERN = 0, /* TLS 1.2+: any listener */
	CLIENT_TLS_10,	       /* TLS 1.0 only: tls_profile = legacy listeners */
	CLIENT_TLS_NONE,       /* Windows XP SChannel: no suite in common (clients.md) */
};

struct client {
	const char *id, *name, *intro;
	enum client_tls tls;
	bool can_ssl, can_starttls; /* the modes its settings offer */
	bool is_current;	    /* uses the preferred settings (autoconfig) */
	/* How the client words the security choice: [SSL], [STARTTLS], [NONE]. */
	const char *smtp_words[3], *pop3_words[3];
	const char *steps[STEPS_MAX]; /* with {tokens}: see write_step */
};

// clang-format off
static const struct client clients[] = {
	{ "thunderbird", "Thunderbird",
	  "Thunderbird finds these settings by itself (it asks this server for them).",
	  CLIENT_TLS_MODERN, true, true, true,
	  { "SSL/TLS", "STARTTLS", "None" }, { "SSL/TLS", "STARTTLS", "None" },
	  { "Open the menu \u2261 and choose <b>Account Settings</b>, then <b>Account Actions \u2192 Add Mail Account</b>.",
	    "Enter your name, {ADDR} and your password, and click <b>Continue</b>.",
	    "Thunderbird shows the configuration found for {D}: choose <b>POP3</b> and click <b>Done</b>.",
	    "If you set it up by hand instead: incoming <b>POP3</b>, server {PH}, port {PP}, connection security <b>{PS}</b>; outgoing server {SH}, port {SP}, connection security <b>{SS}</b>; authentication <b>Normal password</b> for both; user name {ADDR}.",
	    NULL } },
	{ "apple", "Apple Mail (macOS, iPhone and iPad)",
	  "Apple's devices install the settings from a configuration profile made for your address.",
	  CLIENT_TLS_MODERN, true, true, true,
	  { "SSL", "SSL", "SSL off" }, { "SSL", "SSL", "SSL off" },
	  { "On the device, enter your address in the form <a href=\"#profile\">below</a> and download the profile.",
	    "iPhone/iPad: open <b>Settings \u2192 Profile Downloaded</b> and tap <b>Install</b>; macOS: open <b>System Settings \u2192 Privacy &amp; Security \u2192 Profiles</b> and click <b>Install</b>. The profile is not signed, so the device shows it as <i>Unverified</i>.",
	    "Enter your password when asked.",
	    "By hand instead: <b>Add Account \u2192 Other \u2192 Mail account</b>, type <b>POP</b>; incoming server {PH}, port {PP} with <b>{PS}</b>; outgoing server {SH}, port {SP} with <b>{SS}</b>; user name {ADDR}, authentication <b>Password</b>.",
	    NULL } },
	{ "outlook", "Outlook for Windows and Microsoft 365",
	  "Outlook asks this server for the settings (Autodiscover) when you add the account.",
	  CLIENT_TLS_MODERN, true, true, true,
	  { "SSL/TLS", "STARTTLS", "None" }, { "SSL/TLS", "STARTTLS", "None" },
	  { "Choose <b>File \u2192 Add Account</b> (new Outlook: <b>Settings \u2192 Accounts \u2192 Add account</b>).",
	    "Enter {ADDR}; open <b>Advanced options</b>, tick <b>Let me set up my account manually</b> and choose <b>POP</b>.",
	    "Incoming mail: server {PH}, port {PP}, encryption method <b>{PS}</b>; leave <b>Require logon using Secure Password Authentication (SPA)</b> unticked.",
	    "Outgoing mail: server {SH}, port {SP}, encryption method <b>{SS}</b>; the outgoing server uses the same user name and password.",
	    "Enter your password and click <b>Connect</b>.",
	    NULL } },
	{ "gmail", "Gmail app on Android",
	  "The Gmail app fetches mail from other providers over POP3.",
	  CLIENT_TLS_MODERN, true, true, true,
	  { "SSL/TLS", "STARTTLS", "None" }, { "SSL/TLS", "STARTTLS", "None" },
	  { "In the Gmail app, tap your picture, then <b>Add another account \u2192 Other</b>.",
	    "Enter {ADDR}, tap <b>Manual setup</b> and choose <b>Personal (POP3)</b>.",
	    "Incoming server settings: user name {ADDR}, server {PH}, port {PP}, security type <b>{PS}</b>.",
	    "Outgoing server settings: <b>Require sign-in</b> on, user name {ADDR}, server {SH}, port {SP}, security type <b>{SS}</b>.",
	    NULL } },
	{ "other", "Any other mail program",
	  "These are the settings every mail program needs.",
	  CLIENT_TLS_MODERN, true, true, true,
	  { "SSL/TLS (implicit TLS)", "STARTTLS", "none" }, { "SSL/TLS (implicit TLS)", "STARTTLS", "none" },
	  { "Account type <b>POP3</b>; user name {ADDR} for incoming and outgoing mail, with the same password.",
	    "Incoming: server {PH}, port {PP}, security <b>{PS}</b>.",
	    "Outgoing (SMTP): server {SH}, port {SP}, security <b>{SS}</b>, authentication required (normal password: PLAIN or LOGIN).",
	    NULL } },
	{ "outlook-express", "Outlook Express (Windows XP)",
	  "Windows XP cannot make a TLS connection to this server, so Outlook Express can only log in without encryption where the administrator allows it.",
	  CLIENT_TLS_NONE, true, false, false,
	  { "tick <b>This server requires a secure connection (SSL)</b>", "", "leave <b>This server requires a secure connection (SSL)</b> unticked" },
	  { "tick <b>This server requires a secure connection (SSL)</b>", "", "leave <b>This server requires a secure connection (SSL)</b> unticked" },
	  { "Click the <b>Tools</b> menu and select <b>Accounts\u2026</b>; on the <b>Mail</b> tab select your account and click <b>Properties</b>.",
	    "On the <b>Servers</b> tab: incoming mail (POP3) {PH}, outgoing mail (SMTP) {SH}, account name {ADDR}.",
	    "Tick <b>My server requires authentication</b>, click <b>Settings\u2026</b> and select <b>Use same settings as my incoming mail server</b>; leave <b>Log on using Secure Password Authentication</b> unticked.",
	    "On the <b>Advanced</b> tab: outgoing mail (SMTP) port {SP}, {SS}; incoming mail (POP3) port {PP}, {PS}.",
	    "Click <b>OK</b>, then <b>Close</b>.",
	    NULL } },
	{ "outlook-2003", "Outlook 2002 and 2003",
	  "On Windows XP these cannot make a TLS connection to this server either.",
	  CLIENT_TLS_NONE, true, false, false,
	  { "tick <b>This server requires an encrypted connection (SSL)</b>", "", "leave <b>This server requires an encrypted connection (SSL)</b> unticked" },
	  { "tick <b>This server requires an encrypted connection (SSL)</b>", "", "leave <b>This server requires an encrypted connection (SSL)</b> unticked" },
	  { "Click the <b>Tools</b> menu and select <b>E-mail Accounts\u2026</b>; choose <b>View or change existing e-mail accounts</b>, select your account and click <b>Change\u2026</b>.",
	    "Incoming mail server (POP3) {PH}, outgoing mail server (SMTP) {SH}, user name {ADDR}; leave <b>Log on using Secure Password Authentication (SPA)</b> unticked.",
	    "Click <b>More Settings\u2026</b>; on the <b>Outgoing Server</b> tab tick <b>My outgoing server (SMTP) requires authentication</b> and <b>Use same settings as my incoming mail server</b>.",
	    "On the <b>Advanced</b> tab: outgoing server (SMTP) port {SP}, {SS}; incoming server (POP3) port {PP}, {PS}.",
	    "Click <b>OK</b>, <b>Next</b>, <b>Finish</b>.",
	    NULL } },
	{ "outlook-2007", "Outlook 2007",
	  "Outlook 2007 chooses the encryption in a list; on Windows Vista it speaks only TLS 1.0.",
	  CLIENT_TLS_10, true, true, false,
	  { "<b>SSL</b>", "<b>TLS</b>", "<b>None</b>" }, { "<b>SSL</b>", "<b>TLS</b>", "<b>None</b>" },
	  { "Click the <b>Tools</b> menu and select <b>Account Settings\u2026</b>; select your account and click <b>Change</b>.",
	    "Incoming mail server {PH}, outgoing mail server (SMTP) {SH}, user name {ADDR}; leave <b>Require logon using Secure Password Authentication (SPA)</b> unticked.",
	    "Click <b>More Settings\u2026</b>; on the <b>Outgoing Server</b> tab tick <b>My outgoing server (SMTP) requires authentication</b> and <b>Use same settings as my incoming mail server</b>.",
	    "On the <b>Advanced</b> tab: incoming server (POP3) port {PP} with encrypted connection {PS}; outgoing server (SMTP) port {SP} with encrypted connection {SS}.",
	    "Click <b>OK</b>, <b>Next</b>, <b>Finish</b>.",
	    NULL } },
	{ "windows-mail", "Windows Mail (Windows Vista)",
	  "Windows Mail speaks only TLS 1.0, and its SSL box means TLS from the first byte on any port but 25.",
	  CLIENT_TLS_10, true, false, false,
	  { "tick <b>This server requires a secure connection (SSL)</b>", "", "leave <b>This server requires a secure connection (SSL)</b> unticked" },
	  { "tick <b>This server requires a secure connection (SSL)</b>", "", "leave <b>This server requires a secure connection (SSL)</b> unticked" },
	  { "Click the <b>Tools</b> menu and select <b>Accounts\u2026</b>; select your account and click <b>Properties</b>.",
	    "On the <b>Servers</b> tab: incoming mail (POP3) {PH}, outgoing mail (SMTP) {SH}, e-mail user name {ADDR}; tick <b>My server requires authentication</b>, click <b>Settings\u2026</b>, select <b>Use same settings as my incoming mail server</b>.",
	    "On the <b>Advanced</b> tab: outgoing mail (SMTP) port {SP}, {SS}; incoming mail (POP3) port {PP}, {PS}.",
	    "Click <b>OK</b>, then <b>Close</b>.",
	    NULL } },
	{ "netscape", "Netscape 6 and 7",
	  "Netscape's mail speaks TLS 1.0 at most.",
	  CLIENT_TLS_10, true, true, false,
	  { "<b>SSL</b> (Netscape 7)", "<b>TLS</b>", "<b>Never</b>" }, { "tick <b>Use secure connection (SSL)</b>", "leave <b>Use secure connection (SSL)</b> unticked (Netscape cannot use STLS: ask us for the SSL port)", "leave <b>Use secure connection (SSL)</b> unticked" },
	  { "Open the mail window (<b>Window \u2192 Mail &amp; Newsgroups</b>, in Netscape 7 <b>Tasks \u2192 Mail</b>), then <b>Edit \u2192 Mail &amp; Newsgroups Account Settings\u2026</b>.",
	    "Under your account, <b>Server Settings</b>: server type POP, server name {PH}, port {PP}, user name {ADDR}; {PS}.",
	    "<b>Outgoing Server (SMTP)</b>: server name {SH}, port {SP}; tick <b>Use name and password</b> with user name {ADDR}; use secure connection {SS}.",
	    "Click <b>OK</b>.",
	    NULL } },
	{ "eudora", "Eudora 5 and 6",
	  "Eudora speaks TLS 1.0 at most. If a login fails it sends without one, so check the user name and password first.",
	  CLIENT_TLS_10, true, true, false,
	  { "<b>Required, Alternate Port</b>", "<b>Required, STARTTLS</b>", "<b>Never</b>" },
	  { "<b>Required, Alternate Port</b>", "<b>Required, STARTTLS</b>", "<b>Never</b>" },
	  { "Click the <b>Tools</b> menu and select <b>Options\u2026</b>.",
	    "<b>Getting Started</b>: email address {ADDR}, mail server (incoming) {PH}, login name {ADDR}, SMTP server (outgoing) {SH}; tick <b>Allow Authentication</b>.",
	    "<b>Checking Mail</b>: secure sockets when receiving {PS} (port {PP}).",
	    "<b>Sending Mail</b>: secure sockets when sending {SS} (port {SP}).",
	    "Click <b>OK</b>.",
	    NULL } },
	{ "mac-os-x-mail", "Mac OS X Mail (10.3 to 10.5)",
	  "These versions of Mail speak TLS 1.0 at most.",
	  CLIENT_TLS_10, true, true, false,
	  { "tick <b>Use Secure Sockets Layer (SSL)</b>", "tick <b>Use Secure Sockets Layer (SSL)</b>", "leave <b>Use Secure Sockets Layer (SSL)</b> unticked" },
	  { "tick <b>Use SSL</b>", "tick <b>Use SSL</b>", "leave <b>Use SSL</b> unticked" },
	  { "Click the <b>Mail</b> menu and select <b>Preferences\u2026</b>, then <b>Accounts \u2192 Account Information</b>.",
	    "Incoming mail server {PH}, user name {ADDR}; under <b>Advanced</b>: port {PP}, {PS}, authentication <b>Password</b>.",
	    "Outgoing mail server (SMTP): {SH}; click <b>Server Settings\u2026</b>: server port {SP}, {SS}, authentication <b>Password</b>, user name {ADDR}.",
	    "Click <b>OK</b>, close the window and click <b>Save</b>.",
	    NULL } },
	{ "entourage", "Entourage 2004 and 2008",
	  "Entourage speaks TLS 1.0 at most.",
	  CLIENT_TLS_10, true, false, false,
	  { "tick <b>SMTP service requires secure connection (SSL)</b>", "", "leave <b>SMTP service requires secure connection (SSL)</b> unticked" },
	  { "tick <b>This POP service requires a secure connection (SSL)</b>", "", "leave <b>This POP service requires a secure connection (SSL)</b> unticked" },
	  { "Click the <b>Entourage</b> menu and select <b>Account Settings\u2026</b>; select your account and click <b>Edit</b>.",
	    "Account ID {ADDR}, POP server {PH}; under <b>Click here for advanced receiving options</b>: {PS}, port {PP}.",
	    "SMTP server {SH}; under <b>Click here for advanced sending options</b>: port {SP}, {SS}; tick <b>SMTP server requires authentication</b> and <b>Use same settings as receiving mail server</b>.",
	    "Click <b>OK</b>.",
	    NULL } },
};
// clang-format on

/* The way in an old client can use: host, port, security; false if none. */
static bool pick_old(const struct client *c, const struct config *config,
		     const struct http_settings *s, enum http_service service,
		     struct http_endpoint *out)
{
	bool is_smtp = service == HTTP_SERVICE_SMTP;
	enum config_listener_kind tls_kind =
		is_smtp ? CONFIG_LISTENER_SUBMISSIONS : CONFIG_LISTENER_POP3S;
	enum config_listener_kind plain_kind =
		is_smtp ? CONFIG_LISTENER_SUBMISSION : CONFIG_LISTENER_POP3;
	const struct config_listener *ssl = &config->listeners[tls_kind];
	const struct config_listener *plain = &config->listeners[plain_kind];
	const struct config_listener *mx = &config->listeners[CONFIG_LISTENER_MX];
	const struct http_endpoint *e = http_settings_preferred(s, service);
	bool ok_ssl, ok_plain;

	memset(out, 0, sizeof(*out));
	out->service = service;
	snprintf(out->host, sizeof(out->host), "%s",
		 e != NULL ? e->host : (is_smtp ? "smtp" : "pop"));
	if (c->tls == CLIENT_TLS_NONE) {
		ok_ssl = ok_plain = false;
	} else {
		ok_ssl = ssl->tls_profile == CONFIG_TLS_PROFILE_LEGACY;
		ok_plain = plain->tls_profile == CONFIG_TLS_PROFILE_LEGACY;
	}
	if (ssl->is_enabled && ssl->listen_count > 0 && c->can_ssl && ok_ssl) {
		out->listener = tls_kind;
		out->port = ssl->listen[0].port;
		out->security = HTTP_SECURITY_SSL;
		return true;
	}
	if (plain->is_enabled && plain->listen_count > 0 && plain->starttls && c->can_starttls &&
	    ok_plain) {
		out->listener = plain_kind;
		out->port = plain->listen[0].port;
		out->security = HTTP_SECURITY_STARTTLS;
		return true;
	}
	/* Without TLS: where the administrator allows passwords in the clear
	 * (plaintext_auth, legacy profile). For SMTP the guide's own port 25. */
	if (plain->is_enabled && plain->listen_count > 0 && plain->plaintext_auth) {
		out->listener = plain_kind;
		out->port = plain->listen[0].port;
		out->security = HTTP_SECURITY_NONE;
		return true;
	}
	if (is_smtp && mx->is_enabled && mx->listen_count > 0 && mx->plaintext_auth) {
		out->listener = CONFIG_LISTENER_MX;
		out->port = mx->listen[0].port;
		out->security = HTTP_SECURITY_NONE;
		return true;
	}
	return false;
}

static void add_port(struct evbuffer *out, uint16_t port)
{
	evbuffer_add_printf(out, "<b>%u</b>", (unsigned) port);
}

/* A step with its tokens replaced: {SH} {SP} {SS} {PH} {PP} {PS} {D} {ADDR}.
 * The step texts are ours (trusted markup); every value is escaped. */
static void write_step(struct evbuffer *out, const char *step, const struct client *c,
		       const struct http_settings *s, const struct http_endpoint *smtp,
		       const struct http_endpoint *pop3)
{
	const char *p = step;

	while (*p != '\0') {
		const char *open = strchr(p, '{'), *close;

		if (open == NULL || (close = strchr(open, '}')) == NULL) {
			evbuffer_add(out, p, strlen(p));
			return;
		}
		evbuffer_add(out, p, (size_t) (open - p));
		p = close + 1;
		if (strncmp(open, "{SH}", 4) == 0 || strncmp(open, "{PH}", 4) == 0) {
			evbuffer_add_printf(out, "<code>");
			http_escape_add(out, open[1] == 'S' ? smtp->host : pop3->host);
			evbuffer_add_printf(out, "</code>");
		} else if (strncmp(open, "{SP}", 4) == 0) {
			add_port(out, smtp->port);
		} else if (strncmp(open, "{PP}", 4) == 0) {
			add_port(out, pop3->port);
		} else if (strncmp(open, "{SS}", 4) == 0) {
			evbuffer_add_printf(out, "%s", c->smtp_words[smtp->security]);
		} else if (strncmp(open, "{PS}", 4) == 0) {
			evbuffer_add_printf(out, "%s", c->pop3_words[pop3->security]);
		} else if (strncmp(open, "{D}", 3) == 0) {
			http_escape_add(out, s->domain);
		} else if (strncmp(open, "{ADDR}", 6) == 0) {
			evbuffer_add_printf(out, "your complete email address (<code>name@");
			http_escape_add(out, s->domain);
			evbuffer_add_printf(out, "</code>)");
		}
	}
}

static void write_endpoint_row(struct evbuffer *out, const char *what,
			       const struct http_endpoint *e)
{
	evbuffer_add_printf(out, "<tr><th scope=\"row\">%s</th><td><code>", what);
	http_escape_add(out, e->host);
	evbuffer_add_printf(out, "</code></td><td>%u</td><td>%s</td></tr>\n", (unsigned) e->port,
			    e->security == HTTP_SECURITY_SSL ? "SSL/TLS (implicit TLS)"
			    : e->security == HTTP_SECURITY_STARTTLS
				    ? "STARTTLS"
				    : "none (password sent unencrypted)");
}

static void write_card(struct evbuffer *out, const struct client *c, const struct http_settings *s,
		       const struct config *config)
{
	struct http_endpoint smtp, pop3;
	bool has_smtp, has_pop3;

	if (c->is_current) {
		const struct http_endpoint *ps = http_settings_preferred(s, HTTP_SERVICE_SMTP);
		const struct http_endpoint *pp = http_settings_preferred(s, HTTP_SERVICE_POP3);

		has_smtp = ps != NULL;
		has_pop3 = pp != NULL;
		if (has_smtp)
			smtp = *ps;
		if (has_pop3)
			pop3 = *pp;
	} else {
		has_smtp = pick_old(c, config, s, HTTP_SERVICE_SMTP, &smtp);
		has_pop3 = pick_old(c, config, s, HTTP_SERVICE_POP3, &pop3);
	}
	evbuffer_add_printf(out,
			    "<section class=\"card\" id=\"%s\" aria-labelledby=\"%s-h\">\n"
			    "<h3 id=\"%s-h\">%s</h3>\n<p>%s</p>\n",
			    c->id, c->id, c->id, c->name, c->intro);
	if (!has_smtp || !has_pop3) {
		evbuffer_add_printf(
			out,
			"<p class=\"warn\"><strong>Not possible with this server's current "
			"settings:</strong> %s cannot %s here. Please use a current mail "
			"program, or ask us.</p>\n</section>\n",
			c->name,
			!has_smtp && !has_pop3 ? "send or receive mail"
			: !has_smtp	       ? "send mail"
					       : "receive mail");
		return;
	}
	evbuffer_add_printf(out,
			    "<table>\n<caption>Settings for %s</caption>\n"
			    "<tr><th scope=\"col\"></th><th scope=\"col\">Server</th>"
			    "<th scope=\"col\">Port</th><th scope=\"col\">Security</th></tr>\n",
			    c->name);
	write_endpoint_row(out, "Incoming (POP3)", &pop3);
	write_endpoint_row(out, "Outgoing (SMTP)", &smtp);
	evbuffer_add_printf(out, "</table>\n");
	if (smtp.security == HTTP_SECURITY_NONE || pop3.security == HTTP_SECURITY_NONE)
		evbuffer_add_printf(out, "<p class=\"warn\">This program cannot use encryption "
					 "with this server: your password travels unencrypted. "
					 "Use a current mail program where you can.</p>\n");
	evbuffer_add_printf(out, "<ol>\n");
	for (size_t i = 0; i < STEPS_MAX && c->steps[i] != NULL; i++) {
		evbuffer_add_printf(out, "<li>");
		write_step(out, c->steps[i], c, s, &smtp, &pop3);
		evbuffer_add_printf(out, "</li>\n");
	}
	evbuffer_add_printf(out, "</ol>\n</section>\n");
}

static const char style[] =
	"<style>\n"
	":root{color-scheme:light dark;--fg:#1b1b1b;--bg:#fff;--muted:#f2f4f7;--line:#ccd;"
	"--accent:#0b57d0}\n"
	"@media (prefers-color-scheme:dark){:root{--fg:#eee;--bg:#16181d;--muted:#23262d;"
	"--line:#445;--accent:#8ab4f8}}\n"
	"body{font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
	"color:var(--fg);background:var(--bg);margin:0 auto;max-width:60rem;padding:1rem}\n"
	"h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.3rem;margin-top:2rem}"
	"h3{font-size:1.15rem;margin:0 0 .5rem}\n"
	"a{color:var(--accent)}code{font-size:.95em;overflow-wrap:anywhere}\n"
	"table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}"
	"caption{text-align:left;font-weight:600;padding:.25rem 0}\n"
	"th,td{border:1px solid var(--line);padding:.4rem .5rem;text-align:left;"
	"vertical-align:top}\n"
	".card{border:1px solid var(--line);border-radius:.5rem;padding:1rem;margin:1rem 0;"
	"background:var(--muted)}\n"
	".warn{border-left:4px solid #c5221f;padding-left:.75rem}\n"
	"nav ul{columns:2 14rem;padding-left:1.2rem}\n"
	"form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}"
	"input{font:inherit;padding:.3rem;min-width:16rem;max-width:100%}"
	"button{font:inherit;padding:.3rem .8rem}\n"
	"@media (max-width:40rem){body{padding:.5rem}th,td{padding:.3rem}"
	"table,tbody,tr,th,td{font-size:.95rem}}\n"
	"@media print{body{max-width:none;color:#000;background:#fff;font-size:11pt}"
	"nav,form{display:none}.card{break-inside:avoid;background:none;border-color:#999}"
	"a{color:#000;text-decoration:none}}\n"
	"</style>\n";

static void head(struct evbuffer *out, const char *title_text, const char *domain)
{
	evbuffer_add_printf(out,
			    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
			    "<meta charset=\"utf-8\">\n"
			    "<meta name=\"viewport\" content=\"width=device-width, "
			    "initial-scale=1\">\n<title>%s",
			    title_text);
	if (domain != NULL)
		http_escape_add(out, domain);
	evbuffer_add_printf(out, "</title>\n%s</head>\n<body>\n", style);
}

void http_render_setup(const struct http_settings *s, const struct config *config,
		       struct evbuffer *out)
{
	const struct http_endpoint *smtp = http_settings_preferred(s, HTTP_SERVICE_SMTP);
	const struct http_endpoint *pop3 = http_settings_preferred(s, HTTP_SERVICE_POP3);

	(void) config;
	head(out, "Mail settings for ", s->domain);
	evbuffer_add_printf(out, "<header>\n<h1>Mail settings for ");
	http_escape_add(out, s->domain);
	evbuffer_add_printf(out, "</h1>\n<p>Your user name is always your <strong>complete email "
				 "address</strong> (<code>name@");
	http_escape_add(out, s->domain);
	evbuffer_add_printf(out,
			    "</code>), for fetching and for sending mail, with the same "
			    "password. The server names end the same way as your address.</p>\n"
			    "</header>\n<main>\n"
			    "<section aria-labelledby=\"summary\">\n"
			    "<h2 id=\"summary\">The settings at a glance</h2>\n");
	if (smtp == NULL || pop3 == NULL) {
		evbuffer_add_printf(out,
				    "<p class=\"warn\">This server does not offer %s to mail "
				    "programs at the moment.</p>\n",
				    smtp == NULL ? "sending" : "fetching mail");
	}
	evbuffer_add_printf(out, "<table>\n<caption>Servers for ");
	http_escape_add(out, s->domain);
	evbuffer_add_printf(out,
			    "</caption>\n<tr><th scope=\"col\"></th><th scope=\"col\">Server</th>"
			    "<th scope=\"col\">Port</th><th scope=\"col\">Security</th></tr>\n");
	for (size_t i = 0; i < s->pop3_count; i++)
		write_endpoint_row(out, i == 0 ? "Incoming (POP3)" : "Incoming (POP3), or",
				   &s->pop3[i]);
	for (size_t i = 0; i < s->smtp_count; i++)
		write_endpoint_row(out, i == 0 ? "Outgoing (SMTP)" : "Outgoing (SMTP), or",
				   &s->smtp[i]);
	evbuffer_add_printf(out, "</table>\n<p>Authentication: <strong>normal password</strong> "
				 "(PLAIN or LOGIN, inside the encrypted connection); the outgoing "
				 "server needs it too. Never tick <em>Secure Password "
				 "Authentication (SPA)</em>.</p>\n</section>\n");
	evbuffer_add_printf(out, "<nav aria-labelledby=\"clients\">\n<h2 id=\"clients\">Choose "
				 "your mail program</h2>\n<ul>\n");
	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
		evbuffer_add_printf(out, "<li><a href=\"#%s\">%s</a></li>\n", clients[i].id,
				    clients[i].name);
	evbuffer_add_printf(out, "</ul>\n</nav>\n<section aria-labelledby=\"today\">\n"
				 "<h2 id=\"today\">Current mail programs</h2>\n");
	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
		if (i > 0 && clients[i - 1].is_current && !clients[i].is_current)
			evbuffer_add_printf(out, "</section>\n<section aria-labelledby=\"older\">\n"
						 "<h2 id=\"older\">Older mail programs</h2>\n");
		write_card(out, &clients[i], s, config);
	}
	evbuffer_add_printf(out, "</section>\n<section aria-labelledby=\"profile\">\n"
				 "<h2 id=\"profile\">Apple configuration profile</h2>\n"
				 "<form method=\"get\" action=\"/apple/mobileconfig\">\n"
				 "<label for=\"email\">Your email address</label>\n"
				 "<input id=\"email\" name=\"email\" type=\"email\" required "
				 "autocomplete=\"email\" placeholder=\"name@");
	http_escape_add(out, s->domain);
	evbuffer_add_printf(out,
			    "\">\n<button type=\"submit\">Download profile</button>\n"
			    "</form>\n</section>\n</main>\n<footer>\n<p>Made from the mail "
			    "server's current configuration.</p>\n</footer>\n</body>\n</html>\n");
}

void http_render_setup_index(const char *const *domains, size_t count, struct evbuffer *out)
{
	head(out, "Mail settings", NULL);
	evbuffer_add_printf(out, "<main>\n<h1>Mail settings</h1>\n<p>Choose the domain of your "
				 "email address.</p>\n<ul>\n");
	for (size_t i = 0; i < count; i++) {
		evbuffer_add_printf(out, "<li><a href=\"/setup/");
		http_escape_add(out, domains[i]);
		evbuffer_add_printf(out, "\">");
		http_escape_add(out, domains[i]);
		evbuffer_add_printf(out, "</a></li>\n");
	}
	evbuffer_add_printf(out, "</ul>\n</main>\n</body>\n</html>\n");
}
