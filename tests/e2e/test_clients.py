"""The mail clients of the setup guide (/work/shared/seed/smtp-auth-setup-guide.txt)
against postgate, each replayed from what is publicly known about what it
does on the wire (/work/shared/CLIENTS.md, which names the sources; the
Mozilla revisions were read again for this file).

What a replay reproduces, per client: the EHLO argument; how it reads our
EHLO reply (which lines, `AUTH ` or `AUTH=`, whole tokens or substrings) and
which mechanism that gives by its own order of preference; the wire form
(initial response or not); whether it falls back to another mechanism after
a 535; whether it uses STARTTLS because it is offered; its TLS stack where
CLIENTS.md knows it (Vista: TLS 1.0 with AES; XP: RC4/3DES only, no SNI).
Where CLIENTS.md says "unknown", the replay tries every form the client
could use, and each must work.

Each client runs in two setups:
  guide   the guide followed literally: port 25 (our mx listener), no SSL
          box ticked, the listener with tls_profile = legacy and
          plaintext_auth = yes (and starttls = no where the docs say so);
  secure  465 implicit TLS or 587 STARTTLS, as the client supports.
Each sends one message to bob@example.test and one to friend@remote.example,
after a first session with a wrong password (535, and no relaying).

What the replays cannot show: how the real TLS stacks of Netscape, Eudora,
Mac OS X and Entourage behave (CLIENTS.md does not describe them; their
secure setups use Python's TLS client, so they verify our SMTP side only),
and anything CLIENTS.md marks unknown.
"""
import base64
import dataclasses
import hashlib
import hmac
import os
import re
import socket
import ssl
import struct
import warnings
from typing import Callable

import pytest

from conftest import (DEMO_PASSWORD, MAIL_USERS, assert_serves, free_port, mailbox,
                      parse_delivered, set_global_key, spool_texts, wait_delivered,
                      wait_for)
from test_smtp_auth import Client, b64, set_listener_key, tls_context

ALICE, BOB = "alice@example.test", "bob@example.test"
REMOTE = "friend@remote.example"
WRONG_PASSWORD = "Tr0ub4dor&3"
SNI = "mail.example.test"  # the guide: the SMTP server name ends like the address

# What a Windows Vista SChannel client offers and what our legacy profile
# shares with it (docs/tls.md, "Verified handshakes").
VISTA_CIPHER = "ECDHE-ECDSA-AES128-SHA"

# Windows XP's SChannel cipher suites (CLIENTS.md 1.1: RC4, 3DES, DES, export
# suites, DHE-DSS, no AES), in the ClientHello's order.
XP_SUITES = (
    0x0004,  # TLS_RSA_WITH_RC4_128_MD5
    0x0005,  # TLS_RSA_WITH_RC4_128_SHA
    0x000A,  # TLS_RSA_WITH_3DES_EDE_CBC_SHA
    0x0009,  # TLS_RSA_WITH_DES_CBC_SHA
    0x0064,  # TLS_RSA_EXPORT1024_WITH_RC4_56_SHA
    0x0062,  # TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA
    0x0003,  # TLS_RSA_EXPORT_WITH_RC4_40_MD5
    0x0006,  # TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5
    0x0013,  # TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA
    0x0012,  # TLS_DHE_DSS_WITH_DES_CBC_SHA
    0x0063,  # TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA
)
ALERT_HANDSHAKE_FAILURE = 40  # RFC 2246 7.2
ALERT_PROTOCOL_VERSION = 70


# ---------------------------------------------------------------- TLS stacks

def vista_context():
    """SChannel of Vista SP2: TLS 1.0 only, AES-CBC with ECDHE (CLIENTS.md 1.1)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the instance's certificate is self-signed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers(f"{VISTA_CIPHER}:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as e:
        pytest.skip(f"Python's OpenSSL cannot make a TLS 1.0 {VISTA_CIPHER} client: {e}")
    return ctx


def xp_client_hello():
    """A TLS 1.0 ClientHello as Windows XP's SChannel sends it: its suites
    only, no extensions (so no SNI). OpenSSL 3 has none of these suites, so
    it cannot be made by ssl; it is written out (RFC 2246 7.4.1.2)."""
    body = (struct.pack("!H", 0x0301) + os.urandom(32) + b"\x00"
            + struct.pack("!H", 2 * len(XP_SUITES))
            + b"".join(struct.pack("!H", s) for s in XP_SUITES)
            + b"\x01\x00")  # compression: null only
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def read_alert(sock):
    """What the server answers a ClientHello with, up to the connection's
    end: (record type, alert level, alert description) of its first record."""
    sock.settimeout(10)
    data = b""
    while len(data) < 7:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    assert len(data) >= 7, f"no complete TLS record from the server: {data!r}"
    return data[0], data[5], data[6]


# ---------------------------------------------------------------- the wire

class Wire(Client):
    """test_smtp_auth.Client with the TLS stack of the client it replays
    (its context, SNI or none) instead of a current Python client."""

    def __init__(self, port, context=None, sni=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if context is not None:
            self.sock = context.wrap_socket(self.sock, server_hostname=sni)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def starttls_with(self, context, sni):
        assert self.cmd("STARTTLS") == (220, ["2.0.0 Ready to start TLS"])
        self.file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=sni)
        self.file = self.sock.makefile("rb")

    def close_with_reset(self):
        """Close with a TCP RST and no TLS close_notify, as Outlook does after
        QUIT (CLIENTS.md 1.2; Exim spec)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


