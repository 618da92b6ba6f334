"""contrib/fail2ban/filter.d/postgate.conf against real auth log lines, with
Debian's `fail2ban-regex` (package fail2ban).

The lines come from the real service and the real logger in the unit test
program (which can make failures from many addresses):
tests/unit/auth_service_test, run with AUTH_SERVICE_TEST_FILTER set to its
test_log_lines_for_fail2ban case, writes on stderr exactly the lines
postgated writes. That case produces (see its comment):

  failures: 192.0.2.7 x3, 2001:db8::77, 198.51.100.23, 203.0.113.45 (a user
            name crafted to carry "client=192.0.2.200"), 198.51.100.77
            (SCRAM), 203.0.113.99 x30 plus one refusal (reason=throttled)
  not failures: logins from 192.0.2.99, a store failure from 192.0.2.50

The same lines are checked as a file (stderr), in syslog form and in the
form the journal shows for a service whose stderr it keeps.
"""
import collections
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, ROOT

FAIL2BAN_REGEX = shutil.which("fail2ban-regex")
FILTER = ROOT / "contrib" / "fail2ban" / "filter.d" / "postgate.conf"
JAIL = ROOT / "contrib" / "fail2ban" / "jail.d" / "postgate.conf"
COMMON = Path("/etc/fail2ban/filter.d/common.conf")
SAMPLE_PROGRAM = BUILD / "tests" / "unit" / "auth_service_test"

WANT = {
    "192.0.2.7": 3,
    "2001:db8::77": 1,
    "198.51.100.23": 1,
    "203.0.113.45": 1,
    "198.51.100.77": 1,
    "203.0.113.99": 31,
}
NEVER = ("192.0.2.99", "192.0.2.50", "192.0.2.200")

STDERR_PREFIX = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) (postgated\[\d+\]) ")

pytestmark = pytest.mark.skipif(FAIL2BAN_REGEX is None or not COMMON.exists(),
                                reason="fail2ban-regex is not installed (Debian package fail2ban)")


