"""The DSN extension (RFC 3461) on our SMTP server: advertised after EHLO,
its parameters checked (501 5.5.4 for a malformed one, the session goes on)
and kept in the message's envelope in the spool (docs/spool.md), where the
queue manager and the bounce code find them. Remote mail goes to a relayhost
that is down, so the message stays in the spool and its ID.env can be read
after the 250."""
import smtplib

from conftest import (DEMO_PASSWORD, SmtpRaw, assert_serves, free_port, parse_delivered,
                      queued_id, smtp_session, spool_texts, start_mail, wait_delivered,
                      wait_for)
from test_smtp_auth import tls_context

ALICE, BOB = "alice@example.test", "bob@example.test"
REMOTE = "friend@remote.example"


def spooled_envelope(inst, qid):
    """The lines of a message's ID.env, wherever in the spool it is."""
    spool = inst.dir / "state" / "spool"

    def find():
        for place in ("queue", "deferred", "hold"):
            try:
                return (spool / place / f"{qid}.env").read_text().splitlines()
            except FileNotFoundError:
                pass  # elsewhere, or being moved: looked for again
        return None
    return wait_for(find, what=f"{qid}.env in the spool")


def test_ehlo_advertises_dsn(mail_server):
    inst = start_mail(mail_server, relayhost=f"127.0.0.1:{free_port()}")
    with SmtpRaw(inst.port("mx"), strict=True) as s:
        r = s.cmd("EHLO client.example")
        assert r.code == 250 and "DSN" in r.lines[1:], r


def test_dsn_parameters_reach_the_envelope_of_a_held_message(mail_server):
    inst = start_mail(mail_server, relayhost=f"127.0.0.1:{free_port()}")
    with smtplib.SMTP_SSL("127.0.0.1", inst.port("submissions"), timeout=10,
                          context=tls_context()) as client:
        client.ehlo("pc.example")
        assert client.has_extn("dsn")
        client.login(ALICE, DEMO_PASSWORD)
        client.mail(ALICE, ["RET=HDRS", "ENVID=QQ+2B1+3D2"])
        assert client.rcpt(REMOTE, ["NOTIFY=SUCCESS,DELAY",
                                    "ORCPT=rfc822;Friend+2Btag@remote.example"])[0] == 250
        assert client.rcpt(BOB, ["NOTIFY=NEVER"])[0] == 250
        code, text = client.data(b"Subject: dsn\r\n\r\nwith DSN parameters\r\n")
        assert code == 250, text
        qid = text.decode().rsplit(" ", 1)[-1]
    # bob's copy is delivered; the remote recipient keeps the message spooled.
    [msg] = wait_delivered(inst, BOB, 1)
    assert parse_delivered(msg)["qid"] == qid
    env = spooled_envelope(inst, qid)
    assert "ret hdrs" in env
    assert "envid QQ+2B1+3D2" in env  # decoded "QQ+1=2", written as xtext again
    at = env.index(f"rcpt {REMOTE}")
    assert env[at + 1:at + 3] == ["orcpt rfc822;Friend+2Btag@remote.example",
                                  "notify success,delay"]
    at = env.index(f"rcpt {BOB}")
    assert env[at + 1] == "notify never"


def test_no_dsn_parameters_leave_the_envelope_without_them(mail_server):
    inst = start_mail(mail_server, relayhost=f"127.0.0.1:{free_port()}")
    with smtplib.SMTP_SSL("127.0.0.1", inst.port("submissions"), timeout=10,
                          context=tls_context()) as client:
        client.login(ALICE, DEMO_PASSWORD)
        client.sendmail(ALICE, [REMOTE], b"Subject: plain\r\n\r\nno DSN\r\n")
    [env] = wait_for(lambda: list(spool_texts(inst, ".env").values()),
                     what="the spooled envelope")
    lines = env.splitlines()
    assert "ret none" in lines
    assert not [l for l in lines if l.split(" ")[0] in ("envid", "orcpt", "notify")]


def test_malformed_dsn_parameters_get_501_and_the_session_goes_on(mail_server):
    inst = start_mail(mail_server, relayhost=f"127.0.0.1:{free_port()}")
    with smtp_session(inst) as s:
        for params in ("RET=BOTH", "RET=FULL RET=HDRS", "RET", "ENVID=" + "e" * 101,
                       "ENVID=a+2G", "ENVID=a+0Ab", "ENVID=x ENVID=y"):
            s.expect(f"MAIL FROM:<x@remote.example> {params}", 501, "5.5.4")
        s.expect("MAIL FROM:<x@remote.example> RET=FULL ENVID=" + "e" * 100, 250, "2.1.0")
        for params in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "NOTIFY=SUCCESS,",
                       "NOTIFY=FAILURE NOTIFY=DELAY", "ORCPT=x400;c+3Dus",
                       "ORCPT=rfc822;", "ORCPT=alice@example.test",
                       "ORCPT=utf-8;alice@example.test", "ORCPT=rfc822;a+C3+A9@x",
                       "ORCPT=rfc822;" + "o" * 494):
            s.expect(f"RCPT TO:<{ALICE}> {params}", 501, "5.5.4")
        s.expect(f"RCPT TO:<{ALICE}> NOTIFY=failure ORCPT=rfc822;" + "o" * 493, 250, "2.1.5")
        r = s.cmd("DATA")
        assert r.code == 354, r
        s.send(b"Subject: limits\r\n\r\nat the limits\r\n.\r\n")
        queued_id(s.reply())
    wait_delivered(inst, ALICE, 1)
    assert_serves(inst)


def test_utf8_orcpt_needs_smtputf8(mail_server):
    inst = start_mail(mail_server, relayhost=f"127.0.0.1:{free_port()}")
    with smtp_session(inst) as s:
        s.expect("MAIL FROM:<x@remote.example> SMTPUTF8", 250)
        s.send("RCPT TO:<alice@example.test> ORCPT=utf-8;j\u00f6rg@example.test\r\n"
               .encode())
        r = s.reply()
        assert r.code == 250, r
        s.expect(f"RCPT TO:<{BOB}> ORCPT=rfc822;j+C3+B6rg@example.test", 501, "5.5.4")
        r = s.cmd("DATA")
        assert r.code == 354, r
        s.send(b"Subject: utf8\r\n\r\nx\r\n.\r\n")
        queued_id(s.reply())
    wait_delivered(inst, ALICE, 1)