# ---------------------------------------------------------------- reading our EHLO reply

def auth_tokens(ehlo_lines, prefix):
    """The mechanisms of the EHLO lines that start with prefix ("AUTH " or
    "AUTH="), upper-cased."""
    tokens = []
    for line in ehlo_lines:
        if line.upper().startswith(prefix):
            tokens += line[len(prefix):].upper().split()
    return tokens


def pick_oe(lines):
    """Outlook Express, Outlook 2002/2003, Windows Mail (inferred = OE6):
    LOGIN, the only SMTP AUTH mechanism they have without SPA; found in the
    pre-RFC `AUTH=` line, which OE4 requires and Postfix advises for OE up to
    6 and Outlook up to 2003 (CLIENTS.md 1.1, 1.2). No initial response: they
    answer the "Username:" prompt (the Exim/Stalwart/mox reports)."""
    return [("LOGIN", False)] if "LOGIN" in auth_tokens(lines, "AUTH=") else []


def pick_outlook_2007(lines):
    """Outlook 2007: an MD5 mechanism if one is advertised (and then it fails,
    crc.id.au), else LOGIN or PLAIN; MS-XLOGIN says the client SHOULD send the
    user name as initial response (CLIENTS.md 1.1, 1.3)."""
    mechs = auth_tokens(lines, "AUTH ")
    attempts = [(m, False) for m in ("DIGEST-MD5", "CRAM-MD5") if m in mechs]
    attempts += [(m, True) for m in ("LOGIN", "PLAIN") if m in mechs]
    return attempts[:1]


def pick_netscape_6(lines):
    """Mozilla ~2001 (Netscape 6): substring search of the whole reply; PLAIN
    if " PLAIN" occurs, LOGIN only if "AUTH=LOGIN" occurs; PLAIN preferred;
    both with an initial response; on a 5xx it forgets the password and asks
    the user again, it does not try another mechanism (CLIENTS.md 1.4 a)."""
    text = "\n".join(lines)
    attempts = []
    if " PLAIN" in text:
        attempts.append(("PLAIN", True))
    if "AUTH=LOGIN" in text:
        attempts.append(("LOGIN", True))
    return attempts[:1]


def pick_netscape_7_1(lines):
    """Mozilla 1.2-1.4 (Netscape 7.1), nsSmtpProtocol.cpp @0026c5bd: a line
    starting with "AUTH" sets each mechanism found (case-insensitively) in
    the whole reply text; CRAM-MD5 > PLAIN > LOGIN, PLAIN and LOGIN with an
    initial response; after a 5xx the next one (CLIENTS.md 1.4 b)."""
    if not any(line.upper().startswith("AUTH") for line in lines):
        return []
    text = "\n".join(lines).upper()
    return [(m, m != "CRAM-MD5") for m in ("CRAM-MD5", "PLAIN", "LOGIN") if m in text]


def pick_netscape_7_2(lines):
    """Mozilla 1.7 (Netscape 7.2), RetroZilla nsSmtpProtocol.cpp @2f2ae146:
    each line starting with "AUTH" is searched case-insensitively; EXTERNAL
    first if offered, then GSSAPI > CRAM-MD5 > NTLM > PLAIN > LOGIN; PLAIN
    with an initial response, LOGIN without; after a 5xx the next one
    (CLIENTS.md 1.4 c)."""
    found = set()
    for line in lines:
        if line.upper().startswith("AUTH"):
            found |= {m for m in ("EXTERNAL", "GSSAPI", "CRAM-MD5", "NTLM", "PLAIN", "LOGIN")
                      if m in line.upper()[5:]}
    order = ("EXTERNAL", "GSSAPI", "CRAM-MD5", "NTLM", "PLAIN", "LOGIN")
    return [(m, m == "PLAIN") for m in order if m in found]


def pick_eudora(lines):
    """Eudora (eudora-win sasl.cpp, SMTPSession.cpp): both `AUTH ` and
    `AUTH=` lines; GSSAPI > CRAM-MD5 > LOGIN > PLAIN; one mechanism, no
    initial response, no fallback (CLIENTS.md 1.5)."""
    mechs = set(auth_tokens(lines, "AUTH ")) | set(auth_tokens(lines, "AUTH="))
    return [(m, False) for m in ("GSSAPI", "CRAM-MD5", "LOGIN", "PLAIN") if m in mechs][:1]


# The cleartext forms a client of unknown habits could use: PLAIN or LOGIN,
# with or without an initial response.
ALL_CLEARTEXT_FORMS = (("PLAIN", True), ("PLAIN", False), ("LOGIN", False), ("LOGIN", True))


def pick_mac_mail(lines):
    """Mac OS X Mail 10.3-10.5, authentication "Password": CRAM-MD5 if the
    server has it, else the password in clear text (Apple TA20708); which
    cleartext mechanism first, and the wire form, are unknown (CLIENTS.md
    1.6). The replay sends with PLAIN and checks the other forms too."""
    mechs = auth_tokens(lines, "AUTH ")
    if "CRAM-MD5" in mechs:
        return [("CRAM-MD5", False)]
    return [form for form in ALL_CLEARTEXT_FORMS if form[0] in mechs][:1]


