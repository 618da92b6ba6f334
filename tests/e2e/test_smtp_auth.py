"""SMTP AUTH (RFC 4954) on the submission, submissions and mx listeners:
the mechanisms and their wire forms, the policy (AUTH before MAIL on
submission, no plaintext passwords without TLS unless the legacy profile
allows it, relaying only when authenticated, sender binding), and the
corner cases. Real clients: Python's smtplib and raw sockets."""
import base64
import hashlib
import hmac
import os
import re
import smtplib
import ssl

import pytest

from conftest import (DEMO_PASSWORD, HOSTNAME, assert_clean_stop, free_port, parse_delivered,
                      set_global_key, spool_texts, wait_delivered, wait_for)

ALICE, BOB = "alice@example.test", "bob@example.test"
REMOTE = "friend@remote.example"


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the instance's certificate is self-signed
    return ctx


def set_listener_key(inst, listener, key, value):
    lines = inst.config.read_text().splitlines()
    at = lines.index(f"[listener {listener}]")
    lines.insert(at + 1, f"{key} = {value}")
    inst.config.write_text("\n".join(lines) + "\n")


class Client:
    """A raw SMTP client over a plain socket that can switch to TLS."""

    def __init__(self, port, implicit_tls=False):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if implicit_tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        lines = []
        while True:
            line = self.file.readline()
            assert line.endswith(b"\r\n"), line
            lines.append(line.decode())
            if line[3:4] == b" ":
                return int(lines[0][:3]), [l[4:-2] for l in lines]

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self):
        assert self.cmd("STARTTLS")[0] == 220
        self.file.close()
        self.sock = tls_context().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def ehlo(self, name="pc"):
        code, lines = self.cmd(f"EHLO {name}")
        assert code == 250
        return lines

    def close(self):
        self.file.close()
        self.sock.close()


def auth_lines(ehlo_lines):
    return [l for l in ehlo_lines if l.startswith("AUTH")]


def test_submission_requires_auth_and_offers_plaintext_mechanisms_only_over_tls(mail_server):
    inst = mail_server
    inst.start()
    c = Client(inst.port("submission"))
    assert auth_lines(c.ehlo()) == ["AUTH SCRAM-SHA-256", "AUTH=SCRAM-SHA-256"]
    assert c.cmd(f"MAIL FROM:<{ALICE}>") == (530, ["5.7.0 Authentication required"])
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}") == \
        (538, ["5.7.11 Encryption required for requested authentication mechanism"])
    c.starttls()
    lines = c.ehlo()
    # TLS 1.3 has the tls-exporter binding: SCRAM-SHA-256-PLUS too.
    assert auth_lines(lines) == ["AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS",
                                 "AUTH=PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS"]
    assert "STARTTLS" not in lines
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}") == \
        (235, ["2.7.0 Authentication successful"])
    assert auth_lines(c.ehlo()) == []  # nothing more to offer
    c.close()
    assert_clean_stop(inst)


def test_login_prompts_and_initial_responses(mail_server):
    inst = mail_server
    inst.start()
    # LOGIN without an initial response: the two prompts Outlook knows.
    c = Client(inst.port("submission"))
    c.ehlo()
    c.starttls()
    c.ehlo()
    assert c.cmd("AUTH LOGIN") == (334, ["VXNlcm5hbWU6"])
    assert c.cmd(b64(ALICE)) == (334, ["UGFzc3dvcmQ6"])
    assert c.cmd(b64(DEMO_PASSWORD))[0] == 235
    c.close()
    # LOGIN with the user name as initial response (Netscape 6), lower case.
    c = Client(inst.port("submissions"), implicit_tls=True)
    c.ehlo()
    assert c.cmd(f"auth login {b64(ALICE)}") == (334, ["UGFzc3dvcmQ6"])
    assert c.cmd(b64(DEMO_PASSWORD))[0] == 235
    c.close()
    # PLAIN without an initial response: an empty challenge.
    c = Client(inst.port("submissions"), implicit_tls=True)
    c.ehlo()
    assert c.cmd("AUTH PLAIN") == (334, [""])
    assert c.cmd(b64(ALICE + "\0" + ALICE + "\0" + DEMO_PASSWORD))[0] == 235  # authzid = user
    c.close()
    assert_clean_stop(inst)


