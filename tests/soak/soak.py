#!/usr/bin/python3
"""Soak test (`make soak`, scripts/soak.sh): one real daemon, about a minute of
honest users sending and fetching while hostile clients flood connections,
guess passwords, go slow and send garbage.

Honest users: 5 threads, each its own account and its own client address
(127.0.0.10-14), sending through submission (STARTTLS + AUTH, smtplib) to
each other and fetching over POP3 (STLS, poplib), deleting what they fetched.
Hostile clients, each group from its own address:
  127.0.0.2  flood: keeps FLOOD_CONNS connections open to mx, beyond
             max_sessions_per_ip; the extra ones get 421 4.7.0
  127.0.0.3  guessers: GUESSERS threads trying AUTH PLAIN with wrong passwords
             (for a victim account and for an honest user), reconnecting when
             cut off; they get 535, then delays, then 454 4.7.0 (throttled)
  127.0.0.4  slow: send "EHLO ..." a byte a second; command_timeout cuts them off
  127.0.0.5  garbage: random bytes and overlong lines on mx and pop3

At the end it asserts: no honest send or fetch failed; every message accepted
(250) is in a Maildir or was fetched, exactly once; no guess succeeded and the
guessers were throttled; every slow client was cut off; the daemon is still up,
stops on SIGTERM with exit 0 and logged no sanitizer report; and its resident
memory settled: in the second half of the run the last VmRSS sample is at most
RSS_FACTOR times the median of that half's samples.

Environment: POSTGATE_BUILD_DIR (the harness's; scripts/soak.sh sets the
sanitized build-check/), SOAK_SECONDS (traffic time, default 45).
"""
import os
import poplib
import random
import re
import smtplib
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
import shutil
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import conftest  # noqa: E402
from conftest import Instance, set_global_key, SANITIZER_MARKS  # noqa: E402

SECONDS = float(os.environ.get("SOAK_SECONDS", "45"))
HONEST = [f"user{i}@example.test" for i in range(5)]
HONEST_IP = [f"127.0.0.{10 + i}" for i in range(5)]
VICTIM = "victim@example.test"
PASSWORD = "soak honest password"
FLOOD_IP, GUESS_IP, SLOW_IP, GARBAGE_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
PER_IP = 20
FLOOD_CONNS = 40
GUESSERS = 16
SLOW_CLIENTS = 4
GARBAGE_CLIENTS = 3
# Short for a test, but not shorter than the server's own waits: a command
# that waits for a busy worker (AUTH, MAIL checks) counts against it (see
# docs/testing.md), and 16 guessers keep the workers busy.
COMMAND_TIMEOUT = 20
RSS_FACTOR = 1.5
RSS_INTERVAL = 2.0
TIMEOUT = 40  # client socket timeout: every wait is bounded

lock = threading.Lock()
stats = {}
accepted = {}  # token -> recipient
fetched = []  # tokens fetched over POP3
honest_failures = []
stop = threading.Event()


def count(key, n=1):
    with lock:
        stats[key] = stats.get(key, 0) + n


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the instance's certificate is self-signed
    return ctx


# ------------------------------------------------------------------ honest

def honest(inst, i):
    me, ip = HONEST[i], HONEST_IP[i]
    rng = random.Random(i)
    seq = 0
    while not stop.is_set():
        try:
            c = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=TIMEOUT,
                             source_address=(ip, 0))
            c.ehlo("honest.example")
            c.starttls(context=tls_context())
            c.ehlo("honest.example")
            c.login(me, PASSWORD)
            for _ in range(3):
                seq += 1
                rcpt = HONEST[rng.randrange(len(HONEST))]
                token = f"soak-{i}-{seq}"
                body = (f"From: <{me}>\r\nTo: <{rcpt}>\r\nSubject: {token}\r\n\r\n"
                        f"{token}\r\n" + ("x" * 76 + "\r\n") * rng.randrange(30))
                refused = c.sendmail(me, [rcpt], body.encode())
                assert refused == {}, refused
                with lock:
                    accepted[token] = rcpt
                count("honest sent")
            c.quit()
        except Exception as e:  # any failure of an honest client is a finding
            with lock:
                honest_failures.append(f"{me} send: {type(e).__name__}: {e}")
        try:
            p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=TIMEOUT)
            p.stls(context=tls_context())
            p.user(me)
            p.pass_(PASSWORD)
            n = p.stat()[0]
            for k in range(1, n + 1):
                text = b"\r\n".join(p.retr(k)[1])
                m = re.search(rb"Subject: (soak-\d+-\d+)", text)
                with lock:
                    fetched.append(m.group(1).decode() if m else "?")
                p.dele(k)
            p.quit()
            count("honest fetches")
        except Exception as e:
            with lock:
                honest_failures.append(f"{me} fetch: {type(e).__name__}: {e}")
        stop.wait(0.2)


# ----------------------------------------------------------------- hostile

