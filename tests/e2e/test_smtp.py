"""The SMTP server on the mx listener (docs/smtp.md), end to end: the real
postgated, real clients (Python's smtplib, swaks) and raw sockets that send
exactly the bytes a test names. Every message that gets `250 ... queued as`
must reach the right Maildirs byte for byte; every refusal must deliver
nothing. Hostile input, limits and durability are in test_smtp_hostile.py.

Each test has its own instance (postgate init, free loopback ports) whose
accounts store holds conftest.MAIL_USERS and conftest.MAIL_ALIASES."""
import re
import shutil
import signal
import smtplib
import socket
import subprocess

import pytest

from conftest import (HOSTNAME, SmtpRaw, assert_enhanced, assert_serves, mailbox,
                      parse_delivered, queued_id, send_data, smtp_session, start_mail,
                      wait_delivered, wait_for)

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
SENDER = "sender@remote.example"
EHLO_KEYWORDS = ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES",
                 "SMTPUTF8", "CHUNKING", "DSN"]


# A message accepted: "queued" into the spool, or "delivered" straight into
# the local mailboxes (docs/decisions/0200).
ACCEPTED_RX = re.compile(r" smtp (?:queued|delivered) qid=")


def queued_log(inst, qid):
    """The daemon's log lines for a message accepted and delivered."""
    m = inst.wait_log(rf"info sid=\w+ smtp (queued|delivered) qid={qid} ")
    if m.group(1) == "queued":
        inst.wait_log(rf"info qid={qid} queue removed reason=done")


def delivered_log_count(inst, qid, rcpt):
    return len(re.findall(rf"info qid={qid} delivery to={re.escape(rcpt)} via=maildir "
                          rf"result=delivered ", inst.log()))


# ---------------------------------------------------------------- the dialogue

def test_greeting_ehlo_and_the_simple_commands(mail_server):
    inst = start_mail(mail_server)
    with SmtpRaw(inst.port("mx"), strict=True) as s:
        assert s.greeting.raw == f"220 {HOSTNAME} ESMTP\r\n".encode()
        r = s.cmd("EHLO client.example")
        # The host name, then the keywords (more may come with STARTTLS and
        # AUTH), each once.
        assert r.code == 250 and r.lines[0] == HOSTNAME, r
        assert set(EHLO_KEYWORDS) <= set(r.lines[1:]), r
        assert len(set(r.lines)) == len(r.lines), r
        r = s.cmd("HELO client.example")
        assert r.raw == f"250 {HOSTNAME}\r\n".encode()
        # Every other reply carries an enhanced status code (RFC 2034).
        for line, code in [("NOOP", 250), ("NOOP with some text", 250), ("RSET", 250),
                           ("VRFY alice@example.test", 252), ("VRFY nobody@example.test", 252),
                           ("EXPN list@example.test", 502), ("HELP", 214),
                           ("noop", 250), ("HeLp", 214), ("FROB", 500), ("", 500),
                           ("QUIT now", 501)]:
            r = s.cmd(line)
            assert r.code == code, (line, r)
            assert_enhanced(r)
        assert s.cmd("NOOP").lines == ["2.0.0 Ok"]
        # VRFY does not tell a user from a stranger (RFC 5321 3.5.3).
        assert s.cmd("VRFY alice").lines == s.cmd("VRFY nobody").lines
        assert s.cmd("EXPN list@example.test").lines[-1].startswith("5.5.1 ")
        help_reply = s.cmd("HELP")
        assert len(help_reply.lines) >= 2 and "MAIL" in help_reply.text
        assert s.cmd("FROB").lines == ["5.5.2 Command not recognized"]
        r = s.cmd("QUIT")
        assert r.code == 221 and r.lines == ["2.0.0 Bye"]
        assert s.is_closed()
    inst.wait_log(r"disconnect listener=mx reason=quit")


def test_ehlo_and_helo_need_a_name(mail_server):
    inst = start_mail(mail_server)
    with SmtpRaw(inst.port("mx"), strict=True) as s:
        for line in ("EHLO", "HELO", "EHLO two words", "EHLO caf\u00e9.example"):
            r = s.cmd(line)
            assert (r.code, r.lines[-1][:6]) == (501, "5.5.4 "), (line, r)
        # Bare Windows names and Mac .local names are served.
        for name in ("DESKTOP3507CDS", "macbook.local", "[127.0.0.1]"):
            assert s.cmd(f"EHLO {name}").code == 250


