"""Today's command-line clients against SMTP AUTH: swaks (each mechanism,
each listener) and curl (--login-options AUTH=...). Real programs no one
here wrote."""
import shutil
import subprocess

import pytest

from conftest import DEMO_PASSWORD, assert_clean_stop, parse_delivered, wait_delivered

ALICE, BOB = "alice@example.test", "bob@example.test"

need_swaks = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks missing")
need_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")


def swaks(port, mechanism, tls_args, password=DEMO_PASSWORD, subject="swaks"):
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", *tls_args, "--auth", mechanism,
         "--auth-user", ALICE, "--auth-password", password, "--from", ALICE, "--to", BOB,
         "--header", f"Subject: {subject}", "--body", "hello from swaks", "--timeout", "20"],
        capture_output=True, text=True, timeout=60)


@need_swaks
def test_swaks_each_mechanism_on_each_listener(mail_server):
    inst = mail_server
    inst.start()
    cases = [
        ("submission", ["--tls"]),           # STARTTLS on 587
        ("submissions", ["--tls-on-connect"]),  # implicit TLS on 465
        ("mx", ["--tls"]),                   # AUTH after STARTTLS on 25
    ]
    sent = 0
    for listener, tls_args in cases:
        for mechanism in ("PLAIN", "LOGIN"):
            subject = f"{listener}-{mechanism}"
            proc = swaks(inst.port(listener), mechanism, tls_args, subject=subject)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "235 2.7.0 Authentication successful" in proc.stdout
            sent += 1
    msgs = [parse_delivered(m) for m in wait_delivered(inst, BOB, sent)]
    assert {m["with"] for m in msgs} == {"ESMTPSA"}
    proc = swaks(inst.port("submission"), "PLAIN", ["--tls"], password="wrong")
    assert proc.returncode != 0
    assert "535 5.7.8" in proc.stdout
    assert_clean_stop(inst)


@need_curl
def test_curl_login_options(mail_server, tmp_path):
    inst = mail_server
    inst.start()
    message = tmp_path / "message.txt"
    message.write_bytes(b"Subject: curl\r\n\r\nhello from curl\r\n")
    for mechanism in ("PLAIN", "LOGIN"):
        proc = subprocess.run(
            ["curl", "--silent", "--show-error", "--ssl-reqd", "--insecure",
             f"smtp://127.0.0.1:{inst.port('submission')}", "--login-options",
             f"AUTH={mechanism}", "--user", f"{ALICE}:{DEMO_PASSWORD}", "--mail-from", ALICE,
             "--mail-rcpt", BOB, "--upload-file", str(message)],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        ["curl", "--silent", "--insecure", f"smtps://127.0.0.1:{inst.port('submissions')}",
         "--user", f"{ALICE}:wrong", "--mail-from", ALICE, "--mail-rcpt", BOB,
         "--upload-file", str(message)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 67  # CURLE_LOGIN_DENIED
    bodies = [parse_delivered(m)["body"] for m in wait_delivered(inst, BOB, 2)]
    assert all(b.endswith(b"hello from curl\r\n") for b in bodies)
    assert_clean_stop(inst)


@pytest.mark.skipif(shutil.which("gsasl") is None, reason="gsasl missing")
def test_gsasl_scram_sha_256(mail_server):
    """GNU SASL's client runs SCRAM-SHA-256 against the daemon (on mx, where
    SCRAM is offered without TLS since it never sends the password)."""
    inst = mail_server
    inst.start()

    def gsasl(password):
        return subprocess.run(
            ["gsasl", "--client", "--smtp", f"--connect=127.0.0.1:{inst.port('mx')}",
             "--no-starttls", "--mechanism=SCRAM-SHA-256", f"--authentication-id={ALICE}",
             f"--password={password}", "--no-cb"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    ok = gsasl(DEMO_PASSWORD)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "235 2.7.0 Authentication successful" in ok.stdout
    bad = gsasl("wrong")
    assert bad.returncode != 0
    assert "535 5.7.8" in bad.stdout + bad.stderr
    inst.wait_log(r"auth ok listener=mx client=127\.0\.0\.1 mech=SCRAM-SHA-256 "
                  r"user=alice@example\.test")
    inst.wait_log(r"auth failed listener=mx client=127\.0\.0\.1 mech=SCRAM-SHA-256 "
                  r"user=alice@example\.test")
    assert_clean_stop(inst)