def connect(inst, listener, ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.bind((ip, 0))
    s.connect(("127.0.0.1", inst.port(listener)))
    return s


def flood(inst):
    held = []
    while not stop.is_set():
        while len(held) < FLOOD_CONNS and not stop.is_set():
            try:
                s = connect(inst, "mx", FLOOD_IP)
                greeting = s.recv(512)
            except OSError:
                count("flood connect errors")
                continue
            if greeting.startswith(b"220"):
                count("flood greeted")
                held.append(s)
            else:
                count("flood refused 421 4.7.0" if greeting.startswith(b"421 4.7.0")
                      else "flood other answer")
                s.close()
        # Held connections are idle: command_timeout ends them; drop those.
        stop.wait(0.5)
        alive = []
        for s in held:
            s.setblocking(False)
            try:
                data = s.recv(512)
                dead = data == b"" or data.startswith(b"421")
            except BlockingIOError:
                dead = False
            except OSError:
                dead = True
            if dead:
                s.close()
                count("flood held, then closed by server")
            else:
                s.setblocking(True)
                alive.append(s)
        held = alive
    for s in held:
        s.close()


def guess(inst, n):
    rng = random.Random(1000 + n)
    target = VICTIM if n % 2 else HONEST[0]
    while not stop.is_set():
        try:
            c = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=TIMEOUT,
                             source_address=(GUESS_IP, 0))
            c.ehlo("guesser.example")
            c.starttls(context=tls_context())
            c.ehlo("guesser.example")
            while not stop.is_set():
                try:
                    c.login(target, f"guess-{rng.getrandbits(64):x}")
                    count("guess SUCCEEDED")
                except smtplib.SMTPAuthenticationError as e:
                    count(f"guess {e.smtp_code}")
                    if e.smtp_code == 421:
                        break
            c.close()
        except smtplib.SMTPServerDisconnected:
            count("guess disconnected")
        except (OSError, smtplib.SMTPException) as e:
            count(f"guess error {type(e).__name__}")
            stop.wait(0.2)


def slow(inst):
    try:
        s = connect(inst, "mx", SLOW_IP)
        s.recv(512)
    except OSError:
        count("slow connect errors")
        return
    answer = b""
    for byte in b"EHLO slow-client-that-types-one-byte-a-second.example.test\r\n":
        if stop.is_set():
            break
        try:
            s.sendall(bytes([byte]))
            s.settimeout(1.0)  # one byte a second
            answer += s.recv(512)
        except socket.timeout:
            continue
        except OSError:
            break
        if answer.startswith(b"421") or answer == b"" or b"\n" in answer:
            break
    try:
        s.settimeout(TIMEOUT)
        answer += s.recv(512)
    except OSError:
        pass
    s.close()
    count("slow cut off 421 4.4.2" if answer.startswith(b"421 4.4.2")
          else f"slow answered {answer[:12]!r}")


def slow_loop(inst):
    while not stop.is_set():
        slow(inst)


def garbage(inst, n):
    rng = random.Random(2000 + n)
    while not stop.is_set():
        listener = "mx" if rng.random() < 0.7 else "pop3"
        try:
            s = connect(inst, listener, GARBAGE_IP)
            s.recv(512)
            for _ in range(30):
                if rng.random() < 0.3:
                    payload = b"A" * rng.randrange(1000, 70000) + b"\r\n"
                else:
                    payload = os.urandom(rng.randrange(1, 300))
                    payload += b"\r\n"
                s.sendall(payload)
            s.settimeout(TIMEOUT)
            while s.recv(4096):
                pass
            count(f"garbage {listener} closed by server")
        except socket.timeout:
            count(f"garbage {listener} still open after {TIMEOUT}s")
        except OSError:
            count(f"garbage {listener} reset by server")
        finally:
            s.close()


# ------------------------------------------------------------------- main

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def maildir_tokens(inst, user):
    tokens = []
    for path in conftest.mailbox(inst, user):
        m = re.search(rb"Subject: (soak-\d+-\d+)", path.read_bytes())
        tokens.append(m.group(1).decode() if m else "?")
    return tokens


