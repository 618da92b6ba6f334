"""POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595) and AUTH (RFC
5034) on the pop3 and pop3s listeners, driven by Python's poplib, raw
sockets and curl: the full cycle from submission to retrieval with one
password, the transaction rules (DELE only at QUIT), the maildrop lock, the
login policy and every mechanism, hostile input, and big maildrops."""
import base64
import hashlib
import hmac
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import (DEMO_PASSWORD, HOSTNAME, assert_clean_stop, maildir_path, mailbox,
                      wait_delivered, wait_for)
from test_smtp_auth import b64, set_listener_key, tls_context

ALICE, BOB = "alice@example.test", "bob@example.test"
CURL = shutil.which("curl")


def pop3s(inst, user=BOB, password=DEMO_PASSWORD):
    """A poplib client logged in over pop3s."""
    client = poplib.POP3_SSL("127.0.0.1", inst.port("pop3s"), timeout=10, context=tls_context())
    client.user(user)
    client.pass_(password)
    return client


_counter = [0]


def put_message(inst, address, data, sub="new", name=None):
    """Store a message straight into address's Maildir, named as our delivery
    names them (with ,S=), owned by the daemon's user. Returns the path."""
    root = maildir_path(inst, address)
    mail_root = inst.dir / "mail"
    st = mail_root.stat()
    for d in (root.parent, root, root / "tmp", root / "new", root / "cur"):
        if not d.exists():
            d.mkdir(mode=0o700)
            os.chown(d, st.st_uid, st.st_gid)
    if name is None:
        _counter[0] += 1
        now = time.time()
        name = (f"{int(now)}.M{int(now * 1e6) % 1000000:06d}P{os.getpid()}Q{_counter[0]}"
                f"_test{_counter[0]}-0.{HOSTNAME},S={len(data)}")
    path = root / sub / name
    path.write_bytes(data)
    os.chown(path, st.st_uid, st.st_gid)
    return path


def vanish(sock, file=None):
    """Drop a connection the way a crashed client does: a reset, no QUIT."""
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if file is not None:
        file.close()
    sock.close()


class Raw:
    """A raw POP3 connection: send any bytes, read single lines and
    multi-line responses."""

    def __init__(self, port, implicit_tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if implicit_tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self):
        line = self.file.readline()
        assert line.endswith(b"\r\n"), line
        return line[:-2].decode("utf-8", "replace")

    def multi(self):
        lines = []
        while True:
            line = self.line()
            if line == ".":
                return lines
            lines.append(line[1:] if line.startswith(".") else line)

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def stls(self):
        assert self.cmd("STLS").startswith("+OK")
        self.file.close()
        self.sock = tls_context().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def closed(self):
        return self.file.read() == b""

    def close(self):
        self.file.close()
        self.sock.close()


MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@example.test>\r\n"
           b"Subject: the cycle\r\n"
           b"\r\n"
           b"first line\r\n"
           b".a line that starts with a dot\r\n"
           b"..two dots\r\n"
           b"last line\r\n")


def test_full_cycle_submission_then_pop3_with_the_same_password(mail_server):
    inst = mail_server
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10) as client:
        client.ehlo("pc")
        client.starttls(context=tls_context())
        client.ehlo("pc")
        client.login(ALICE, DEMO_PASSWORD)
        client.sendmail(ALICE, [BOB], MESSAGE)
    delivered = wait_delivered(inst, BOB, 1)[0]
    assert delivered.endswith(MESSAGE)
    # Bob, with the password he uses for SMTP AUTH.
    client = pop3s(inst)
    count, size = client.stat()
    assert (count, size) == (1, len(delivered))
    assert client.list()[1] == [f"1 {len(delivered)}".encode()]
    response, lines, octets = client.retr(1)
    assert response == f"+OK {len(delivered)} octets".encode()
    assert b"\r\n".join(lines) + b"\r\n" == delivered  # poplib undoes the dot-stuffing
    assert client.dele(1).startswith(b"+OK")
    assert client.stat() == (0, 0)
    assert client.quit().startswith(b"+OK")
    assert mailbox(inst, BOB) == []
    client = pop3s(inst)
    assert client.stat() == (0, 0)
    client.quit()
    log = inst.log()
    assert re.search(r"auth ok listener=pop3s client=127\.0\.0\.1 mech=USER "
                     r"user=bob@example\.test", log)
    assert re.search(r"pop3 update user=bob@example\.test deleted=1 ", log)
    assert DEMO_PASSWORD not in log
    assert_clean_stop(inst)