def pick_entourage(lines):
    """Entourage 2004/2008: mechanisms unknown (CLIENTS.md 1.7). Inference
    only: it descends from OE 5 for the Mac, so LOGIN without an initial
    response; the replay checks the other forms too."""
    mechs = auth_tokens(lines, "AUTH ")
    return [form for form in (("LOGIN", False), ("PLAIN", True)) if form[0] in mechs][:1]


# ---------------------------------------------------------------- the clients

@dataclasses.dataclass(frozen=True)
class Model:
    name: str
    ehlo: str
    pick: Callable
    falls_back: bool          # tries the next mechanism after a 535
    # The guide's setup: keys for [listener mx] beyond legacy + plaintext_auth.
    guide_mx: dict
    uses_starttls_when_offered: bool  # on port 25 with the guide's settings
    # The secure setup: the listener, its extra keys, and the TLS stack.
    secure_listener: str
    secure_keys: dict
    tls_stack: str            # "vista", "xp", or "current" (not known: Python's)
    after_auth_failure: str   # "proceeds" without AUTH, or "stops" (asks the user)
    connection_per_message: bool
    other_forms: tuple = ()   # unknown habits: these must authenticate too
    mail_size_param: bool = False
    reset_after_quit: bool = False
    # The secure setup's TLS mode: implicit on 465, STARTTLS on 587, unless
    # the client's "SSL" box means implicit TLS on 587 too (OE, Windows Mail).
    secure_implicit: "bool | None" = None

    @property
    def is_secure_implicit(self):
        if self.secure_implicit is not None:
            return self.secure_implicit
        return self.secure_listener == "submissions"


WINDOWS_MAIL = Model(
    name="Windows Mail (Vista)", ehlo="ALICE-PC", pick=pick_oe, falls_back=False,
    guide_mx={}, uses_starttls_when_offered=False,
    secure_listener="submissions", secure_keys={"tls_profile": "legacy"},
    tls_stack="vista", after_auth_failure="stops", connection_per_message=False)

OUTLOOK_2007 = Model(
    name="Outlook 2007", ehlo="ALICE-PC", pick=pick_outlook_2007, falls_back=False,
    guide_mx={}, uses_starttls_when_offered=False,
    # "TLS" in the encryption drop-down on 587 (deerfieldhosting advice);
    # on Vista its TLS is SChannel's TLS 1.0 (docs/tls.md).
    secure_listener="submission", secure_keys={"tls_profile": "legacy"},
    tls_stack="vista", after_auth_failure="stops", connection_per_message=False,
    other_forms=(("LOGIN", False),), reset_after_quit=True)

OUTLOOK_2002_2003 = Model(
    name="Outlook 2002/2003 (XP)", ehlo="HOME-3F2A1B7C9D", pick=pick_oe, falls_back=False,
    guide_mx={"starttls": "no"}, uses_starttls_when_offered=False,
    secure_listener="submissions", secure_keys={}, tls_stack="xp",
    after_auth_failure="stops", connection_per_message=False, reset_after_quit=True)

OUTLOOK_EXPRESS = Model(
    name="Outlook Express 6 (XP)", ehlo="HOME-3F2A1B7C9D", pick=pick_oe, falls_back=False,
    guide_mx={"starttls": "no"}, uses_starttls_when_offered=False,
    secure_listener="submissions", secure_keys={}, tls_stack="xp",
    after_auth_failure="stops", connection_per_message=False)

NETSCAPE_6 = Model(
    name="Netscape 6", ehlo="example.test", pick=pick_netscape_6, falls_back=False,
    guide_mx={}, uses_starttls_when_offered=False,
    # STARTTLS only (no SSL-on-connect before Mozilla 1.x): 587.
    secure_listener="submission", secure_keys={}, tls_stack="current",
    after_auth_failure="stops", connection_per_message=True)
# (With the guide's settings Netscape 6 is replayed without STARTTLS: Mozilla's
# default is "never" (try_ssl = 0) in the 7.x sources; Netscape 6's default
# is not established.)

NETSCAPE_7 = {
    "7.1": Model(
        name="Netscape 7.1", ehlo="example.test", pick=pick_netscape_7_1, falls_back=True,
        guide_mx={}, uses_starttls_when_offered=False,
        secure_listener="submissions", secure_keys={}, tls_stack="current",
        after_auth_failure="stops", connection_per_message=True),
    "7.2": Model(
        name="Netscape 7.2", ehlo="[127.0.0.1]", pick=pick_netscape_7_2, falls_back=True,
        guide_mx={}, uses_starttls_when_offered=False,
        secure_listener="submissions", secure_keys={}, tls_stack="current",
        after_auth_failure="stops", connection_per_message=True, mail_size_param=True),
}

