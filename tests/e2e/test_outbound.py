"""Outbound delivery against real parts: dnsmasq as the DNS, aiosmtpd as the
remote servers (tests/e2e/remote.py). An authenticated user sends through
submission; the message goes by MX (or a route, or the relayhost) to the
remote, which accepts, defers or rejects per recipient; deferrals wait in
deferred/ with their schedule in ID.state; failures come back as RFC 3464
DSNs in the sender's Maildir."""
import email
import email.policy
import re
import signal
import smtplib
import ssl
import subprocess

import pytest

from conftest import (DEMO_PASSWORD, assert_clean_stop, mailbox, start_mail, wait_delivered,
                      wait_for)
from remote import Dns, Remote, free_tcp_port_on, null_mx

ALICE = "alice@example.test"


def tls_client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submit(inst, rcpts, subject="hello", body="Hello from alice.\r\n", headers=""):
    msg = (f"From: Alice <{ALICE}>\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\n{headers}\r\n{body}")
    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10) as client:
        client.ehlo("pc")
        client.starttls(context=tls_client_context())
        client.ehlo("pc")
        client.login(ALICE, DEMO_PASSWORD)
        refused = client.sendmail(ALICE, rcpts, msg.encode())
        assert refused == {}
    return msg.encode()


@pytest.fixture
def world(workdir):
    """Two MX hosts for remote.test (127.0.0.2 pref 10, 127.0.0.3 pref 20) on
    one port; down.test whose first MX has no server; a null MX; an A-only
    domain; NXDOMAIN for the rest of .test."""
    port = free_tcp_port_on(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
    dns = Dns(workdir, [
        "mx-host=remote.test,mx1.remote.test,10",
        "mx-host=remote.test,mx2.remote.test,20",
        "host-record=mx1.remote.test,127.0.0.2",
        "host-record=mx2.remote.test,127.0.0.3",
        "mx-host=down.test,dead.down.test,5",
        "mx-host=down.test,mx2.remote.test,50",
        "host-record=dead.down.test,127.0.0.4",
        null_mx("nullmx.test"),
        "host-record=amx.test,127.0.0.5",
    ])
    remotes = {"mx1": Remote("127.0.0.2", port), "mx2": Remote("127.0.0.3", port),
               "a": Remote("127.0.0.5", port)}
    yield {"dns": dns, "port": port, **remotes}
    for r in remotes.values():
        r.stop()
    dns.stop()


def start(inst, world, **extra):
    config = {"dns_servers": world["dns"].server, "smtp_port": str(world["port"]),
              "retry_initial": "1s", "retry_max": "2s", "outbound_timeout_divisor": "50"}
    config.update(extra)
    return start_mail(inst, **config)


def wait_messages(remote, count, timeout=20, inst=None):
    try:
        return wait_for(lambda: remote.messages if len(remote.messages) >= count else None,
                        timeout=timeout, what=f"{count} message(s) at {remote.host}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{inst.log() if inst else ''}") from None


def spool(inst, place):
    return sorted(p.name for p in (inst.dir / "state" / "spool" / place).iterdir())


def parse_dsn(data):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    # The delivery-status body: per-message fields, then per-recipient groups.
    status_blocks = [b for b in parts[1].get_payload()]
    groups = [{k.lower(): v for k, v in blk.items()} for blk in status_blocks]
    return msg, groups, parts


def test_authenticated_user_mail_reaches_the_preferred_mx_with_headers_intact(mail_server, world):
    inst = start(mail_server, world)
    sent = submit(inst, ["bob@remote.test", "carol@remote.test"], subject="mx preference")
    [got] = wait_messages(world["mx1"], 1)
    assert world["mx2"].messages == []
    assert got.mail_from == ALICE
    assert sorted(got.rcpt_tos) == ["bob@remote.test", "carol@remote.test"]
    # Our trace header first, then the message exactly as submitted.
    assert got.data.startswith(b"Received: from pc")
    assert got.data.endswith(sent)
    inst.wait_log(r"delivery to=bob@remote.test via=smtp result=delivered .*relay=mx1.remote.test")
    wait_for(lambda: spool(inst, "queue") == [] and spool(inst, "deferred") == [],
             what="an empty spool")


def test_first_mx_down_second_is_used(mail_server, world):
    inst = start(mail_server, world)
    submit(inst, ["bob@down.test"], subject="first mx down")
    [got] = wait_messages(world["mx2"], 1)
    assert got.rcpt_tos == ["bob@down.test"]


def test_no_mx_falls_back_to_the_address_record(mail_server, world):
    inst = start(mail_server, world)
    submit(inst, ["x@amx.test"], subject="a fallback")
    [got] = wait_messages(world["a"], 1)
    assert got.rcpt_tos == ["x@amx.test"]


def test_mixed_outcomes_defer_then_retry_and_bounce(mail_server, world):
    inst = start(mail_server, world)
    sent = submit(inst, ["ok@remote.test", "defer@remote.test", "reject@remote.test"],
                  subject="mixed outcomes")
    [first] = wait_messages(world["mx1"], 1)
    assert first.rcpt_tos == ["ok@remote.test"]
    # The 550 comes back as a DSN to alice.
    [dsn] = wait_delivered(inst, ALICE, 1, timeout=20)
    msg, groups, parts = parse_dsn(dsn)
    assert msg["To"].addresses[0].addr_spec == ALICE
    assert "MAILER-DAEMON@" in msg["From"]
    per_message, *per_rcpt = groups
    assert per_message["reporting-mta"].startswith("dns; ")
    assert "arrival-date" in per_message
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["final-recipient"] == "rfc822; reject@remote.test"
    assert r["action"] == "failed"
    assert r["status"] == "5.1.1"
    assert r["remote-mta"] == "dns; mx1.remote.test"
    assert r["diagnostic-code"].startswith("smtp; 550 5.1.1")
    assert "last-attempt-date" in r
    # The whole (small) original comes back.
    assert parts[2].get_content_type() == "message/rfc822"
    assert b"Subject: mixed outcomes" in dsn
    # The deferred recipient: the message sits in deferred/ with its state.
    qid = re.search(r"qid=(\w+) delivery to=defer@remote.test via=smtp result=deferred",
                    inst.wait_log(r"delivery to=defer@remote.test via=smtp result=deferred")
                    .string).group(1)
    state = (inst.dir / "state" / "spool" / "deferred" / f"{qid}.state")
    text = wait_for(lambda: state.exists() and state.read_text(), what="ID.state in deferred/")
    assert re.search(r"^rcpt 0 delivered", text, re.M)
    assert re.search(r"^rcpt 1 pending 451\+204\.2\.0", text, re.M)
    assert re.search(r"^rcpt 2 failed 550", text, re.M)
    assert re.search(r"^next-attempt [1-9]\d*$", text, re.M)
    # The remote stops deferring: the retry delivers only that recipient.
    world["mx1"].handler.defer = False
    second = wait_messages(world["mx1"], 2, timeout=20)[1]
    assert second.rcpt_tos == ["defer@remote.test"]
    assert second.data.endswith(sent)
    wait_for(lambda: spool(inst, "deferred") == [], what="deferred/ to empty")
    assert len(mailbox(inst, ALICE)) == 1  # no second DSN


@pytest.mark.parametrize("rcpt, status", [("x@nullmx.test", "5.1.10"),
                                          ("x@nothere.test", "5.1.2")])
def test_null_mx_and_nxdomain_bounce(mail_server, world, rcpt, status):
    inst = start(mail_server, world)
    submit(inst, [rcpt], subject="no such domain")
    [dsn] = wait_delivered(inst, ALICE, 1, timeout=20)
    _, groups, parts = parse_dsn(dsn)
    assert groups[1]["final-recipient"] == f"rfc822; {rcpt}"
    assert groups[1]["action"] == "failed"
    assert groups[1]["status"] == status


def test_route_and_relayhost(mail_server, world):
    inst = mail_server
    inst.config.write_text(inst.config.read_text().replace(
        "[listener", f"route routed.test = 127.0.0.5:{world['port']}\n[listener", 1))
    start(inst, world, relayhost=f"127.0.0.3:{world['port']}")
    submit(inst, ["a@routed.test", "b@remote.test"], subject="routes")
    [via_route] = wait_messages(world["a"], 1)
    [via_relay] = wait_messages(world["mx2"], 1)
    assert via_route.rcpt_tos == ["a@routed.test"]
    assert via_relay.rcpt_tos == ["b@remote.test"]
    assert world["mx1"].messages == []


def test_restart_with_deferred_mail_loses_nothing_and_sends_nothing_twice(mail_server, world):
    inst = start(mail_server, world, retry_initial="3s")
    submit(inst, ["ok@remote.test", "defer@remote.test"], subject="restart")
    wait_messages(world["mx1"], 1)
    wait_for(lambda: any(n.endswith(".state") for n in spool(inst, "deferred")),
             what="a deferred message")
    inst.stop(signal.SIGKILL)
    world["mx1"].handler.defer = False
    inst.start()
    msgs = wait_messages(world["mx1"], 2, timeout=20)
    wait_for(lambda: spool(inst, "deferred") == [], what="deferred/ to empty")
    rcpts = sorted(r for m in world["mx1"].messages for r in m.rcpt_tos)
    assert rcpts == ["defer@remote.test", "ok@remote.test"]
    assert len(msgs) == 2


def test_starttls_to_a_remote_that_offers_it(mail_server, world, workdir):
    cert, key = workdir / "remote-cert.pem", workdir / "remote-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=tls.remote.test", "-addext",
                    "subjectAltName=DNS:tls.remote.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    port = world["port"]
    tls_remote = Remote("127.0.0.6", port, tls=ctx, require_starttls=True)
    try:
        inst = mail_server
        inst.config.write_text(inst.config.read_text().replace(
            "[listener", f"route tls.remote.test = 127.0.0.6:{port} tls=require\n[listener", 1))
        start(inst, world)
        submit(inst, ["x@tls.remote.test"], subject="tls")
        [got] = wait_messages(tls_remote, 1, inst=inst)
        assert got.tls
    finally:
        tls_remote.stop()
