"""End-to-end tests of the `postgate` administrator command: instance set-up,
config check, domains, users, aliases, password input and exit codes.

Every test makes its own instance in a temporary directory with the real
`postgate init`; no daemon is started."""
import base64
import errno
import hashlib
import hmac
import json
import os
import pty
import pwd
import re
import resource
import select
import signal
import sqlite3
import stat
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import POSTGATE, ensure_daemon_user, is_root, run_cli

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_SOFTWARE = 64, 65, 67, 70
EX_CANTCREAT, EX_IOERR, EX_NOPERM, EX_CONFIG = 73, 74, 77, 78
PASSWORD = "correct horse battery staple"


def run_bytes(*args, input=b"", config=None, **kwargs):
    """Like run_cli, but with bytes in and out (NUL bytes, CR LF)."""
    argv = [str(POSTGATE)]
    if config is not None:
        argv += ["-c", str(config)]
    argv += [str(a) for a in args]
    return subprocess.run(argv, input=input, capture_output=True, timeout=60, **kwargs)


def snapshot(root: Path):
    """Every path under root with its type, mode, size, mtime and content hash."""
    result = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        result[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                               st.st_size, st.st_mtime_ns, digest)
    return result


def mode(path: Path):
    return stat.S_IMODE(path.stat().st_mode)


def expected_user():
    return "postgate" if is_root() else pwd.getpwuid(os.geteuid()).pw_name


def store_values(instance_dir: Path):
    """Every text value of every table in the accounts store, without knowing
    the schema: the tests check what is stored, not how."""
    db = sqlite3.connect(f"file:{instance_dir / 'state/accounts.db'}?mode=ro", uri=True)
    try:
        values = []
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                values += [v for v in row if isinstance(v, str)]
        return values
    finally:
        db.close()


def secrets_of(instance, address):
    """The stored argon2id and SCRAM secrets (the store holds exactly one of each per user)."""
    del address  # one user per test that calls this
    values = store_values(instance.dir)
    argon = [v for v in values if v.startswith("{ARGON2ID}")]
    scram = [v for v in values if v.startswith("{SCRAM-SHA-256}")]
    assert len(argon) == 1 and len(scram) == 1, values
    return argon[0], scram[0]


def scram_matches(secret, password: bytes):
    """RFC 5802 3: StoredKey = H(HMAC(SaltedPassword, "Client Key")),
    ServerKey = HMAC(SaltedPassword, "Server Key")."""
    iterations, salt, stored_key, server_key = secret[len("{SCRAM-SHA-256}"):].split(",")
    salted = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return (hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)
            and hmac.new(salted, b"Server Key", hashlib.sha256).digest()
            == base64.b64decode(server_key))


def db_bytes(instance_dir: Path):
    return b"".join(p.read_bytes() for p in (instance_dir / "state").glob("accounts.db*"))


def table_rows(text):
    """Split an aligned table into rows of cells, checking the alignment: every
    column starts where its header starts, and no line ends in a blank."""
    lines = text.splitlines()
    assert lines, "empty table"
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    rows = []
    for line in lines:
        assert line == line.rstrip(), f"trailing blank in {line!r}"
        cells = []
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else len(line)
            if i + 1 < len(starts):
                assert line[end - 2:end] == "  ", f"column {i} not followed by two blanks: {line!r}"
            assert line[start] != " ", f"column {i} does not start at {start}: {line!r}"
            cells.append(line[start:end].rstrip())
        rows.append(cells)
    return rows[0], rows[1:]


# ---- init -------------------------------------------------------------------