def test_auth_corner_cases(mail_server):
    inst = mail_server
    inst.start()
    c = Client(inst.port("submissions"), implicit_tls=True)
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}")[0] == 503
    c.ehlo()
    assert c.cmd("AUTH CRAM-MD5")[1][0].startswith("5.5.4")  # not offered
    assert c.cmd("AUTH DIGEST-MD5")[0] == 504
    assert c.cmd("AUTH LOGIN") == (334, ["VXNlcm5hbWU6"])
    assert c.cmd("*") == (501, ["5.7.0 Authentication cancelled"])
    assert c.cmd("AUTH PLAIN not-base64!")[0:1] == (501,)
    assert c.cmd("AUTH PLAIN") == (334, [""])
    assert c.cmd("%%%") [0] == 501
    # An authzid other than the user is refused like a wrong password.
    assert c.cmd(f"AUTH PLAIN {b64(BOB + chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}")[0] == 535
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}")[0] == 235
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}") == \
        (503, ["5.5.1 Already authenticated"])
    assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
    assert c.cmd("AUTH LOGIN")[0] == 503  # never inside a transaction
    assert c.cmd("QUIT")[0] == 221
    c.close()
    inst.wait_log(r"auth ok listener=submissions client=127\.0\.0\.1 mech=PLAIN "
                  r"user=alice@example\.test")
    assert DEMO_PASSWORD not in inst.log()
    assert b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD) not in inst.log()
    assert_clean_stop(inst)


def test_wrong_password_gets_535_and_no_relay_then_three_strikes(mail_server):
    inst = mail_server
    inst.start()
    c = Client(inst.port("submissions"), implicit_tls=True)
    c.ehlo()
    for attempt in range(3):
        code, lines = c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + 'wrong' + str(attempt))}")
        assert code == 535 and lines[0].startswith("5.7.8"), (code, lines)
    # The third failure ends the session.
    assert c.file.read() == b""
    c.close()
    inst.wait_log(r"warning sid=\w+ auth failed listener=submissions client=127\.0\.0\.1 "
                  r"mech=PLAIN user=alice@example\.test reason=bad-password")
    c = Client(inst.port("submissions"), implicit_tls=True)
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 530
    c.close()
    assert_clean_stop(inst)


def test_authenticated_user_relays_and_is_bound_to_its_addresses(mail_server):
    inst = mail_server
    inst.cli("alias", "add", "sales@example.test", ALICE, "--owner", ALICE)
    # Remote mail goes to a relayhost that is down: it waits in the spool.
    set_global_key(inst, "relayhost", f"127.0.0.1:{free_port()}")
    inst.start()
    with smtplib.SMTP_SSL("127.0.0.1", inst.port("submissions"), timeout=10,
                          context=tls_context()) as client:
        client.ehlo("DESKTOP3507CDS")  # a bare Windows computer name is fine
        client.login(ALICE, DEMO_PASSWORD)
        client.sendmail(ALICE, [BOB, REMOTE], b"Subject: out\r\n\r\nto the world\r\n")
        client.sendmail("sales@example.test", [BOB], b"Subject: as alias\r\n\r\nx\r\n")
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            client.sendmail(BOB, [REMOTE], b"Subject: forged\r\n\r\nx\r\n")
        assert err.value.smtp_code == 553
        assert err.value.smtp_error.startswith(b"5.7.1 ")
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            client.sendmail("", [REMOTE], b"Subject: bounce\r\n\r\nx\r\n")
        assert err.value.smtp_code == 553
    msgs = [parse_delivered(m) for m in wait_delivered(inst, BOB, 2)]
    assert {m["with"] for m in msgs} == {"ESMTPSA"}
    assert {m["return_path"] for m in msgs} == {ALICE, "sales@example.test"}
    # The remote recipient waits in the spool for the relayhost.
    envs = wait_for(lambda: spool_texts(inst, ".env"),
                    what="a queued message for the remote recipient")
    assert any(REMOTE in text for text in envs.values())
    assert "forged" not in "".join(spool_texts(inst).values())
    assert_clean_stop(inst)


def test_mx_offers_auth_after_starttls_and_relays_only_when_authenticated(mail_server):
    inst = mail_server
    inst.start()
    c = Client(inst.port("mx"))
    assert auth_lines(c.ehlo()) == ["AUTH SCRAM-SHA-256", "AUTH=SCRAM-SHA-256"]
    assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250  # mx: no AUTH needed for local mail
    assert c.cmd(f"RCPT TO:<{REMOTE}>") == (554, ["5.7.1 Relay access denied"])
    assert c.cmd("RSET")[0] == 250
    c.starttls()
    c.ehlo()
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}")[0] == 235
    assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{REMOTE}>")[0] == 250
    c.close()
    assert_clean_stop(inst)