def test_wire_form_of_retr_is_dot_stuffed_and_crlf(mail_server):
    inst = mail_server
    inst.start()
    put_message(inst, BOB, b"Subject: lf\n\n.dot\nbare lf\nno end")
    c = Raw(inst.port("pop3s"), implicit_tls=True)
    assert c.greeting == f"+OK {HOSTNAME} POP3 server ready"
    assert c.cmd(f"USER {BOB}").startswith("+OK")
    assert c.cmd(f"PASS {DEMO_PASSWORD}").startswith("+OK")
    c.send("RETR 1\r\n")
    raw = b""
    while not raw.endswith(b"\r\n.\r\n"):
        chunk = c.file.read1(65536)
        assert chunk, raw
        raw += chunk
    # The size is the file's (our delivery stores CRLF, so it is exact for
    # what it delivered); the lines go out with CRLF whatever the file has.
    assert raw == (b"+OK 32 octets\r\nSubject: lf\r\n\r\n..dot\r\nbare lf\r\nno end\r\n.\r\n")
    c.close()
    assert_clean_stop(inst)


def test_dropped_connection_after_dele_deletes_nothing(mail_server):
    inst = mail_server
    inst.start()
    put_message(inst, BOB, b"Subject: keep me\r\n\r\nx\r\n")
    c = Raw(inst.port("pop3s"), implicit_tls=True)
    c.cmd(f"USER {BOB}")
    assert c.cmd(f"PASS {DEMO_PASSWORD}").startswith("+OK")
    assert c.cmd("DELE 1") == "+OK Message 1 deleted"
    assert c.cmd("STAT") == "+OK 0 0"
    vanish(c.sock, c.file)
    inst.wait_log(r"disconnect listener=pop3s reason=(eof|reset)")
    client = pop3s(inst)  # the lock went with the connection
    assert client.stat()[0] == 1
    # RSET unmarks, and QUIT after it deletes nothing.
    client.dele(1)
    client.rset()
    client.quit()
    assert len(mailbox(inst, BOB)) == 1
    assert_clean_stop(inst)


def test_one_session_per_maildrop_and_the_lock_goes_with_the_client(mail_server):
    inst = mail_server
    inst.start()
    put_message(inst, BOB, b"Subject: locked\r\n\r\nx\r\n")
    first = pop3s(inst)
    second = poplib.POP3_SSL("127.0.0.1", inst.port("pop3s"), timeout=10, context=tls_context())
    second.user(BOB)
    with pytest.raises(poplib.error_proto) as err:
        second.pass_(DEMO_PASSWORD)
    assert err.value.args[0].startswith(b"-ERR [IN-USE] ")
    # Still in AUTHORIZATION: the session goes on.
    assert second.capa()
    second.quit()
    # The first client vanishes: the lock is released at once.
    vanish(first.sock, first.file)
    client = wait_for(lambda: try_login(inst), what="login after the holder vanished")
    assert client.stat()[0] == 1
    client.quit()
    assert_clean_stop(inst)


def try_login(inst):
    try:
        return pop3s(inst)
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR [IN-USE]"), e
        return None


def test_the_lock_does_not_survive_a_daemon_crash(mail_server):
    inst = mail_server
    inst.start()
    put_message(inst, BOB, b"Subject: crash\r\n\r\nx\r\n")
    holder = pop3s(inst)
    holder.dele(1)
    inst.stop(signal.SIGKILL)
    vanish(holder.sock, holder.file)
    inst.start()
    client = pop3s(inst)
    assert client.stat()[0] == 1  # the DELE before the crash did nothing
    client.quit()
    assert_clean_stop(inst)


