"""postgated itself: start-up checks, listeners and their answers today,
session logging, signals (shutdown, drain, reload), privilege drop and
detaching. Every test runs a real instance made by `postgate init`."""
import http.client
import os
import pwd
import re
import resource
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (LISTENERS, POSTGATED, can_connect, ensure_daemon_user, free_port,
                      is_root, set_global_key, wait_for)

# mx and submission run the SMTP server (tests/e2e/test_smtp*.py), and
# submissions the same over implicit TLS; pop3 and pop3s the POP3 server
# (tests/e2e/test_pop3.py); http serves client auto-configuration
# (tests/e2e/test_http.py): its connections are evhttp's, not sessions.
SMTP_LISTENERS = ("mx", "submission")
POP3_LISTENERS = ("pop3",)
EX_CONFIG = 78


# ---------------------------------------------------------------- helpers

def config_lines(inst):
    return inst.config.read_text().splitlines()


def write_config(inst, lines):
    inst.config.write_text("\n".join(lines) + "\n")


def global_key_index(lines):
    """Index at which a new global key may be inserted: before the first section."""
    for i, line in enumerate(lines):
        if line.lstrip().startswith("["):
            return i
    return len(lines)


def set_global(inst, key, value):
    """Set a global key (replacing its line or adding one); returns its line number."""
    lines = config_lines(inst)
    rx = re.compile(rf"\s*{re.escape(key)}\s*=")
    for i, line in enumerate(lines[:global_key_index(lines)]):
        if rx.match(line):
            lines[i] = f"{key} = {value}"
            write_config(inst, lines)
            return i + 1
    i = global_key_index(lines)
    lines.insert(i, f"{key} = {value}")
    write_config(inst, lines)
    return i + 1


def set_listen(inst, listener, value):
    """Replace the `listen` line of [listener NAME]; returns its line number."""
    lines = config_lines(inst)
    section = None
    for i, line in enumerate(lines):
        m = re.match(r"\s*\[listener\s+(\w+)\s*\]", line)
        if m:
            section = m.group(1)
        elif section == listener and re.match(r"\s*listen\s*=", line):
            lines[i] = f"listen = {value}"
            write_config(inst, lines)
            return i + 1
    raise AssertionError(f"no listen line for {listener}")


def config_value(inst, key):
    for line in config_lines(inst):
        m = re.match(rf"\s*{re.escape(key)}\s*=\s*(.*?)\s*$", line)
        if m:
            return m.group(1)
    raise AssertionError(f"{key} not in {inst.config}")


def config_path_value(inst, key):
    """A path key, resolved as the daemon does: relative to the config file."""
    value = Path(config_value(inst, key))
    return value if value.is_absolute() else inst.config.parent / value


def hostname(inst):
    return config_value(inst, "hostname")


def start(inst, **kwargs):
    """Start in the foreground and wait until start-up is complete: the ports
    are bound (and connectable) while still root, before the privilege drop
    and before the signal handlers exist; "started" comes after both."""
    inst.start(**kwargs)
    inst.wait_log(r"info started ")