def test_init_makes_the_layout_with_the_right_modes(workdir):
    target = workdir / "new"
    proc = run_cli("init", target)
    assert mode(target) == 0o755
    assert mode(target / "postgate.conf") == 0o644
    assert mode(target / "tls/cert.pem") == 0o644
    assert mode(target / "tls/key.pem") == 0o600
    assert mode(target / "state") == 0o700
    assert mode(target / "mail") == 0o700
    assert (target / "state/accounts.db").is_file()
    assert list((target / "mail").iterdir()) == []
    assert "alice@example.test" in proc.stdout
    assert f"postgated -c {target}/postgate.conf -f" in proc.stdout

    text = (target / "postgate.conf").read_text()
    lines = text.splitlines()
    assert re.fullmatch(r"# postgate instance made by `postgate init` on "
                        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.", lines[0]), lines[0]
    assert lines[1] == ("# Every key is described in docs/configuration.md; "
                        "`postgate -c <this file> config check` prints them all.")
    assert "\n".join(lines[2:]) + "\n" == f"""hostname = mail.example.test
user = {expected_user()}
state_dir = state
maildir_root = mail
accounts_db = state/accounts.db
tls_cert = tls/cert.pem
tls_key = tls/key.pem
log_level = info

[listener mx]
listen = 127.0.0.1:2525

[listener submission]
listen = 127.0.0.1:5870

[listener submissions]
listen = 127.0.0.1:4650

[listener pop3]
listen = 127.0.0.1:1100

[listener pop3s]
listen = 127.0.0.1:9950

[listener http]
listen = 127.0.0.1:8080
"""

    cert = subprocess.run(["openssl", "x509", "-in", target / "tls/cert.pem", "-noout",
                           "-subject", "-ext", "subjectAltName,basicConstraints,keyUsage,"
                           "extendedKeyUsage", "-dates"],
                          capture_output=True, text=True, check=True).stdout
    assert "CN = mail.example.test" in cert
    assert "DNS:mail.example.test, DNS:smtp.example.test, DNS:pop.example.test" in cert
    assert "CA:FALSE" in cert and "Digital Signature" in cert
    assert "TLS Web Server Authentication" in cert
    key = subprocess.run(["openssl", "pkey", "-in", target / "tls/key.pem", "-noout", "-text"],
                         capture_output=True, text=True, check=True).stdout
    assert "prime256v1" in key or "P-256" in key

    # The store holds the domain and no users.
    domains = json.loads(run_cli("domain", "list", "--json", config=target / "postgate.conf").stdout)
    assert [d["domain"] for d in domains] == ["example.test"]
    assert domains[0]["smtp_name"] == "smtp.example.test"
    assert domains[0]["pop3_name"] == "pop.example.test"
    users = run_cli("user", "list", "--json", config=target / "postgate.conf").stdout
    assert json.loads(users) == []


def test_init_normalizes_domain_and_hostname(workdir):
    target = workdir / "inst"
    run_cli("init", f"{target}/", "--domain", "Example.ORG", "--hostname", "MX1.Example.org")
    text = (target / "postgate.conf").read_text()
    assert "\nhostname = mx1.example.org\n" in text
    cert = subprocess.run(["openssl", "x509", "-in", target / "tls/cert.pem", "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True, check=True).stdout
    assert "DNS:mx1.example.org, DNS:smtp.example.org, DNS:pop.example.org" in cert
    show = json.loads(run_cli("domain", "show", "example.org", "--json",
                              config=target / "postgate.conf").stdout)
    assert show["domain"] == "example.org"


def test_init_into_an_existing_empty_directory_keeps_its_mode(workdir):
    target = workdir / "empty"
    target.mkdir()
    os.chmod(target, 0o750)
    run_cli("init", target)
    assert mode(target) == 0o750
    assert (target / "postgate.conf").is_file()


def test_init_twice_is_refused_and_changes_nothing(instance):
    before = snapshot(instance.dir)
    proc = run_cli("init", instance.dir, check=False)
    assert proc.returncode == EX_CANTCREAT
    assert proc.stderr.startswith("postgate: ")
    assert "postgate.conf" in proc.stderr
    assert proc.stdout == ""
    assert snapshot(instance.dir) == before


@pytest.mark.parametrize("content", ["file", "dir", "hidden"])
def test_init_into_a_non_empty_directory_is_refused(workdir, content):
    target = workdir / "busy"
    target.mkdir()
    if content == "file":
        (target / "keep.txt").write_text("mine\n")
    elif content == "dir":
        (target / "sub").mkdir()
    else:
        (target / ".hidden").write_text("")
    before = snapshot(target)
    proc = run_cli("init", target, check=False)
    assert proc.returncode == EX_CANTCREAT
    assert "not empty" in proc.stderr
    assert snapshot(target) == before


def test_init_onto_a_file_is_refused(workdir):
    target = workdir / "afile"
    target.write_text("x")
    proc = run_cli("init", target, check=False)
    assert proc.returncode == EX_CANTCREAT
    assert target.read_text() == "x"


@pytest.mark.parametrize("args,code", [
    (["--domain", "bad domain"], EX_DATAERR),
    (["--domain", "-example.test"], EX_DATAERR),
    (["--hostname", "a..b"], EX_DATAERR),
    (["--domain"], EX_USAGE),
    (["--frob"], EX_USAGE),
])
def test_init_refuses_bad_arguments_before_making_anything(workdir, args, code):
    target = workdir / "never"
    proc = run_cli("init", target, *args, check=False)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("postgate: ")
    assert not target.exists()


def test_init_that_fails_half_way_removes_only_what_it_made(workdir):
    """Run init with ever more file descriptors allowed, so that it fails at
    every stage that opens a file: each run either makes the whole instance or
    leaves nothing behind (and an existing empty directory stays)."""
    failures, successes = set(), 0
    for limit in range(3, 24):
        for existing in (False, True):
            target = workdir / f"fd{limit}-{int(existing)}"
            if existing:
                target.mkdir()

            def limit_fds(limit=limit):
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

            proc = subprocess.run([str(POSTGATE), "init", str(target)], preexec_fn=limit_fds,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=60)
            assert proc.returncode >= 0, f"killed by a signal: {proc.stderr}"
            if proc.returncode == 0:
                successes += 1
                assert (target / "postgate.conf").is_file()
                assert (target / "state/accounts.db").is_file()
            else:
                failures.add(re.sub(r"fd\d+-\d", "DIR", proc.stderr.strip()))
                if existing:
                    assert list(target.iterdir()) == [], proc.stderr
                else:
                    assert not target.exists(), proc.stderr
    assert successes > 0
    # Failures at different stages (certificate, store, configuration, ...).
    assert len(failures) >= 2, failures


# ---- config check -----------------------------------------------------------

def test_config_check_passes_and_prints_every_key(instance, workdir):
    if is_root():
        ensure_daemon_user()
    proc = instance.cli("config", "check")
    assert "is valid" in proc.stderr
    printed = proc.stdout
    for line in instance.config.read_text().splitlines():
        m = re.match(r"(\w+) = ", line)
        if m:
            assert re.search(rf"^{m.group(1)} = ", printed, re.M), m.group(1)
    for name, port in instance.ports.items():
        assert f"[listener {name}]\nlisten = 127.0.0.1:{port}\n" in printed
    for key in ("shutdown_timeout", "worker_threads"):
        assert re.search(rf"^{key}\w* = ", printed, re.M), key
    # What it prints is a configuration that checks too.
    again = workdir / "printed.conf"
    again.write_text(printed)
    run_cli("config", "check", config=again)


def test_config_check_reports_a_syntax_error_with_file_and_line(instance):
    text = instance.config.read_text()
    instance.config.write_text(text.replace("log_level = info", "log_level = loud"))
    proc = instance.cli("config", "check", check=False)
    assert proc.returncode == EX_CONFIG
    assert re.search(rf"^postgate: {re.escape(str(instance.config))}:\d+: ", proc.stderr), proc.stderr


def test_config_check_missing_file(workdir):
    proc = run_cli("config", "check", config=workdir / "nope.conf", check=False)
    assert proc.returncode == EX_CONFIG
    assert "nope.conf" in proc.stderr


def test_config_check_finds_a_key_that_does_not_match(instance, workdir):
    if is_root():
        ensure_daemon_user()
    other = workdir / "other"
    run_cli("init", other)
    os.replace(other / "tls/key.pem", instance.dir / "tls/key.pem")
    proc = instance.cli("config", "check", check=False)
    assert proc.returncode == EX_CONFIG
    assert "does not match" in proc.stderr
    assert "hostname = mail.example.test" in proc.stdout


def test_config_check_finds_a_missing_store_and_certificate(instance):
    if is_root():
        ensure_daemon_user()
    (instance.dir / "state/accounts.db").unlink()
    (instance.dir / "tls/cert.pem").unlink()
    proc = instance.cli("config", "check", check=False)
    assert proc.returncode == EX_CONFIG
    assert "accounts.db" in proc.stderr
    assert "cert.pem" in proc.stderr
    assert not (instance.dir / "state/accounts.db").exists()


@pytest.mark.skipif(not is_root(), reason="the user check runs only as root")
@pytest.mark.parametrize("user,complaint", [("root", "is root"),
                                            ("no-such-user-here", "no such user")])
def test_config_check_as_root_checks_the_user(instance, user, complaint):
    text = instance.config.read_text()
    instance.config.write_text(text.replace("user = postgate", f"user = {user}"))
    proc = instance.cli("config", "check", check=False)
    assert proc.returncode == EX_CONFIG
    assert complaint in proc.stderr


# ---- users ------------------------------------------------------------------

def test_user_add_passwd_del_round_trip(instance):
    proc = instance.cli("user", "add", "alice@example.test", "--password-stdin",
                        input=PASSWORD + "\n")
    assert "alice@example.test" in proc.stdout
    show = json.loads(instance.cli("user", "show", "alice@example.test", "--json").stdout)
    assert show["address"] == "alice@example.test"
    assert show["domain"] == "example.test"
    assert show["enabled"] is True and show["sending_hold"] is False
    assert show["secret_schemes"] == ["ARGON2ID", "SCRAM-SHA-256"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", show["created"])
    assert PASSWORD not in json.dumps(show)

    argon, scram = secrets_of(instance, "alice@example.test")
    assert argon.startswith("{ARGON2ID}$argon2id$")
    assert scram.startswith("{SCRAM-SHA-256}4096,")
    assert scram_matches(scram, PASSWORD.encode())
    assert PASSWORD.encode() not in db_bytes(instance.dir)

    new_password = "another one, longer"
    instance.cli("user", "passwd", "alice@example.test", "--password-stdin",
                 input=new_password + "\n")
    argon2, scram2 = secrets_of(instance, "alice@example.test")
    assert argon2 != argon and argon2.startswith("{ARGON2ID}$argon2id$")
    assert scram2 != scram and scram_matches(scram2, new_password.encode())
    assert not scram_matches(scram2, PASSWORD.encode())
    data = db_bytes(instance.dir)
    assert PASSWORD.encode() not in data and new_password.encode() not in data

    proc = instance.cli("user", "del", "alice@example.test")
    assert "alice@example.test" in proc.stdout
    proc = instance.cli("user", "show", "alice@example.test", check=False)
    assert proc.returncode == EX_NOUSER
    assert json.loads(instance.cli("user", "list", "--json").stdout) == []


@pytest.mark.parametrize("name,stdin,stored", [
    ("LF ending", b"pass word\n", b"pass word"),
    ("CRLF ending", b"pass word\r\n", b"pass word"),
    ("no line ending", b"pass word", b"pass word"),
    ("only the first line", b"first\nsecond\n", b"first"),
    ("blanks kept", b"  spaced  \n", b"  spaced  "),
    ("UTF-8", "pässwörd\n".encode(), "pässwörd".encode()),
    ("at the limit", b"x" * 1024 + b"\n", b"x" * 1024),
])
def test_password_stdin_line_rules(instance, name, stdin, stored):
    proc = run_bytes("user", "add", "bob@example.test", "--password-stdin", input=stdin,
                     config=instance.config)
    assert proc.returncode == 0, (name, proc.stderr)
    _, scram = secrets_of(instance, "bob@example.test")
    assert scram_matches(scram, stored), name


@pytest.mark.parametrize("name,stdin", [
    ("empty line", b"\n"),
    ("nothing", b""),
    ("only CR LF", b"\r\n"),
    ("one past the limit", b"x" * 1025 + b"\n"),
    ("NUL byte", b"pass\x00word\n"),
])
def test_password_stdin_refusals(instance, name, stdin):
    proc = run_bytes("user", "add", "bob@example.test", "--password-stdin", input=stdin,
                     config=instance.config)
    assert proc.returncode == EX_DATAERR, (name, proc.stderr)
    assert proc.stderr.startswith(b"postgate: ")
    assert instance.cli("user", "show", "bob@example.test", check=False).returncode == EX_NOUSER


def test_password_needs_stdin_flag_when_not_a_terminal(instance):
    proc = subprocess.run([str(POSTGATE), "-c", str(instance.config), "user", "add",
                           "carol@example.test"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EX_USAGE
    assert "--password-stdin" in proc.stderr
    assert instance.cli("user", "show", "carol@example.test", check=False).returncode == EX_NOUSER


def test_password_is_never_on_the_command_line(instance):
    proc = instance.cli("user", "add", "dave@example.test", "--password", "x", check=False)
    assert proc.returncode == EX_USAGE
    proc = instance.cli("user", "add", "dave@example.test", "hunter2", check=False)
    assert proc.returncode == EX_USAGE


def test_user_add_duplicate_is_refused(instance):
    instance.add_user("alice@example.test")
    argon, _ = secrets_of(instance, "alice@example.test")
    for address in ("alice@example.test", "ALICE@Example.Test"):
        proc = instance.cli("user", "add", address, "--password-stdin", input="other\n",
                            check=False)
        assert proc.returncode == EX_CANTCREAT, proc.stderr
        assert "exists" in proc.stderr
    assert secrets_of(instance, "alice@example.test")[0] == argon


def test_user_add_on_an_alias_is_refused(instance):
    instance.add_user("alice@example.test")
    instance.cli("alias", "add", "info@example.test", "alice@example.test")
    proc = instance.cli("user", "add", "info@example.test", "--password-stdin", input="pw\n",
                        check=False)
    assert proc.returncode == EX_CANTCREAT
    assert "alias" in proc.stderr


def test_user_in_an_unknown_domain(instance):
    proc = instance.cli("user", "add", "alice@elsewhere.example", "--password-stdin",
                        input="pw\n", check=False)
    assert proc.returncode == EX_NOUSER
    assert "elsewhere.example" in proc.stderr
    assert instance.cli("user", "list", "elsewhere.example", check=False).returncode == EX_NOUSER


@pytest.mark.parametrize("address", ["no-at-sign", "@example.test", "alice@", "a b@example.test",
                                     "alice@exa mple.test", "alice@-bad-.test",
                                     "x" * 65 + "@example.test"])
def test_malformed_addresses_are_data_errors(instance, address):
    for args in (["user", "add", address, "--password-stdin"], ["user", "show", address],
                 ["user", "del", address], ["alias", "add", address, "alice@example.test"]):
        proc = instance.cli(*args, input="pw\n", check=False)
        assert proc.returncode == EX_DATAERR, (args, proc.stderr)
        assert proc.stderr.startswith("postgate: ")


def test_local_part_lookup_ignores_case(instance):
    instance.add_user("alice@example.test")
    show = json.loads(instance.cli("user", "show", "ALICE@EXAMPLE.TEST", "--json").stdout)
    assert show["address"] == "alice@example.test"
    text = instance.cli("user", "show", "Alice@Example.Test").stdout
    assert re.search(r"^address:\s+alice@example\.test$", text, re.M)
    assert re.search(r"^secret schemes:\s+ARGON2ID SCRAM-SHA-256$", text, re.M)
    instance.cli("user", "disable", "ALICE@example.test")
    assert json.loads(instance.cli("user", "show", "alice@example.test", "--json")
                      .stdout)["enabled"] is False
    instance.cli("user", "enable", "alice@EXAMPLE.test")
    assert json.loads(instance.cli("user", "show", "alice@example.test", "--json")
                      .stdout)["enabled"] is True


def test_user_enable_disable_unknown_user(instance):
    for verb in ("disable", "enable", "passwd", "del"):
        proc = instance.cli("user", verb, "nobody@example.test", "--password-stdin"
                            if verb == "passwd" else "--", input="pw\n", check=False)
        assert proc.returncode == EX_NOUSER, (verb, proc.stderr)


def test_missing_store_is_an_io_error_naming_the_file(instance):
    (instance.dir / "state/accounts.db").unlink()
    for args in (["user", "list"], ["domain", "list"], ["alias", "list"]):
        proc = instance.cli(*args, check=False)
        assert proc.returncode == EX_IOERR, proc.stderr
        assert "accounts.db" in proc.stderr
    # Nothing re-creates it behind the administrator's back.
    assert not (instance.dir / "state/accounts.db").exists()


def test_missing_config_file(workdir):
    proc = run_cli("user", "list", config=workdir / "missing.conf", check=False)
    assert proc.returncode == EX_CONFIG
    assert "missing.conf" in proc.stderr


# ---- list output ------------------------------------------------------------

def test_user_list_is_an_aligned_table_and_json(instance):
    instance.cli("domain", "add", "example.net")
    addresses = ["a@example.test", "a-much-longer-name@example.test", "jürgen@example.test",
                 "b@example.net"]
    for address in addresses:
        instance.add_user(address)
    instance.cli("user", "disable", "a@example.test")

    header, rows = table_rows(instance.cli("user", "list").stdout)
    assert header == ["ADDRESS", "ENABLED", "SENDING_HOLD", "CREATED"]
    assert sorted(r[0] for r in rows) == sorted(addresses)
    by_address = {r[0]: r for r in rows}
    assert by_address["a@example.test"][1] == "no"
    assert by_address["b@example.net"][1] == "yes"

    raw = instance.cli("user", "list", "--json").stdout
    assert '"address": "jürgen@example.test"' in raw  # UTF-8 as it is, not \u escapes
    listed = json.loads(raw)
    assert sorted(u["address"] for u in listed) == sorted(addresses)
    assert all(u["secret_schemes"] == ["ARGON2ID", "SCRAM-SHA-256"] for u in listed)

    _, rows = table_rows(instance.cli("user", "list", "Example.NET").stdout)
    assert [r[0] for r in rows] == ["b@example.net"]
    listed = json.loads(instance.cli("user", "list", "example.test", "--json").stdout)
    assert sorted(u["address"] for u in listed) == sorted(a for a in addresses
                                                          if a.endswith("example.test"))


def test_empty_lists(instance):
    assert instance.cli("user", "list").stdout.splitlines() == [
        "ADDRESS  ENABLED  SENDING_HOLD  CREATED"]
    assert json.loads(instance.cli("alias", "list", "--json").stdout) == []


# ---- domains ----------------------------------------------------------------

def test_domain_add_show_list_del(instance):
    proc = instance.cli("domain", "add", "Example.NET", "--smtp-name", "Mail.Example.NET",
                        "--pop3-name", "mail.example.net")
    assert "example.net" in proc.stdout
    show = json.loads(instance.cli("domain", "show", "example.net", "--json").stdout)
    assert show["domain"] == "example.net"
    assert show["smtp_name"] == "mail.example.net"
    assert show["pop3_name"] == "mail.example.net"
    assert show["users"] == 0 and show["aliases"] == 0
    assert instance.cli("domain", "add", "example.net", check=False).returncode == EX_CANTCREAT

    header, rows = table_rows(instance.cli("domain", "list").stdout)
    assert header == ["DOMAIN", "SMTP_NAME", "POP3_NAME", "CREATED"]
    assert [r[:3] for r in rows] == [["example.net", "mail.example.net", "mail.example.net"],
                                     ["example.test", "smtp.example.test", "pop.example.test"]]

    text = instance.cli("domain", "show", "EXAMPLE.test").stdout
    assert re.search(r"^users:\s+0$", text, re.M)
    assert re.search(r"^SMTP server:\s+smtp\.example\.test$", text, re.M)

    instance.cli("domain", "del", "example.net")
    assert instance.cli("domain", "show", "example.net", check=False).returncode == EX_NOUSER
    assert instance.cli("domain", "del", "example.net", check=False).returncode == EX_NOUSER
    assert instance.cli("domain", "add", "bad..name", check=False).returncode == EX_DATAERR


def test_domain_del_with_users_needs_force(instance):
    instance.add_user("alice@example.test")
    instance.add_user("bob@example.test")
    instance.cli("alias", "add", "info@example.test", "alice@example.test")
    show = json.loads(instance.cli("domain", "show", "example.test", "--json").stdout)
    assert show["users"] == 2 and show["aliases"] == 1

    proc = instance.cli("domain", "del", "example.test", check=False)
    assert proc.returncode == EX_NOPERM
    assert "--force" in proc.stderr
    assert instance.cli("user", "show", "alice@example.test", check=False).returncode == 0

    instance.cli("domain", "del", "example.test", "--force")
    assert json.loads(instance.cli("domain", "list", "--json").stdout) == []
    assert json.loads(instance.cli("user", "list", "--json").stdout) == []
    assert json.loads(instance.cli("alias", "list", "--json").stdout) == []


def test_idn_domain_is_stored_as_a_labels(instance):
    instance.cli("domain", "add", "bücher.example")
    listed = json.loads(instance.cli("domain", "list", "--json").stdout)
    assert "xn--bcher-kva.example" in [d["domain"] for d in listed]
    show = json.loads(instance.cli("domain", "show", "BÜCHER.example", "--json").stdout)
    assert show["domain"] == "xn--bcher-kva.example"
    assert show["smtp_name"] == "smtp.xn--bcher-kva.example"
    instance.add_user("kunde@bücher.example")
    show = json.loads(instance.cli("user", "show", "kunde@xn--bcher-kva.example", "--json").stdout)
    assert show["address"] == "kunde@xn--bcher-kva.example"


# ---- aliases ----------------------------------------------------------------

def test_alias_add_list_del_with_owner(instance):
    instance.add_user("alice@example.test")
    proc = instance.cli("alias", "add", "Info@Example.TEST", "alice@example.test",
                        "someone@Remote.EXAMPLE", "--owner", "ALICE@example.test")
    assert "2 targets" in proc.stdout
    listed = json.loads(instance.cli("alias", "list", "--json").stdout)
    assert len(listed) == 1
    alias = listed[0]
    assert alias["address"].lower() == "info@example.test"
    assert alias["owner"] == "alice@example.test"
    assert alias["targets"] == ["alice@example.test", "someone@remote.example"]

    instance.cli("alias", "add", "postmaster@example.test", "alice@example.test")
    header, rows = table_rows(instance.cli("alias", "list", "example.test").stdout)
    assert header == ["ADDRESS", "OWNER", "TARGETS"]
    by_address = {r[0].lower(): r for r in rows}
    assert by_address["postmaster@example.test"][1] == "-"
    assert by_address["info@example.test"][1:] == [
        "alice@example.test", "alice@example.test,someone@remote.example"]

    instance.cli("alias", "del", "info@example.test", "someone@remote.example")
    alias = {a["address"].lower(): a
             for a in json.loads(instance.cli("alias", "list", "--json").stdout)}
    assert alias["info@example.test"]["targets"] == ["alice@example.test"]
    instance.cli("alias", "del", "info@example.test")
    left = json.loads(instance.cli("alias", "list", "--json").stdout)
    assert [a["address"] for a in left] == ["postmaster@example.test"]
    assert instance.cli("alias", "del", "info@example.test", check=False).returncode == EX_NOUSER

    # Adding to an alias appends, ignoring duplicates; its last target takes it along.
    proc = instance.cli("alias", "add", "postmaster@example.test", "alice@example.test",
                        "ops@remote.example")
    assert "2 targets" in proc.stdout
    left = json.loads(instance.cli("alias", "list", "--json").stdout)
    assert left[0]["targets"] == ["alice@example.test", "ops@remote.example"]
    instance.cli("alias", "del", "postmaster@example.test", "ops@remote.example")
    instance.cli("alias", "del", "postmaster@example.test", "alice@example.test")
    assert json.loads(instance.cli("alias", "list", "--json").stdout) == []


def test_alias_refusals(instance):
    instance.add_user("alice@example.test")
    cases = [
        (["alias", "add", "x@example.test", "alice@example.test", "--owner",
          "nobody@example.test"], EX_NOUSER),
        (["alias", "add", "x@nowhere.example", "alice@example.test"], EX_NOUSER),
        (["alias", "add", "alice@example.test", "bob@example.net"], EX_CANTCREAT),
        (["alias", "add", "x@example.test"], EX_USAGE),
        (["alias", "add", "x@example.test", "not-an-address"], EX_DATAERR),
        (["alias", "list", "nowhere.example"], EX_NOUSER),
    ]
    for args, code in cases:
        proc = instance.cli(*args, check=False)
        assert proc.returncode == code, (args, proc.stderr)
    assert json.loads(instance.cli("alias", "list", "--json").stdout) == []


# ---- usage ------------------------------------------------------------------

@pytest.mark.parametrize("args", [[], ["frob"], ["user"], ["user", "frob"], ["user", "add"],
                                  ["user", "list", "--bogus"], ["domain", "list", "extra"],
                                  ["-x", "user", "list"], ["-c"], ["config", "check", "--json"],
                                  ["user", "list", "--json=yes"]])
def test_usage_errors(instance, args):
    argv = [str(POSTGATE)] + (["-c", str(instance.config)] if args[:1] != ["-c"] else []) + args
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == EX_USAGE, proc.stderr
    assert proc.stderr.startswith("postgate: ")
    assert "usage:" in proc.stderr
    assert proc.stdout == ""


def test_version_and_help():
    proc = run_cli("--version")
    assert re.fullmatch(r"postgate \d+\.\d+\.\d+\n", proc.stdout)
    for args in (["help"], ["-h"], ["--help"]):
        proc = run_cli(*args)
        for command in ("init", "config check", "domain add", "user passwd", "alias del"):
            assert command in proc.stdout, (args, command)
    proc = run_cli("help", "user")
    assert "user add" in proc.stdout and "domain add" not in proc.stdout
    assert run_cli("user", "--help").stdout == proc.stdout
    assert run_cli("help", "frob", check=False).returncode == EX_USAGE


def test_default_config_path_is_named(workdir):
    if Path("/etc/postgate/postgate.conf").exists():
        pytest.skip("a real configuration is installed here")
    proc = run_cli("user", "list", check=False)
    assert proc.returncode == EX_CONFIG
    assert "/etc/postgate/postgate.conf" in proc.stderr


def test_output_error_is_reported():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([str(POSTGATE), "help"], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    assert proc.returncode == EX_IOERR


# ---- the terminal prompt ----------------------------------------------------

class Terminal:
    """postgate with a pseudo-terminal as stdin, stdout and stderr."""

    def __init__(self, instance, *args):
        self.master, self.slave = pty.openpty()
        self.proc = subprocess.Popen([str(POSTGATE), "-c", str(instance.config), *args],
                                     stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                     start_new_session=True)
        self.output = b""

    def expect(self, text: bytes, timeout=10.0):
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; got {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError as e:  # EIO once every slave end is closed
                    assert e.errno == errno.EIO
                    chunk = b""
                if not chunk:
                    assert text in self.output, f"end of output waiting for {text!r}: {self.output!r}"
                self.output += chunk

    def echo_is_on(self):
        return bool(termios.tcgetattr(self.slave)[3] & termios.ECHO)

    def wait_echo(self, on: bool, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.echo_is_on() != on:
            assert time.monotonic() < deadline, f"echo never turned {'on' if on else 'off'}"
            time.sleep(0.01)

    def type(self, text: bytes):
        os.write(self.master, text)

    def finish(self):
        code = self.proc.wait(timeout=60)
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        os.close(self.master)
        os.close(self.slave)
        return code


def test_terminal_prompt_twice_without_echo(instance):
    t = Terminal(instance, "user", "add", "tty@example.test")
    t.expect(b"New password for tty@example.test: ")
    t.wait_echo(False)
    t.type(b"typed secret\n")
    t.expect(b"Retype the new password: ")
    t.type(b"typed secret\n")
    assert t.finish() == 0, t.output
    assert b"typed secret" not in t.output  # never echoed
    assert b"added user tty@example.test" in t.output
    _, scram = secrets_of(instance, "tty@example.test")
    assert scram_matches(scram, b"typed secret")


def test_terminal_prompt_mismatch_is_refused(instance):
    t = Terminal(instance, "user", "add", "tty@example.test")
    t.expect(b"New password for tty@example.test: ")
    t.type(b"first secret\n")
    t.expect(b"Retype the new password: ")
    t.type(b"other secret\n")
    assert t.finish() == EX_DATAERR, t.output
    assert b"do not match" in t.output
    assert b"first secret" not in t.output and b"other secret" not in t.output
    assert instance.cli("user", "show", "tty@example.test", check=False).returncode == EX_NOUSER


def test_terminal_passwd_and_echo_restored(instance):
    instance.add_user("tty@example.test")
    t = Terminal(instance, "user", "passwd", "tty@example.test")
    t.expect(b"New password for tty@example.test: ")
    t.type(b"changed\n")
    t.expect(b"Retype the new password: ")
    t.type(b"changed\n")
    assert t.finish() == 0, t.output
    _, scram = secrets_of(instance, "tty@example.test")
    assert scram_matches(scram, b"changed")


def test_terminal_echo_is_restored_after_sigint(instance):
    t = Terminal(instance, "user", "add", "tty@example.test")
    assert t.echo_is_on()
    t.expect(b"New password for tty@example.test: ")
    t.wait_echo(False)
    t.type(b"half typed")
    t.proc.send_signal(signal.SIGINT)
    code = t.proc.wait(timeout=30)
    assert code == -signal.SIGINT
    assert t.echo_is_on()
    t.finish()
    assert instance.cli("user", "show", "tty@example.test", check=False).returncode == EX_NOUSER
