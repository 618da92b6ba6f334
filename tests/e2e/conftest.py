"""Shared harness for end-to-end tests: a real instance made by the real
`postgate init`, on free loopback ports, driven by real clients.

Environment:
  POSTGATE_BUILD_DIR  where postgate and postgated were built (default: build/)
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("POSTGATE_BUILD_DIR", ROOT / "build"))
POSTGATE = BUILD / "postgate"
POSTGATED = BUILD / "postgated"
DEMO_PASSWORD = "correct horse"
LISTENERS = ("mx", "submission", "submissions", "pop3", "pop3s", "http")


def is_root():
    return os.geteuid() == 0


def ensure_daemon_user(name="postgate"):
    """As root the daemon drops to `user` (default postgate); make sure it exists."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True)


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def can_connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def run_cli(*args, input=None, check=True, config=None, env=None):
    argv = [str(POSTGATE)]
    if config is not None:
        argv += ["-c", str(config)]
    argv += [str(a) for a in args]
    proc = subprocess.run(argv, input=input, capture_output=True, text=True,
                          timeout=60, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


class Instance:
    """One postgate instance in a temporary directory."""

    def __init__(self, base: Path, domain="example.test"):
        self.base = base
        self.dir = base / "inst"
        self.domain = domain
        run_cli("init", self.dir, "--domain", domain)
        self.config = self.dir / "postgate.conf"
        self.ports = {}
        self._assign_free_ports()
        self.proc = None
        self.log_path = self.base / "postgated.log"

    def _assign_free_ports(self):
        """Rewrite each listener's `listen` line to a free loopback port so that
        tests can run side by side."""
        text = self.config.read_text()
        section = None
        out = []
        # Hold every probe socket open until all ports are chosen, so that
        # the kernel cannot hand the same free port out twice.
        probes = []
        try:
            for line in text.splitlines():
                m = re.match(r"\s*\[listener\s+(\w+)\s*\]", line)
                if m:
                    section = m.group(1)
                m = re.match(r"(\s*listen\s*=\s*)127\.0\.0\.1:(\d+)\s*$", line)
                if m and section:
                    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    probe.bind(("127.0.0.1", 0))
                    probes.append(probe)
                    port = probe.getsockname()[1]
                    self.ports[section] = port
                    line = f"{m.group(1)}127.0.0.1:{port}"
                out.append(line)
        finally:
            for probe in probes:
                probe.close()
        self.config.write_text("\n".join(out) + "\n")
        assert set(self.ports) == set(LISTENERS), self.ports

    def port(self, name):
        return self.ports[name]

    def cli(self, *args, input=None, check=True):
        return run_cli(*args, input=input, check=check, config=self.config)

    def add_user(self, address, password=DEMO_PASSWORD):
        return self.cli("user", "add", address, "--password-stdin", input=password + "\n")

    def start(self, wait=True, extra_args=(), argv_prefix=(), env=None):
        """argv_prefix runs the daemon through another program, e.g.
        ("setpriv", "--reuid=postgate", ...) to start it as a non-root user;
        env adds to (or overrides) the environment."""
        if is_root():
            ensure_daemon_user()
        self._log = open(self.log_path, "ab")
        offset = self._log.tell()
        self.proc = subprocess.Popen(
            [*argv_prefix, str(POSTGATED), "-c", str(self.config), "-f", *extra_args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env=None if env is None else {**os.environ, **env})
        if wait:
            # Ports accept connections as soon as they are bound (as root,
            # before the privilege drop and the signal handlers): "started"
            # is logged once the daemon really serves.
            wait_for(lambda: self.proc.poll() is not None or "info started" in self.log()[offset:],
                     timeout=30, what="postgated to log 'started'")
            assert self.proc.poll() is None, f"postgated exited early:\n{self.log()}"
            for name, port in self.ports.items():
                wait_for(lambda: self.proc.poll() is not None or can_connect("127.0.0.1", port),
                         what=f"listener {name} on port {port}")
                assert self.proc.poll() is None, f"postgated exited early:\n{self.log()}"
        return self.proc

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
            raise AssertionError(f"postgated did not exit within {timeout}s after {sig}")
        finally:
            self._log.close()
            self.proc = None
        return code

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_probes_ended(self):
        """start() proves each listener with one connection; they are
        sessions too. Wait until the daemon has taken every one of them (a
        connect line, or a refusal under a low limit, per listener since the
        last start) and each accepted one has ended: equal connect and
        disconnect counts alone can also mean "not yet accepted"."""
        def ended():
            text = self.log()
            text = text[text.rfind("info started"):]
            connects = text.count(" connect listener=")
            refused = text.count(" connect refused listener=")
            return connects + refused >= len(self.ports) and \
                text.count(" disconnect listener=") == connects
        wait_for(ended, what="the readiness probes to be accepted and to end")

    def wait_log(self, pattern, timeout=10):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log()), timeout=timeout,
                        what=f"log line matching {pattern!r}")


