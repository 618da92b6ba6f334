"""Bounds that keep one client (or a crowd) from holding the server: sessions
in all and per client address, the time a command line may take from its
first byte (a client sending a byte a second is cut off), the total session
time, commands and errors per session. Each limit is set low in the config
so that the test reaches it quickly; the next client is still served."""
import socket
import time

from conftest import HOSTNAME, assert_clean_stop, set_global_key, wait_for
from test_smtp_auth import set_listener_key


def connect(inst, listener="mx", source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", inst.port(listener)), timeout=10,
                                 source_address=(source, 0))
    return s, s.makefile("rb")


def greeted(inst, listener="mx", source="127.0.0.1"):
    s, f = connect(inst, listener, source)
    line = f.readline()
    assert line.startswith(b"220 ") or line.startswith(b"+OK"), line
    return s, f


def drip(s, data, pause, chunk=1):
    """Send data a few bytes at a time with pauses (never idle long) until
    the server says something; returns its first line (b"" if it closed)."""
    got = b""
    for i in range(0, len(data), chunk):
        try:
            s.sendall(data[i:i + chunk])
        except OSError:
            break
        s.settimeout(pause)
        try:
            piece = s.recv(4096)
        except (socket.timeout, TimeoutError):
            continue
        got += piece
        if not piece or b"\n" in got:
            break
    s.settimeout(10)
    while got and b"\n" not in got:
        piece = s.recv(4096)
        if not piece:
            break
        got += piece
    return got.split(b"\n")[0] + b"\n" if b"\n" in got else got


def test_sessions_per_address_and_in_all(mail_server):
    inst = mail_server
    set_global_key(inst, "max_sessions_per_ip", 3)
    set_global_key(inst, "max_sessions", 5)
    inst.start()
    # The harness's readiness probes are sessions too: let them end first.
    inst.wait_probes_ended()
    held = [greeted(inst, source="127.0.0.1") for _ in range(3)]
    # The fourth from the same address is told why and closed.
    s, f = connect(inst, source="127.0.0.1")
    assert f.readline() == b"421 4.7.0 Too many connections, try again later\r\n"
    assert f.readline() == b""
    s.close()
    # POP3 says it in POP3 (RFC 3206).
    s, f = connect(inst, "pop3", source="127.0.0.1")
    assert f.readline() == b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    s.close()
    inst.wait_log(r"warning connect refused listener=mx client=127\.0\.0\.1:\d+ "
                  r"reason=max-sessions-per-ip")
    # Another address is served, up to the total.
    held += [greeted(inst, source="127.0.0.2") for _ in range(2)]
    s, f = connect(inst, source="127.0.0.3")
    assert f.readline() == b"421 4.7.0 Too many connections, try again later\r\n"
    s.close()
    inst.wait_log(r"reason=max-sessions\b")
    # Implicit TLS: nothing in plaintext, just the close.
    s, f = connect(inst, "submissions", source="127.0.0.4")
    assert f.read() == b""
    s.close()
    # Sessions that end give their places back.
    for s, f in held[:2]:
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221 ")
        s.close()
    deadline = time.monotonic() + 10
    while True:
        s, f = connect(inst, source="127.0.0.1")
        line = f.readline()
        if line.startswith(b"220 ") or time.monotonic() > deadline:
            break
        s.close()
        time.sleep(0.05)
    assert line == f"220 {HOSTNAME} ESMTP\r\n".encode()
    s.close()
    for s, f in held[2:]:
        s.close()
    assert_clean_stop(inst)


def test_a_command_line_must_be_whole_in_time(mail_server):
    """One byte every 0.3 s never lets the connection go idle, yet the line
    is cut off once command_timeout has passed since its first byte."""
    inst = mail_server
    set_global_key(inst, "command_timeout", "2s")
    inst.start()
    s, f = greeted(inst)
    reply = drip(s, b"NOOP and then some more text that never ends" * 4, 0.3)
    assert reply == b"421 4.4.2 Command line not completed in time, closing connection\r\n"
    s.close()
    inst.wait_log(r"smtp timeout what=line")
    # Whole commands sent in time are not affected, however many.
    s, f = greeted(inst)
    for _ in range(5):
        s.sendall(b"NOOP\r\n")
        assert f.readline().startswith(b"250 ")
        time.sleep(0.5)
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221 ")
    s.close()
    assert_clean_stop(inst)


def test_session_time_commands_and_errors(mail_server):
    inst = mail_server
    set_global_key(inst, "max_session_time", "3s")
    set_global_key(inst, "max_commands", 12)
    set_global_key(inst, "max_errors", 3)
    inst.start()
    # A busy session is ended at max_session_time, even mid-DATA.
    s, f = greeted(inst)
    s.sendall(b"EHLO pc\r\nMAIL FROM:<x@elsewhere.example>\r\nRCPT TO:<bob@example.test>\r\n"
              b"DATA\r\n")
    lines = [f.readline()]
    while not lines[-1].startswith(b"354 ") and len(lines) < 30:
        assert lines[-1][:1] in (b"2", b"3"), lines
        lines.append(f.readline())
    reply = drip(s, b"a line of text\r\n" * 40, 0.5, chunk=16)
    assert reply == b"421 4.4.2 Session time limit reached, closing connection\r\n"
    s.close()
    inst.wait_log(r"smtp timeout what=session")
    assert not list((inst.dir / "state" / "spool" / "queue").glob("*.env"))
    # max_commands: the 13th command line ends the session.
    s, f = greeted(inst)
    for _ in range(12):
        s.sendall(b"NOOP\r\n")
        assert f.readline().startswith(b"250 ")
    s.sendall(b"NOOP\r\n")
    assert f.readline() == b"421 4.7.0 Too many commands, closing connection\r\n"
    s.close()
    # max_errors: the third bad command is the last.
    s, f = greeted(inst)
    for i in range(3):
        s.sendall(b"BOGUS\r\n")
        assert f.readline().startswith(b"500 "), i
    assert f.readline() == b"421 4.7.0 Too many errors, closing connection\r\n"
    s.close()
    # And the next client is served.
    s, f = greeted(inst)
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221 ")
    s.close()
    assert_clean_stop(inst)


def test_waiting_for_the_server_is_not_a_client_timeout(mail_server):
    """A failed login's delay (1, 2, 4 s after three failures from one
    address) may outlast command_timeout: the client is waiting for us, so
    it gets its 535, not a 421 Timeout."""
    import base64
    inst = mail_server
    set_global_key(inst, "command_timeout", "1s")
    # PLAIN without TLS, as the guide's clients do, keeps the test short.
    set_listener_key(inst, "mx", "tls_profile", "legacy")
    set_listener_key(inst, "mx", "plaintext_auth", "yes")
    inst.start()
    replies = []
    for i in range(6):  # the 5th and 6th wait 2 and 4 s
        # A different wrong password each time: a repeat would not count.
        wrong = base64.b64encode(f"\0alice@example.test\0wrong {i}".encode()).decode()
        s, f = greeted(inst, "mx")
        s.sendall(b"EHLO pc\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(f"AUTH PLAIN {wrong}\r\n".encode())
        replies.append(f.readline())
        s.close()
    assert all(r.startswith(b"535 5.7.8 ") for r in replies), replies
    inst.wait_log(r"reason=bad-password delay_ms=4000")
    assert "smtp timeout" not in inst.log() and "Timeout, closing" not in inst.log()
    assert_clean_stop(inst)
