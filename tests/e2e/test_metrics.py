"""/metrics on the http listener (docs/http.md, Metrics): the Prometheus text
format 0.0.4, counters that move with real traffic (a message through
submission with AUTH, a failed login, TLS 1.3 handshakes, an open session),
and 403 for a client metrics_allow does not name."""
import http.client
import re
import smtplib
import socket
import ssl

from conftest import DEMO_PASSWORD, set_global_key, wait_delivered, wait_for

ALICE, BOB = "alice@example.test", "bob@example.test"

HELP_RX = re.compile(r"# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+")
TYPE_RX = re.compile(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)")
SAMPLE_RX = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,|(?=\})))*)\})?'
    r' (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)')
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def fetch(inst, source="127.0.0.1", path="/metrics"):
    conn = http.client.HTTPConnection("127.0.0.1", inst.port("http"), timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    finally:
        conn.close()


def parse(text):
    """{(name, frozenset(labels)): value}; every line must be in the format."""
    samples = {}
    declared = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if HELP_RX.fullmatch(line):
            continue
        m = TYPE_RX.fullmatch(line)
        if m:
            declared.add(m.group(1))
            continue
        m = SAMPLE_RX.fullmatch(line)
        assert m, f"not in the exposition format: {line!r}"
        name = m.group(1)
        assert any(name == f or name.startswith(f + "_") for f in declared), line
        labels = frozenset(LABEL_RX.findall(m.group(2) or ""))
        key = (name, labels)
        assert key not in samples, f"duplicate series: {line!r}"
        samples[key] = float(m.group(3))
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(inst):
    status, ctype, body = fetch(inst)
    assert status == 200, body
    assert ctype.startswith("text/plain; version=0.0.4")
    return parse(body)


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def test_metrics_move_with_traffic(mail_server):
    inst = mail_server
    inst.start()
    before = scrape(inst)
    assert value(before, "postgate_up") == 1
    assert value(before, "postgate_start_time_seconds") > 1.6e9
    tls13 = dict(listener="submission", version="TLSv1.3")

    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10) as c:
        c.starttls(context=tls_context())
        c.login(ALICE, DEMO_PASSWORD)
        c.sendmail(ALICE, [BOB], f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: m\r\n\r\nhi\r\n")
    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10) as c:
        c.starttls(context=tls_context())
        try:
            c.login(ALICE, "not the password")
            raise AssertionError("login with a wrong password succeeded")
        except smtplib.SMTPAuthenticationError:
            pass
    wait_delivered(inst, BOB, 1)

    # An open mx session shows in the gauge.
    with socket.create_connection(("127.0.0.1", inst.port("mx")), timeout=10) as s:
        assert s.makefile("rb").readline().startswith(b"220")
        wait_for(lambda: value(scrape(inst), "postgate_sessions", listener="mx") >= 1,
                 what="mx session in the gauge")
        after = scrape(inst)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("postgate_messages_accepted_total", listener="submission") == 1
    assert moved("postgate_deliveries_total", result="delivered", via="maildir") == 1
    assert moved("postgate_delivery_seconds_count") == 1
    assert value(after, "postgate_delivery_seconds_bucket", le="+Inf") == \
        value(after, "postgate_delivery_seconds_count")
    assert moved("postgate_auth_total", listener="submission", mechanism="PLAIN",
                 result="ok") == 1
    assert moved("postgate_auth_total", listener="submission", mechanism="PLAIN",
                 result="failed") == 1
    assert moved("postgate_tls_handshakes_total", **tls13) == 2
    assert value(after, "postgate_sessions", listener="mx") == 1
    for place in ("queue", "deferred", "hold"):
        assert ("postgate_queue_messages", frozenset({("place", place)})) in after
    # Buckets are cumulative.
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in after.items()
                     if k[0] == "postgate_delivery_seconds_bucket")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)


def test_metrics_refused_outside_metrics_allow(mail_server):
    inst = mail_server
    set_global_key(inst, "metrics_allow", "127.0.0.1/32")
    inst.start()
    status, _, body = fetch(inst, source="127.0.0.2")
    assert status == 403, body
    assert "postgate_" not in body
    status, _, body = fetch(inst, source="127.0.0.1")
    assert status == 200
    parse(body)


def failed_login(inst, source, password):
    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30,
                      source_address=(source, 0)) as c:
        c.starttls(context=tls_context())
        c.ehlo()
        c.user, c.password = ALICE, password
        try:  # PLAIN alone: c.login would try LOGIN after it, a second attempt
            c.auth("PLAIN", c.auth_plain)
            raise AssertionError("login with a wrong password succeeded")
        except smtplib.SMTPAuthenticationError:
            pass


def test_metrics_throttled_clients(mail_server):
    """Past the throttle's free failures (3, docs/auth.md) an address is
    delayed: it shows in postgate_auth_throttled_clients, and the delayed
    reply in postgate_auth_throttle_delayed_total; another address that
    failed within its free ones does not count."""
    inst = mail_server
    inst.start()
    before = scrape(inst)
    assert value(before, "postgate_auth_throttled_clients") == 0
    for n in range(3):
        failed_login(inst, "127.0.0.5", f"wrong {n}")
    failed_login(inst, "127.0.0.6", "wrong once")
    middle = scrape(inst)
    assert value(middle, "postgate_auth_throttled_clients") == 0
    assert value(middle, "postgate_auth_throttle_delayed_total") == \
        value(before, "postgate_auth_throttle_delayed_total")
    failed_login(inst, "127.0.0.5", "wrong 3")  # the fourth: delayed 1 s
    after = scrape(inst)
    assert value(after, "postgate_auth_throttled_clients") == 1
    assert value(after, "postgate_auth_throttle_delayed_total") - \
        value(before, "postgate_auth_throttle_delayed_total") == 1
    status = inst.cli("status").stdout
    assert re.search(r"^auth throttled clients:\s+1$", status, re.M), status