def test_plaintext_logins_need_stls_on_pop3(mail_server):
    inst = mail_server
    inst.start()
    c = Raw(inst.port("pop3"))
    c.send("CAPA\r\n")
    assert c.line().startswith("+OK")
    capa = c.multi()
    assert "STLS" in capa and "USER" not in capa
    assert "SASL SCRAM-SHA-256" in capa
    for want in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert want in capa
    assert c.cmd(f"USER {BOB}").startswith("-ERR [AUTH] Plaintext authentication")
    assert c.cmd("AUTH PLAIN " + b64(f"\0{BOB}\0{DEMO_PASSWORD}")).startswith("-ERR [AUTH] ")
    assert c.cmd("AUTH LOGIN").startswith("-ERR [AUTH] ")
    c.stls()
    c.send("CAPA\r\n")
    assert c.line().startswith("+OK")
    capa = c.multi()
    assert "USER" in capa and "STLS" not in capa
    # TLS 1.3 has the tls-exporter binding: SCRAM-SHA-256-PLUS too.
    assert "SASL PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS" in capa
    assert c.cmd(f"USER {BOB}") == "+OK Send PASS"
    assert c.cmd(f"PASS {DEMO_PASSWORD}").startswith("+OK Maildrop locked and ready")
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    assert_clean_stop(inst)


def test_legacy_pop3_listener_takes_plaintext_logins(mail_server):
    """Outlook Express on Windows XP as the guide leaves it: no SSL."""
    inst = mail_server
    set_listener_key(inst, "pop3", "tls_profile", "legacy")
    set_listener_key(inst, "pop3", "plaintext_auth", "yes")
    inst.start()
    client = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=10)
    assert "USER" in client.capa()
    client.user(BOB)
    client.pass_(DEMO_PASSWORD)
    assert client.stat() == (0, 0)
    client.quit()
    assert_clean_stop(inst)


def test_stls_discards_a_pipelined_command(mail_server):
    inst = mail_server
    inst.start()
    c = Raw(inst.port("pop3"))
    c.send("STLS\r\nCAPA\r\n")  # CAPA rides in the same packet
    assert c.line() == "+OK Begin TLS negotiation"
    c.file.close()
    c.sock = tls_context().wrap_socket(c.sock)
    c.file = c.sock.makefile("rb")
    # The first thing over TLS answers what is sent over TLS, nothing else.
    assert c.cmd("NOOP") == "-ERR Not logged in"
    c.close()
    inst.wait_log(r"pop3 stls discarded=6")
    assert_clean_stop(inst)


def test_stls_can_be_turned_off(mail_server):
    inst = mail_server
    set_listener_key(inst, "pop3", "starttls", "no")
    inst.start()
    c = Raw(inst.port("pop3"))
    c.send("CAPA\r\n")
    c.line()
    assert "STLS" not in c.multi()
    assert c.cmd("STLS") == "-ERR STLS is not offered here"
    c.close()
    assert_clean_stop(inst)


def scram_login(c, password):
    """RFC 5802 from the client side; returns the final line."""
    nonce = b64(os.urandom(18))
    bare = f"n={BOB},r={nonce}"
    line = c.cmd(f"AUTH SCRAM-SHA-256 {b64('n,,' + bare)}")
    assert line.startswith("+ "), line
    server_first = base64.b64decode(line[2:]).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c={b64('n,,')},r={fields['r']}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    line = c.cmd(b64(f"{without_proof},p={b64(proof)}"))
    if not line.startswith("+ "):
        return line
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    expected = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64decode(line[2:]).decode() == f"v={b64(expected)}"
    return c.cmd("")


