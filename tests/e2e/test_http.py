"""The http listener (docs/http.md): client auto-configuration documents
fetched from the live daemon, parsed, and then followed — each test connects
to exactly the host, port and security a document names (the test resolves
the names to 127.0.0.1 itself, and sends them as SNI), logs in with the
documented user name, sends mail and fetches it. Bad input, bounds and the
connection limit; the setup page in headless Chromium."""
import email.message
import http.client
import os
import plistlib
import poplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import (DEMO_PASSWORD, assert_clean_stop, set_global_key, wait_delivered,
                      wait_for)

HTTP_CONNECTIONS_MAX = 256  # src/http/limits.h
HTTP_HEADERS_MAX = 8192
HTTP_BODY_MAX = 16384

AD_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""
AD_NS = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
         "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


# ---------------------------------------------------------------- clients

def tls_context():
    # The instance's certificate is self-signed: what is checked here is
    # where the documents send a client, not the certificate's trust.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Resolver:
    """The test's own DNS: every documented server name is this machine."""

    def __init__(self, *names):
        self.names = set(names)

    def __call__(self, host):
        assert host in self.names, f"document names {host!r}, not one of {self.names}"
        return "127.0.0.1"


def smtp_client(resolve, host, port, security):
    """An smtplib client connected to host:port as the document says, with
    SNI = host."""
    context = tls_context()

    class Plain(smtplib.SMTP):
        def _get_socket(self, host, port, timeout):
            return socket.create_connection((resolve(host), port), timeout)

    class Implicit(smtplib.SMTP_SSL):
        def _get_socket(self, host, port, timeout):
            sock = socket.create_connection((resolve(host), port), timeout)
            return self.context.wrap_socket(sock, server_hostname=host)

    if security == "SSL":
        client = Implicit(host, port, timeout=10, context=context)
    else:
        client = Plain(host, port, timeout=10)
        client.ehlo("client.example")
        if security == "STARTTLS":
            client.starttls(context=context)
        else:
            raise AssertionError(f"unexpected security {security!r}")
    client.ehlo("client.example")
    return client


def pop3_client(resolve, host, port, security):
    context = tls_context()

    class Plain(poplib.POP3):
        def _create_socket(self, timeout):
            return socket.create_connection((resolve(self.host), self.port), timeout)

    class Implicit(poplib.POP3_SSL):
        def _create_socket(self, timeout):
            sock = socket.create_connection((resolve(self.host), self.port), timeout)
            return self.context.wrap_socket(sock, server_hostname=self.host)

    if security == "SSL":
        return Implicit(host, port, timeout=10, context=context)
    client = Plain(host, port, timeout=10)
    assert security == "STARTTLS", security
    client.stls(context=context)
    return client


def send_and_fetch(inst, resolve, smtp, pop3, sender, rcpt, subject):
    """Send from sender to rcpt through the SMTP settings, then find the
    message with rcpt's login through the POP3 settings."""
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = rcpt
    message["Subject"] = subject
    message.set_content("sent through the documented settings\n")
    with smtp_client(resolve, *smtp) as client:
        client.login(sender, DEMO_PASSWORD)
        client.send_message(message)
    wait_delivered(inst, rcpt, 1)
    client = pop3_client(resolve, *pop3)
    try:
        client.user(rcpt)
        client.pass_(DEMO_PASSWORD)
        count, _ = client.stat()
        subjects = []
        for i in range(1, count + 1):
            lines = client.retr(i)[1]
            subjects += [l for l in lines if l.startswith(b"Subject: ")]
        assert f"Subject: {subject}".encode() in subjects, subjects
    finally:
        client.quit()