def test_sequence_errors(mail_server):
    inst = start_mail(mail_server)
    with SmtpRaw(inst.port("mx"), strict=True) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 503, "5.5.1")
        s.expect(f"RCPT TO:<{ALICE}>", 503, "5.5.1")
        s.expect("DATA", 503, "5.5.1")
        s.expect("EHLO client.example", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 503, "5.5.1")
        s.expect("DATA", 503, "5.5.1")
        s.expect(f"MAIL FROM:<{SENDER}>", 250, "2.1.0")
        s.expect(f"MAIL FROM:<{SENDER}>", 503, "5.5.1")  # nested
        # MAIL given, no valid recipient.
        s.expect("DATA", 554, "5.5.1")
        s.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")
        s.expect("DATA", 554, "5.5.1")
        s.expect("DATA extra", 501, "5.5.4")
        s.expect("QUIT", 221, "2.0.0")
    assert mailbox(inst, ALICE) == []
    assert not ACCEPTED_RX.search(inst.log())


def test_rset_and_ehlo_drop_the_transaction(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{BOB}>", 250)
        s.expect("RSET", 250, "2.0.0")
        s.expect("DATA", 503, "5.5.1")  # the transaction is gone
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{CAROL}>", 250)
        s.expect("EHLO client.example", 250)  # RFC 5321 4.1.4: resets too
        s.expect("DATA", 503, "5.5.1")
        qid = queued_id(send_data(s, SENDER, [ALICE], b"Subject: second\r\n\r\nhi\r\n"))
        s.expect("QUIT", 221)
    queued_log(inst, qid)
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == b"Subject: second\r\n\r\nhi\r\n"
    assert mailbox(inst, BOB) == [] and mailbox(inst, CAROL) == []


# ---------------------------------------------------------------- delivery

# Stuffed lines, empty lines, trailing spaces, a tab, a line of 998 octets,
# 8-bit text, and lines that look like the end of the data but are not.
TRICKY_LINES = [b"Subject: tricky\r\n", b"From: <sender@remote.example>\r\n", b"\r\n",
                b"..\r\n", b"..leading dot, stuffed\r\n", b"...two dots after unstuffing\r\n",
                b". \r\n", b".x\r\n", b"\r\n", b"trailing spaces   \r\n",
                b"\ttab first\r\n", b"x" * 998 + b"\r\n",
                "8-bit: gr\u00fc\u00dfe \u2603\r\n".encode(), b"last line\r\n"]


def unstuff(lines):
    return b"".join(line[1:] if line.startswith(b".") else line for line in lines)


def test_one_recipient_byte_exact_with_trace_headers_and_logs(mail_server):
    inst = start_mail(mail_server)
    sent = b"".join(TRICKY_LINES)
    with smtp_session(inst, helo="client.example") as s:
        s.expect(f"MAIL FROM:<{SENDER}> BODY=8BITMIME", 250, "2.1.0")
        s.expect(f"RCPT TO:<{ALICE}>", 250, "2.1.5")
        r = s.cmd("DATA")
        assert r.raw == b"354 End data with <CR><LF>.<CR><LF>\r\n"
        s.send(sent + b".\r\n")
        final = s.reply()
        qid = queued_id(final)
        assert final.raw == f"250 2.0.0 Ok: queued as {qid}\r\n".encode()
        s.expect("QUIT", 221)
    [msg] = wait_delivered(inst, ALICE, 1)
    d = parse_delivered(msg)
    assert d["body"] == unstuff(TRICKY_LINES)
    assert d["return_path"] == SENDER
    assert d["delivered_to"] == ALICE
    assert (d["helo"], d["ip"], d["by"], d["with"], d["qid"], d["for"]) == \
        ("client.example", "127.0.0.1", HOSTNAME, "ESMTP", qid, ALICE)
    # The Maildir name carries the queue ID and the exact size (S=).
    [path] = mailbox(inst, ALICE)
    assert f"_{qid}-" in path.name and path.name.endswith(f",S={len(msg)}")
    assert path.parent.name == "new"
    queued_log(inst, qid)
    size = len(unstuff(TRICKY_LINES))
    inst.wait_log(rf"smtp (?:queued|delivered) qid={qid} from=<{re.escape(SENDER)}> rcpts=1 bytes={size}\n")
    assert delivered_log_count(inst, qid, ALICE) == 1
    # Nothing is left in the spool.
    spool = inst.dir / "state" / "spool"
    assert [p for d in ("tmp", "queue", "deferred") for p in (spool / d).iterdir()] == []


def test_empty_message_and_null_sender(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect("MAIL FROM:<>", 250, "2.1.0")
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        assert s.cmd("DATA").code == 354
        s.send(b".\r\n")  # the data starts right after DATA's CRLF
        qid = queued_id(s.reply())
    [msg] = wait_delivered(inst, ALICE, 1)
    d = parse_delivered(msg)
    assert (d["return_path"], d["qid"], d["body"]) == ("", qid, b"")


def test_many_recipients_one_copy_each(mail_server):
    inst = start_mail(mail_server)
    body = b"Subject: to three\r\n\r\nsame bytes for everyone\r\n"
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        for rcpt in (ALICE, "Bob@Example.TEST", CAROL, "ALICE@example.test"):
            s.expect(f"RCPT TO:<{rcpt}>", 250, "2.1.5")
        s.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")
        assert s.cmd("DATA").code == 354
        s.send(body + b".\r\n")
        qid = queued_id(s.reply())
    queued_log(inst, qid)
    for rcpt in (ALICE, BOB, CAROL):
        [msg] = wait_delivered(inst, rcpt, 1)
        d = parse_delivered(msg)
        assert d["body"] == body and d["qid"] == qid and d["delivered_to"] == rcpt
        # No `for` clause: a copy must not reveal the other recipients.
        assert d["for"] is None
        assert delivered_log_count(inst, qid, rcpt) == 1
    inst.wait_log(rf"smtp (?:queued|delivered) qid={qid} from=<{re.escape(SENDER)}> rcpts=3 ")


def test_several_messages_in_one_session(mail_server):
    inst = start_mail(mail_server)
    qids = []
    with smtp_session(inst) as s:
        for i in range(5):
            qids.append(queued_id(send_data(s, SENDER, [BOB], f"Subject: {i}\r\n\r\n{i}\r\n"
                                            .encode())))
        s.expect("QUIT", 221)
    assert len(set(qids)) == 5
    msgs = wait_delivered(inst, BOB, 5)
    got = {parse_delivered(m)["qid"]: parse_delivered(m)["body"] for m in msgs}
    assert got == {q: f"Subject: {i}\r\n\r\n{i}\r\n".encode() for i, q in enumerate(qids)}


def test_alias_delivers_to_each_target_once(mail_server):
    inst = start_mail(mail_server)
    body = b"Subject: list\r\n\r\nto the list\r\n"
    with smtp_session(inst) as s:
        # team -> list (-> alice, bob), alice, carol; and alice named again.
        qid = queued_id(send_data(s, SENDER, ["team@example.test", "list@example.test", ALICE],
                                  body))
    queued_log(inst, qid)
    for rcpt in (ALICE, BOB, CAROL):
        [msg] = wait_delivered(inst, rcpt, 1)
        d = parse_delivered(msg)
        assert d["body"] == body and d["delivered_to"] == rcpt
        assert delivered_log_count(inst, qid, rcpt) == 1


def test_source_routes_and_quoted_senders(mail_server):
    """RFC 5321 4.1.2 and C: a source route is accepted and dropped; a quoted
    local part is kept as sent in Return-Path."""
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect('MAIL FROM:<@hop1.example,@hop2.example:"john doe"@remote.example>', 250)
        s.expect("RCPT TO:<@relay.example:alice@example.test>", 250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(b"Subject: routed\r\n\r\nrouted\r\n.\r\n")
        qid = queued_id(s.reply())
    [msg] = wait_delivered(inst, ALICE, 1)
    d = parse_delivered(msg)
    assert (d["return_path"], d["delivered_to"], d["qid"]) == \
        ('"john doe"@remote.example', ALICE, qid)


def test_postmaster_without_domain_is_accepted(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect("MAIL FROM:<>", 250)
        s.expect("RCPT TO:<Postmaster>", 250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(b"Subject: pm\r\n\r\nhello postmaster\r\n.\r\n")
        queued_id(s.reply())
    [msg] = wait_delivered(inst, ALICE, 1)  # postmaster@example.test -> alice
    assert parse_delivered(msg)["body"].endswith(b"hello postmaster\r\n")


def test_recipient_refusals(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect("RCPT TO:<nobody@example.test>", 550, "5.1.1")
        s.expect("RCPT TO:<someone@elsewhere.example>", 554, "5.7.1")
        s.expect("RCPT TO:<someone@[192.0.2.1]>", 554, "5.7.1")
        s.expect("RCPT TO:<loopa@example.test>", 550, "5.4.6")
        s.expect("RCPT TO:<dave@example.test>", 550, "5.2.1")
        s.expect("RCPT TO:<\"quoted local\"@example.test>", 550, "5.1.1")
        s.expect("RCPT TO:<no-domain>", 501)
        s.expect("RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS", 501, "5.5.4")
        s.expect("RCPT TO:<alice@example.test> FROB=1", 555, "5.5.4")
        s.expect("DATA", 554, "5.5.1")
    log = inst.log()
    assert re.search(r"smtp rcpt refused to=nobody@example.test reason=unknown", log)
    assert re.search(r"smtp rcpt refused to=someone@elsewhere.example reason=relay", log)
    assert re.search(r"smtp rcpt refused to=loopa@example.test reason=alias-loop", log)
    assert not ACCEPTED_RX.search(log)
    assert_serves(inst)


def test_mail_parameters(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        for params, code in [("SIZE=52428800", 250), ("SIZE=52428801", 552),
                             ("BODY=7BIT", 250), ("BODY=8BITMIME", 250),
                             ("BODY=BINARYMIME", 555), ("RET=FULL", 250),
                             ("ENVID=x", 250), ("FROB=1", 555), ("SIZE=x", 501),
                             ("AUTH=<>", 250)]:
            r = s.cmd(f"MAIL FROM:<{SENDER}> {params}")
            assert r.code == code, (params, r)
            assert_enhanced(r)
            s.expect("RSET", 250)
        r = s.cmd(f"MAIL FROM:<{SENDER}> SIZE=52428801")
        assert r.lines == ["5.3.4 Message size exceeds fixed maximum message size"]
        # Sizes past 2**64 must not wrap round to something small.
        for size in ("18446744073709551616", "18446744073709551617", "9" * 40):
            r = s.cmd(f"MAIL FROM:<{SENDER}> SIZE={size}")
            assert r.code in (501, 552), (size, r)
        # Old clients leave out the angle brackets.
        s.expect(f"MAIL FROM:{SENDER}", 250, "2.1.0")


def test_helo_session_uses_smtp_and_refuses_parameters(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst, helo="oldclient", ehlo=False) as s:
        s.expect(f"MAIL FROM:<{SENDER}> SIZE=10", 555, "5.5.4")
        s.expect(f"MAIL FROM:<{SENDER}> RET=HDRS", 555, "5.5.4")
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}> NOTIFY=NEVER", 555, "5.5.4")
        s.expect("RSET", 250)
        qid = queued_id(send_data(s, SENDER, [ALICE], b"Subject: old\r\n\r\nplain\r\n"))
    [msg] = wait_delivered(inst, ALICE, 1)
    d = parse_delivered(msg)
    assert (d["helo"], d["with"], d["qid"]) == ("oldclient", "SMTP", qid)


def test_max_recipients(mail_server):
    inst = start_mail(mail_server, max_recipients=3)
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        for rcpt in (ALICE, BOB, CAROL):
            s.expect(f"RCPT TO:<{rcpt}>", 250)
        s.expect("RCPT TO:<list@example.test>", 452, "4.5.3")
        assert s.cmd("DATA").code == 354
        s.send(b"Subject: three\r\n\r\nthree\r\n.\r\n")
        qid = queued_id(s.reply())
    queued_log(inst, qid)
    for rcpt in (ALICE, BOB, CAROL):
        wait_delivered(inst, rcpt, 1)


# ---------------------------------------------------------------- pipelining

def test_pipelining_replies_in_order(mail_server):
    inst = start_mail(mail_server)
    body1 = b"Subject: piped 1\r\n\r\none\r\n"
    body2 = b"Subject: piped 2\r\n\r\ntwo\r\n"
    with smtp_session(inst) as s:
        s.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<nobody@example.test>\r\n"
               f"RCPT TO:<{BOB}>\r\nDATA\r\n")
        assert [s.reply().code for _ in range(5)] == [250, 250, 550, 250, 354]
        # The data, its end and the whole next transaction in one write.
        s.send(body1 + b".\r\n" + f"RSET\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{CAROL}>\r\n"
               f"DATA\r\n".encode())
        qid1 = queued_id(s.reply())
        assert [s.reply().code for _ in range(4)] == [250, 250, 250, 354]
        s.send(body2 + b".\r\nNOOP\r\nQUIT\r\n")
        qid2 = queued_id(s.reply())
        assert s.reply().code == 250
        assert s.reply().code == 221
        assert s.is_closed()
    for rcpt in (ALICE, BOB):
        [msg] = wait_delivered(inst, rcpt, 1)
        assert parse_delivered(msg)["body"] == body1
        assert parse_delivered(msg)["qid"] == qid1
    [msg] = wait_delivered(inst, CAROL, 1)
    assert parse_delivered(msg)["body"] == body2 and parse_delivered(msg)["qid"] == qid2


def test_whole_session_in_one_write(mail_server):
    """A client that does not wait at all (not even for 354) still gets every
    reply in order and its message delivered once."""
    inst = start_mail(mail_server)
    body = b"Subject: impatient\r\n\r\nall at once\r\n"
    with SmtpRaw(inst.port("mx"), greet=False, strict=True) as s:
        s.send(b"EHLO fast.example\r\nMAIL FROM:<" + SENDER.encode() + b">\r\n"
               b"RCPT TO:<" + ALICE.encode() + b">\r\nDATA\r\n" + body + b".\r\nQUIT\r\n")
        assert s.reply().code == 220
        codes = [s.reply().code for _ in range(4)]
        assert codes == [250, 250, 250, 354]
        qid = queued_id(s.reply())
        assert s.reply().code == 221
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == body and parse_delivered(msg)["qid"] == qid


def test_data_split_at_every_octet(mail_server):
    """The end of the data and a dot-stuffed line arrive one octet per write."""
    inst = start_mail(mail_server)
    sent = b"Subject: slow\r\n\r\n..dot\r\n.\r\n"
    with smtp_session(inst) as s:
        s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        assert s.cmd("DATA").code == 354
        for i in range(len(sent)):
            s.send(sent[i:i + 1])
        qid = queued_id(s.reply())
        s.expect("NOOP", 250)
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == b"Subject: slow\r\n\r\n.dot\r\n"
    assert parse_delivered(msg)["qid"] == qid


# ---------------------------------------------------------------- real clients

def test_smtplib_sendmail(mail_server):
    inst = start_mail(mail_server)
    msg = (b"From: <sender@remote.example>\r\nTo: list@example.test\r\n"
           b"Subject: from smtplib\r\n\r\n.starts with a dot\r\nend\r\n")
    with smtplib.SMTP("127.0.0.1", inst.port("mx"), local_hostname="py.example",
                      timeout=10) as c:
        code, text = c.ehlo()
        assert code == 250 and c.has_extn("pipelining") and c.has_extn("smtputf8")
        assert c.has_extn("size") and c.esmtp_features["size"] == "52428800"
        refused = c.sendmail(SENDER, ["list@example.test", CAROL, "nobody@example.test"], msg)
        assert list(refused) == ["nobody@example.test"]
        assert refused["nobody@example.test"][0] == 550
    for rcpt in (ALICE, BOB, CAROL):
        [got] = wait_delivered(inst, rcpt, 1)
        d = parse_delivered(got)
        assert d["body"] == msg and d["helo"] == "py.example"


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_with_pipelining(mail_server):
    inst = start_mail(mail_server)
    proc = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(inst.port("mx")), "--pipeline",
         "--helo", "swaks.example", "--from", SENDER, "--to", f"{ALICE},{BOB}",
         "--header", "Subject: from swaks", "--body", "hello from swaks", "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"<-\s+250 2\.0\.0 Ok: queued as (\w+)", proc.stdout)
    assert m, proc.stdout
    for rcpt in (ALICE, BOB):
        [got] = wait_delivered(inst, rcpt, 1)
        d = parse_delivered(got)
        assert d["qid"] == m.group(1) and b"hello from swaks\r\n" in d["body"]
        assert d["helo"] == "swaks.example"


# ---------------------------------------------------------------- SMTPUTF8

def test_smtputf8(mail_server):
    inst = start_mail(mail_server)
    body = "Subject: gr\u00fc\u00dfe\r\n\r\nf\u00fcr dich \u2603\r\n".encode()
    with smtp_session(inst) as s:
        s.expect("MAIL FROM:<\u00fc@example.org> SMTPUTF8 BODY=8BITMIME", 250, "2.1.0")
        s.expect(f"RCPT TO:<{ALICE}>", 250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(body + b".\r\n")
        qid = queued_id(s.reply())
        # Without SMTPUTF8: 550 at MAIL, 553 at RCPT (RFC 6531 3.5).
        s.expect("MAIL FROM:<\u00fc@example.org>", 550, "5.6.7")
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect("RCPT TO:<j\u00fcrgen@example.test>", 553, "5.6.7")
        s.expect("RSET", 250)
        # With it, an unknown UTF-8 local part is just unknown.
        s.expect(f"MAIL FROM:<{SENDER}> SMTPUTF8", 250)
        s.expect("RCPT TO:<j\u00fcrgen@example.test>", 550, "5.1.1")
    [msg] = wait_delivered(inst, ALICE, 1)
    d = parse_delivered(msg)
    assert d["return_path"] == "\u00fc@example.org"
    assert (d["with"], d["qid"], d["body"]) == ("UTF8SMTP", qid, body)


# ---------------------------------------------------------------- SIZE

def test_size_limit_at_the_exact_boundary(mail_server):
    """max_message_size counts the message as sent, after dot-unstuffing,
    without the headers the server adds."""
    inst = start_mail(mail_server, max_message_size="2K")
    limit = 2048
    with smtp_session(inst) as s:
        assert f"SIZE {limit}" in s.cmd("EHLO again.example").lines
        s.expect(f"MAIL FROM:<{SENDER}> SIZE={limit + 1}", 552, "5.3.4")
        s.expect(f"MAIL FROM:<{SENDER}> SIZE={limit}", 250, "2.1.0")
        s.expect("RSET", 250)

        def message(size, tag):
            head = f"Subject: {tag}\r\n\r\n".encode()
            # One stuffed line: the stuffing dot is not counted.
            stuffed = b"..stuffed\r\n"
            fill = size - len(head) - (len(stuffed) - 1)
            lines = b"y" * 98 + b"\r\n"
            text = lines * (fill // 100) + b"y" * (fill % 100 - 2) + b"\r\n"
            return head + stuffed + text, head + stuffed[1:] + text

        sent, exact = message(limit, "exact")
        assert len(exact) == limit
        qid = queued_id(send_data(s, SENDER, [ALICE], sent))
        sent_big, big = message(limit + 1, "over")
        assert len(big) == limit + 1
        r = send_data(s, SENDER, [BOB], sent_big)
        assert (r.code, r.lines) == (552, ["5.3.4 Message size exceeds fixed maximum "
                                           "message size"])
        # The session goes on.
        s.expect("NOOP", 250)
        qid2 = queued_id(send_data(s, SENDER, [CAROL], b"Subject: small\r\n\r\nok\r\n"))
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == exact and parse_delivered(msg)["qid"] == qid
    inst.wait_log(rf"smtp (?:queued|delivered) qid={qid} .* bytes={limit}\n")
    wait_delivered(inst, CAROL, 1)
    queued_log(inst, qid2)
    assert mailbox(inst, BOB) == []
    assert len(ACCEPTED_RX.findall(inst.log())) == 2
    assert re.search(r"smtp message refused reason=too_big", inst.log())


# ---------------------------------------------------------------- BDAT (RFC 3030)

def test_bdat_chunks_delivered_byte_exact(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        s.send(b"BDAT 5\r\nhello")
        r = s.reply()
        assert r.raw == b"250 2.0.0 5 octets received\r\n"
        s.send(b"BDAT 0 LAST\r\n")
        qid = queued_id(s.reply())
        # No dot stuffing in BDAT: a line "." and ".." are message text.
        chunk1 = b"Subject: chunks\r\n\r\n.\r\n..two\r\n"
        chunk2 = b"\r\n.\r\nMAIL FROM:<x@y>\r\nlast line\r\n"
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{BOB}>", 250)
        s.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        assert s.reply().raw == b"250 2.0.0 %d octets received\r\n" % len(chunk1)
        s.send(b"bdat %d last\r\n" % len(chunk2) + chunk2)
        qid2 = queued_id(s.reply())
        s.expect("NOOP", 250)
        # RSET between chunks drops the message; its spool file goes.
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{CAROL}>", 250)
        s.send(b"BDAT 7\r\ndropped")
        assert s.reply().code == 250
        s.expect("RSET", 250, "2.0.0")
        s.send(b"BDAT 0 LAST\r\n")
        r = s.reply()
        assert (r.code, r.lines[-1][:6]) == (503, "5.5.1 "), r
    wait_for(lambda: not any((inst.dir / "state" / "spool" / "tmp").iterdir()),
             what="spool/tmp to be emptied")
    [msg] = wait_delivered(inst, ALICE, 1)
    d = parse_delivered(msg)
    assert (d["qid"], d["body"]) == (qid, b"hello")
    [msg] = wait_delivered(inst, BOB, 1)
    d = parse_delivered(msg)
    assert (d["qid"], d["body"]) == (qid2, chunk1 + chunk2)
    assert mailbox(inst, CAROL) == []
    assert len(ACCEPTED_RX.findall(inst.log())) == 2


def test_bdat_limit_exact_and_over(mail_server):
    inst = start_mail(mail_server, max_message_size="1K")
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        line = b"z" * 510 + b"\r\n"  # 512
        s.send(b"BDAT 512\r\n" + line)
        assert s.reply().code == 250
        s.send(b"BDAT 512 LAST\r\n" + line)
        qid = queued_id(s.reply())
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{BOB}>", 250)
        s.send(b"BDAT 512\r\n" + line)
        assert s.reply().code == 250
        s.send(b"BDAT 513 LAST\r\n" + line + b"z")
        s_r = s.reply()
        assert s_r.code == 552 and s_r.lines[-1].startswith("5.3.4 "), s_r
        s.expect("NOOP", 250)
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == line * 2 and parse_delivered(msg)["qid"] == qid
    assert mailbox(inst, BOB) == []


def test_bdat_outside_a_transaction_is_read_then_refused(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        # The chunk holds what would be commands: they must not run.
        chunk = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nNOOP\r\n".encode()
        s.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
        r = s.reply()
        assert r.code == 503 and r.lines[-1].startswith("5.5.1 "), r
        assert s.reply().code == 250  # the NOOP after the chunk, and nothing else
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.send(b"BDAT 3\r\nabcNOOP\r\n")  # no recipient yet
        r = s.reply()
        assert r.code == 554 and r.lines[-1].startswith("5.5.1 "), r
        assert s.reply().code == 250
        # A bad size cannot be skipped: the server closes.
        r = s.cmd("BDAT x")
        assert (r.code, r.lines[-1][:6]) == (501, "5.5.4 ")
        assert s.is_closed()
    assert mailbox(inst, ALICE) == []
    assert not ACCEPTED_RX.search(inst.log())
    assert_serves(inst)


def test_bdat_with_bare_lf_is_refused(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        chunk = b"Subject: x\r\n\r\nbare\nlf\r\n"
        s.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = s.reply()
        assert r.code == 550 and r.lines[-1].startswith("5.6.11 "), r
        # Without LAST too; the transaction is over (RFC 3030 4.2).
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        chunk = b"bare\rcr\r\n"
        s.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        r = s.reply()
        assert r.code == 550 and r.lines[-1].startswith("5.6.11 "), r
        s.send(b"BDAT 0 LAST\r\n")
        r = s.reply()
        assert r.code == 503, r
        s.expect("NOOP", 250)
    assert mailbox(inst, ALICE) == []
    assert not ACCEPTED_RX.search(inst.log())
    assert_serves(inst)


# ---------------------------------------------------------------- shutdown

def test_sigterm_says_goodbye_to_idle_sessions_and_finishes_busy_ones(mail_server):
    """On SIGTERM an idle session gets 421 at once; one in the middle of a
    transaction finishes it (and its message is durable) before the 421."""
    inst = mail_server
    inst.start()
    idle = smtp_session(inst)
    busy = smtp_session(inst)
    busy.expect("MAIL FROM:<a@remote.example>", 250, "2.1.0")
    busy.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
    assert busy.cmd("DATA").code == 354
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    inst.proc.send_signal(signal.SIGTERM)
    r = idle.reply()
    assert (r.code, r.lines[-1]) == (421, f"4.3.2 {HOSTNAME} Service shutting down")
    assert idle.is_closed()
    busy.send(b"second half\r\n.\r\n")
    queued_id(busy.reply())
    r = busy.reply()
    assert r.code == 421
    assert busy.is_closed()
    assert inst.stop(timeout=20) == 0
    # Delivered before the exit, or at the next start from the spool.
    inst.start()
    body = parse_delivered(wait_delivered(inst, "bob@example.test", 1)[0])["body"]
    assert body == b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"
    idle.close()
    busy.close()