@pytest.fixture
def workdir():
    """A temporary directory the daemon's unprivileged user can traverse."""
    base = Path(tempfile.mkdtemp(prefix="postgate-test-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def instance(workdir):
    inst = Instance(workdir)
    yield inst
    if inst.proc is not None and inst.proc.poll() is None:
        inst.stop(signal.SIGKILL)


# ---------------------------------------------------------------- mail helpers
#
# Used by the SMTP tests: where a user's Maildir is, what it holds, and a raw
# SMTP client that sends exactly the bytes it is given.

def maildir_path(inst, address):
    """The Maildir of address: maildir_root/<domain>/<local part, lower-cased>."""
    local, _, domain = address.rpartition("@")
    return inst.dir / "mail" / domain.lower() / local.lower()


def spool_texts(inst, suffix=None):
    """{file name: text} of the spool's queue/ and deferred/ (only names
    ending in suffix, if given), one entry per name: the queue may move a
    message from queue/ to deferred/ between the two listings, or between a
    listing and the read, and it must be seen once."""
    spool = inst.dir / "state" / "spool"
    found = {}
    for d in ("queue", "deferred"):
        for p in (spool / d).iterdir():
            if suffix is None or p.suffix == suffix:
                try:
                    found[p.name] = p.read_text(errors="replace")
                except FileNotFoundError:
                    pass  # moved on meanwhile: the next listing finds it
    return found


def mailbox(inst, address):
    """The message files of address's Maildir (new/ and cur/), oldest name first."""
    root = maildir_path(inst, address)
    files = []
    for sub in ("new", "cur"):
        try:
            files += [p for p in (root / sub).iterdir() if p.is_file()]
        except FileNotFoundError:
            pass
    return sorted(files, key=lambda p: p.name)


def wait_delivered(inst, address, count, timeout=10.0):
    """Wait until address's Maildir holds count messages (failing at once if it
    holds more); returns their contents, in name order."""
    def enough():
        files = mailbox(inst, address)
        assert len(files) <= count, (
            f"{address} has {len(files)} messages, expected {count}:\n" + inst.log())
        return files if len(files) == count else None
    if count == 0:
        assert mailbox(inst, address) == []
        return []
    try:
        files = wait_for(enough, timeout=timeout, what=f"{count} message(s) for {address}")
    except AssertionError as e:
        raise AssertionError(f"{e}; mailbox has {len(mailbox(inst, address))}\n"
                             f"{inst.log()}") from None
    return [p.read_bytes() for p in files]


def set_global_key(inst, key, value):
    """Set a top-level config key (before the first section) to value."""
    lines = inst.config.read_text().splitlines()
    first_section = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")),
                         len(lines))
    rx = re.compile(rf"\s*{re.escape(key)}\s*=")
    for i in range(first_section):
        if rx.match(lines[i]):
            lines[i] = f"{key} = {value}"
            break
    else:
        lines.insert(first_section, f"{key} = {value}")
    inst.config.write_text("\n".join(lines) + "\n")


class SmtpReply:
    """One SMTP reply (RFC 5321 4.2): its code and the text of each line."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return f"SmtpReply({self.raw!r})"


class SmtpRaw:
    """A raw SMTP session: send any bytes, read replies (multi-line ones whole)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, greet=True, strict=False):
        """strict: every reply but the greeting, 354 and the EHLO/HELO replies
        (which start with the host name) must carry an enhanced status code
        (RFC 2034 3) in each of its lines."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.strict = strict
        self.greeting = self.reply() if greet else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; unread: {self.buf!r}")
            self.buf += chunk
            if len(self.buf) > 1 << 20:
                raise AssertionError("reply line longer than 1 MiB")
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self):
        """The next reply; every line must end in CRLF and carry the same code."""
        raw, lines, code = b"", [], None
        while True:
            line = self._line()
            raw += line
            assert line.endswith(b"\r\n"), f"reply line without CRLF: {line!r}"
            m = re.fullmatch(rb"(\d{3})([ -])(.*)\r\n", line, re.S)
            assert m, f"malformed reply line {line!r}"
            if code is None:
                code = int(m.group(1))
            assert int(m.group(1)) == code, f"code changed inside a reply: {raw!r}"
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                reply = SmtpReply(code, lines, raw)
                if self.strict and code not in (220, 354) and not (
                        code == 250 and lines[0] == HOSTNAME):
                    assert_enhanced(reply)
                return reply

    def cmd(self, line):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()

    def expect(self, line, code, enhanced=None):
        """cmd(line), asserting its code (and enhanced code, RFC 3463)."""
        r = self.cmd(line)
        assert r.code == code, f"{line!r}: expected {code}, got {r.raw!r}"
        if enhanced is not None:
            assert r.lines[-1].startswith(enhanced + " "), \
                f"{line!r}: expected {enhanced}, got {r.raw!r}"
        return r

    def is_closed(self, timeout=10.0):
        """True when the server closes the connection with nothing more to say."""
        self.sock.settimeout(timeout)
        try:
            data = self.buf or self.sock.recv(4096)
        except ConnectionResetError:
            return True
        assert data == b"", f"unexpected bytes before close: {data!r}"
        return True


def smtp_raw(port, **kwargs):
    return SmtpRaw(port, **kwargs)


# ---------------------------------------------------------------- a mail instance
#
# Hashing passwords makes `user add` the slow part of setting an instance up,
# so the accounts store with the users and aliases below is made once per
# test session by the real `postgate` command and copied into each test's own
# instance (made by its own `postgate init`).

MAIL_USERS = ("alice@example.test", "bob@example.test", "carol@example.test",
              "dave@example.test")
MAIL_ALIASES = {
    "list@example.test": ("alice@example.test", "bob@example.test"),
    # An alias of an alias, reaching alice twice: she gets one copy.
    "team@example.test": ("list@example.test", "alice@example.test", "carol@example.test"),
    "postmaster@example.test": ("alice@example.test",),
    "loopa@example.test": ("loopb@example.test",),
    "loopb@example.test": ("loopa@example.test",),
}
MAIL_DISABLED = ("dave@example.test",)


@pytest.fixture(scope="session")
def accounts_template():
    base = Path(tempfile.mkdtemp(prefix="postgate-accounts-"))
    try:
        inst = Instance(base)
        for user in MAIL_USERS:
            inst.add_user(user)
        for alias, targets in MAIL_ALIASES.items():
            inst.cli("alias", "add", alias, *targets)
        for user in MAIL_DISABLED:
            inst.cli("user", "disable", user)
        yield inst.dir / "state" / "accounts.db"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mail_instance(instance, accounts_template):
    """A fresh instance (not started) whose store holds MAIL_USERS and MAIL_ALIASES."""
    # free_port() may hand out one port twice (each probe socket is closed
    # before the next is opened): choose again until the listeners differ.
    for _ in range(20):
        if len(set(instance.ports.values())) == len(instance.ports):
            break
        instance._assign_free_ports()
    assert len(set(instance.ports.values())) == len(instance.ports), instance.ports
    shutil.copyfile(accounts_template, instance.dir / "state" / "accounts.db")
    return instance


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")


def assert_no_sanitizer_report(inst):
    log = inst.log()
    for mark in SANITIZER_MARKS:
        assert mark not in log, f"sanitizer report in the daemon's log:\n{log}"


def assert_clean_stop(inst):
    """The daemon is still running, stops on SIGTERM with exit 0, and its log
    holds no sanitizer report."""
    assert inst.proc is not None, "postgated is not running"
    alive = inst.proc.poll() is None
    code = inst.stop()
    assert alive, f"postgated died (exit {code}):\n{inst.log()}"
    assert code == 0, f"postgated exited {code} on SIGTERM:\n{inst.log()}"
    assert_no_sanitizer_report(inst)


@pytest.fixture
def mail_server(mail_instance):
    """mail_instance; at the end, if the test left it running, it must stop
    cleanly on SIGTERM (exit 0, no sanitizer report). A test that stopped it
    checked that itself (assert_clean_stop)."""
    yield mail_instance
    if mail_instance.proc is not None:
        assert_clean_stop(mail_instance)


def start_mail(inst, **config):
    """Set top-level config keys, start the daemon and wait until it serves."""
    for key, value in config.items():
        set_global_key(inst, key, value)
    inst.start()
    return inst


HOSTNAME = "mail.example.test"
# RFC 3463 2: class.subject.detail, then the text.
ENHANCED_RX = re.compile(r"[245]\.\d{1,3}\.\d{1,3} ")
DELIVERED_RX = re.compile(
    rb"\AReturn-Path: <(?P<return_path>[^>\r\n]*)>\r\n"
    rb"Delivered-To: (?P<delivered_to>[^\r\n]*)\r\n"
    rb"Received: from (?P<helo>\S+) \(\[(?P<ip>[^\]\r\n]*)\]\)\r\n"
    rb"\tby (?P<by>\S+) \(postgate\) with (?P<with>\S+) id (?P<qid>\w+)"
    rb"(?:\r\n\tfor <(?P<for>[^>\r\n]*)>)?;\r\n"
    rb"\t(?P<date>[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000)\r\n")


def parse_delivered(data):
    """Split a delivered message into our trace headers (decoded str fields,
    bytes for the rest) and the message exactly as the client sent it."""
    m = DELIVERED_RX.match(data)
    assert m, f"delivered message does not start with our trace headers: {data[:600]!r}"
    fields = {k: (v.decode("utf-8") if v is not None else None)
              for k, v in m.groupdict().items()}
    fields["body"] = data[m.end():]
    return fields


def assert_enhanced(reply):
    """RFC 2034 3: every line of the reply carries the enhanced status code."""
    for line in reply.lines:
        assert ENHANCED_RX.match(line), f"no enhanced status code: {reply.raw!r}"
        assert line[0] == str(reply.code)[0], f"enhanced class differs: {reply.raw!r}"


def smtp_session(inst, helo="client.example", ehlo=True):
    """A raw session on mx that has said EHLO (or HELO)."""
    s = SmtpRaw(inst.port("mx"), strict=True)
    assert s.greeting.code == 220, s.greeting
    r = s.cmd(f"{'EHLO' if ehlo else 'HELO'} {helo}")
    assert r.code == 250, r
    return s


def queued_id(reply):
    """The queue ID of a `250 2.0.0 Ok: queued as ID` reply."""
    m = re.fullmatch(r"2\.0\.0 Ok: queued as (\w+)", reply.lines[-1])
    assert reply.code == 250 and m, f"not a queued reply: {reply.raw!r}"
    return m.group(1)


def send_data(s, sender, rcpts, message):
    """One DATA transaction on SmtpRaw s; message is the text as sent (already
    dot-stuffed, ending in CRLF). Returns the final reply."""
    s.expect(f"MAIL FROM:<{sender}>", 250, "2.1.0")
    for rcpt in rcpts:
        s.expect(f"RCPT TO:<{rcpt}>", 250, "2.1.5")
    r = s.cmd("DATA")
    assert r.code == 354, r
    s.send(message + b".\r\n")
    return s.reply()


def assert_serves(inst, rcpt="carol@example.test"):
    """The server is alive: a new connection is greeted and a message to rcpt
    is accepted and delivered."""
    assert inst.proc is not None and inst.proc.poll() is None, \
        f"postgated is gone:\n{inst.log()}"
    before = len(mailbox(inst, rcpt))
    token = f"alive-{time.monotonic_ns()}"
    with smtp_session(inst, helo="survivor.example") as s:
        qid = queued_id(send_data(s, "check@survivor.example", [rcpt],
                                  f"Subject: {token}\r\n\r\n{token}\r\n".encode()))
        s.expect("QUIT", 221, "2.0.0")
    msgs = wait_delivered(inst, rcpt, before + 1)
    assert any(token.encode() in m and qid.encode() in m for m in msgs)