@pytest.fixture(scope="module")
def stderr_lines(tmp_path_factory):
    """The auth log lines of the real service, as postgated writes them to stderr."""
    assert SAMPLE_PROGRAM.exists(), f"{SAMPLE_PROGRAM} is not built (POSTGATE_BUILD_DIR?)"
    env = dict(os.environ, AUTH_SERVICE_TEST_FILTER="test_log_lines_for_fail2ban")
    proc = subprocess.run([str(SAMPLE_PROGRAM)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"{SAMPLE_PROGRAM} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if " auth " in line]
    assert len(lines) == sum(WANT.values()) + 3, "\n".join(lines)
    return lines


@pytest.fixture(scope="module")
def filter_path(tmp_path_factory):
    """Our filter beside Debian's common.conf, which it includes."""
    conf = tmp_path_factory.mktemp("fail2ban")
    (conf / "filter.d").mkdir()
    shutil.copy(COMMON, conf / "filter.d" / "common.conf")
    shutil.copy(FILTER, conf / "filter.d" / "postgate.conf")
    return conf / "filter.d" / "postgate.conf"


def as_syslog(line):
    """rsyslog's /var/log/mail.log form of a line postgated sent to syslog()."""
    m = STDERR_PREFIX.match(line)
    assert m, line
    return f"May  1 12:00:00 mail {m.group(2)}: {line[m.end():]}"


def as_journal(line):
    """`journalctl` form of a line a systemd service wrote to stderr: the
    journal's prefix in front of postgated's own."""
    m = STDERR_PREFIX.match(line)
    assert m, line
    return f"May 01 12:00:00 mail {m.group(2)}: {line}"


def matched_hosts(log_file, filter_path):
    proc = subprocess.run([FAIL2BAN_REGEX, "--raw", "--out", "ip", str(log_file),
                           str(filter_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return collections.Counter(line.strip() for line in proc.stdout.splitlines()
                               if line.strip())


@pytest.mark.parametrize("form", ["stderr", "syslog", "journal"])
def test_filter_matches_failures_and_only_failures(form, stderr_lines, filter_path, tmp_path):
    convert = {"stderr": lambda line: line, "syslog": as_syslog, "journal": as_journal}[form]
    log_file = tmp_path / f"{form}.log"
    log_file.write_text("".join(convert(line) + "\n" for line in stderr_lines))
    hosts = matched_hosts(log_file, filter_path)
    assert hosts == collections.Counter(WANT), log_file.read_text()
    for host in NEVER:
        assert host not in hosts


def test_lines_never_carry_a_password(stderr_lines):
    text = "\n".join(stderr_lines)
    for secret in ("correct horse", "guess 1", "guess 5"):
        assert secret not in text


def test_example_jail_passes_fail2ban_configuration_test(tmp_path):
    """The example jail and the filter, installed into a copy of Debian's
    /etc/fail2ban (its own enabled jails removed), pass `fail2ban-client -t`,
    and the jail reads postgated's journal lines."""
    client = shutil.which("fail2ban-client")
    if client is None:
        pytest.skip("fail2ban-client is not installed (Debian package fail2ban)")
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    for path in (conf / "jail.d").iterdir():
        path.unlink()
    shutil.copy(FILTER, conf / "filter.d" / "postgate.conf")
    shutil.copy(JAIL, conf / "jail.d" / "postgate.conf")
    test = subprocess.run([client, "-c", str(conf), "-t"], capture_output=True, text=True,
                          timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr
    dump = subprocess.run([client, "-c", str(conf), "-d"], capture_output=True, text=True,
                          timeout=60)
    assert dump.returncode == 0, dump.stdout + dump.stderr
    assert "['add', 'postgate', 'systemd']" in dump.stdout
    assert "['set', 'postgate', 'addjournalmatch', 'SYSLOG_IDENTIFIER=postgated']" in dump.stdout


def test_filter_matches_the_daemons_own_lines(mail_server, filter_path, tmp_path):
    """The running daemon's log after failed and successful SMTP logins."""
    import base64
    import smtplib
    import ssl
    from conftest import DEMO_PASSWORD, assert_clean_stop

    inst = mail_server
    inst.start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for password in ("wrong-1", "wrong-2", DEMO_PASSWORD):
        with smtplib.SMTP_SSL("127.0.0.1", inst.port("submissions"), timeout=10,
                              context=ctx) as client:
            client.ehlo("pc")
            code, _ = client.docmd("AUTH", "PLAIN " + base64.b64encode(
                f"\0alice@example.test\0{password}".encode()).decode())
            assert code == (235 if password == DEMO_PASSWORD else 535)
    inst.wait_log(r"auth ok listener=submissions")
    assert_clean_stop(inst)
    log = tmp_path / "postgated.log"
    log.write_text("\n".join(line for line in inst.log().splitlines() if " auth " in line) + "\n")
    assert matched_hosts(log, filter_path) == {"127.0.0.1": 2}


def test_filter_matches_the_daemons_pop3_lines(mail_server, filter_path, tmp_path):
    """Failed POP3 logins (USER/PASS and AUTH PLAIN) write the same line as
    failed SMTP AUTH, and the filter bans them; a success does not count."""
    import base64
    import poplib
    import ssl
    from conftest import DEMO_PASSWORD, assert_clean_stop

    inst = mail_server
    inst.start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    client = poplib.POP3_SSL("127.0.0.1", inst.port("pop3s"), timeout=10, context=ctx)
    client.user("bob@example.test")
    with pytest.raises(poplib.error_proto):
        client.pass_("wrong-1")
    with pytest.raises(poplib.error_proto):
        client._shortcmd("AUTH PLAIN " + base64.b64encode(
            b"\0bob@example.test\0wrong-2").decode())
    client.user("bob@example.test")
    client.pass_(DEMO_PASSWORD)
    client.quit()
    inst.wait_log(r"auth ok listener=pop3s")
    assert_clean_stop(inst)
    log = tmp_path / "postgated.log"
    lines = [line for line in inst.log().splitlines() if " auth " in line]
    assert sum("mech=USER" in line and "auth failed" in line for line in lines) == 1
    assert sum("mech=PLAIN" in line and "auth failed" in line for line in lines) == 1
    log.write_text("\n".join(lines) + "\n")
    assert matched_hosts(log, filter_path) == {"127.0.0.1": 2}