def test_every_auth_mechanism(mail_server):
    inst = mail_server
    inst.start()
    port = inst.port("pop3s")
    logins = {
        "PLAIN with initial response":
            lambda c: c.cmd("AUTH PLAIN " + b64(f"\0{BOB}\0{DEMO_PASSWORD}")),
        "PLAIN without": lambda c: (c.cmd("AUTH PLAIN") == "+ " and
                                    c.cmd(b64(f"{BOB}\0{BOB}\0{DEMO_PASSWORD}"))),
        "LOGIN": lambda c: (c.cmd("auth login") == "+ VXNlcm5hbWU6" and
                            c.cmd(b64(BOB)) == "+ UGFzc3dvcmQ6" and
                            c.cmd(b64(DEMO_PASSWORD))),
        "LOGIN with initial response": lambda c: (
            c.cmd(f"AUTH LOGIN {b64(BOB)}") == "+ UGFzc3dvcmQ6" and c.cmd(b64(DEMO_PASSWORD))),
        "SCRAM-SHA-256": lambda c: scram_login(c, DEMO_PASSWORD),
        "USER/PASS with a space-free password": lambda c: (
            c.cmd(f"USER {BOB}") == "+OK Send PASS" and c.cmd(f"PASS {DEMO_PASSWORD}")),
    }
    for name, login in logins.items():
        c = Raw(port, implicit_tls=True)
        result = login(c)
        assert result and result.startswith("+OK Maildrop locked and ready"), (name, result)
        assert c.cmd("QUIT").startswith("+OK"), name
        assert c.closed(), name
        c.close()
    # Failures: [AUTH] for wrong credentials, a plain -ERR for a cancel.
    c = Raw(port, implicit_tls=True)
    assert c.cmd("AUTH PLAIN " + b64(f"\0{BOB}\0wrong")) == "-ERR [AUTH] Authentication failed"
    assert c.cmd("AUTH LOGIN") == "+ VXNlcm5hbWU6"
    assert c.cmd("*") == "-ERR Authentication cancelled"
    assert c.cmd("AUTH CRAM-MD5") == "-ERR Unrecognized authentication mechanism"
    assert c.cmd("APOP bob x").startswith("-ERR ")
    assert scram_login(c, "wrong") == "-ERR [AUTH] Authentication failed"
    # "=" is an empty initial response (RFC 5034 4), which PLAIN cannot use.
    assert c.cmd("AUTH PLAIN =") == "-ERR Malformed authentication response"
    c.cmd(f"USER {BOB}")
    assert c.cmd("PASS wrong") == \
        "-ERR [AUTH] Authentication failed; too many failures, closing"
    assert c.closed()
    c.close()
    inst.wait_log(r"warning sid=\w+ auth failed listener=pop3s client=127\.0\.0\.1 "
                  r"mech=USER user=bob@example\.test reason=bad-password")
    assert DEMO_PASSWORD not in inst.log()
    assert_clean_stop(inst)


