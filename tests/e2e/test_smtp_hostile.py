"""The SMTP server against hostile and broken clients, its limits, and its
durability (docs/smtp.md, docs/spool.md): SMTP smuggling, bare CR/LF and NUL,
over-long lines, too many errors, oversized messages, kill -9 around the
`250 ... queued as` reply, a full disk. After each attack the server must
still greet a new connection and deliver a message, and the mailboxes must
hold exactly the messages that got 250.

Raw sockets throughout: the point is to send bytes no polite client sends."""
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (assert_clean_stop, assert_serves, is_root, mailbox, smtp_raw,
                      parse_delivered, queued_id, send_data, smtp_session, start_mail,
                      wait_delivered, wait_for)

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
SENDER = "sender@remote.example"


def spool_files(inst, sub):
    d = inst.dir / "state" / "spool" / sub
    try:
        return sorted(p.name for p in d.iterdir())
    except FileNotFoundError:
        return []


def queued_count(inst):
    return len(re.findall(r" smtp (?:queued|delivered) qid=", inst.log()))


def open_transaction(s, rcpts=(ALICE,)):
    s.expect(f"MAIL FROM:<{SENDER}>", 250)
    for rcpt in rcpts:
        s.expect(f"RCPT TO:<{rcpt}>", 250)
    r = s.cmd("DATA")
    assert r.code == 354, r


def assert_refused(reply, code, enhanced):
    assert reply.code == code and reply.lines[-1].startswith(enhanced + " "), reply


# ---------------------------------------------------------------- SMTP smuggling

SMUGGLED = (b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
            b"From: <ceo@example.test>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n")

# A false end of data, then what looks like a second transaction, then the
# real <CRLF>.<CRLF>.
SMUGGLING_ENDS = {
    "lf.lf": b"\n.\n",
    "cr.cr": b"\r.\r",
    "lf.crlf": b"\n.\r\n",
    "crlf.lf": b"\r\n.\n",
    "cr.crlf": b"\r.\r\n",
    "crlf.cr": b"\r\n.\r",
    "crlf.cr.lf.lf": b"\r\n.\r\r\n",
}


@pytest.mark.parametrize("false_end", SMUGGLING_ENDS.values(), ids=SMUGGLING_ENDS.keys())
def test_smuggling_is_refused_and_delivers_nothing(mail_server, false_end):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        open_transaction(s)
        s.send(b"Subject: first\r\n\r\nfirst part" + false_end + SMUGGLED + b".\r\n")
        assert_refused(s.reply(), 550, "5.6.11")
        # Exactly one reply came for all of it: the next one is the NOOP's.
        r = s.cmd("NOOP")
        assert r.lines == ["2.0.0 Ok"], r
        # A normal message in the same session still works.
        body = b"Subject: honest\r\n\r\nhonest\r\n"
        qid = queued_id(send_data(s, SENDER, [ALICE], body))
        s.expect("QUIT", 221)
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == body and parse_delivered(msg)["qid"] == qid
    assert mailbox(inst, BOB) == []
    assert queued_count(inst) == 1
    assert re.search(r"smtp message refused reason=bare_(lf|cr)", inst.log())
    assert_serves(inst)
    assert mailbox(inst, BOB) == []
    assert_clean_stop(inst)


def test_smuggling_split_across_writes(mail_server):
    """The false end arrives octet by octet, the real one too."""
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        open_transaction(s)
        payload = b"Subject: x\r\n\r\nx\n.\r\n" + SMUGGLED + b".\r\n"
        for i in range(len(payload)):
            s.send(payload[i:i + 1])
        assert_refused(s.reply(), 550, "5.6.11")
        s.expect("NOOP", 250)
    assert_serves(inst)
    assert mailbox(inst, ALICE) == [] and mailbox(inst, BOB) == []
    assert_clean_stop(inst)
    assert queued_count(inst) == 1  # assert_serves's own message