EUDORA = Model(
    name="Eudora 5/6", ehlo="[127.0.0.1]", pick=pick_eudora, falls_back=False,
    # "If Available, STARTTLS" is Eudora's default; its TLS stack is not
    # known to speak our legacy profile, so the listener does not offer
    # STARTTLS (docs/configuration.md, `starttls`).
    guide_mx={"starttls": "no"}, uses_starttls_when_offered=True,
    secure_listener="submissions", secure_keys={}, tls_stack="current",
    after_auth_failure="proceeds", connection_per_message=False)

MAC_MAIL = Model(
    name="Mac OS X Mail", ehlo="Alices-iBook-G4.local", pick=pick_mac_mail, falls_back=False,
    guide_mx={}, uses_starttls_when_offered=False,
    secure_listener="submissions", secure_keys={}, tls_stack="current",
    after_auth_failure="stops", connection_per_message=False,
    other_forms=tuple(f for f in ALL_CLEARTEXT_FORMS if f != ("PLAIN", True)))

ENTOURAGE = Model(
    # The EHLO argument is not documented; a `.local` name as Mac Mail sends.
    name="Entourage 2004/2008", ehlo="Alices-iBook-G4.local", pick=pick_entourage,
    falls_back=False, guide_mx={}, uses_starttls_when_offered=False,
    # "SMTP service requires secure connection (SSL)": implicit TLS inferred
    # from OE 5 Mac (Postfix TLS_README), with "Override default SMTP port" 465.
    secure_listener="submissions", secure_keys={}, tls_stack="current",
    after_auth_failure="stops", connection_per_message=False,
    other_forms=tuple(f for f in ALL_CLEARTEXT_FORMS if f != ("LOGIN", False)))


# ---------------------------------------------------------------- one replay

def is_guide(setup):
    """The guide followed literally; "guide-cram" also has the administrator
    offer CRAM-MD5 on mx, every account having its secret."""
    return setup in ("guide", "guide-cram")


def configure(inst, model, setup):
    if is_guide(setup):
        keys = {"tls_profile": "legacy", "plaintext_auth": "yes", **model.guide_mx}
        if setup == "guide-cram":
            keys["cram_md5"] = "yes"
        for key, value in keys.items():
            set_listener_key(inst, "mx", key, value)
        if setup == "guide-cram":
            # The accounts predate the switch: each password is set again.
            for user in MAIL_USERS:
                inst.cli("user", "passwd", user, "--password-stdin",
                         input=DEMO_PASSWORD + "\n")
    else:
        for key, value in model.secure_keys.items():
            set_listener_key(inst, model.secure_listener, key, value)


def client_context(model):
    if model.tls_stack == "vista":
        return vista_context(), SNI
    assert model.tls_stack == "current", model
    return tls_context(), None