def test_auth_without_arguments_lists_mechanisms(mail_server):
    inst = mail_server
    inst.start()
    c = Raw(inst.port("pop3s"), implicit_tls=True)
    assert c.cmd("AUTH").startswith("+OK")
    assert c.multi() == ["PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]
    c.close()
    assert_clean_stop(inst)


def test_bad_and_overlong_commands_get_err_and_the_session_goes_on(mail_server):
    inst = mail_server
    inst.start()
    c = Raw(inst.port("pop3s"), implicit_tls=True)
    assert c.cmd("HELO there") == "-ERR Unknown command"
    assert c.cmd("STAT") == "-ERR Not logged in"
    assert c.cmd("") == "-ERR Empty command"
    assert c.cmd("NOOP\0") == "-ERR NUL bytes are not allowed in commands"
    assert c.cmd("USER " + "a" * 248).startswith("+OK")  # 255 octets with CRLF
    assert c.cmd("USER " + "a" * 249) == "-ERR Line too long"  # one over
    c.send("CAPA " + "x" * 100000 + "\r\n")
    assert c.line() == "-ERR Line too long"
    assert c.cmd(f"USER {BOB}").startswith("+OK")
    assert c.cmd(f"PASS {DEMO_PASSWORD}").startswith("+OK")
    assert c.cmd("RETR 1") == "-ERR No such message"
    assert c.cmd("RETR x") == "-ERR No such message"
    assert c.cmd("RETR") == "-ERR Syntax: RETR msg"
    assert c.cmd("TOP 1 2 3") == "-ERR Syntax: TOP msg n"
    assert c.cmd("USER bob") == "-ERR Command not valid in the TRANSACTION state"
    assert c.cmd("NOOP") == "+OK"
    # Too many errors end the session (20 in all).
    for _ in range(20 - 11):
        line = c.cmd("BOGUS")
    assert line == "-ERR Unknown command"
    assert c.line() == "-ERR Too many errors, closing connection"
    assert c.closed()
    c.close()
    # The next session is served.
    client = pop3s(inst)
    client.quit()
    assert_clean_stop(inst)


def test_top_and_uidl_stable_across_sessions_and_the_move_to_cur(mail_server):
    inst = mail_server
    inst.start()
    body = b"".join(f"body line {i}\r\n".encode() for i in range(1, 6))
    put_message(inst, BOB, b"Subject: one\r\nX-A: b\r\n\r\n" + body)
    put_message(inst, BOB, b"Subject: two\r\n\r\n.dotted\r\nsecond\r\n")
    client = pop3s(inst)
    _, lines, _ = client.top(1, 2)
    assert lines == [b"Subject: one", b"X-A: b", b"", b"body line 1", b"body line 2"]
    _, lines, _ = client.top(1, 0)
    assert lines == [b"Subject: one", b"X-A: b", b""]
    _, lines, _ = client.top(2, 1)
    assert lines == [b"Subject: two", b"", b".dotted"]
    _, uids, _ = client.uidl()
    assert len(uids) == 2 and len({u.split()[1] for u in uids}) == 2
    for entry in uids:
        uid = entry.split()[1]
        assert 1 <= len(uid) <= 70 and all(0x21 <= b <= 0x7e for b in uid)
    assert client.uidl(2).split()[1:] == uids[1].split()
    client.retr(1)
    client.quit()
    # The retrieved message is in cur/ with the seen flag; TOP did not move 2.
    root = maildir_path(inst, BOB)
    assert [p.name.endswith(":2,S") for p in (root / "cur").iterdir()] == [True]
    assert len(list((root / "new").iterdir())) == 1
    client = pop3s(inst)
    assert client.uidl()[1] == uids
    client.quit()
    assert_clean_stop(inst)


def test_a_big_maildrop_lists_in_arrival_order(mail_server):
    inst = mail_server
    inst.start()
    count = 3000
    for i in range(count):
        data = f"Subject: m{i}\r\n\r\n{'x' * (i % 97)}\r\n".encode()
        # Arrival order is the time in the name, not the name's sort order.
        put_message(inst, BOB, data, name=f"{1700000000 + i}.M{(count - i) % 1000000}P1Q{i}"
                    f"_big{i}-0.{HOSTNAME},S={len(data)}")
    client = pop3s(inst)
    count_seen, total = client.stat()
    assert count_seen == count
    _, listing, _ = client.list()
    assert len(listing) == count
    sizes = [int(line.split()[1]) for line in listing]
    assert sizes == [len(f"Subject: m{i}\r\n\r\n{'x' * (i % 97)}\r\n") for i in range(count)]
    assert sum(sizes) == total
    _, uids, _ = client.uidl()
    assert len({u.split()[1] for u in uids}) == count
    _, lines, _ = client.retr(count)
    assert lines[0] == f"Subject: m{count - 1}".encode()
    client.quit()
    assert_clean_stop(inst)


def test_a_large_message_streams_intact(mail_server):
    inst = mail_server
    inst.start()
    line = b"." + b"y" * 76 + b"\r\n"
    data = b"Subject: big\r\n\r\n" + line * (8 * 1024 * 1024 // len(line))
    put_message(inst, BOB, data)
    client = pop3s(inst)
    _, lines, octets = client.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == data
    client.quit()
    assert_clean_stop(inst)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_pop3s_and_pop3_with_stls(mail_server, tmp_path):
    inst = mail_server
    inst.start()
    put_message(inst, BOB, MESSAGE)
    base = [CURL, "-sS", "-k", "--max-time", "20", "-u", f"{BOB}:{DEMO_PASSWORD}"]
    listing = subprocess.run(base + [f"pop3s://127.0.0.1:{inst.port('pop3s')}/"],
                             capture_output=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == f"1 {len(MESSAGE)}\r\n".encode()
    for url, extra in ((f"pop3s://127.0.0.1:{inst.port('pop3s')}/1", []),
                       (f"pop3://127.0.0.1:{inst.port('pop3')}/1", ["--ssl-reqd"]),
                       (f"pop3s://127.0.0.1:{inst.port('pop3s')}/1",
                        ["--login-options", "AUTH=PLAIN"]),
                       (f"pop3s://127.0.0.1:{inst.port('pop3s')}/1",
                        ["--login-options", "AUTH=LOGIN"])):
        got = subprocess.run(base + extra + [url], capture_output=True, timeout=60)
        assert got.returncode == 0, (url, extra, got.stderr)
        assert got.stdout == MESSAGE, (url, extra)
    # Without STLS curl would send the password in the clear: it is refused.
    refused = subprocess.run(base + [f"pop3://127.0.0.1:{inst.port('pop3')}/1"],
                             capture_output=True, timeout=60)
    assert refused.returncode != 0
    log = inst.log()
    assert re.search(r"auth ok listener=pop3 client=127\.0\.0\.1 mech=\S+ ", log)
    assert re.search(r"auth ok listener=pop3s client=127\.0\.0\.1 mech=PLAIN ", log)
    assert re.search(r"auth ok listener=pop3s client=127\.0\.0\.1 mech=LOGIN ", log)
    assert_clean_stop(inst)


def test_apop_only_where_enabled_and_every_account_is_ready(mail_server):
    """APOP (RFC 1939 7) with Python's poplib: off by default (no timestamp,
    the command refused); with apop = yes and every account's {PLAIN}
    secret, the greeting offers it and the same password works."""
    inst = mail_server
    set_listener_key(inst, "pop3", "apop", "yes")
    inst.start()
    # The accounts predate the switch: not offered yet.
    inst.wait_log(r"warning auth apop offered=no accounts_without_secret=4 ")
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=10)
    assert b"<" not in p.getwelcome()
    with pytest.raises(poplib.error_proto) as e:
        p._shortcmd(f"APOP {BOB} {'0' * 32}")
    assert b"APOP is not offered here" in e.value.args[0]
    p.quit()
    check = inst.cli("config", "check")
    assert f"postgate: apop:   {BOB}\n" in check.stderr
    for user in ("alice@example.test", BOB, "carol@example.test", "dave@example.test"):
        inst.cli("user", "passwd", user, "--password-stdin", input=DEMO_PASSWORD + "\n")
    assert "PLAIN" in inst.cli("user", "show", BOB).stdout
    inst.proc.send_signal(signal.SIGHUP)
    inst.wait_log(r"info auth apop offered=yes")
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=10)
    assert re.search(rb"<\d+\.[0-9a-f]{16}@[^<>]+>$", p.getwelcome()), p.getwelcome()
    with pytest.raises(poplib.error_proto) as e:
        p.apop(BOB, "wrong horse")
    assert e.value.args[0].startswith(b"-ERR [AUTH] ")
    p.quit()
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=10)
    assert p.apop(BOB, DEMO_PASSWORD).startswith(b"+OK")
    assert p.stat()[0] >= 0
    p.quit()
    # Not on pop3s, which did not ask for it.
    p = poplib.POP3_SSL("127.0.0.1", inst.port("pop3s"), timeout=10, context=tls_context())
    assert b"<" not in p.getwelcome()
    p.quit()
    inst.wait_log(r"auth failed listener=pop3 client=127\.0\.0\.1 mech=APOP "
                  r"user=bob@example\.test reason=bad-password")
    inst.wait_log(r"auth ok listener=pop3 client=127\.0\.0\.1 mech=APOP user=bob@example\.test")
    assert_clean_stop(inst)
