"""`postgate queue` (docs/queue.md) against a real daemon: list and show read
the spool (with the daemon running or not), flush, delete, hold and release
go through the control socket <state_dir>/control.sock. Remote mail goes to
a relayhost that is down and the first retry is an hour away, so a message
for a remote recipient waits in deferred/, which gives every test a message
to act on: each delivery attempt logs "qid=ID delivery to=friend@remote.example
... result=deferred"."""
import json
import os
import pwd
import re
import signal
import smtplib
import socket
import stat
import subprocess

import pytest

from conftest import (DEMO_PASSWORD, assert_clean_stop, free_port, is_root, run_cli,
                      set_global_key, wait_delivered, wait_for)
from test_smtp_auth import tls_context

ALICE, BOB = "alice@example.test", "bob@example.test"
REMOTE = "friend@remote.example"
EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_NOPERM, EX_USAGE = 65, 67, 69, 77, 64


def send_remote(inst, subject="held", rcpts=(REMOTE,)):
    """alice sends to a remote recipient; returns the queue ID."""
    with smtplib.SMTP_SSL("127.0.0.1", inst.port("submissions"), timeout=10,
                          context=tls_context()) as client:
        client.login(ALICE, DEMO_PASSWORD)
        client.mail(ALICE, ["RET=HDRS"])
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, text = client.data(f"Subject: {subject}\r\nX-Test: yes\r\n\r\nbody\r\n".encode())
        assert code == 250, text
    qid = text.decode().rsplit(" ", 1)[-1]
    inst.wait_log(rf"qid={qid} delivery to={re.escape(REMOTE)} via=\w+ result=deferred")
    inst.wait_log(rf"qid={qid} queue deferred")
    return qid


def start(inst):
    """Remote mail to a relayhost that is down; the next try an hour away."""
    set_global_key(inst, "relayhost", f"127.0.0.1:{free_port()}")
    set_global_key(inst, "retry_initial", "1h")
    inst.start()


def in_spool(inst, qid):
    return spool(inst, "queue", qid).exists() or spool(inst, "deferred", qid).exists()


def attempts(inst, qid):
    return len(re.findall(rf"qid={qid} delivery to={re.escape(REMOTE)} ", inst.log()))


def spool(inst, place, qid):
    return inst.dir / "state" / "spool" / place / f"{qid}.env"


def control_path(inst):
    return inst.dir / "state" / "control.sock"


def control_raw(inst, data, timeout=10):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(control_path(inst)))
        s.sendall(data)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


def test_list_and_show_a_message_waiting_for_a_remote_recipient(mail_server):
    inst = mail_server
    start(inst)
    assert inst.cli("queue", "list").stdout == "the queue is empty\n"
    qid = send_remote(inst, rcpts=(REMOTE, BOB))
    wait_delivered(inst, BOB, 1)
    out = inst.cli("queue", "list").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "PLACE", "SIZE", "AGE", "SENDER", "RECIPIENT", "STATE",
                                "LAST_REPLY"]
    rows = [l.split() for l in lines[1:-1]]
    assert [r[:3] for r in rows] == [[qid, "deferred", rows[0][2]]] * 2
    assert {(r[4], r[5], r[6]) for r in rows} == {(ALICE, REMOTE, "pending"),
                                                  (ALICE, BOB, "delivered")}
    assert lines[-1].startswith("1 message, ")
    [msg] = json.loads(inst.cli("queue", "list", "--json").stdout)
    assert msg["id"] == qid and msg["place"] == "deferred" and msg["held"] is False
    assert msg["sender"] == ALICE and msg["auth_user"] == ALICE and msg["ret"] == "hdrs"
    assert msg["size"] == int(rows[0][2]) and msg["attempts"] >= 1
    assert [(r["address"], r["state"]) for r in msg["recipients"]] == [
        (REMOTE, "pending"), (BOB, "delivered")]
    show = inst.cli("queue", "show", qid).stdout
    assert re.search(rf"^id: +{qid}$", show, re.M)
    assert re.search(rf"^sender: +{ALICE}$", show, re.M)
    assert f"  pending {REMOTE}: 451 4.4.1 " in show and f"  delivered {BOB}: " in show
    headers = show.split("headers:\n", 1)[1]
    assert headers.startswith("Received: from ")
    assert "Subject: held\nX-Test: yes\n" in headers and "body" not in headers
    shown = json.loads(inst.cli("queue", "show", qid, "--json").stdout)
    assert shown["id"] == qid and "Subject: held\r\n" in shown["headers"]
    # The daemon down, list and show still read the spool.
    assert_clean_stop(inst)
    assert qid in inst.cli("queue", "list").stdout
    assert inst.cli("queue", "show", qid).returncode == 0
    r = inst.cli("queue", "show", "1k1cd88a818e6", check=False)
    assert r.returncode == EX_NOUSER and "no message 1k1cd88a818e6" in r.stderr
    r = inst.cli("queue", "show", "../../etc/passwd", check=False)
    assert r.returncode == EX_USAGE and "not a queue ID" in r.stderr


