"""STARTTLS on the mx listener (RFC 3207): the upgrade, the reset of the
session, the plaintext that must never run, the two TLS profiles, and the
listener switch that turns STARTTLS off. Real clients: Python's smtplib and
ssl, and the openssl command."""
import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

from conftest import (HOSTNAME, assert_clean_stop, parse_delivered, smtp_raw, wait_delivered)
from test_smtp_auth import set_listener_key


def client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the instance's certificate is self-signed
    ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def ehlo_keywords(reply):
    return [line.split(" ")[0].upper() for line in reply.lines[1:]]


def test_starttls_with_smtplib_delivers_and_says_esmtps(mail_server):
    inst = mail_server
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port("mx"), timeout=10) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        code, text = client.starttls(context=client_context())
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.ehlo("client.example")
        assert not client.has_extn("starttls")  # not offered twice
        client.sendmail("carol@remote.example", ["bob@example.test"],
                        b"Subject: over TLS\r\n\r\nsecret\r\n")
    msg = parse_delivered(wait_delivered(inst, "bob@example.test", 1)[0])
    assert msg["with"] == "ESMTPS"
    assert msg["body"] == b"Subject: over TLS\r\n\r\nsecret\r\n"
    assert re.search(r"sid=\w+ tls version=TLSv1\.[23] cipher=\S+ resumed=no sni=-", inst.log())
    assert_clean_stop(inst)


def test_commands_pipelined_after_starttls_are_never_run(mail_server):
    """CVE-2011-0411: plaintext sent after STARTTLS in the same packet is
    discarded, and the TLS session starts from scratch."""
    inst = mail_server
    inst.start()
    with smtp_raw(inst.port("mx")) as s:
        assert s.cmd("EHLO client.example").code == 250
        s.send(b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert s.reply().raw == b"220 2.0.0 Ready to start TLS\r\n"
        assert s.buf == b""
        tls = client_context().wrap_socket(s.sock)
        reader = tls.makefile("rb")
        tls.sendall(b"RCPT TO:<bob@example.test>\r\n")
        # No MAIL was ever accepted, and no EHLO yet inside TLS.
        assert reader.readline() == b"503 5.5.1 Bad sequence of commands: send EHLO first\r\n"
        tls.sendall(b"EHLO client.example\r\n")
        lines = []
        while not lines or lines[-1][3:4] != b" ":
            lines.append(reader.readline())
        assert lines[0] == f"250-{HOSTNAME}\r\n".encode()
        assert b"STARTTLS\r\n" not in [line[4:] for line in lines]
        tls.sendall(b"RCPT TO:<bob@example.test>\r\n")
        assert reader.readline() == b"503 5.5.1 Bad sequence of commands: send MAIL first\r\n"
        tls.sendall(b"QUIT\r\n")
        assert reader.readline() == b"221 2.0.0 Bye\r\n"
        reader.close()
        tls.close()
    inst.wait_log(r"smtp starttls discarded=\d+")
    assert not any(wait_delivered(inst, "bob@example.test", 0))
    assert_clean_stop(inst)


def test_starttls_refusals(mail_server):
    inst = mail_server
    inst.start()
    with smtp_raw(inst.port("mx"), strict=True) as s:
        assert s.cmd("EHLO client.example").code == 250
        s.expect("STARTTLS now", 501, "5.5.4")
        s.expect("MAIL FROM:<a@remote.example>", 250, "2.1.0")
        s.expect("STARTTLS", 503, "5.5.1")  # not inside a transaction
        s.expect("RSET", 250, "2.0.0")
        assert s.cmd("STARTTLS").code == 220
        tls = client_context().wrap_socket(s.sock)
        reader = tls.makefile("rb")
        tls.sendall(b"STARTTLS\r\n")
        assert reader.readline() == b"503 5.5.1 TLS already active\r\n"
        reader.close()
        tls.close()
    assert_clean_stop(inst)


def test_starttls_can_be_turned_off(mail_server):
    inst = mail_server
    set_listener_key(inst, "mx", "starttls", "no")
    inst.start()
    with smtp_raw(inst.port("mx"), strict=True) as s:
        assert "STARTTLS" not in ehlo_keywords(s.cmd("EHLO client.example"))
        s.expect("STARTTLS", 502, "5.5.1")
        s.expect("NOOP", 250, "2.0.0")
    assert_clean_stop(inst)


def test_a_failed_handshake_closes_only_that_session(mail_server):
    inst = mail_server
    inst.start()
    with smtp_raw(inst.port("mx")) as s:
        s.cmd("EHLO client.example")
        assert s.cmd("STARTTLS").code == 220
        s.send(b"this is not a TLS ClientHello\r\n")
        assert s.is_closed()
    inst.wait_log(r"disconnect listener=mx reason=\S+")
    # The server goes on.
    with smtplib.SMTP("127.0.0.1", inst.port("mx"), timeout=10) as client:
        client.ehlo("client.example")
        client.starttls(context=client_context())
        client.ehlo("client.example")
        client.sendmail("x@remote.example", ["carol@example.test"], b"Subject: ok\r\n\r\nok\r\n")
    wait_delivered(inst, "carol@example.test", 1)
    assert_clean_stop(inst)


def openssl_tls1(port):
    """A TLS 1.0 client with the AES-CBC suite Vista's SChannel offers."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
         "-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"],
        input=b"QUIT\r\n", capture_output=True, timeout=30)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command missing")
def test_modern_profile_refuses_tls10_and_legacy_accepts_it(mail_server):
    inst = mail_server
    inst.start()
    modern = openssl_tls1(inst.port("mx"))
    assert b"Cipher is ECDHE-ECDSA-AES128-SHA" not in modern.stdout
    inst.stop()

    set_listener_key(inst, "mx", "tls_profile", "legacy")
    inst.start()
    legacy = openssl_tls1(inst.port("mx"))
    out = legacy.stdout + legacy.stderr
    assert b"TLSv1" in out and b"ECDHE-ECDSA-AES128-SHA" in out, out
    inst.wait_log(r"tls version=TLSv1\.0 cipher=ECDHE-ECDSA-AES128-SHA ")
    assert_clean_stop(inst)


def test_tls_session_id_resumption(mail_server):
    """Outlook resumes TLS sessions by session ID; TLS 1.2 shows it plainly."""
    inst = mail_server
    inst.start()
    ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2)
    ctx.options |= ssl.OP_NO_TICKET
    session = None
    for attempt in range(2):
        with smtplib.SMTP("127.0.0.1", inst.port("mx"), timeout=10) as client:
            client.ehlo("client.example")
            client.putcmd("STARTTLS")
            assert client.getreply()[0] == 220
            client.sock = ctx.wrap_socket(client.sock, session=session)
            client.file = None
            if attempt == 1:
                assert client.sock.session_reused
            client.ehlo("client.example")
            session = client.sock.session
            client.quit()
    assert re.search(r"tls version=TLSv1\.2 .*resumed=yes", inst.log())
    assert_clean_stop(inst)