class Session:
    """One connection of the client: connected, greeted, EHLO said (again
    after STARTTLS when the client uses it)."""

    def __init__(self, inst, model, setup):
        self.model = model
        self.cram_offered = setup == "guide-cram"
        if is_guide(setup):
            listener, implicit = "mx", False
        else:
            listener = model.secure_listener
            implicit = model.is_secure_implicit
        context, sni = client_context(model) if (setup == "secure" or
                                                 model.uses_starttls_when_offered) else (None, None)
        self.listener = listener
        self.wire = Wire(inst.port(listener), context if implicit else None, sni)
        assert self.wire.greeting[0] == 220, self.wire.greeting
        self.is_tls = implicit
        self.ehlo_lines = self.wire.ehlo(model.ehlo)
        offered = "STARTTLS" in self.ehlo_lines
        if is_guide(setup):
            # The guide ticks no SSL box: only a client that uses STARTTLS
            # whenever it is offered does.
            wants = model.uses_starttls_when_offered and offered
        else:
            # 587: the client's setting requires STARTTLS.
            wants = not implicit
            assert offered or implicit, f"{listener} does not offer STARTTLS: {self.ehlo_lines}"
        if wants:
            self.wire.starttls_with(context, sni)
            self.is_tls = True
            self.ehlo_lines = self.wire.ehlo(model.ehlo)
            assert "STARTTLS" not in self.ehlo_lines
        if self.is_tls and model.tls_stack == "vista":
            assert self.wire.sock.version() == "TLSv1", self.wire.sock.version()
            assert self.wire.sock.cipher()[0] == VISTA_CIPHER, self.wire.sock.cipher()

    def auth_form(self, mechanism, initial, password):
        """One AUTH exchange in the client's wire form; returns the final reply."""
        w = self.wire
        if mechanism == "PLAIN":
            # Empty authzid, as every client here sends it. (Mozilla cuts the
            # base64 at 256 characters, "AUTH PLAIN %.256s"; ours is shorter.)
            response = b64("\0" + ALICE + "\0" + password)
            assert len(response) < 256
            if initial:
                return w.cmd(f"AUTH PLAIN {response}")
            assert w.cmd("AUTH PLAIN") == (334, [""])
            return w.cmd(response)
        if mechanism == "CRAM-MD5":
            assert not initial  # RFC 2195: the server speaks first
            code, lines = w.cmd("AUTH CRAM-MD5")
            assert code == 334, (code, lines)
            challenge = base64.b64decode(lines[0], validate=True)
            digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
            return w.cmd(b64(f"{ALICE} {digest}"))
        assert mechanism == "LOGIN", mechanism
        if initial:
            assert w.cmd(f"AUTH LOGIN {b64(ALICE)}") == (334, ["UGFzc3dvcmQ6"])
        else:
            # The only prompts Outlook and Outlook Express recognize.
            assert w.cmd("AUTH LOGIN") == (334, ["VXNlcm5hbWU6"])
            assert w.cmd(b64(ALICE)) == (334, ["UGFzc3dvcmQ6"])
        return w.cmd(b64(password))

    def authenticate(self, password):
        """The client's own choice from our EHLO reply, and its fallbacks.
        Returns the replies of its attempts."""
        attempts = self.model.pick(self.ehlo_lines)
        assert attempts, f"{self.model.name} finds no mechanism it uses in {self.ehlo_lines}"
        if not self.model.falls_back:
            attempts = attempts[:1]
        replies = []
        for mechanism, initial in attempts:
            # CRAM-MD5 is listed only where the administrator offers it,
            # every account having the secret.
            assert mechanism in ("PLAIN", "LOGIN") or (
                mechanism == "CRAM-MD5" and self.cram_offered), (
                f"{self.model.name} would choose {mechanism} from {self.ehlo_lines}: "
                "CLIENTS.md says a client of the guide fails or burns an attempt on it")
            code, lines = self.auth_form(mechanism, initial, password)
            replies.append((code, lines))
            if code == 235:
                break
        return replies

    def send(self, rcpt, subject):
        """One transaction; returns the replies up to the first refusal."""
        w = self.wire
        body = (f"From: Alice <{ALICE}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
                f"Message-ID: <{os.urandom(8).hex()}@example.test>\r\n"
                f"\r\nSent by a replay of {self.model.name}.\r\n").encode()
        params = ""
        if self.model.mail_size_param and any(l.startswith("SIZE") for l in self.ehlo_lines):
            params = f" SIZE={len(body)}"
        replies = [w.cmd(f"MAIL FROM:<{ALICE}>{params}")]
        if replies[-1][0] != 250:
            return replies
        replies.append(w.cmd(f"RCPT TO:<{rcpt}>"))
        if replies[-1][0] != 250:
            # Every client here gives up the message on a refused
            # recipient (Mozilla: SendRecipientResponse).
            assert w.cmd("RSET")[0] == 250
            return replies
        replies.append(w.cmd("DATA"))
        assert replies[-1][0] == 354, replies
        w.sock.sendall(body + b".\r\n")
        replies.append(w.reply())
        return replies

    def quit(self):
        assert self.wire.cmd("QUIT")[0] == 221
        if self.model.reset_after_quit:
            self.wire.close_with_reset()
        else:
            self.wire.close()


@dataclasses.dataclass
class Outcome:
    """What the client did with one password."""
    auth: list = dataclasses.field(default_factory=list)     # per session: its AUTH replies
    ehlo: list = dataclasses.field(default_factory=list)     # per session: our EHLO reply
    results: dict = dataclasses.field(default_factory=dict)  # rcpt: its transaction's replies
    stopped: "Session | None" = None  # left open where the client gave up after a 535
    sessions: list = dataclasses.field(default_factory=list)


def run_client(inst, model, setup, password, token):
    """The client sends its two messages, in a connection each or in one."""
    out = Outcome()
    session = None
    for rcpt in (BOB, REMOTE):
        if session is None:
            session = Session(inst, model, setup)
            out.sessions.append(session)
            out.ehlo.append(session.ehlo_lines)
            out.auth.append(session.authenticate(password))
            if out.auth[-1][-1][0] != 235 and model.after_auth_failure == "stops":
                out.stopped = session
                return out
        out.results[rcpt] = session.send(rcpt, f"{token} to {rcpt}")
        if model.connection_per_message:
            session.quit()
            session = None
    if session is not None:
        session.quit()
    return out


def queued_envelopes(inst):
    """Envelopes waiting in the spool (queue/ or, once tried, deferred/)."""
    return list(spool_texts(inst, ".env").values())


def assert_relay_refused(session, setup):
    """After a failed AUTH, whatever the client does next: no relaying."""
    w = session.wire
    if is_guide(setup):  # mx: local mail needs no AUTH, relaying does
        assert w.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
        assert w.cmd(f"RCPT TO:<{REMOTE}>") == (554, ["5.7.1 Relay access denied"])
        assert w.cmd("RSET")[0] == 250
    else:  # submission, submissions: nothing without AUTH
        assert w.cmd(f"MAIL FROM:<{ALICE}>") == (530, ["5.7.0 Authentication required"])