def test_hold_release_flush_and_delete(mail_server):
    inst = mail_server
    start(inst)
    qid = send_remote(inst)
    tried = attempts(inst, qid)
    # flush ID: tried again now.
    r = inst.cli("queue", "flush", qid)
    assert r.stdout == f"{qid} flushed, tried now\n"
    wait_for(lambda: attempts(inst, qid) > tried, what="a new attempt after flush")
    inst.wait_log(rf"control request=flush qid={qid} uid=\d+ result=ok")
    # hold: moved to hold/, shown as held, never tried, not even by flush.
    assert inst.cli("queue", "hold", qid).stdout == f"{qid} held\n"
    assert spool(inst, "hold", qid).exists() and not in_spool(inst, qid)
    inst.wait_log(rf"qid={qid} queue held")
    row = inst.cli("queue", "list").stdout.splitlines()[1].split()
    assert row[:2] == [qid, "hold"] and row[6] == "held"
    assert json.loads(inst.cli("queue", "list", "--json").stdout)[0]["held"] is True
    tried = attempts(inst, qid)
    assert inst.cli("queue", "hold", qid).returncode == 0  # held already: fine
    r = inst.cli("queue", "flush", qid, check=False)
    assert r.returncode == EX_DATAERR and "is held" in r.stderr
    inst.cli("queue", "flush")  # every message not held
    inst.wait_log(r"control request=flush qid=- uid=\d+ result=ok")
    inst.wait_log(r"queue flushed messages=0")
    assert attempts(inst, qid) == tried
    # release: back in queue/ and tried at once.
    assert inst.cli("queue", "release", qid).stdout == f"{qid} released, tried now\n"
    assert in_spool(inst, qid) and not spool(inst, "hold", qid).exists()
    wait_for(lambda: attempts(inst, qid) > tried, what="an attempt after release")
    r = inst.cli("queue", "release", qid, check=False)
    assert r.returncode == EX_DATAERR and "is not held" in r.stderr
    # flush with no ID reaches it too.
    tried = attempts(inst, qid)
    inst.cli("queue", "flush")
    wait_for(lambda: attempts(inst, qid) > tried, what="an attempt after flush all")
    # delete: gone from the spool, no bounce.
    assert inst.cli("queue", "delete", qid).stdout == f"{qid} deleted\n"
    inst.wait_log(rf"qid={qid} queue removed reason=deleted")
    assert not list((inst.dir / "state" / "spool").glob(f"*/{qid}.*"))
    assert inst.cli("queue", "list").stdout == "the queue is empty\n"
    for verb in ("delete", "hold", "release", "flush"):
        r = inst.cli("queue", verb, qid, check=False)
        assert r.returncode == EX_NOUSER and f"no message {qid}" in r.stderr, (verb, r)
    r = inst.cli("queue", "delete", "not-an-id", check=False)
    assert r.returncode == EX_USAGE


def test_a_held_message_stays_held_across_a_restart(mail_server):
    inst = mail_server
    start(inst)
    qid = send_remote(inst)
    inst.cli("queue", "hold", qid)
    assert_clean_stop(inst)
    inst.start()
    inst.wait_log(r"info started")
    tried = attempts(inst, qid)
    inst.cli("queue", "release", qid)
    wait_for(lambda: attempts(inst, qid) > tried, what="an attempt after release")


def test_commands_that_need_the_daemon_say_it_is_not_running(mail_server):
    inst = mail_server
    for args in (("flush",), ("flush", "1k1cd88a818e6"), ("delete", "1k1cd88a818e6"),
                 ("hold", "1k1cd88a818e6"), ("release", "1k1cd88a818e6")):
        r = inst.cli("queue", *args, check=False)
        assert r.returncode == EX_UNAVAILABLE, (args, r)
        assert r.stderr == (f"postgate: postgated is not running (nothing answers on "
                            f"{control_path(inst)})\n")
    assert inst.cli("queue", "list").stdout == "the queue is empty\n"


