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
        for line in text.splitlines():
            m = re.match(r"\s*\[listener\s+(\w+)\s*\]", line)
            if m:
                section = m.group(1)
            m = re.match(r"(\s*listen\s*=\s*)127\.0\.0\.1:(\d+)\s*$", line)
            if m and section:
                port = free_port()
                self.ports[section] = port
                line = f"{m.group(1)}127.0.0.1:{port}"
            out.append(line)
        self.config.write_text("\n".join(out) + "\n")
        assert set(self.ports) == set(LISTENERS), self.ports

    def port(self, name):
        return self.ports[name]

    def cli(self, *args, input=None, check=True):
        return run_cli(*args, input=input, check=check, config=self.config)

    def add_user(self, address, password=DEMO_PASSWORD):
        return self.cli("user", "add", address, "--password-stdin", input=password + "\n")

    def start(self, wait=True, extra_args=(), argv_prefix=()):
        """argv_prefix runs the daemon through another program, e.g.
        ("setpriv", "--reuid=postgate", ...) to start it as a non-root user."""
        if is_root():
            ensure_daemon_user()
        self._log = open(self.log_path, "ab")
        offset = self._log.tell()
        self.proc = subprocess.Popen(
            [*argv_prefix, str(POSTGATED), "-c", str(self.config), "-f", *extra_args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
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
