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
        # The free port may be taken before dnsmasq binds it (tests run side
        # by side): choose again a few times.
        for attempt in range(5):
            if self._start(workdir, records, attempt):
                return
        raise AssertionError("dnsmasq did not start:\n" + self.log_path.read_text())

    def _start(self, workdir, records, attempt):
        self.port = free_udp_port()
        self.conf = workdir / f"dnsmasq-{attempt}.conf"
        lines = ["no-resolv", "no-hosts", "local=/test/", "bind-interfaces",
                 "listen-address=127.0.0.1", f"port={self.port}", "user=root",
                 "pid-file=", "log-queries"] + list(records)
        self.conf.write_text("\n".join(lines) + "\n")
        self.log_path = workdir / f"dnsmasq-{attempt}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([DNSMASQ, "--no-daemon", f"--conf-file={self.conf}"],
                                     stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while b"started" not in self.log_path.read_bytes():
            if self.proc.poll() is not None:
                self._log.close()
                if b"Address already in use" in self.log_path.read_bytes():
                    return False
                raise AssertionError(self.log_path.read_text())
            assert time.monotonic() < deadline, "dnsmasq did not start"
            time.sleep(0.02)
        return True

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


class Scripted:
    """A small SMTP server of our own (asyncio, in a thread) where aiosmtpd
    cannot be bent far enough: it advertises exactly `extensions` (e.g.
    ["PIPELINING", "DSN", "SIZE 1000"]; no STARTTLS), can refuse EHLO with
    `ehlo_reply`, records every MAIL and RCPT line with its parameters, counts
    connections (open now, the most at once, in all), can hold every DATA
    reply until `release()` and can drop the connection instead of answering
    the final dot (`drop_at_dot`). Local parts starting with "defer" get 451,
    "reject" 550. Loopback only; every read has a timeout."""

    LINE_MAX = 4096

    def __init__(self, host, port, extensions=("PIPELINING", "8BITMIME"), ehlo_reply=None,
                 hold_data=False, drop_at_dot=False, name="scripted.test", counter=None,
                 greeting=None):
        self.host, self.port = host, port
        self.extensions = list(extensions)
        self.ehlo_reply = ehlo_reply
        self.drop_at_dot = drop_at_dot
        self.name = name
        self.greeting = greeting   # e.g. "554 5.3.2 no service": said, then closed
        self.held = 0              # bodies received whose reply is held
        self.lock = threading.Lock()
        self.counter = counter if counter is not None else ConnectionCounter()
        self.greetings = []        # "EHLO x" / "HELO x" lines, in order
        self.mail_lines = []       # every MAIL command line as received
        self.rcpt_lines = []       # every RCPT command line as received
        self.messages = []         # Received (tls False)
        self.dropped = 0           # final dots answered by closing
        self.accept_all = False    # True: "defer*" local parts are accepted too
        self.loop = asyncio.new_event_loop()
        self._gate = None
        self._hold = hold_data
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10), "scripted remote did not start"

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self._gate = asyncio.Event()
        if not self._hold:
            self._gate.set()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._session, self.host, self.port))
        started.set()
        self.loop.run_forever()

    def release(self):
        """Let every held DATA (and all later ones) be answered."""
        self.loop.call_soon_threadsafe(self._gate.set)

    def stop(self):
        def close():
            self.server.close()
            self._gate.set()
            self.loop.stop()
        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)

    async def _session(self, reader, writer):
        self.counter.opened()
        try:
            await asyncio.wait_for(self._serve(reader, writer), 60)
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            self.counter.closed()
            writer.close()

    async def _serve(self, reader, writer):
        async def say(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        if self.greeting:
            await say(self.greeting)
            return
        await say(f"220 {self.name} ESMTP scripted")
        mail_from, rcpts, mail_params, rcpt_params = None, [], [], []
        while True:
            raw = await reader.readuntil(b"\r\n")
            assert len(raw) <= self.LINE_MAX
            line = raw[:-2].decode("utf-8", "replace")
            verb = line[:4].upper()
            if verb == "EHLO":
                with self.lock:
                    self.greetings.append(line)
                if self.ehlo_reply:
                    await say(self.ehlo_reply)
                    continue
                lines = [self.name] + self.extensions
                for i, ext in enumerate(lines):
                    await say(f"250{'-' if i < len(lines) - 1 else ' '}{ext}")
            elif verb == "HELO":
                with self.lock:
                    self.greetings.append(line)
                await say(f"250 {self.name}")
            elif verb == "MAIL":
                with self.lock:
                    self.mail_lines.append(line)
                addr, _, params = line[10:].partition(">")
                mail_from, rcpts, rcpt_params = addr.lstrip("<"), [], []
                mail_params = params.split()
                await say("250 2.1.0 ok")
            elif verb == "RCPT":
                with self.lock:
                    self.rcpt_lines.append(line)
                addr, _, params = line[8:].partition(">")
                addr = addr.lstrip("<")
                local = addr.rpartition("@")[0].lower()
                if local.startswith("defer") and not self.accept_all:
                    await say("451 4.2.0 try again later")
                elif local.startswith("reject"):
                    await say("550 5.1.1 no such user here")
                else:
                    rcpts.append(addr)
                    rcpt_params.append(params.split())
                    await say("250 2.1.5 ok")
            elif verb == "DATA":
                if not rcpts:
                    await say("554 5.5.1 no valid recipients")
                    continue
                await say("354 go ahead")
                body = b""
                while True:
                    chunk = await reader.readuntil(b"\r\n")
                    if chunk == b".\r\n":
                        break
                    body += chunk[1:] if chunk.startswith(b".") else chunk
                    assert len(body) < 1 << 22
                with self.lock:
                    self.held += 1
                # RFC 5321 4.1.1.4: a client gone before our reply has not
                # handed the message over; a real server would not deliver.
                gone = asyncio.ensure_future(reader.read(1))
                gate = asyncio.ensure_future(self._gate.wait())
                await asyncio.wait([gone, gate], return_when=asyncio.FIRST_COMPLETED)
                gate.cancel()
                if gone.done():
                    return
                gone.cancel()
                try:
                    await gone  # the read must be over before the next one
                except asyncio.CancelledError:
                    pass
                if self.drop_at_dot:
                    with self.lock:
                        self.dropped += 1
                    writer.transport.abort()
                    return
                with self.lock:
                    self.messages.append(Received(mail_from, rcpts, body, mail_params,
                                                  rcpt_params, False))
                await say("250 2.0.0 accepted")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                await say("250 2.0.0 ok")
            elif verb == "QUIT":
                await say("221 2.0.0 bye")
                return
            elif verb == "NOOP":
                await say("250 2.0.0 ok")
            else:
                await say("502 5.5.1 not here")


class ConnectionCounter:
    """Connections open now, the most open at once, and how many in all;
    one counter may be shared by several remotes (a global limit)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.most = self.total = 0

    def opened(self):
        with self.lock:
            self.now += 1
            self.total += 1
            self.most = max(self.most, self.now)

    def closed(self):
        with self.lock:
            self.now -= 1


def make_ca(workdir: Path, name="Test CA"):
    """A test CA: (cert path, key path)."""
    cert, key = workdir / f"{name.replace(' ', '-')}.pem", workdir / f"{name.replace(' ', '-')}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key


def make_cert(workdir: Path, ca, dns_name, san=None):
    """A server certificate for dns_name (subjectAltName san, default
    DNS:dns_name) signed by ca: an ssl server context."""
    stem = workdir / f"srv-{dns_name}"
    key, csr, cert = Path(f"{stem}.key"), Path(f"{stem}.csr"), Path(f"{stem}.pem")
    ext = Path(f"{stem}.ext")
    ext.write_text(f"subjectAltName={san or 'DNS:' + dns_name}\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
                    "-subj", f"/CN={dns_name}", "-keyout", str(key), "-out", str(csr)],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]),
                    "-CAkey", str(ca[1]), "-CAcreateserial", "-days", "1",
                    "-extfile", str(ext), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