def test_the_control_socket_is_private_and_cleaned_up(mail_server):
    inst = mail_server
    start(inst)
    path = control_path(inst)
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    if is_root():
        daemon_user = pwd.getpwnam("postgate")
        assert st.st_uid == daemon_user.pw_uid
        # Another local user cannot even connect.
        probe = ("import socket,sys\n"
                 "s=socket.socket(socket.AF_UNIX)\n"
                 "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n sys.exit(3)\n")
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "/usr/bin/python3", "-c", probe, str(path)], timeout=30)
        assert r.returncode == 3
    assert_clean_stop(inst)
    assert not path.exists()
    # A daemon killed leaves the file; the next start replaces it.
    inst.start()
    inst.stop(signal.SIGKILL)
    assert path.exists()
    inst.start()
    inst.wait_log(rf"socket stale file removed path={path}")
    assert inst.cli("queue", "flush").returncode == 0


def test_garbage_on_the_control_socket_gets_an_error_and_the_daemon_goes_on(mail_server):
    inst = mail_server
    start(inst)
    qid = send_remote(inst)
    for data, kind in [(b"\n", "usage"), (b"FLUSH\n", "usage"), (b"frob 1\n", "usage"),
                       (b"delete\n", "usage"), (b"hold a b\n", "usage"),
                       (b"hold ../../x\n", "usage"), (b"flush  \n", "usage"),
                       (b"\x00\xff\x1b[2J\n", "usage"),
                       (b"x" * 10000, "usage"), (b"release " + qid.encode() + b"\n", "data"),
                       (b"delete 1k1cd88a818e6\n", "not-found")]:
        reply = control_raw(inst, data)
        assert reply.startswith(f"error {kind} ".encode()), (data[:40], reply)
        assert reply.count(b"\n") == 1 and all(0x20 <= c < 0x7f for c in reply[:-1])
    # 272 bytes with the LF is read as a request (room for "activity " and a
    # 254-octet address); 273 is one too many.
    assert control_raw(inst, b"x" * 271 + b"\n").startswith(b"error usage unknown request")
    assert control_raw(inst, b"x" * 272 + b"\n") == b"error usage request longer than 272 bytes\n"
    assert control_raw(inst, f"flush {qid}\n".encode()) == f"ok flush {qid}\n".encode()
    # A CR before the LF is tolerated (a telnet user). A hold asked for while
    # the message's attempt runs takes effect when the attempt ends.
    assert control_raw(inst, f"hold {qid}\r\n".encode()) == f"ok hold {qid}\n".encode()
    inst.wait_log(rf"qid={qid} queue held")
    # A client that connects and says nothing is dropped after the deadline
    # without holding others up.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(control_path(inst)))
        assert control_raw(inst, f"release {qid}\n".encode()) == f"ok release {qid}\n".encode()
        idle.settimeout(30)
        assert idle.recv(100) == b""
    inst.wait_log(r"control connection timed out")
    inst.wait_log(r'warning control request refused uid=\d+ request="frob 1" error="unknown')
    assert inst.cli("queue", "delete", qid).returncode == 0


def test_status_reports_sessions_queue_holds_and_logins(mail_server):
    inst = mail_server
    r = inst.cli("status", check=False)
    assert r.returncode == EX_UNAVAILABLE and "postgated is not running" in r.stderr
    start(inst)
    qid = send_remote(inst)
    inst.cli("queue", "hold", qid)
    inst.cli("user", "hold", BOB)
    # A session held open, and two failed logins.
    idle = socket.create_connection(("127.0.0.1", inst.port("mx")), timeout=10)
    assert idle.makefile("rb").readline().startswith(b"220 ")
    for _ in range(2):
        with smtplib.SMTP_SSL("127.0.0.1", inst.port("submissions"), timeout=30,
                              context=tls_context()) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login(ALICE, "wrong horse")
    status = json.loads(inst.cli("status", "--json").stdout)
    assert status["uptime_s"] >= 0 and status["stopping"] is False
    assert status["mx"] == 1 and status["sessions"] >= 1
    assert status["queue_hold"] == 1 and status["queue_active"] == 0
    assert status["held_users"] == 1
    # smtplib tries each mechanism it knows: at least one failure per login.
    assert status["auth_failed"] >= 2
    assert status["auth_failed_last_minute"] == status["auth_failed"]
    assert status["auth_ok"] >= 1  # alice's send
    text = inst.cli("status").stdout
    assert re.search(r"^queue hold: +1$", text, re.M), text
    assert re.search(r"^held users: +1$", text, re.M), text
    inst.wait_log(r"control request=status qid=- uid=\d+ result=ok")
    idle.close()
    assert_clean_stop(inst)
