"""The rest of the world for outbound-delivery tests: a test DNS (dnsmasq on
a loopback port, serving MX, A and null-MX records for .test domains and
NXDOMAIN for any other .test name) and "remote" SMTP servers (aiosmtpd on
127.0.0.x) that accept, defer (4xx) or reject (5xx) per recipient."""
import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_udp_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_tcp_port_on(hosts):
    """A TCP port free on every address of hosts (the MX hosts of a test
    share one port: smtp_port is global)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        ok = True
        for h in hosts:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((h, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise AssertionError("no common free port")


class Dns:
    """dnsmasq answering for .test only. records: list of dnsmasq options
    without the leading '--', e.g. "mx-host=remote.test,mx1.remote.test,10",
    "host-record=mx1.remote.test,127.0.0.2"."""

    def __init__(self, workdir: Path, records):
        self.port = free_udp_port()
        self.conf = workdir / "dnsmasq.conf"
        lines = ["no-resolv", "no-hosts", "local=/test/", "bind-interfaces",
                 "listen-address=127.0.0.1", f"port={self.port}", "user=root",
                 "pid-file=", "log-queries"] + list(records)
        self.conf.write_text("\n".join(lines) + "\n")
        self.log_path = workdir / "dnsmasq.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([DNSMASQ, "--no-daemon", f"--conf-file={self.conf}"],
                                     stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while b"started" not in self.log_path.read_bytes():
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "dnsmasq did not start"
            time.sleep(0.02)

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self._log.close()


def null_mx(domain):
    """RFC 7505: one MX, preference 0, exchange "." (RDATA 0000 00)."""
    return f"dns-rr={domain},15,000000"


class Received:
    def __init__(self, mail_from, rcpt_tos, data, mail_options, rcpt_options, tls):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.data = data
        self.mail_options = mail_options
        self.rcpt_options = rcpt_options
        self.tls = tls


class Handler:
    """Per-recipient outcomes by local part: defer* → 451, reject* → 550,
    anything else 250. `defer_all` turns deferrals on and off (a retry
    then succeeds)."""

    def __init__(self):
        self.messages = []
        self.rcpt_attempts = []
        self.defer = True
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rpartition("@")[0].lower()
        with self.lock:
            self.rcpt_attempts.append(address)
        if local.startswith("defer") and self.defer:
            return "451 4.2.0 try again later"
        if local.startswith("reject"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content,
                                          list(envelope.mail_options),
                                          list(envelope.rcpt_options),
                                          session.ssl is not None))
        return "250 2.0.0 accepted"


class Remote:
    """An aiosmtpd server on host:port. tls: an ssl.SSLContext to offer
    STARTTLS with."""

    def __init__(self, host, port, tls=None, require_starttls=False, name="remote"):
        self.handler = Handler()
        self.host, self.port = host, port
        kwargs = {}
        if tls is not None:
            kwargs = {"tls_context": tls, "require_starttls": require_starttls}
        self.controller = Controller(self.handler, hostname=host, port=port,
                                     server_hostname=name, ready_timeout=10,
                                     decode_data=False, **kwargs)
        self.controller.start()

    @property
    def messages(self):
        with self.handler.lock:
            return list(self.handler.messages)

    def stop(self):
        self.controller.stop()