def replay(inst, model, setup):
    """The whole scenario for one client and setup; returns nothing, asserts all."""
    configure(inst, model, setup)
    # Remote mail goes to a relayhost that is down: it waits in the spool.
    set_global_key(inst, "relayhost", f"127.0.0.1:{free_port()}")
    inst.start()
    tls = setup == "secure"

    # 1. A wrong password: 535 (after each mechanism the client falls back
    # to), and no relaying.
    out = run_client(inst, model, setup, WRONG_PASSWORD, "wrong")
    attempts = out.auth[0]
    tried = model.pick(out.ehlo[0]) if model.falls_back else model.pick(out.ehlo[0])[:1]
    assert len(attempts) == len(tried), (tried, attempts)
    for code, lines in attempts:
        assert (code, lines) == (535, ["5.7.8 Authentication credentials invalid"]), attempts
    unauthenticated_local = 0
    if model.after_auth_failure == "stops":
        assert out.stopped is not None and out.results == {}
        assert_relay_refused(out.stopped, setup)
        out.stopped.quit()
    elif is_guide(setup):
        # Eudora sends anyway when authentication is only "allowed".
        assert out.results[BOB][-1][0] == 250, out.results  # mx takes local mail
        assert out.results[REMOTE] == [(250, ["2.1.0 Ok"]),
                                       (554, ["5.7.1 Relay access denied"])], out.results
        unauthenticated_local = 1
    else:
        for rcpt in (BOB, REMOTE):
            assert out.results[rcpt] == [(530, ["5.7.0 Authentication required"])], out.results
    assert not any(REMOTE in env for env in queued_envelopes(inst))

    # 2. The right password: the first mechanism chosen succeeds, and both
    # messages are accepted. The guide's setups are plaintext throughout.
    sessions = len(out.sessions)
    out = run_client(inst, model, setup, DEMO_PASSWORD, "right")
    assert out.stopped is None, out.auth
    assert {s.is_tls for s in out.sessions} == {tls}, out.sessions
    sessions += len(out.sessions)
    assert out.auth == [[(235, ["2.7.0 Authentication successful"])]] * len(out.auth), out.auth
    for rcpt in (BOB, REMOTE):
        mail, rcpt_reply, data, final = out.results[rcpt]
        assert mail == (250, ["2.1.0 Ok"]) and rcpt_reply == (250, ["2.1.5 Ok"]), out.results
        assert final[0] == 250 and final[1][0].startswith("2.0.0 Ok: queued as "), out.results

    # 3. The forms a client of unknown habits might use work as well.
    for mechanism, initial in model.other_forms:
        s = Session(inst, model, setup)
        assert s.auth_form(mechanism, initial, DEMO_PASSWORD)[0] == 235, (mechanism, initial)
        s.quit()
        sessions += 1

    # 4. Delivered to bob, with our trace header; the remote one waits.
    msgs = [parse_delivered(m) for m in wait_delivered(inst, BOB, 1 + unauthenticated_local)]
    ours = [m for m in msgs if b"Subject: right to bob" in m["body"]]
    assert len(ours) == 1, msgs
    m = ours[0]
    assert m["with"] == ("ESMTPSA" if tls else "ESMTPA"), m
    assert (m["helo"], m["ip"], m["for"], m["return_path"]) == (
        model.ehlo, "127.0.0.1", BOB, ALICE), m
    if unauthenticated_local:
        (other,) = [m for m in msgs if b"Subject: wrong to bob" in m["body"]]
        assert other["with"] == "ESMTP", other
    envs = wait_for(lambda: [e for e in queued_envelopes(inst) if f"rcpt {REMOTE}\n" in e],
                    what="the message to the remote recipient in spool/queue")
    assert len(envs) == 1, envs
    assert f"auth-user {ALICE}\n" in envs[0] and f"helo {model.ehlo}\n" in envs[0], envs[0]
    if model.tls_stack == "vista" and tls:
        inst.wait_log(rf"tls version=TLSv1\.0 cipher={VISTA_CIPHER} resumed=\w+ sni={SNI}")
    # Every session of the client ended as a QUIT, even those closed with a
    # TCP RST and no close_notify (Outlook), and no TLS error was logged.
    listener = out.sessions[0].listener
    wait_for(lambda: len(re.findall(rf"disconnect listener={listener} reason=quit", inst.log()))
             == sessions, what=f"{sessions} sessions on {listener} ending in QUIT")
    assert "tls error" not in inst.log()


SETUPS = ("guide", "secure")


# ---------------------------------------------------------------- XP-era secure setups

def assert_xp_cannot_use_tls(inst):
    """Windows XP's SChannel and our OpenSSL 3 share no cipher suite, on any
    profile, in each TLS mode an XP client may use (CLIENTS.md 1.1):
    465 + SSL (implicit), 25 + SSL (STARTTLS), 587 + SSL (implicit, against a
    STARTTLS port)."""
    # 465, default (modern) profile: TLS 1.0 is refused before the suites.
    with socket.create_connection(("127.0.0.1", inst.port("submissions")), timeout=10) as s:
        s.sendall(xp_client_hello())
        assert read_alert(s) == (21, 2, ALERT_PROTOCOL_VERSION)
    # 25 + SSL = STARTTLS on the legacy mx: TLS 1.0 is allowed, no suite is shared.
    c = Wire(inst.port("mx"))
    c.ehlo("HOME-3F2A1B7C9D")
    assert c.cmd("STARTTLS") == (220, ["2.0.0 Ready to start TLS"])
    c.sock.sendall(xp_client_hello())
    assert read_alert(c.sock) == (21, 2, ALERT_HANDSHAKE_FAILURE)
    c.close()
    inst.wait_log(r"tls error=.*no shared cipher")
    inst.wait_log(r"tls error=.*unsupported protocol")
    # 587 + SSL: the client sends its ClientHello and gets our plaintext
    # greeting where it expects a ServerHello (TLS record type 22).
    with socket.create_connection(("127.0.0.1", inst.port("submission")), timeout=10) as s:
        s.sendall(xp_client_hello())
        s.settimeout(10)
        first = s.recv(5)
        assert first.startswith(b"220 "), first
        assert first[0] != 0x16


