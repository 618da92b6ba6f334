"""One full scenario under valgrind: the plain gcc build of postgated (no
sanitizers: valgrind and ASan do not mix) serves a submission with AUTH, a
local delivery, a POP3 fetch, a SIGHUP reload and a SIGTERM, and memcheck
finds no invalid read or write, no use of uninitialised memory and no
definitely lost block.

The plain build is POSTGATE_PLAIN_BUILD_DIR (scripts/check.sh sets it to
build/), else build/; the test is skipped when that holds no postgated, when
that postgated was built with a sanitizer, or when valgrind is missing.
"""
import os
import poplib
import re
import shutil
import signal
import smtplib
from pathlib import Path

import pytest

import conftest
from conftest import DEMO_PASSWORD, ROOT, wait_delivered
from test_smtp_auth import tls_context

PLAIN = Path(os.environ.get("POSTGATE_PLAIN_BUILD_DIR", ROOT / "build")) / "postgated"
ALICE, BOB = "alice@example.test", "bob@example.test"
# Under valgrind everything is 20-50 times slower: generous timeouts.
SLOW = 60


def plain_build_problem():
    if shutil.which("valgrind") is None:
        return "valgrind is not installed"
    if not PLAIN.is_file():
        return f"no plain build at {PLAIN} (POSTGATE_PLAIN_BUILD_DIR)"
    data = PLAIN.read_bytes()
    if b"__asan_init" in data or b"__ubsan_handle" in data or b"__tsan_init" in data:
        return f"{PLAIN} is built with a sanitizer"
    return None


pytestmark = pytest.mark.skipif(plain_build_problem() is not None,
                                reason=plain_build_problem() or "")


def test_full_scenario_is_clean_under_valgrind(mail_instance, monkeypatch, workdir):
    inst = mail_instance
    vg_log = workdir / "valgrind.log"
    for key, value in (("worker_threads", 2), ("shutdown_timeout", "20s")):
        conftest.set_global_key(inst, key, value)
    monkeypatch.setattr(conftest, "POSTGATED", PLAIN)
    inst.start(argv_prefix=("valgrind", "--error-exitcode=99", "--leak-check=full",
                            "--errors-for-leak-kinds=definite", "--track-fds=no",
                            "--num-callers=30", f"--log-file={vg_log}"))
    try:
        # Submission with AUTH (STARTTLS first), one local recipient.
        c = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=SLOW)
        c.ehlo("pc.example")
        c.starttls(context=tls_context())
        c.ehlo("pc.example")
        c.login(ALICE, DEMO_PASSWORD)
        refused = c.sendmail(ALICE, [BOB], b"Subject: under valgrind\r\n\r\nhello bob\r\n")
        assert refused == {}
        c.quit()
        (msg,) = wait_delivered(inst, BOB, 1, timeout=SLOW)
        assert b"hello bob" in msg

        # POP3 fetch (STLS, USER/PASS), then delete.
        p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=SLOW)
        p.stls(context=tls_context())
        p.user(BOB)
        assert p.pass_(DEMO_PASSWORD).startswith(b"+OK")
        assert p.stat()[0] == 1
        assert b"hello bob" in b"\r\n".join(p.retr(1)[1])
        p.dele(1)
        assert p.quit().startswith(b"+OK")

        # Reload, then a drain on SIGTERM.
        inst.proc.send_signal(signal.SIGHUP)
        inst.wait_log(r"info reload ok\n", timeout=SLOW)
        code = inst.stop(timeout=SLOW)
    finally:
        if inst.proc is not None:
            inst.stop(signal.SIGKILL)
    log = vg_log.read_text(errors="replace")
    assert code == 0, f"postgated under valgrind exited {code} (99: memcheck errors):\n{log}"
    for bad in ("Invalid read", "Invalid write", "Invalid free", "uninitialised",
                "Mismatched free", "Source and destination overlap"):
        assert bad not in log, f"valgrind: {bad}:\n{log}"
    m = re.search(r"definitely lost: ([\d,]+) bytes", log)
    assert m is None or m.group(1) == "0", f"valgrind: memory definitely lost:\n{log}"
    assert re.search(r"ERROR SUMMARY: 0 errors", log), log
