"""CRAM-MD5 (RFC 2195), off by default and switched on per listener: the
password-equivalent secret is stored only while a listener wants it, the
daemon advertises the mechanism only while every account has that secret
(checked at start and on SIGHUP), `postgate config check` lists the accounts
that lack it. And SCRAM-SHA-256-PLUS (RFC 5802, RFC 9266 tls-exporter),
offered on TLS connections that have the binding, with GNU SASL's client."""
import hashlib
import hmac
import re
import shutil
import signal
import subprocess

import pytest

from conftest import (DEMO_PASSWORD, MAIL_DISABLED, MAIL_USERS, assert_clean_stop,
                      parse_delivered, set_global_key, wait_delivered)
from test_smtp_auth import Client, auth_lines, b64, set_listener_key

ALICE, BOB = "alice@example.test", "bob@example.test"
WRONG_PASSWORD = "wrong horse"


def cram_response(user, password, challenge_b64):
    """RFC 2195 2: "user HEX(HMAC-MD5(password, challenge))", base64."""
    import base64
    challenge = base64.b64decode(challenge_b64, validate=True)
    assert re.fullmatch(rb"<\d+\.\d+@[^<> ]+>", challenge), challenge
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    return b64(f"{user} {digest}")


def cram_login(c, user, password, name="CRAM-MD5"):
    code, lines = c.cmd(f"AUTH {name}")
    assert code == 334, (code, lines)
    return c.cmd(cram_response(user, password, lines[0]))


def schemes(inst, address):
    out = inst.cli("user", "show", address).stdout
    return re.search(r"^secret schemes:\s+(.*)$", out, re.M).group(1).split()


def give_everyone_the_secret(inst):
    for user in MAIL_USERS:
        inst.cli("user", "passwd", user, "--password-stdin", input=DEMO_PASSWORD + "\n")