def replay_xp_secure(inst):
    """Outlook Express and Outlook 2002/2003 on XP: the secure setup does not
    exist for them here; nothing gets through, the server goes on serving."""
    set_listener_key(inst, "mx", "tls_profile", "legacy")
    inst.start()
    assert_xp_cannot_use_tls(inst)
    assert queued_envelopes(inst) == [] and mailbox(inst, BOB) == []
    assert_serves(inst)


# ---------------------------------------------------------------- the tests

@pytest.mark.parametrize("setup", SETUPS)
def test_windows_mail_vista(mail_server, setup):
    replay(mail_server, WINDOWS_MAIL, setup)


@pytest.mark.parametrize("setup", SETUPS)
def test_outlook_2007(mail_server, setup):
    replay(mail_server, OUTLOOK_2007, setup)


@pytest.mark.parametrize("setup", SETUPS)
def test_outlook_2002_2003(mail_server, setup):
    if setup == "secure":
        replay_xp_secure(mail_server)
    else:
        replay(mail_server, OUTLOOK_2002_2003, setup)


@pytest.mark.parametrize("setup", SETUPS)
def test_outlook_express(mail_server, setup):
    if setup == "secure":
        replay_xp_secure(mail_server)
    else:
        replay(mail_server, OUTLOOK_EXPRESS, setup)


@pytest.mark.parametrize("setup", SETUPS)
def test_netscape_6(mail_server, setup):
    replay(mail_server, NETSCAPE_6, setup)


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("release", sorted(NETSCAPE_7))
def test_netscape_7(mail_server, release, setup):
    replay(mail_server, NETSCAPE_7[release], setup)


@pytest.mark.parametrize("setup", SETUPS)
def test_eudora_5_6(mail_server, setup):
    replay(mail_server, EUDORA, setup)


@pytest.mark.parametrize("setup", SETUPS)
def test_mac_os_x_mail(mail_server, setup):
    replay(mail_server, MAC_MAIL, setup)


@pytest.mark.parametrize("model", [EUDORA, MAC_MAIL], ids=["eudora", "mac-mail"])
def test_guide_with_cram_md5_offered(mail_server, model):
    """The clients that pick CRAM-MD5 when it is offered, on the guide's mx
    where the administrator switched it on (every account has the secret):
    they authenticate with it, and a wrong password fails with it."""
    replay(mail_server, model, "guide-cram")
    log = mail_server.log()
    assert re.search(r"auth ok listener=mx client=127\.0\.0\.1 mech=CRAM-MD5 "
                     r"user=alice@example\.test", log)
    assert re.search(r"auth failed listener=mx client=127\.0\.0\.1 mech=CRAM-MD5 "
                     r"user=alice@example\.test reason=bad-password", log)


@pytest.mark.parametrize("setup", SETUPS)
def test_entourage(mail_server, setup):
    replay(mail_server, ENTOURAGE, setup)


# What each client finds in an EHLO reply's AUTH lines: ours (both lines),
# only the RFC 4954 line, only the pre-RFC line, and ours with CRAM-MD5 added.
# Each row is what the client's source or CLIENTS.md says it does.
OURS = ["AUTH PLAIN LOGIN SCRAM-SHA-256", "AUTH=PLAIN LOGIN SCRAM-SHA-256"]
RFC_ONLY = ["AUTH PLAIN LOGIN"]
OLD_ONLY = ["AUTH=PLAIN LOGIN"]
WITH_CRAM = ["AUTH CRAM-MD5 PLAIN LOGIN", "AUTH=CRAM-MD5 PLAIN LOGIN"]
# Our mx without TLS and without plaintext_auth (test_smtp_auth checks this reply).
DEFAULT_MX = ["STARTTLS", "AUTH SCRAM-SHA-256", "AUTH=SCRAM-SHA-256"]
EHLO_READING_CASES = [
    # name, picker, reply, what it tries first (None: it does not authenticate)
    ("oe-ours", pick_oe, OURS, ("LOGIN", False)),
    ("oe-needs-the-old-line", pick_oe, RFC_ONLY, None),
    ("oe-old-line-alone", pick_oe, OLD_ONLY, ("LOGIN", False)),
    ("outlook-2007-ours", pick_outlook_2007, OURS, ("LOGIN", True)),
    ("outlook-2007-tries-md5", pick_outlook_2007, WITH_CRAM, ("CRAM-MD5", False)),
    ("netscape-6-ours", pick_netscape_6, OURS, ("PLAIN", True)),
    ("netscape-6-needs-the-rfc-line", pick_netscape_6, OLD_ONLY, None),
    ("netscape-7.1-ours", pick_netscape_7_1, OURS, ("PLAIN", True)),
    ("netscape-7.1-cram-first", pick_netscape_7_1, WITH_CRAM, ("CRAM-MD5", False)),
    ("netscape-7.2-ours", pick_netscape_7_2, OURS, ("PLAIN", True)),
    ("netscape-7.2-old-line-alone", pick_netscape_7_2, OLD_ONLY, ("PLAIN", True)),
    ("eudora-ours", pick_eudora, OURS, ("LOGIN", False)),
    ("eudora-old-line-alone", pick_eudora, OLD_ONLY, ("LOGIN", False)),
    ("eudora-cram-no-fallback", pick_eudora, WITH_CRAM, ("CRAM-MD5", False)),
    ("mac-mail-ours", pick_mac_mail, OURS, ("PLAIN", True)),
    ("mac-mail-cram-by-default", pick_mac_mail, WITH_CRAM, ("CRAM-MD5", False)),
    ("entourage-ours", pick_entourage, OURS, ("LOGIN", False)),
    # Without plaintext_auth, none of them finds a mechanism before TLS.
    ("oe-default-mx", pick_oe, DEFAULT_MX, None),
    ("outlook-2007-default-mx", pick_outlook_2007, DEFAULT_MX, None),
    ("netscape-6-default-mx", pick_netscape_6, DEFAULT_MX, None),
    ("netscape-7.1-default-mx", pick_netscape_7_1, DEFAULT_MX, None),
    ("netscape-7.2-default-mx", pick_netscape_7_2, DEFAULT_MX, None),
    ("eudora-default-mx", pick_eudora, DEFAULT_MX, None),
    ("mac-mail-default-mx", pick_mac_mail, DEFAULT_MX, None),
    ("entourage-default-mx", pick_entourage, DEFAULT_MX, None),
]