def test_legacy_listener_takes_plaintext_auth_as_the_guide_configures_it(mail_server):
    """Outlook Express as the setup guide leaves it: port 25, no SSL, AUTH
    LOGIN in the clear, EHLO with the computer's name."""
    inst = mail_server
    set_listener_key(inst, "mx", "tls_profile", "legacy")
    set_listener_key(inst, "mx", "plaintext_auth", "yes")
    inst.start()
    c = Client(inst.port("mx"))
    lines = c.ehlo("OLDPC")
    assert "AUTH PLAIN LOGIN SCRAM-SHA-256" in lines
    assert "AUTH=PLAIN LOGIN SCRAM-SHA-256" in lines
    assert c.cmd("AUTH LOGIN") == (334, ["VXNlcm5hbWU6"])
    assert c.cmd(b64(ALICE)) == (334, ["UGFzc3dvcmQ6"])
    assert c.cmd(b64(DEMO_PASSWORD))[0] == 235
    assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{REMOTE}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.sock.sendall(b"Subject: from the guide\r\n\r\nhello\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    assert_clean_stop(inst)


def test_starttls_forgets_a_plaintext_login(mail_server):
    inst = mail_server
    set_listener_key(inst, "mx", "tls_profile", "legacy")
    set_listener_key(inst, "mx", "plaintext_auth", "yes")
    inst.start()
    c = Client(inst.port("mx"))
    c.ehlo()
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + DEMO_PASSWORD)}")[0] == 235
    c.starttls()
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{ALICE}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{REMOTE}>")[0] == 554  # no longer authenticated
    c.close()
    assert_clean_stop(inst)


def scram_client_first(user, nonce):
    return f"n,,n={user},r={nonce}"


def test_scram_sha_256(mail_server):
    """SCRAM-SHA-256 (RFC 5802, 7677) from a client written from the RFC."""
    inst = mail_server
    inst.start()
    for password, want in ((DEMO_PASSWORD, 235), ("wrong", 535)):
        c = Client(inst.port("submissions"), implicit_tls=True)
        c.ehlo()
        nonce = b64(os.urandom(18))
        bare = f"n={ALICE},r={nonce}"
        code, lines = c.cmd(f"AUTH SCRAM-SHA-256 {b64('n,,' + bare)}")
        assert code == 334, lines
        server_first = base64.b64decode(lines[0]).decode()
        fields = dict(item.split("=", 1) for item in server_first.split(","))
        assert fields["r"].startswith(nonce) and int(fields["i"]) >= 4096
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                     base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={b64('n,,')},r={fields['r']}"
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        code, lines = c.cmd(b64(f"{without_proof},p={b64(proof)}"))
        if want == 535:
            assert code == 535, lines
        else:
            assert code == 334, lines
            server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
            expected = hmac.new(server_key, auth_message, hashlib.sha256).digest()
            assert base64.b64decode(lines[0]).decode() == f"v={b64(expected)}"
            assert c.cmd("") == (235, ["2.7.0 Authentication successful"])
        c.close()
    assert_clean_stop(inst)


def test_submission_detects_a_client_that_starts_with_tls(mail_server):
    """Outlook 2003 with SSL ticked on 587 sends a ClientHello at once."""
    import socket
    inst = mail_server
    set_listener_key(inst, "submission", "detect_implicit_tls", "yes")
    inst.start()
    raw = socket.create_connection(("127.0.0.1", inst.port("submission")), timeout=10)
    tls = tls_context().wrap_socket(raw)  # the handshake before any greeting
    f = tls.makefile("rb")
    assert f.readline() == f"220 {HOSTNAME} ESMTP\r\n".encode()
    tls.sendall(b"EHLO PC\r\n")
    lines = []
    while not lines or lines[-1][3:4] != b" ":
        lines.append(f.readline())
    assert b"250-AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n" in lines
    assert b"250-STARTTLS\r\n" not in lines
    f.close()
    tls.close()
    inst.wait_log(r"smtp implicit-tls detected")
    # An ordinary client still gets plain SMTP with STARTTLS.
    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10) as client:
        client.ehlo("pc")
        assert client.has_extn("starttls")
        client.starttls(context=tls_context())
        client.ehlo("pc")
        client.login(ALICE, DEMO_PASSWORD)
        client.sendmail(ALICE, [BOB], b"Subject: plain then tls\r\n\r\nx\r\n")
    wait_delivered(inst, BOB, 1)
    assert_clean_stop(inst)