def run_foreground(inst, *extra, timeout=60):
    """Run postgated -f expecting it to exit (a start-up failure)."""
    return subprocess.run([str(POSTGATED), "-c", str(inst.config), "-f", *extra],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def assert_nothing_listens(inst):
    for name in LISTENERS:
        assert not can_connect("127.0.0.1", inst.port(name)), f"{name} is listening"


def connect(port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((host, port))
    return sock


def read_line(sock, limit=4096):
    data = b""
    while not data.endswith(b"\r\n") and len(data) < limit:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock, limit=65536):
    data = b""
    while len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("server sent more than expected")


def session_id(inst, listener, sock):
    """The sid the daemon logged for the connection from sock's local port."""
    client_host, client_port = sock.getsockname()[:2]
    client = f"[{client_host}]" if ":" in client_host else client_host
    m = inst.wait_log(rf"info sid=(\w+) connect listener={listener} "
                      rf"client={re.escape(client)}:{client_port}\n")
    return m.group(1)


def expected_answer(inst, listener):
    """What a listener says first: the SMTP greeting on mx, else the
    listener's "service not available" answer."""
    host = hostname(inst)
    if listener in SMTP_LISTENERS:
        return f"220 {host} ESMTP\r\n".encode()
    if listener in ("pop3", "pop3s"):
        return f"+OK {host} POP3 server ready\r\n".encode()
    return b""  # implicit TLS: not a byte


def first_line(answer):
    return answer.split(b"\r\n", 1)[0] + b"\r\n"


def proc_ids(pid):
    """(uids, gids, groups) from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return ([int(v) for v in fields["Uid"]], [int(v) for v in fields["Gid"]],
            [int(v) for v in fields.get("Groups", [])])


def process_gone(pid):
    """True once pid has exited (gone, or a zombie not yet reaped by init)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return re.search(r"^State:\s+Z", status, re.M) is not None


# ---------------------------------------------------------------- command line

def test_version_and_usage():
    out = subprocess.run([str(POSTGATED), "-V"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert re.fullmatch(r"postgated \d+\.\d+\.\d+\n", out.stdout)
    out = subprocess.run([str(POSTGATED), "-h"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "-c FILE" in out.stdout
    out = subprocess.run([str(POSTGATED), "-x"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 64 and "usage:" in out.stderr


# ---------------------------------------------------------------- start-up refusals

def break_unknown_key(inst):
    return set_global(inst, "no_such_key", "1"), "no_such_key"


def break_bad_value(inst):
    return set_global(inst, "log_level", "loud"), "log_level"


def break_listen_port(inst):
    return set_listen(inst, "pop3", "127.0.0.1:99999"), "listen"


def break_listen_hostname(inst):
    return set_listen(inst, "mx", "localhost:25"), "listen"


def break_missing_include(inst):
    return set_global(inst, "include", "no-such-file.conf"), "no-such-file.conf"


@pytest.mark.parametrize("breaker", [break_unknown_key, break_bad_value, break_listen_port,
                                     break_listen_hostname, break_missing_include],
                         ids=lambda f: f.__name__[len("break_"):])
def test_bad_config_is_refused_before_listening(instance, breaker):
    line, word = breaker(instance)
    proc = run_foreground(instance)
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert f"postgate.conf:{line}:" in proc.stderr, proc.stderr
    assert word in proc.stderr
    assert proc.stderr.startswith("postgated: ")
    assert_nothing_listens(instance)


def test_error_in_included_file_names_that_file(instance):
    extra = instance.config.parent / "extra.conf"
    extra.write_text("# more settings\nshutdown_timeout = soon\n")
    set_global(instance, "include", "extra.conf")
    proc = run_foreground(instance)
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "extra.conf:2:" in proc.stderr, proc.stderr
    assert_nothing_listens(instance)


def test_port_in_use_is_fatal_and_named(instance):
    port = instance.port("pop3")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        proc = run_foreground(instance)
        assert proc.returncode != 0
        assert f"127.0.0.1:{port}" in proc.stderr, proc.stderr
        assert "Address already in use" in proc.stderr
    for name in LISTENERS:
        if name != "pop3":
            assert not can_connect("127.0.0.1", instance.port(name)), name


def test_missing_accounts_store_is_fatal(instance):
    config_path_value(instance, "accounts_db").unlink()
    proc = run_foreground(instance)
    assert proc.returncode == 1, proc.stderr
    assert "run postgate init" in proc.stderr
    assert_nothing_listens(instance)


def test_tls_key_that_does_not_match_is_fatal(instance):
    set_global(instance, "tls_key", config_value(instance, "tls_cert"))
    proc = run_foreground(instance)
    assert proc.returncode == 1, proc.stderr
    assert "TLS certificate and key" in proc.stderr
    assert_nothing_listens(instance)


@pytest.mark.skipif(not is_root(), reason="the user is looked up only when started as root")
def test_missing_user_is_refused(instance):
    set_global(instance, "user", "nosuchpostgateuser")
    proc = run_foreground(instance)
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "user nosuchpostgateuser does not exist" in proc.stderr
    assert_nothing_listens(instance)


# ---------------------------------------------------------------- listeners today

def test_each_listener_answers_and_logs_the_session(instance):
    start(instance)
    sids = {}
    for name in LISTENERS:
        with connect(instance.port(name)) as sock:
            sid = session_id(instance, name, sock)
            if name == "http":
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            host = hostname(instance)
            if name in ("submissions", "pop3s"):
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                tls = context.wrap_socket(sock)
                tls.sendall(b"QUIT\r\n")
                got = read_all(tls)
                tls.close()
                want = (f"220 {host} ESMTP\r\n221 2.0.0 Bye\r\n" if name == "submissions"
                        else f"+OK {host} POP3 server ready\r\n"
                        f"+OK {host} POP3 server signing off\r\n")
                assert got == want.encode(), got
            else:
                if name in SMTP_LISTENERS:
                    sock.sendall(b"QUIT\r\n")
                    want = expected_answer(instance, name) + b"221 2.0.0 Bye\r\n"
                elif name in POP3_LISTENERS:
                    sock.sendall(b"QUIT\r\n")
                    want = (expected_answer(instance, name) +
                            f"+OK {host} POP3 server signing off\r\n".encode())
                else:
                    # No page at /: a 404, then the server closes as asked.
                    got = read_all(sock)
                    assert got.startswith(b"HTTP/1.1 404 Not Found\r\n"), got
                    assert got.endswith(b"404 Not Found: no such page\n"), got
                    want = None
                # The whole answer, then end of stream: the server closed its side.
                if want is not None:
                    assert read_all(sock) == want, name
        assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{10}", sid), sid
        if name == "http":
            instance.wait_log(rf"info sid={sid} disconnect listener=http requests=1\n")
        else:
            instance.wait_log(rf"info sid={sid} disconnect listener={name} reason=quit "
                              rf"duration_ms=\d+\n")
        sids[name] = sid
    assert len(set(sids.values())) == len(LISTENERS)
    log = instance.log()
    for name in LISTENERS:
        assert re.search(rf"info listening listener={name} address=127\.0\.0\.1:"
                         rf"{instance.port(name)} ", log), name
    assert instance.stop() == 0
    assert_nothing_listens(instance)
    assert re.search(r"info shutdown signal=TERM sessions=0 ", instance.log())
    assert "info stopped" in instance.log()


def test_http_answers_unknown_pages_with_404_and_keeps_the_connection(instance):
    start(instance)
    conn = http.client.HTTPConnection("127.0.0.1", instance.port("http"), timeout=10)
    for _ in range(2):
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 404
        assert response.read() == b"404 Not Found: no such page\n"
    conn.close()
    assert instance.stop() == 0


def test_ipv6_listener(instance):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
            v6_port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback")
    mx = instance.port("mx")
    set_listen(instance, "mx", f"127.0.0.1:{mx}, [::1]:{v6_port}")
    start(instance)
    with connect(v6_port, "::1") as sock:
        sid = session_id(instance, "mx", sock)
        assert read_line(sock) == expected_answer(instance, "mx")
        sock.sendall(b"QUIT\r\n")
        assert read_line(sock) == b"221 2.0.0 Bye\r\n"
    instance.wait_log(rf"sid={sid} disconnect listener=mx reason=quit")
    assert f"address=[::1]:{v6_port} " in instance.log()
    assert instance.stop() == 0


def test_out_of_descriptors_pauses_accepting_and_recovers(instance):
    """accept() failing with EMFILE must neither spin nor stop the daemon: it
    logs, pauses that address, and serves again once sessions have ended."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) not installed")
    start(instance, argv_prefix=("prlimit", "--nofile=32:32"))
    port = instance.port("mx")
    # Idle clients hold their sessions (the daemon lingers after its 421), so
    # the descriptors run out; the kernel still completes the connections and
    # queues them in the backlog.
    socks = [connect(port) for _ in range(40)]
    try:
        instance.wait_log(r"warning accept failed listener=mx address=127\.0\.0\.1:\d+ "
                          r"error=\"Too many open files\" pause_ms=1000\n")
        assert instance.proc.poll() is None
        # Accepted in backlog order: the first `served` clients have sessions.
        served = len(re.findall(r"connect listener=mx ", instance.log()))
        assert 0 < served < len(socks)
        assert read_line(socks[0]) == expected_answer(instance, "mx")
        for sock in socks[:served]:
            sock.close()
        # With descriptors free again the paused listener resumes by itself.
        assert read_line(socks[served]) == expected_answer(instance, "mx")
    finally:
        for sock in socks:
            sock.close()
    assert instance.stop() == 0


# ---------------------------------------------------------------- shutdown

def busy_smtp(inst):
    """An SMTP session in the middle of a transaction (after MAIL): shutdown
    lets it finish rather than saying 421 at once (docs/daemon.md)."""
    sock = connect(inst.port("mx"))
    sid = session_id(inst, "mx", sock)
    assert read_line(sock) == expected_answer(inst, "mx")
    sock.sendall(b"EHLO client.example\r\n")
    while not read_line(sock).startswith(b"250 "):
        pass
    sock.sendall(b"MAIL FROM:<someone@remote.example>\r\n")
    assert read_line(sock).startswith(b"250 "), "MAIL refused"
    return sock, sid


def test_sigterm_stops_accepting_and_drains_within_timeout(instance):
    set_global(instance, "shutdown_timeout", "2s")
    start(instance)
    idle, sid = busy_smtp(instance)
    try:
        sent = time.monotonic()
        instance.proc.send_signal(signal.SIGTERM)
        instance.wait_log(r"info shutdown signal=TERM sessions=1 timeout_ms=2000\n")
        # Every listener refuses at once, while the busy session still holds
        # the daemon open.
        for name in LISTENERS:
            assert not can_connect("127.0.0.1", instance.port(name)), name
        assert instance.proc.poll() is None, "exited before the shutdown timeout"
        code = instance.proc.wait(timeout=30)
        elapsed = time.monotonic() - sent
        assert code == 0
        assert 1.5 <= elapsed < 12, elapsed
        # Then the daemon closed the connection.
        read_all(idle)
    finally:
        idle.close()
    log = instance.log()
    assert re.search(rf"info sid={sid} disconnect listener=mx reason=shutdown ", log)
    assert "info stopped" in log
    instance.stop()


def test_shutdown_ends_as_soon_as_the_last_session_does(instance):
    start(instance)  # shutdown_timeout: the default 30s
    idle, sid = busy_smtp(instance)
    instance.proc.send_signal(signal.SIGTERM)
    instance.wait_log(r"info shutdown signal=TERM sessions=1 ")
    assert instance.proc.poll() is None
    closed = time.monotonic()
    idle.close()
    assert instance.proc.wait(timeout=20) == 0
    assert time.monotonic() - closed < 10
    assert re.search(rf"sid={sid} disconnect listener=mx reason=\S+ ", instance.log())
    instance.stop()


def test_second_sigterm_closes_remaining_sessions_at_once(instance):
    start(instance)  # shutdown_timeout: the default 30s
    idle, sid = busy_smtp(instance)
    with idle:
        instance.proc.send_signal(signal.SIGTERM)
        instance.wait_log(r"info shutdown signal=TERM sessions=1 ")
        sent = time.monotonic()
        instance.proc.send_signal(signal.SIGINT)
        assert instance.proc.wait(timeout=20) == 0
        assert time.monotonic() - sent < 10
    assert re.search(rf"sid={sid} disconnect listener=mx reason=shutdown ",
                     instance.log())
    instance.stop()


# ---------------------------------------------------------------- reload

def test_sighup_applies_live_keys_and_refuses_a_broken_file(instance):
    start(instance)
    assert "debug" not in config_value(instance, "log_level")
    set_global(instance, "log_level", "debug")
    set_global(instance, "hostname", "renamed.example.test")
    instance.proc.send_signal(signal.SIGHUP)
    instance.wait_log(r"info reload ok\n")
    log = instance.log()
    assert "info reload applied log_level=debug\n" in log
    assert "info reload applied hostname=renamed.example.test\n" in log
    assert "restart postgated" not in log
    with connect(instance.port("mx")) as sock:
        assert read_line(sock) == expected_answer(instance, "mx")
        assert b" renamed.example.test " in expected_answer(instance, "mx")

    line = set_global(instance, "bogus_key", "1")
    instance.proc.send_signal(signal.SIGHUP)
    instance.wait_log(rf"error reload failed: \S*postgate\.conf:{line}: ")
    assert instance.proc.poll() is None
    # Still running with the configuration it had.
    with connect(instance.port("mx")) as sock:
        assert b" renamed.example.test " in read_line(sock)
    assert instance.log().count("info reload ok") == 1
    assert instance.stop() == 0


def test_sighup_names_keys_that_need_a_restart(instance):
    start(instance)
    old_port = instance.port("mx")
    set_listen(instance, "mx", f"127.0.0.1:{free_port()}")
    set_global(instance, "maildir_root", str(instance.base / "elsewhere"))
    instance.proc.send_signal(signal.SIGHUP)
    instance.wait_log(r"info reload ok\n")
    log = instance.log()
    assert "warning listener mx changed; restart postgated to apply\n" in log
    assert "warning maildir_root changed; restart postgated to apply\n" in log
    assert "warning user changed" not in log
    # Nothing of that is applied: the old port still serves.
    with connect(old_port) as sock:
        assert read_line(sock) == expected_answer(instance, "mx")
    assert instance.stop() == 0


# ---------------------------------------------------------------- privileges

@pytest.mark.skipif(not is_root(), reason="privilege drop needs the test to run as root")
def test_root_start_drops_to_the_configured_user(instance):
    ensure_daemon_user()
    user = pwd.getpwnam(config_value(instance, "user"))
    start(instance)
    uids, gids, groups = proc_ids(instance.proc.pid)
    assert uids == [user.pw_uid] * 4
    assert gids == [user.pw_gid] * 4
    assert 0 not in groups
    state = config_path_value(instance, "state_dir")
    owned = [state, state / "spool", state / "spool" / "tmp", state / "spool" / "queue",
             state / "spool" / "deferred", config_path_value(instance, "maildir_root"),
             config_path_value(instance, "accounts_db")]
    for path in owned:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), path
    for path in owned[:6]:
        # state_dir alone has the search bit for others, so that local
        # users reach submit.sock (docs/decisions/0121).
        allowed = 0o011 if path == state else 0
        assert path.is_dir() and path.stat().st_mode & 0o077 & ~allowed == 0, path
    assert f"info privileges dropped user={user.pw_name} uid={user.pw_uid} " in instance.log()
    # It serves as that user.
    with connect(instance.port("mx")) as sock:
        assert read_line(sock) == expected_answer(instance, "mx")
    assert instance.stop() == 0


@pytest.mark.skipif(not is_root(), reason="needs root to plant the link")
def test_root_start_refuses_a_planted_symbolic_link(instance, workdir):
    """state_dir belongs to the daemon's user, who could replace state/spool with
    a link to a system directory; root must not give that directory away."""
    ensure_daemon_user()
    target = workdir / "victim"
    target.mkdir(mode=0o755)
    spool = config_path_value(instance, "state_dir") / "spool"
    shutil.rmtree(spool, ignore_errors=True)
    spool.symlink_to(target)
    os.lchown(config_path_value(instance, "state_dir"), pwd.getpwnam("postgate").pw_uid, -1)
    proc = run_foreground(instance)
    assert proc.returncode == 1
    assert "symbolic link" in proc.stderr
    assert target.stat().st_uid == 0
    assert_nothing_listens(instance)


def test_runs_without_root(instance, workdir):
    set_global(instance, "user", "nobody")
    prefix = ()
    if is_root():
        ensure_daemon_user()
        daemon_user = pwd.getpwnam("postgate")
        for root, dirs, files in os.walk(instance.dir):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), daemon_user.pw_uid, daemon_user.pw_gid)
        os.lchown(instance.dir, daemon_user.pw_uid, daemon_user.pw_gid)
        prefix = ("setpriv", "--reuid=postgate", "--regid=postgate", "--init-groups")
        uid = daemon_user.pw_uid
    else:
        uid = os.getuid()
    start(instance, argv_prefix=prefix)
    uids, _, _ = proc_ids(instance.proc.pid)
    assert uids == [uid] * 4
    with connect(instance.port("pop3")) as sock:
        sid = session_id(instance, "pop3", sock)
        assert read_line(sock) == expected_answer(instance, "pop3")
    instance.wait_log(rf"sid={sid} disconnect listener=pop3 reason=(eof|reset)")
    log = instance.log()
    assert log.count(f"warning not started as root: running as uid={uid}, not as user nobody") == 1
    assert "privileges dropped" not in log
    assert instance.stop() == 0


# ---------------------------------------------------------------- detaching

def test_detaches_writes_pid_file_and_stops_on_sigterm(instance):
    if is_root():
        ensure_daemon_user()
    pid_file = config_path_value(instance, "state_dir") / "postgated.pid"
    started = subprocess.run([str(POSTGATED), "-c", str(instance.config)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 0, started.stderr
    assert started.stderr == ""
    # The parent exits only once the daemon runs: the pid file is there already.
    pid = int(pid_file.read_text())
    try:
        assert not process_gone(pid)
        assert os.getsid(pid) != os.getsid(0), "still in our session"
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert Path(f"/proc/{pid}/exe").resolve() == POSTGATED.resolve()
        for name in LISTENERS:
            wait_for(lambda: can_connect("127.0.0.1", instance.port(name)),
                     what=f"listener {name}")
        with connect(instance.port("mx")) as sock:
            assert read_line(sock) == expected_answer(instance, "mx")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: process_gone(pid), timeout=30, what="the daemon to exit")
        assert not pid_file.exists()
        assert_nothing_listens(instance)
    finally:
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_failure_after_detaching_reaches_the_terminal(instance):
    """The pid file is written after the fork; its failure still gives a
    message on stderr and a non-zero exit."""
    if is_root():
        ensure_daemon_user()
    (config_path_value(instance, "state_dir") / "postgated.pid").mkdir()
    started = subprocess.run([str(POSTGATED), "-c", str(instance.config)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 1
    assert "pid file" in started.stderr and "postgated.pid" in started.stderr
    wait_for(lambda: not any(can_connect("127.0.0.1", instance.port(n)) for n in LISTENERS),
             timeout=10, what="the failed daemon's ports to close")


def test_soft_open_files_limit_is_raised_to_the_hard_one(instance):
    """A default soft limit of 1024 would cap the daemon near 1,000 sessions:
    it raises its soft limit to the hard one, and says when even that is
    below what max_sessions needs."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) not installed")
    set_global_key(instance, "max_sessions", "3000")  # needs 3000 * 2 + 1024
    start(instance, argv_prefix=("prlimit", "--nofile=1024:8192"))
    instance.wait_log(r"info open files limit=8192\n")
    limits = open(f"/proc/{instance.proc.pid}/limits").read()
    assert re.search(r"Max open files\s+8192\s+8192\s", limits), limits
    assert instance.stop() == 0

    start(instance, argv_prefix=("prlimit", "--nofile=1024:4096"))
    instance.wait_log(r"warning open files limit=4096, below the 7024 that "
                      r"max_sessions=3000 needs")
    assert instance.stop() == 0


def test_a_burst_of_connections_waits_in_the_kernel_queue(instance):
    """The listen backlog holds a burst while the loop is busy: with the
    daemon stopped (SIGSTOP), 1,500 connections still complete their
    handshake in the kernel's accept queue (a backlog of 511 dropped all
    but 512 of them, and their clients waited for SYN retransmissions of
    1, 3, 7 s), and each one is greeted once the daemon runs again."""
    burst = 1500
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    if somaxconn < burst + 1:
        pytest.skip(f"net.core.somaxconn={somaxconn} caps every backlog below {burst}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < burst + 200:
        pytest.skip(f"open files hard limit {hard} is below {burst + 200}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, burst + 200), hard))
    set_global_key(instance, "max_sessions_per_ip", str(burst + 10))
    start(instance)
    port = instance.port("mx")
    socks = []
    os.kill(instance.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(burst):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        # A handshake the kernel completed makes the socket writable at
        # once; one whose SYN was dropped stays pending for a second.
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLOUT)
        connected = set()
        deadline = time.monotonic() + 0.8
        while len(connected) < burst and time.monotonic() < deadline:
            for fd, ev in poller.poll(100):
                if ev & select.POLLOUT:
                    connected.add(fd)
                    poller.unregister(fd)
        assert len(connected) == burst, f"{burst - len(connected)} of {burst} not queued"
    finally:
        os.kill(instance.proc.pid, signal.SIGCONT)
    greeted = 0
    for s in socks:
        s.setblocking(True)
        s.settimeout(20)
        if s.makefile("rb").readline().startswith(b"220 "):
            greeted += 1
        s.close()
    assert greeted == burst
    assert instance.stop() == 0