def main():
    base = Path(tempfile.mkdtemp(prefix="postgate-soak-"))
    os.chmod(base, 0o755)
    inst = None
    problems = []
    try:
        inst = Instance(base)
        for user in HONEST + [VICTIM]:
            inst.add_user(user, PASSWORD)
        for key, value in (("max_sessions", 500), ("max_sessions_per_ip", PER_IP),
                           ("command_timeout", f"{COMMAND_TIMEOUT}s"),
                           ("data_timeout", f"{COMMAND_TIMEOUT}s"),
                           ("max_session_time", "60s"), ("max_errors", 5),
                           ("user_messages_per_hour", 5000), ("user_messages_per_day", 5000),
                           ("user_recipients_per_hour", 5000),
                           ("user_recipients_per_day", 5000), ("shutdown_timeout", "10s")):
            set_global_key(inst, key, value)
        # ASan keeps freed memory in a quarantine (256 MiB by default) that
        # looks like growth; a small one lets the RSS samples mean something.
        env = {"ASAN_OPTIONS": "detect_leaks=1:quarantine_size_mb=16:"
                               "malloc_context_size=10"}
        inst.start(env=env)
        pid = inst.proc.pid
        print(f"soak: postgated pid {pid} ({conftest.POSTGATED}), traffic for {SECONDS:.0f}s")
        started = time.monotonic()

        threads = [threading.Thread(target=honest, args=(inst, i)) for i in range(len(HONEST))]
        threads += [threading.Thread(target=flood, args=(inst,))]
        threads += [threading.Thread(target=guess, args=(inst, n)) for n in range(GUESSERS)]
        threads += [threading.Thread(target=slow_loop, args=(inst,))
                    for _ in range(SLOW_CLIENTS)]
        threads += [threading.Thread(target=garbage, args=(inst, n))
                    for n in range(GARBAGE_CLIENTS)]
        for t in threads:
            t.daemon = True
            t.start()

        samples = []  # (seconds since start, KiB)
        while time.monotonic() - started < SECONDS:
            assert inst.proc.poll() is None, f"postgated died:\n{inst.log()[-5000:]}"
            samples.append((time.monotonic() - started, rss_kib(pid)))
            time.sleep(RSS_INTERVAL)
        samples.append((time.monotonic() - started, rss_kib(pid)))
        stop.set()
        for t in threads:
            t.join(timeout=TIMEOUT + 10)
            if t.is_alive():
                problems.append(f"client thread {t.name} did not finish")

        # Every accepted message is delivered: fetched, or still in a Maildir.
        def all_delivered():
            held = sum(len(conftest.mailbox(inst, u)) for u in HONEST)
            return held + len(fetched) >= len(accepted)
        try:
            conftest.wait_for(all_delivered, timeout=30, interval=0.2, what="delivery")
        except AssertionError as e:
            problems.append(str(e))
        delivered = list(fetched)
        for u in HONEST:
            delivered += maildir_tokens(inst, u)
        missing = set(accepted) - set(delivered)
        duplicates = len(delivered) - len(set(delivered))
        unknown = set(delivered) - set(accepted)

        alive = inst.proc.poll() is None
        code = inst.stop(timeout=30)
        elapsed = time.monotonic() - started
        log = inst.log()

        half = [kib for t, kib in samples if t >= SECONDS / 2]
        median = statistics.median(half)
        print("\nsoak: VmRSS samples (s: KiB):")
        print("  " + ", ".join(f"{t:.0f}: {kib}" for t, kib in samples))
        print(f"  second half: median {median:.0f} KiB, last {half[-1]} KiB "
              f"({half[-1] / median:.2f}x, limit {RSS_FACTOR}x)")
        print("\nsoak: counts")
        for key in sorted(stats):
            print(f"  {key}: {stats[key]}")
        print(f"  accepted (250): {len(accepted)}; delivered: {len(delivered)} "
              f"({len(fetched)} fetched over POP3, {len(delivered) - len(fetched)} left "
              f"in Maildirs); missing {len(missing)}, duplicates {duplicates}")
        print(f"  daemon log lines: {log.count(chr(10))}; "
              f"refused max-sessions-per-ip: {log.count('reason=max-sessions-per-ip')}")
        print(f"  run time {elapsed:.0f}s, exit code {code}")

        if honest_failures:
            problems.append(f"{len(honest_failures)} honest failures: {honest_failures[:10]}")
        if stats.get("honest sent", 0) == 0 or stats.get("honest fetches", 0) == 0:
            problems.append("honest users sent or fetched nothing")
        if missing or duplicates or unknown:
            problems.append(f"delivery: missing {sorted(missing)[:10]}, "
                            f"{duplicates} duplicates, unknown {sorted(unknown)[:10]}")
        if stats.get("guess SUCCEEDED"):
            problems.append("a password guess succeeded")
        if not stats.get("guess 454"):
            problems.append("the guessers were never throttled (454)")
        if not stats.get("flood refused 421 4.7.0"):
            problems.append("the flood was never refused (max_sessions_per_ip)")
        slow_other = [k for k in stats if k.startswith("slow answered")]
        if slow_other or not stats.get("slow cut off 421 4.4.2"):
            problems.append(f"slow clients not cut off by command_timeout: {slow_other}")
        if not alive:
            problems.append("postgated died during the soak")
        if code != 0:
            problems.append(f"postgated exited {code} on SIGTERM")
        for mark in SANITIZER_MARKS:
            if mark in log:
                problems.append(f"sanitizer report ({mark}) in the daemon's log")
                break
        if half[-1] > RSS_FACTOR * median:
            problems.append(f"memory grew: last {half[-1]} KiB > {RSS_FACTOR} x median "
                            f"{median:.0f} KiB")
        keep = Path(tempfile.gettempdir()) / "postgate-soak-last.log"
        keep.write_text(log)
        print(f"  daemon log: {keep}")
        if problems:
            print("\nsoak: daemon log tail:\n" + log[-3000:])
    finally:
        if inst is not None and inst.proc is not None:
            inst.stop(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    print()
    for p in problems:
        print(f"soak FAILED: {p}")
    print("soak: ok" if not problems else f"soak: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