def test_nul_in_data_is_refused(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        open_transaction(s)
        s.send(b"Subject: nul\r\n\r\nbefore\x00after\r\n.\r\n")
        assert_refused(s.reply(), 550, "5.6.0")
        s.expect("NOOP", 250)
    assert mailbox(inst, ALICE) == []
    assert queued_count(inst) == 0
    assert_serves(inst)
    assert_clean_stop(inst)


# ---------------------------------------------------------------- command lines

def test_bad_command_lines_get_500_and_the_session_goes_on(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        for bad in (b"NOOP\n", b"NO\rOP\r\n", b"NOOP\r\r\n", b"NO\x00OP\r\n",
                    b"MAIL FROM:<a@b.example>\x00\r\n"):
            s.send(bad)
            assert_refused(s.reply(), 500, "5.5.2")
            assert s.cmd("NOOP").lines == ["2.0.0 Ok"], bad
        # A bare LF line followed by a good one in the same write.
        s.send(b"NOOP\nNOOP\r\n")
        assert_refused(s.reply(), 500, "5.5.2")
        assert s.reply().code == 250
        # 512 octets with the CRLF (RFC 5321 4.5.3.1.4) is fine, 513 is not.
        line512 = b"NOOP " + b"x" * 505 + b"\r\n"
        assert len(line512) == 512
        s.send(line512)
        assert s.reply().lines == ["2.0.0 Ok"]
        s.send(b"NOOP " + b"x" * 506 + b"\r\n")
        assert_refused(s.reply(), 500, "5.5.2")
        s.expect("NOOP", 250)
        # 10 KB without an end, in pieces, then CRLF: one 500, then in step.
        for _ in range(10):
            s.send(b"y" * 1024)
        s.send(b"\r\nNOOP\r\n")
        assert_refused(s.reply(), 500, "5.5.2")
        assert s.reply().lines == ["2.0.0 Ok"]
        s.expect("NOOP", 250)
        # A transaction works after all that.
        qid = queued_id(send_data(s, SENDER, [ALICE], b"Subject: fine\r\n\r\nfine\r\n"))
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["qid"] == qid
    assert_serves(inst)
    assert_clean_stop(inst)


def test_too_many_errors_close_the_connection(mail_server):
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        for i in range(19):
            assert_refused(s.cmd(f"BOGUS{i}"), 500, "5.5.2")
        # The 20th error: its own reply, then 421, then the close.
        assert_refused(s.cmd("BOGUS19"), 500, "5.5.2")
        assert_refused(s.reply(), 421, "4.7.0")
        assert s.is_closed()
    # The same when they come all at once, mixed with good commands.
    with smtp_session(inst) as s:
        s.send(b"NOOP\r\n" + b"X\r\n" * 25 + b"NOOP\r\n")
        assert s.reply().code == 250
        for _ in range(20):
            assert_refused(s.reply(), 500, "5.5.2")
        assert_refused(s.reply(), 421, "4.7.0")
        assert s.is_closed()
    assert_serves(inst)
    assert_clean_stop(inst)


# ---------------------------------------------------------------- message data

def test_data_line_length_limit(mail_server):
    inst = start_mail(mail_server)
    ok = b"a" * 998 + b"\r\n"           # 1000 octets with the CRLF: the limit
    stuffed = b".." + b"b" * 997 + b"\r\n"  # 1001 sent, 1000 once unstuffed
    too_long = b"c" * 999 + b"\r\n"     # 1001
    with smtp_session(inst) as s:
        body = b"Subject: long lines\r\n\r\n" + ok + stuffed
        qid = queued_id(send_data(s, SENDER, [ALICE], body))
        r = send_data(s, SENDER, [BOB], b"Subject: too long\r\n\r\n" + too_long + b"end\r\n")
        assert_refused(r, 500, "5.5.2")
        s.expect("NOOP", 250)
    [msg] = wait_delivered(inst, ALICE, 1)
    d = parse_delivered(msg)
    assert d["qid"] == qid
    assert d["body"] == b"Subject: long lines\r\n\r\n" + ok + stuffed[1:]
    assert mailbox(inst, BOB) == []
    assert queued_count(inst) == 1
    assert_serves(inst)
    assert_clean_stop(inst)


def test_large_message_byte_exact(mail_server):
    """3 MiB through DATA and 1 MiB through BDAT: many spool writes, CRLFs
    and stuffed dots at every offset of the server's 64 KiB pieces."""
    inst = start_mail(mail_server)
    lines = []
    size = 0
    i = 0
    while size < 3 * 1024 * 1024:
        line = (b"." if i % 7 == 0 else b"") + b"%d " % i + b"q" * (i % 200) + b"\r\n"
        lines.append(line)
        size += len(line)
        i += 1
    wire = b"Subject: big\r\n\r\n" + b"".join(b"." + ln if ln.startswith(b".") else ln
                                              for ln in lines)
    expected = b"Subject: big\r\n\r\n" + b"".join(lines)
    chunk = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
    bdat = (chunk[:200] + b"\r\n") * (1024 * 1024 // 202)
    with smtp_session(inst) as s:
        qid = queued_id(send_data(s, SENDER, [ALICE], wire))
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{BOB}>", 250)
        half = (len(bdat) // 2 // 202) * 202 + 201  # the first chunk ends with a CR
        assert bdat[half - 1:half + 1] == b"\r\n"
        s.send(b"BDAT %d\r\n" % half + bdat[:half])
        assert s.reply().code == 250
        s.send(b"BDAT %d LAST\r\n" % (len(bdat) - half) + bdat[half:])
        qid2 = queued_id(s.reply())
    [msg] = wait_delivered(inst, ALICE, 1, timeout=30)
    d = parse_delivered(msg)
    assert d["qid"] == qid and d["body"] == expected
    [msg] = wait_delivered(inst, BOB, 1, timeout=30)
    d = parse_delivered(msg)
    assert d["qid"] == qid2 and d["body"] == bdat
    assert_clean_stop(inst)


def test_client_that_vanishes_mid_data_leaves_nothing(mail_server):
    inst = start_mail(mail_server)
    s = smtp_session(inst)
    open_transaction(s)
    s.send(b"Subject: cut\r\n\r\n" + b"w" * 500 + b"\r\n" * 200)
    wait_for(lambda: spool_files(inst, "tmp"), what="the message in spool/tmp")
    s.close()
    inst.wait_log(r"disconnect listener=mx reason=(eof|reset)")
    wait_for(lambda: spool_files(inst, "tmp") == [], what="spool/tmp to be emptied")
    assert spool_files(inst, "queue") == []
    assert queued_count(inst) == 0
    assert_serves(inst)
    assert mailbox(inst, ALICE) == []
    assert_clean_stop(inst)


def test_client_that_closes_right_after_the_dot_gets_one_copy(mail_server):
    """The whole message arrived: it is committed even though nobody reads
    the 250, and delivered exactly once."""
    inst = start_mail(mail_server)
    with smtp_session(inst, helo="gone.example") as s:
        open_transaction(s)
        s.send(b"Subject: fire and forget\r\n\r\nbye\r\n.\r\n")
    inst.wait_log(r"disconnect listener=mx reason=(eof|reset)")
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == b"Subject: fire and forget\r\n\r\nbye\r\n"
    assert_serves(inst)
    assert_clean_stop(inst)


def test_many_concurrent_sessions(mail_server):
    inst = start_mail(mail_server)
    count = 24
    errors = []

    def one(i):
        try:
            with smtp_session(inst, helo=f"c{i}.example") as s:
                body = f"Subject: parallel {i}\r\n\r\nparallel {i}\r\n".encode()
                queued_id(send_data(s, SENDER, [ALICE, BOB], body))
                s.expect("QUIT", 221)
        except Exception as e:  # reported below, with the index
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for rcpt in (ALICE, BOB):
        msgs = wait_delivered(inst, rcpt, count, timeout=30)
        subjects = sorted(re.search(rb"parallel (\d+)\r\n\Z", parse_delivered(m)["body"])
                          .group(1) for m in msgs)
        assert subjects == sorted(b"%d" % i for i in range(count))
    assert_clean_stop(inst)


def test_bdat_chunk_size_that_wraps_the_running_total(mail_server):
    """BDAT 5 then BDAT (2**64 - 5): the running total must not wrap to 0 and
    slip under max_message_size. The chunk must be refused (552) and nothing
    of it written to the spool."""
    inst = start_mail(mail_server, max_message_size="2K")
    s = smtp_session(inst)
    try:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        s.send(b"BDAT 5\r\nhello")
        assert s.reply().code == 250
        s.send(b"BDAT %d\r\n" % (2 ** 64 - 5))
        line = b"x" * 98 + b"\r\n"
        s.sock.settimeout(5)
        try:
            for _ in range(40):
                s.send(line * 100)  # 400 KB in all, 200 times the limit
        except (socket.timeout, OSError):
            pass  # the server may stop reading or close: both fine

        def oversized():
            for name in spool_files(inst, "tmp"):
                try:
                    if (inst.dir / "state" / "spool" / "tmp" / name).stat().st_size > 8192:
                        return name
                except FileNotFoundError:
                    pass
            return None
        # The server reads 400 KB in well under a second; give it two.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            name = oversized()
            assert name is None, (f"spool/tmp/{name} grew past max_message_size (2048) "
                                  f"inside one BDAT chunk")
            time.sleep(0.05)
    finally:
        s.close()
    assert mailbox(inst, ALICE) == []
    assert_serves(inst)
    assert_clean_stop(inst)


def test_pipelined_replies_to_a_client_that_does_not_read_are_bounded(mail_server):
    """A client that pipelines commands and never reads the replies must not
    make the server buffer replies without end: each `EHLO x` (8 octets)
    costs a 130-octet reply. The server must stop reading (or hang up) once
    its unsent output is large."""
    inst = start_mail(mail_server)
    pid = inst.proc.pid

    def hwm_kib():
        status = open(f"/proc/{pid}/status").read()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))

    assert_serves(inst)  # warm up: the first session's allocations
    before = hwm_kib()
    sock = socket.create_connection(("127.0.0.1", inst.port("mx")), timeout=10)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        data = b"EHLO x\r\n" * (512 * 1024)  # 4 MiB in, 64 MiB of replies
        sent = 0
        stalled_since = None
        while sent < len(data):
            _, writable, _ = select.select([], [sock], [], 0.5)
            if not writable:
                # The server stopped reading: that is one good answer.
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break
                continue
            stalled_since = None
            try:
                sent += sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                pass
            except OSError:
                break  # the server hung up: also fine
        # Unbounded, the growth shows within a few hundred milliseconds.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            growth_mib = (hwm_kib() - before) / 1024
            assert growth_mib < 16, (
                f"postgated grew by {growth_mib:.0f} MiB buffering replies for a client "
                f"that does not read ({sent} octets of EHLO commands sent)")
            time.sleep(0.1)
    finally:
        sock.close()
    assert_serves(inst)
    assert_clean_stop(inst)


# ---------------------------------------------------------------- durability

def kill9_and_restart(inst):
    assert inst.stop(signal.SIGKILL) == -signal.SIGKILL
    inst.start()


def test_kill9_right_after_250_neither_loses_nor_duplicates(mail_server):
    inst = start_mail(mail_server)
    qids = []
    for i in range(10):
        with smtp_session(inst) as s:
            body = f"Subject: durable {i}\r\n\r\nmessage {i}\r\n".encode()
            qids.append(queued_id(send_data(s, SENDER, [ALICE, BOB], body)))
        # At once: delivery may not have started, be half done or be done.
        kill9_and_restart(inst)
    expected = {q: f"Subject: durable {i}\r\n\r\nmessage {i}\r\n".encode()
                for i, q in enumerate(qids)}
    for rcpt in (ALICE, BOB):
        msgs = wait_delivered(inst, rcpt, 10, timeout=30)
        got = {}
        for m in msgs:
            d = parse_delivered(m)
            assert d["qid"] not in got, f"{d['qid']} delivered twice to {rcpt}"
            got[d["qid"]] = d["body"]
        assert got == expected
    wait_for(lambda: spool_files(inst, "queue") == [] and spool_files(inst, "deferred") == [],
             what="the spool to empty")
    # One more restart: nothing comes back, nothing is delivered again.
    kill9_and_restart(inst)
    recoveries = re.findall(r"spool recover messages=(\d+) ", inst.log())
    assert len(recoveries) == 12 and recoveries[-1] == "0", recoveries
    assert_serves(inst, rcpt=CAROL)
    assert len(mailbox(inst, ALICE)) == 10 and len(mailbox(inst, BOB)) == 10
    assert_clean_stop(inst)


def test_kill9_after_a_batch_of_250s(mail_server):
    """Ten messages acknowledged in one session, then kill -9 at once: all
    ten arrive, once each."""
    inst = start_mail(mail_server)
    qids = []
    with smtp_session(inst) as s:
        for i in range(10):
            qids.append(queued_id(send_data(s, SENDER, [CAROL],
                                            f"Subject: batch {i}\r\n\r\n{i}\r\n".encode())))
        kill9_and_restart(inst)
    msgs = wait_delivered(inst, CAROL, 10, timeout=30)
    assert sorted(parse_delivered(m)["qid"] for m in msgs) == sorted(qids)
    assert_clean_stop(inst)


def test_kill9_before_the_end_of_data_delivers_nothing(mail_server):
    inst = start_mail(mail_server)
    s = smtp_session(inst)
    open_transaction(s)
    s.send(b"Subject: never finished\r\n\r\n" + b"v" * 900 + b"\r\n" * 100)
    wait_for(lambda: spool_files(inst, "tmp"), what="the message in spool/tmp")
    leftover = spool_files(inst, "tmp")
    kill9_and_restart(inst)
    s.close()
    inst.wait_log(r"spool recover messages=0 tmp_removed=1 ")
    assert spool_files(inst, "tmp") == [] and spool_files(inst, "queue") == []
    assert_serves(inst)
    assert mailbox(inst, ALICE) == [], leftover
    assert_clean_stop(inst)


def test_start_removes_leftovers_from_spool_tmp(mail_server):
    inst = mail_server
    tmp = inst.dir / "state" / "spool" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "1k1cd15f7b1hg.msg").write_bytes(b"Subject: half written\r\n")
    (tmp / "1k1cd15f7b1hh.env").write_bytes(b"garbage")
    start_mail(inst)
    inst.wait_log(r"info spool recover messages=0 tmp_removed=2 ")
    assert spool_files(inst, "tmp") == []
    assert_serves(inst)
    assert mailbox(inst, ALICE) == []
    assert_clean_stop(inst)


# ---------------------------------------------------------------- a full disk

@pytest.fixture
def small_spool(mail_server):
    """state/spool on a 1 MiB tmpfs (root only)."""
    if not is_root():
        pytest.skip("mounting a tmpfs needs root")
    spool = mail_server.dir / "state" / "spool"
    spool.mkdir(parents=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                           str(spool)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    yield mail_server
    code, was_running = None, False
    try:
        if mail_server.proc is not None:
            # A daemon that died during the test failed that test already.
            was_running = mail_server.proc.poll() is None
            code = mail_server.stop()
    finally:
        subprocess.run(["umount", str(spool)], check=True)
    assert not was_running or code == 0, \
        f"postgated exited {code} on SIGTERM:\n{mail_server.log()}"


def test_full_disk_gives_452_and_the_session_goes_on(small_spool):
    inst = start_mail(small_spool)
    big = b"Subject: too big for the disk\r\n\r\n" + (b"d" * 98 + b"\r\n") * 20000  # 2 MB
    with smtp_session(inst) as s:
        r = send_data(s, SENDER, [ALICE], big)
        assert_refused(r, 452, "4.3.1")
        assert r.lines[-1] == "4.3.1 Insufficient system storage"
        # Nothing half-written is kept.
        wait_for(lambda: spool_files(inst, "tmp") == [], what="spool/tmp to be emptied")
        assert spool_files(inst, "queue") == []
        s.expect("NOOP", 250)
        body = b"Subject: small\r\n\r\nfits\r\n"
        qid = queued_id(send_data(s, SENDER, [ALICE], body))
        # BDAT too.
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{BOB}>", 250)
        chunk = (b"e" * 98 + b"\r\n") * 15000
        s.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        assert_refused(s.reply(), 452, "4.3.1")
        s.expect("NOOP", 250)
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["body"] == body and parse_delivered(msg)["qid"] == qid
    assert mailbox(inst, BOB) == []
    assert queued_count(inst) == 1
    assert_serves(inst)
    assert_clean_stop(inst)


def test_full_disk_and_a_client_that_vanishes_mid_data(small_spool):
    """The spool write fails (disk full) while the client is already gone:
    the failed message must be dropped once, not twice."""
    inst = start_mail(small_spool)
    spool = inst.dir / "state" / "spool"
    # Leave a few KiB free, so the first 64 KiB write of the message fails.
    with open(spool / "filler", "wb") as f:
        try:
            f.write(b"f" * (1024 * 1024 - 12 * 1024))
        except OSError:
            pass
    try:
        # The client's end must reach the server while the failing write is
        # out: a little more than the server's 64 KiB write piece, then close.
        for attempt in range(10):
            s = smtp_session(inst)
            open_transaction(s)
            s.send((b"z" * 98 + b"\r\n") * 670)
            s.close()
            wait_for(lambda: len(re.findall(r"disconnect listener=mx reason=(?:eof|reset)",
                                            inst.log())) > attempt,
                     what="the server to notice the client is gone")
            wait_for(lambda: spool_files(inst, "tmp") == [] or inst.proc.poll() is not None,
                     what="spool/tmp to be emptied")
            assert inst.proc.poll() is None, f"postgated died:\n{inst.log()}"
    finally:
        (spool / "filler").unlink()
    assert_serves(inst)
    assert mailbox(inst, ALICE) == []
    assert_clean_stop(inst)


def test_full_disk_does_not_hold_the_rest_of_the_message_in_memory(small_spool):
    """Once a spool write has failed, the server reads the message to its end
    only to stay in step: what follows must not pile up in memory."""
    inst = small_spool
    # AddressSanitizer keeps freed memory in quarantine (256 MiB by default),
    # which would count every buffer the message passed through; a small
    # quarantine makes the peak measure what is really held.
    asan = os.environ.get("ASAN_OPTIONS", "")
    inst.start(env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=4"})
    pid = inst.proc.pid

    def hwm_kib():
        status = open(f"/proc/{pid}/status").read()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))

    assert_serves(inst)  # warm up
    before = hwm_kib()
    line = b"h" * 98 + b"\r\n"
    with smtp_session(inst) as s:
        open_transaction(s)
        s.send(b"Subject: 24 MB for a 1 MiB disk\r\n\r\n")
        for _ in range(24):
            s.send(line * 10000)  # 1 MB
        s.send(b".\r\n")
        assert_refused(s.reply(), 452, "4.3.1")
        s.expect("NOOP", 250)
    growth_mib = (hwm_kib() - before) / 1024
    assert growth_mib < 16, (f"postgated grew by {growth_mib:.0f} MiB holding a message "
                             f"it could not spool")
    assert_serves(inst)
    assert_clean_stop(inst)


def test_a_client_that_half_closes_after_its_whole_session_is_served(mail_server):
    """`printf ... | nc -N`: the whole session in one write, then a
    half-close. Every command is still answered and the message delivered."""
    inst = start_mail(mail_server)
    with smtp_raw(inst.port("mx")) as s:
        s.send(b"EHLO client.example\r\nMAIL FROM:<a@remote.example>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\n"
               b"Subject: half-closed\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        s.sock.shutdown(socket.SHUT_WR)
        codes = [s.reply().code for _ in range(6)]
        assert codes == [250, 250, 250, 354, 250, 221]
        assert s.is_closed()
    body = parse_delivered(wait_delivered(inst, "bob@example.test", 1)[0])["body"]
    assert body == b"Subject: half-closed\r\n\r\nbody\r\n"
    assert_serves(inst)