def get(inst, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", inst.port("http"), timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post(inst, path, body, conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", inst.port("http"), timeout=10)
    try:
        conn.request("POST", path, body=body.encode() if isinstance(body, str) else body,
                     headers={"Content-Type": "text/xml"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        if own:
            conn.close()


# ---------------------------------------------------------------- documents

def autoconfig(inst, address, path="/mail/config-v1.1.xml"):
    status, headers, body = get(inst, f"{path}?emailaddress={urllib.parse.quote(address)}")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    domain = address.split("@")[1]
    assert provider.get("id") == domain
    assert provider.findtext("domain") == domain

    def servers(tag):
        out = []
        for s in provider.findall(tag):
            assert s.findtext("authentication") == "password-cleartext"
            assert s.findtext("username") == "%EMAILADDRESS%"
            out.append((s.get("type"), s.findtext("hostname"), int(s.findtext("port")),
                        s.findtext("socketType")))
        return out
    return servers("incomingServer"), servers("outgoingServer")


def test_thunderbird_autoconfig_is_the_live_configuration_and_works(mail_server):
    inst = mail_server
    inst.start()
    incoming, outgoing = autoconfig(inst, "alice@example.test")
    # Derived from the listeners: implicit TLS first (RFC 8314), then STARTTLS.
    assert incoming == [("pop3", "pop.example.test", inst.port("pop3s"), "SSL"),
                        ("pop3", "pop.example.test", inst.port("pop3"), "STARTTLS")]
    assert outgoing == [("smtp", "smtp.example.test", inst.port("submissions"), "SSL"),
                        ("smtp", "smtp.example.test", inst.port("submission"), "STARTTLS")]
    # The well-known path serves the same document.
    assert autoconfig(inst, "alice@example.test",
                      "/.well-known/autoconfig/mail/config-v1.1.xml") == (incoming, outgoing)
    resolve = Resolver("pop.example.test", "smtp.example.test")
    # Every documented way in works: each SMTP entry sends, each POP3 entry fetches.
    for i, (smtp, pop3) in enumerate(zip(outgoing, incoming)):
        send_and_fetch(inst, resolve, smtp[1:], pop3[1:], "alice@example.test",
                       "bob@example.test" if i == 0 else "carol@example.test", f"tb-{i}")
    assert_clean_stop(inst)


def test_autoconfig_from_the_host_name_alone(mail_server):
    inst = mail_server
    inst.start()
    status, _, body = get(inst, "/mail/config-v1.1.xml", {"Host": "autoconfig.example.test"})
    assert status == 200
    assert ET.fromstring(body).find("emailProvider").get("id") == "example.test"
    status, _, _ = get(inst, "/mail/config-v1.1.xml", {"Host": "www.example.test"})
    assert status == 400


def test_outlook_autodiscover_settings_work(mail_server):
    inst = mail_server
    inst.start()
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        status, headers, body = post(inst, path, AD_REQUEST.format(address="carol@example.test"))
        assert status == 200, body
        root = ET.fromstring(body)
        account = root.find("o:Response/o:Account", AD_NS)
        assert account.findtext("o:AccountType", namespaces=AD_NS) == "email"
        assert account.findtext("o:Action", namespaces=AD_NS) == "settings"
        protocols = {p.findtext("o:Type", namespaces=AD_NS): p
                     for p in account.findall("o:Protocol", AD_NS)}
        assert set(protocols) == {"POP3", "SMTP"}

        def settings(p):
            f = {child.tag.split("}")[1]: child.text for child in p}
            assert f["LoginName"] == "carol@example.test"
            assert f["SPA"] == "off" and f["AuthRequired"] == "on"
            # Outlook 2007's <SSL> and 2010's <Encryption> agree.
            assert (f["SSL"], f["Encryption"]) in (("on", "SSL"), ("on", "TLS"), ("off", "None"))
            return f
        pop3, smtp = settings(protocols["POP3"]), settings(protocols["SMTP"])
        assert smtp["UsePOPAuth"] == "on"
        assert (pop3["Server"], int(pop3["Port"]), pop3["Encryption"]) == \
            ("pop.example.test", inst.port("pop3s"), "SSL")
        assert (smtp["Server"], int(smtp["Port"]), smtp["Encryption"]) == \
            ("smtp.example.test", inst.port("submissions"), "SSL")
    resolve = Resolver("pop.example.test", "smtp.example.test")
    security = {"SSL": "SSL", "TLS": "STARTTLS"}
    send_and_fetch(inst, resolve,
                   (smtp["Server"], int(smtp["Port"]), security[smtp["Encryption"]]),
                   (pop3["Server"], int(pop3["Port"]), security[pop3["Encryption"]]),
                   "carol@example.test", "alice@example.test", "outlook")
    assert_clean_stop(inst)


def test_apple_mobileconfig_settings_work(mail_server):
    inst = mail_server
    inst.start()
    status, headers, body = get(inst, "/apple/mobileconfig?email=bob%40example.test")
    assert status == 200
    assert headers["Content-Type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration"
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypePOP"
    assert mail["EmailAddress"] == "bob@example.test"
    for side in ("Incoming", "Outgoing"):
        assert mail[f"{side}MailServerAuthentication"] == "EmailAuthPassword"
        assert mail[f"{side}MailServerUsername"] == "bob@example.test"
        assert mail[f"{side}MailServerUseSSL"] is True
    assert mail["IncomingMailServerHostName"] == "pop.example.test"
    assert mail["IncomingMailServerPortNumber"] == inst.port("pop3s")
    assert mail["OutgoingMailServerHostName"] == "smtp.example.test"
    assert mail["OutgoingMailServerPortNumber"] == inst.port("submissions")
    # The same address gets the same profile (re-installing replaces it).
    assert get(inst, "/apple/mobileconfig?email=bob%40example.test")[2] == body
    resolve = Resolver("pop.example.test", "smtp.example.test")
    send_and_fetch(inst, resolve,
                   (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"], "SSL"),
                   (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"], "SSL"),
                   "bob@example.test", "carol@example.test", "apple")
    assert_clean_stop(inst)


def test_a_new_domain_is_served_at_once_with_its_own_names(mail_server):
    inst = mail_server
    inst.start()
    assert get(inst, "/mail/config-v1.1.xml?emailaddress=eve%40customer.test")[0] == 404
    inst.cli("domain", "add", "customer.test", "--smtp-name", "smtp-server.customer.test",
             "--pop3-name", "mail.customer.test")
    inst.add_user("eve@customer.test")
    inst.add_user("frank@customer.test")
    incoming, outgoing = autoconfig(inst, "eve@customer.test")
    assert {s[1] for s in incoming} == {"mail.customer.test"}
    assert {s[1] for s in outgoing} == {"smtp-server.customer.test"}
    resolve = Resolver("mail.customer.test", "smtp-server.customer.test")
    send_and_fetch(inst, resolve, outgoing[0][1:], incoming[0][1:], "eve@customer.test",
                   "frank@customer.test", "new-domain")
    assert_clean_stop(inst)


def test_non_standard_listener_settings_follow_the_config(mail_server):
    """Without a submissions listener, STARTTLS on submission is what every
    document offers."""
    inst = mail_server
    text = inst.config.read_text()
    text = re.sub(r"\[listener submissions\]\nlisten = [^\n]*\n", "", text)
    inst.config.write_text(text)
    del inst.ports["submissions"]
    inst.start()
    _, outgoing = autoconfig(inst, "alice@example.test")
    assert outgoing == [("smtp", "smtp.example.test", inst.port("submission"), "STARTTLS")]
    status, _, body = post(inst, "/autodiscover/autodiscover.xml",
                           AD_REQUEST.format(address="alice@example.test"))
    smtp = [p for p in ET.fromstring(body).iter(f"{{{AD_NS['o']}}}Protocol")
            if p.findtext("o:Type", namespaces=AD_NS) == "SMTP"][0]
    assert smtp.findtext("o:Encryption", namespaces=AD_NS) == "TLS"
    assert smtp.findtext("o:SSL", namespaces=AD_NS) == "on"
    assert int(smtp.findtext("o:Port", namespaces=AD_NS)) == inst.port("submission")
    resolve = Resolver("pop.example.test", "smtp.example.test")
    send_and_fetch(inst, resolve, outgoing[0][1:], ("pop.example.test", inst.port("pop3"),
                   "STARTTLS"), "alice@example.test", "bob@example.test", "starttls-only")
    assert_clean_stop(inst)


# ---------------------------------------------------------------- bad input, bounds

BAD_GETS = [
    ("unknown domain", "/mail/config-v1.1.xml?emailaddress=a%40unknown.test", 404),
    ("no address", "/mail/config-v1.1.xml", 400),
    ("not an address", "/mail/config-v1.1.xml?emailaddress=nobody", 400),
    ("bad escape", "/mail/config-v1.1.xml?emailaddress=a%4", 400),
    ("control byte", "/mail/config-v1.1.xml?emailaddress=a%0A%40example.test", 400),
    ("twice", "/mail/config-v1.1.xml?emailaddress=a%40example.test&emailaddress=b%40example.test", 400),
    ("mobileconfig unknown domain", "/apple/mobileconfig?email=a%40unknown.test", 404),
    ("mobileconfig without email", "/apple/mobileconfig", 400),
    ("setup unknown domain", "/setup/unknown.test", 404),
    ("setup bad domain", "/setup/a..b", 400),
    ("setup index off", "/setup/", 404),
    ("no such page", "/etc/passwd", 404),
    ("autodiscover GET", "/autodiscover/autodiscover.xml", 405),
]


def test_bad_requests_get_4xx_and_the_connection_goes_on(mail_server):
    inst = mail_server
    inst.start()
    conn = http.client.HTTPConnection("127.0.0.1", inst.port("http"), timeout=10)
    for name, path, want in BAD_GETS:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status == want, name
    # Autodiscover: malformed, not an address, an unknown domain, another schema.
    for body, want in (("<nothing/>", 400),
                       (AD_REQUEST.format(address="nobody"), 400),
                       (AD_REQUEST.format(address="a&amp;b@example.test"), 400),
                       (AD_REQUEST.format(address="a@unknown.test"), 404)):
        status, _, answer = post(inst, "/autodiscover/autodiscover.xml", body, conn)
        assert status == want, body
        if status == 400:
            assert ET.fromstring(answer).findtext(".//a:ErrorCode", namespaces=AD_NS) == "600"
    other = AD_REQUEST.replace("outlook/responseschema/2006a", "mobilesync/responseschema/2006")
    status, _, answer = post(inst, "/autodiscover/autodiscover.xml",
                             other.format(address="a@example.test"), conn)
    assert status == 200
    assert ET.fromstring(answer).findtext(".//a:ErrorCode", namespaces=AD_NS) == "601"
    # Still the same connection, still served.
    conn.request("GET", "/mail/config-v1.1.xml?emailaddress=alice%40example.test")
    assert conn.getresponse().status == 200
    conn.close()
    assert_clean_stop(inst)


def raw_exchange(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
        return reply


def test_header_and_body_bounds(mail_server):
    inst = mail_server
    inst.start()
    port = inst.port("http")
    # Headers just within the bound are served...
    request = b"GET /setup/example.test HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    pad = HTTP_HEADERS_MAX - len(request) - len(b"X-Pad: \r\n\r\n") - 64
    ok = raw_exchange(port, request + b"X-Pad: " + b"a" * pad + b"\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 "), ok[:100]
    # ... and past it refused with a 4xx.
    big = raw_exchange(port, request + b"X-Pad: " + b"a" * (2 * HTTP_HEADERS_MAX) + b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.1 4\d\d ", big), big[:100]
    # An Autodiscover body past the bound: 413, without reading it all.
    body = AD_REQUEST.format(address="alice@example.test").encode()
    huge = body + b" " * (HTTP_BODY_MAX + 1 - len(body))
    answer = raw_exchange(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(huge) + huge)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    # At the bound exactly: served.
    exact = body + b" " * (HTTP_BODY_MAX - len(body))
    status, _, _ = post(inst, "/autodiscover/autodiscover.xml", exact)
    assert status == 200
    # And the server goes on.
    assert get(inst, "/mail/config-v1.1.xml?emailaddress=alice%40example.test")[0] == 200
    assert_clean_stop(inst)


def test_connection_limit_pauses_accepting_and_recovers(mail_server):
    inst = mail_server
    # The listener's own cap is what is tested here, from one address: the
    # per-address session limit must not refuse them first.
    set_global_key(inst, "max_sessions_per_ip", 1000)
    inst.start(argv_prefix=("prlimit", "--nofile=2048:2048")) if shutil.which("prlimit") \
        else inst.start()
    port = inst.port("http")
    socks = []
    try:
        for _ in range(HTTP_CONNECTIONS_MAX):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        inst.wait_log(rf"warning http connections={HTTP_CONNECTIONS_MAX} "
                      rf"max={HTTP_CONNECTIONS_MAX}: accepting paused")
        # One more waits in the backlog; when an idle one leaves, it is served.
        late = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        late.connect()
        socks.pop().close()
        late.request("GET", "/mail/config-v1.1.xml?emailaddress=alice%40example.test")
        assert late.getresponse().status == 200
        late.close()
    finally:
        for sock in socks:
            sock.close()
    assert_clean_stop(inst)


def http_from(inst, source):
    """A kept-alive connection from source that has been served once."""
    conn = http.client.HTTPConnection("127.0.0.1", inst.port("http"), timeout=20,
                                      source_address=(source, 0))
    conn.request("GET", "/mail/config-v1.1.xml?emailaddress=alice%40example.test")
    resp = conn.getresponse()
    resp.read()
    return conn, resp


def refused_per_ip(inst):
    """postgate_sessions_refused_total{reason="max-sessions-per-ip"}, from
    127.0.0.9 on a connection of its own (closed before this returns)."""
    conn = http.client.HTTPConnection("127.0.0.1", inst.port("http"), timeout=20,
                                      source_address=("127.0.0.9", 0))
    try:
        conn.request("GET", "/metrics", headers={"Connection": "close"})
        resp = conn.getresponse()
        assert resp.status == 200
        text = resp.read().decode()
    finally:
        conn.close()
    m = re.search(r'^postgate_sessions_refused_total\{reason="max-sessions-per-ip"\} (\d+)$',
                  text, re.M)
    return int(m.group(1))


def status_of(inst):
    return dict(re.findall(r"^([a-z0-9 ]+):\s+(\S+)$", inst.cli("status").stdout, re.M))


def test_http_connections_count_as_sessions_per_address(mail_server):
    """max_sessions_per_ip covers http connections too, together with mail
    sessions: one over the limit gets 503 and is closed, another address is
    served, and status and /metrics count the open ones under http."""
    inst = mail_server
    set_global_key(inst, "max_sessions_per_ip", 2)
    inst.start()
    # The harness's readiness probes are connections too: let them end first.
    inst.wait_probes_ended()
    refused_before = refused_per_ip(inst)
    held = []
    for _ in range(2):
        conn, resp = http_from(inst, "127.0.0.7")
        assert resp.status == 200
        held.append(conn)
    wait_for(lambda: status_of(inst).get("http") == "2", what="status http=2")
    assert status_of(inst)["sessions"] == "2"
    # The third from 127.0.0.7: 503, "Connection: close", and closed.
    conn, resp = http_from(inst, "127.0.0.7")
    assert resp.status == 503
    assert resp.getheader("Connection", "").lower() == "close"
    assert resp.getheader("Retry-After") == "60"
    assert resp.will_close
    conn.close()
    inst.wait_log(r"warning connect refused listener=http client=127\.0\.0\.7:\d+ "
                  r"reason=max-sessions-per-ip")
    # A mail session from that address is over the same limit.
    with socket.create_connection(("127.0.0.1", inst.port("mx")), timeout=10,
                                  source_address=("127.0.0.7", 0)) as s:
        assert s.makefile("rb").readline().startswith(b"421 4.7.0 ")
    # Another address is served, and counted.
    other, resp = http_from(inst, "127.0.0.8")
    assert resp.status == 200
    held.append(other)
    wait_for(lambda: status_of(inst).get("http") == "3", what="status http=3")
    conn, resp = http_from(inst, "127.0.0.8")  # 127.0.0.8's own /metrics look
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode()
    assert resp.status == 200
    assert 'postgate_sessions{listener="http"} 4' in metrics.splitlines()
    conn.close()
    assert refused_per_ip(inst) - refused_before == 2  # the http one and the mx one
    # Connections that end give their places back.
    for c in held:
        c.close()
    wait_for(lambda: status_of(inst).get("http") == "0", what="status http=0")
    conn, resp = http_from(inst, "127.0.0.7")
    assert resp.status == 200
    conn.close()
    assert_clean_stop(inst)


def test_https_listener(mail_server):
    """tls = yes: the same documents over HTTPS, with the daemon's certificate."""
    inst = mail_server
    text = inst.config.read_text()
    text = re.sub(r"(\[listener http\]\nlisten = [^\n]*\n)", r"\1tls = yes\n", text)
    inst.config.write_text(text)
    inst.start()
    conn = http.client.HTTPSConnection("127.0.0.1", inst.port("http"), timeout=10,
                                       context=tls_context())
    conn.request("POST", "/autodiscover/autodiscover.xml",
                 body=AD_REQUEST.format(address="alice@example.test"))
    response = conn.getresponse()
    assert response.status == 200
    assert b"<Type>SMTP</Type>" in response.read()
    conn.close()
    # Plain HTTP on the TLS port is no request at all; the server goes on.
    assert raw_exchange(inst.port("http"), b"GET / HTTP/1.0\r\n\r\n")[:4] != b"HTTP"
    assert "protocol=https" in inst.log()
    assert_clean_stop(inst)


# ---------------------------------------------------------------- setup pages

def test_setup_index_only_when_allowed(mail_server):
    inst = mail_server
    text = inst.config.read_text()
    text = re.sub(r"(\[listener http\]\nlisten = [^\n]*\n)", r"\1setup_index = yes\n", text)
    inst.config.write_text(text)
    inst.start()
    inst.cli("domain", "add", "second.test")
    status, _, body = get(inst, "/setup/")
    assert status == 200
    assert b'href="/setup/example.test"' in body and b'href="/setup/second.test"' in body
    assert_clean_stop(inst)


def artifact_dir(tmp_path):
    out = tmp_path / "artifacts"
    out.mkdir(exist_ok=True)
    return out


def keep_artifact(path):
    """Copy to build-check/artifacts/ when the check run keeps artifacts."""
    dest = Path(__file__).resolve().parents[2] / "build-check" / "artifacts"
    if dest.is_dir():
        shutil.copy(path, dest / path.name)


def chromium(*args, timeout=120):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (scripts/deps.sh installs Debian's chromium)")
    home = Path(os.environ.get("TMPDIR", "/tmp"))
    proc = subprocess.run([binary, "--headless", "--disable-gpu", "--no-sandbox",
                           "--no-first-run", "--disable-dev-shm-usage",
                           f"--user-data-dir={home / ('chromium-%d' % os.getpid())}",
                           *args], capture_output=True, timeout=timeout,
                          env={**os.environ, "HOME": str(home)})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode()


def test_setup_page_in_chromium(mail_server, tmp_path):
    inst = mail_server
    inst.start()
    inst.cli("domain", "add", "shop.test", "--smtp-name", "out.shop.test",
             "--pop3-name", "in.shop.test")
    url = f"http://127.0.0.1:{inst.port('http')}/setup/shop.test"
    status, headers, raw = get(inst, "/setup/shop.test")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<script" not in raw
    assert b'name="viewport"' in raw and b"@media print" in raw
    dom = chromium("--dump-dom", url)
    text = re.sub(r"<[^>]+>", " ", dom)
    text = re.sub(r"\s+", " ", text)
    assert "Mail settings for shop.test" in text
    for name in ("Thunderbird", "Apple Mail", "Outlook for Windows and Microsoft 365",
                 "Gmail app on Android", "Any other mail program", "Outlook Express",
                 "Outlook 2002 and 2003", "Outlook 2007", "Windows Mail", "Netscape 6 and 7",
                 "Eudora 5 and 6", "Mac OS X Mail", "Entourage"):
        assert re.search(rf"<h3[^>]*>{re.escape(name)}", dom), name
    assert f"in.shop.test {inst.port('pop3s')} SSL/TLS" in text
    assert f"out.shop.test {inst.port('submissions')} SSL/TLS" in text
    assert f"out.shop.test {inst.port('submission')} STARTTLS" in text
    assert "smtp.example.test" not in text
    # Default listeners have the modern profile and no plaintext_auth: the
    # XP-era clients are told plainly that they cannot log in here.
    assert "Not possible with this server's current settings: Outlook Express (Windows XP) cannot" in text
    shots = artifact_dir(tmp_path)
    for label, size in (("desktop", "1280,2400"), ("phone", "390,3000")):
        shot = shots / f"setup-page-{label}.png"
        chromium(f"--screenshot={shot}", f"--window-size={size}", url)
        assert shot.stat().st_size > 10000, shot
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        keep_artifact(shot)
    assert_clean_stop(inst)


def test_setup_page_follows_a_legacy_configuration(mail_server):
    """With the guide's legacy setup (plaintext_auth on port 25 and on pop3),
    the XP-era cards give the listener that really serves them."""
    inst = mail_server
    text = inst.config.read_text()
    for name in ("mx", "pop3"):
        text = re.sub(rf"(\[listener {name}\]\nlisten = [^\n]*\n)",
                      r"\1tls_profile = legacy\nplaintext_auth = yes\n", text)
    inst.config.write_text(text)
    inst.start()
    status, _, raw = get(inst, "/setup/example.test")
    page = raw.decode()
    card = page[page.index('id="outlook-express"'):page.index('id="outlook-2003"')]
    assert "Not possible" not in card
    assert f"<td>{inst.port('mx')}</td>" in card and f"<td>{inst.port('pop3')}</td>" in card
    assert "password travels unencrypted" in card
    assert_clean_stop(inst)


# ---------------------------------------------------------------- domain show

def test_domain_show_agrees_with_the_documents(mail_server):
    import json
    inst = mail_server
    inst.start()
    inst.cli("domain", "add", "shop.test", "--smtp-name", "out.shop.test")
    shown = json.loads(inst.cli("domain", "show", "shop.test", "--json", "--dns").stdout)
    incoming, outgoing = autoconfig(inst, "x@shop.test")
    settings = shown["client_settings"]
    assert [("pop3", e["host"], e["port"], e["security"]) for e in settings["incoming"]] == incoming
    assert [("smtp", e["host"], e["port"], e["security"]) for e in settings["outgoing"]] == outgoing
    assert shown["domain"] == "shop.test" and shown["smtp_name"] == "out.shop.test"
    dns = shown["dns"]
    assert f"_submissions._tcp.shop.test. 3600 IN SRV 0 1 {inst.port('submissions')} out.shop.test." in dns
    assert f"_submission._tcp.shop.test. 3600 IN SRV 10 1 {inst.port('submission')} out.shop.test." in dns
    assert f"_pop3s._tcp.shop.test. 3600 IN SRV 0 1 {inst.port('pop3s')} pop.shop.test." in dns
    assert f"_pop3._tcp.shop.test. 3600 IN SRV 10 1 {inst.port('pop3')} pop.shop.test." in dns
    assert any(line.startswith("autoconfig.shop.test. ") for line in dns)
    assert any(line.startswith("_autodiscover._tcp.shop.test. ") for line in dns)
    text = inst.cli("domain", "show", "shop.test").stdout
    assert f"out.shop.test port {inst.port('submissions')}, SSL/TLS" in text
    assert "complete email address" in text
    zone = inst.cli("domain", "show", "shop.test", "--dns").stdout
    assert all(line in zone.splitlines() for line in dns)
    assert_clean_stop(inst)