@pytest.mark.parametrize("name,pick,reply,first", EHLO_READING_CASES,
                         ids=[case[0] for case in EHLO_READING_CASES])
def test_what_each_client_reads_in_an_ehlo_reply(name, pick, reply, first):
    """Why we send both `AUTH` lines and no CRAM-MD5: the replays' readings
    of EHLO replies other than ours."""
    lines = ["mail.example.test", "PIPELINING", *reply]
    attempts = pick(lines)
    assert (attempts[0] if attempts else None) == first, attempts
    if name == "netscape-7.1-cram-first":
        assert attempts == [("CRAM-MD5", False), ("PLAIN", True), ("LOGIN", True)]


def test_ssl_ticked_on_587_needs_detect_implicit_tls(mail_server):
    """Outlook Express and Windows Mail with "This server requires a secure
    connection (SSL)" on 587 start with a TLS handshake (CLIENTS.md 1.1).
    With detect_implicit_tls on submission (and the legacy profile, for
    Vista's TLS 1.0) Windows Mail sends through 587; XP's stack still shares
    no suite with us there."""
    inst = mail_server
    model = dataclasses.replace(
        WINDOWS_MAIL, secure_listener="submission", secure_implicit=True,
        secure_keys={"tls_profile": "legacy", "detect_implicit_tls": "yes"})
    replay(inst, model, "secure")
    with socket.create_connection(("127.0.0.1", inst.port("submission")), timeout=10) as s:
        s.sendall(xp_client_hello())
        assert read_alert(s) == (21, 2, ALERT_HANDSHAKE_FAILURE)
    inst.wait_log(r"tls error=.*no shared cipher")


def test_eudora_breaks_where_starttls_is_offered_in_a_profile_it_cannot_speak(mail_server):
    """Why the guide setup turns STARTTLS off for Eudora: with its default
    "If Available, STARTTLS" it starts TLS as soon as it is offered; with a
    TLS stack limited to XP's suites (whether Eudora's is, is not known) the
    handshake fails and nothing falls back to plaintext on that connection."""
    inst = mail_server
    set_listener_key(inst, "mx", "tls_profile", "legacy")
    set_listener_key(inst, "mx", "plaintext_auth", "yes")
    inst.start()
    c = Wire(inst.port("mx"))
    lines = c.ehlo(EUDORA.ehlo)
    assert "STARTTLS" in lines
    assert c.cmd("STARTTLS") == (220, ["2.0.0 Ready to start TLS"])
    c.sock.sendall(xp_client_hello())
    assert read_alert(c.sock) == (21, 2, ALERT_HANDSHAKE_FAILURE)
    c.close()
    inst.wait_log(r"tls error=.*no shared cipher")
    assert queued_envelopes(inst) == [] and mailbox(inst, BOB) == []


def test_vista_tls_1_0_needs_the_legacy_profile(mail_server):
    """The secure setups of Windows Mail and Outlook 2007 set tls_profile =
    legacy: with the default profile their TLS 1.0 handshake is refused, on
    465 and after STARTTLS on 587."""
    inst = mail_server
    inst.start()
    with pytest.raises(ssl.SSLError, match=r"(?i)protocol version|alert"):
        Wire(inst.port("submissions"), vista_context(), SNI)
    c = Wire(inst.port("submission"))
    c.ehlo(WINDOWS_MAIL.ehlo)
    with pytest.raises(ssl.SSLError, match=r"(?i)protocol version|alert"):
        c.starttls_with(vista_context(), SNI)
    c.close()
    inst.wait_log(r"tls error=.*unsupported protocol")
    assert re.search(r"tls version=", inst.log()) is None