def test_cram_md5_is_advertised_only_once_every_account_has_its_secret(mail_server):
    inst = mail_server
    set_listener_key(inst, "submission", "cram_md5", "yes")
    inst.start()
    # The accounts were made before the listener wanted CRAM-MD5.
    inst.wait_log(r"warning auth cram_md5 offered=no accounts_without_secret=4 ")
    c = Client(inst.port("submission"))
    assert auth_lines(c.ehlo()) == ["AUTH SCRAM-SHA-256", "AUTH=SCRAM-SHA-256"]
    assert c.cmd("AUTH CRAM-MD5") == (504, ["5.5.4 Unrecognized authentication type"])
    c.close()
    check = inst.cli("config", "check")
    for user in MAIL_USERS:  # dave is disabled: he counts, enabling him must not break it
        assert f"postgate: cram_md5:   {user}\n" in check.stderr, check.stderr
    assert "4 accounts without it: CRAM-MD5 is not advertised" in check.stderr
    assert "none: CRAM-MD5 is advertised" not in check.stderr

    # Three of four get the secret: still not advertised after a reload.
    for user in MAIL_USERS[:3]:
        inst.cli("user", "passwd", user, "--password-stdin", input=DEMO_PASSWORD + "\n")
        assert schemes(inst, user) == ["ARGON2ID", "SCRAM-SHA-256", "CRAM-MD5"]
    inst.proc.send_signal(signal.SIGHUP)
    inst.wait_log(r"warning auth cram_md5 offered=no accounts_without_secret=1 ")
    c = Client(inst.port("submission"))
    assert "CRAM-MD5" not in " ".join(auth_lines(c.ehlo()))
    c.close()

    # The last one too: advertised after the next reload, in both lines.
    give_everyone_the_secret(inst)
    assert "none: CRAM-MD5 is advertised" in inst.cli("config", "check").stderr
    inst.proc.send_signal(signal.SIGHUP)
    inst.wait_log(r"info auth cram_md5 offered=yes")
    c = Client(inst.port("submission"))
    assert auth_lines(c.ehlo()) == ["AUTH CRAM-MD5 SCRAM-SHA-256",
                                    "AUTH=CRAM-MD5 SCRAM-SHA-256"]
    # Not on listeners that did not ask for it.
    m = Client(inst.port("mx"))
    assert "CRAM-MD5" not in " ".join(auth_lines(m.ehlo()))
    assert m.cmd("AUTH CRAM-MD5")[0] == 504
    m.close()

    # Eudora's spelling; no TLS needed: the password never crosses the wire.
    assert cram_login(c, ALICE, DEMO_PASSWORD, "cram-md5") == \
        (235, ["2.7.0 Authentication successful"])
    assert c.cmd(f"MAIL FROM:<{ALICE}>") == (250, ["2.1.0 Ok"])
    assert c.cmd(f"RCPT TO:<{BOB}>") == (250, ["2.1.5 Ok"])
    assert c.cmd("DATA")[0] == 354
    c.sock.sendall(b"Subject: cram\r\n\r\nsent after CRAM-MD5\r\n.\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()
    (m,) = [parse_delivered(x) for x in wait_delivered(inst, BOB, 1)]
    assert m["with"] == "ESMTPA" and m["return_path"] == ALICE, m
    inst.wait_log(r"auth ok listener=submission client=127\.0\.0\.1 mech=CRAM-MD5 "
                  r"user=alice@example\.test")
    assert_clean_stop(inst)


def test_cram_md5_failures_and_corner_cases(mail_server):
    inst = mail_server
    set_listener_key(inst, "submission", "cram_md5", "yes")
    give_everyone_the_secret(inst)
    inst.start()
    inst.wait_log(r"info auth cram_md5 offered=yes")
    cases = [
        # name, user, password, want log reason
        ("wrong password", ALICE, WRONG_PASSWORD, "bad-password"),
        ("unknown user", "mallory@example.test", DEMO_PASSWORD, "unknown-user"),
        ("disabled user", MAIL_DISABLED[0], DEMO_PASSWORD, "disabled"),
    ]
    for name, user, password, reason in cases:
        c = Client(inst.port("submission"))
        c.ehlo()
        assert cram_login(c, user, password) == \
            (535, ["5.7.8 Authentication credentials invalid"]), name
        # And no relaying, no sending.
        assert c.cmd(f"MAIL FROM:<{ALICE}>") == (530, ["5.7.0 Authentication required"]), name
        c.close()
        inst.wait_log(rf"auth failed listener=submission client=127\.0\.0\.1 mech=CRAM-MD5 "
                      rf"user={re.escape(user)} reason={reason}")
    c = Client(inst.port("submission"))
    c.ehlo()
    # Cancelled, malformed, an initial response (RFC 2195 has the server speak first).
    assert c.cmd("AUTH CRAM-MD5")[0] == 334
    assert c.cmd("*") == (501, ["5.7.0 Authentication cancelled"])
    assert c.cmd("AUTH CRAM-MD5")[0] == 334
    assert c.cmd("%%%") == (501, ["5.5.2 Cannot decode the response (base64)"])
    assert c.cmd("AUTH CRAM-MD5")[0] == 334
    assert c.cmd(b64("no-digest-here"))[0] == 501
    assert c.cmd(f"AUTH CRAM-MD5 {b64('x')}")[0] == 501
    # Each challenge is new.
    first = c.cmd("AUTH CRAM-MD5")[1][0]
    c.cmd("*")
    second = c.cmd("AUTH CRAM-MD5")[1][0]
    assert first != second
    assert c.cmd(cram_response(ALICE, DEMO_PASSWORD, second)) == \
        (235, ["2.7.0 Authentication successful"])
    c.close()
    assert_clean_stop(inst)


def test_secret_follows_the_configuration(instance):
    """user add/passwd store the CRAM-MD5 secret only while a listener wants
    it, and a passwd without removes one left from before."""
    inst = instance
    inst.add_user(ALICE)
    assert schemes(inst, ALICE) == ["ARGON2ID", "SCRAM-SHA-256"]
    set_listener_key(inst, "pop3", "cram_md5", "yes")
    inst.add_user(BOB)
    assert schemes(inst, BOB) == ["ARGON2ID", "SCRAM-SHA-256", "CRAM-MD5"]
    secret = re.search(rb"\{CRAM-MD5\}[0-9a-f]{64}", (inst.dir / "state" / "accounts.db")
                       .read_bytes())
    assert secret is not None
    assert DEMO_PASSWORD.encode() not in (inst.dir / "state" / "accounts.db").read_bytes()
    lines = inst.config.read_text().splitlines()
    inst.config.write_text("\n".join(l for l in lines if not l.startswith("cram_md5")) + "\n")
    inst.cli("user", "passwd", BOB, "--password-stdin", input="another one\n")
    assert schemes(inst, BOB) == ["ARGON2ID", "SCRAM-SHA-256"]
    check = inst.cli("config", "check")
    assert "cram_md5" not in check.stderr  # nobody wants it: nothing to list


@pytest.mark.skipif(shutil.which("gsasl") is None, reason="gsasl missing")
def test_gsasl_scram_sha_256_plus(mail_server):
    """GNU SASL's client binds SCRAM to our TLS connection (tls-exporter,
    RFC 9266) after STARTTLS; -PLUS is advertised only under TLS."""
    inst = mail_server
    # A certificate for the address gsasl connects to, which it verifies.
    cert, key = inst.dir / "ip-cert.pem", inst.dir / "ip-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    set_global_key(inst, "tls_cert", cert)
    set_global_key(inst, "tls_key", key)
    inst.start()
    c = Client(inst.port("submission"))
    assert "SCRAM-SHA-256-PLUS" not in " ".join(auth_lines(c.ehlo()))
    c.starttls()
    assert auth_lines(c.ehlo()) == ["AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS",
                                    "AUTH=PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS"]
    c.close()

    def gsasl(password):
        return subprocess.run(
            ["gsasl", "--client", "--smtp", f"--connect=127.0.0.1:{inst.port('submission')}",
             "--starttls", f"--x509-ca-file={cert}",
             "--mechanism=SCRAM-SHA-256-PLUS",
             f"--authentication-id={ALICE}", f"--password={password}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    ok = gsasl(DEMO_PASSWORD)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "235 2.7.0 Authentication successful" in ok.stdout
    bad = gsasl(WRONG_PASSWORD)
    assert bad.returncode != 0
    assert "535 5.7.8" in bad.stdout + bad.stderr
    inst.wait_log(r"auth ok listener=submission client=127\.0\.0\.1 mech=SCRAM-SHA-256-PLUS "
                  r"user=alice@example\.test")
    assert_clean_stop(inst)


def test_pop3_cram_md5_with_the_same_secret(mail_server):
    """POP3 (RFC 5034) offers CRAM-MD5 under the same rule, and the same
    secret serves both protocols."""
    import base64
    import socket
    inst = mail_server
    set_listener_key(inst, "pop3", "cram_md5", "yes")
    give_everyone_the_secret(inst)
    inst.start()
    inst.wait_log(r"info auth cram_md5 offered=yes")
    sock = socket.create_connection(("127.0.0.1", inst.port("pop3")), timeout=10)
    f = sock.makefile("rb")

    def cmd(line):
        sock.sendall(line.encode() + b"\r\n")
        return f.readline().decode().rstrip("\r\n")

    assert f.readline().startswith(b"+OK")
    assert cmd("CAPA") == "+OK Capability list follows"
    capa = []
    while (line := f.readline().decode().rstrip("\r\n")) != ".":
        capa.append(line)
    assert "SASL CRAM-MD5 SCRAM-SHA-256" in capa, capa  # no TLS: no PLAIN, LOGIN, -PLUS
    for password, want in ((WRONG_PASSWORD, "-ERR [AUTH] "), (DEMO_PASSWORD, "+OK")):
        challenge = cmd("AUTH CRAM-MD5")
        assert challenge.startswith("+ "), challenge
        response = cram_response(BOB, password, challenge[2:])
        assert cmd(response).startswith(want), password
    assert cmd("STAT").startswith("+OK 0 ")
    assert cmd("QUIT").startswith("+OK")
    sock.close()
    inst.wait_log(r"auth failed listener=pop3 client=127\.0\.0\.1 mech=CRAM-MD5 "
                  r"user=bob@example\.test reason=bad-password")
    inst.wait_log(r"auth ok listener=pop3 client=127\.0\.0\.1 mech=CRAM-MD5 "
                  r"user=bob@example\.test")
    assert_clean_stop(inst)
