"""`postgate sendmail` (docs/sendmail.md): the sendmail-compatible command,
run the way cron, PHP's mail() and scripts run it, against a real daemon. The
message goes over <state_dir>/submit.sock to the SMTP engine, which records
the local user (from the kernel, not from the client) in the Received header
and the envelope. Every message must arrive in the right Maildir exactly as
sendmail completed it; every refusal must give sendmail's exit status and a
message on stderr."""
import os
import re
import stat
import subprocess

from conftest import (HOSTNAME, POSTGATE, assert_clean_stop, free_port, is_root, mailbox,
                      set_global_key, spool_texts, wait_delivered, wait_for)

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
REMOTE = "friend@remote.example"
EX_USAGE, EX_NOUSER, EX_UNAVAILABLE = 64, 67, 69


def sendmail(inst, *args, input=b"", prefix=(), check=True):
    argv = [*prefix, str(POSTGATE), "-c", str(inst.config), "sendmail", *args]
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=60)
    if check:
        assert proc.returncode == 0, (argv, proc.returncode, proc.stderr)
    return proc


def header(msg, name):
    """The unfolded values of header `name` in a delivered message."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode()
    head = re.sub(r"\r\n[ \t]", " ", head)
    return [l.split(":", 1)[1].strip() for l in head.split("\r\n")
            if l.lower().startswith(name.lower() + ":")]


def local_user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def test_php_style_t_and_i_with_a_lone_dot_and_added_headers(mail_server):
    inst = mail_server
    inst.start()
    # PHP's mail() runs "sendmail -t -i" with LF line ends.
    sendmail(inst, "-t", "-i", input=b"To: Alice <alice@example.test>\n"
                                     b"Subject: from php\n\nline one\n.\n.leading dot\nend\n")
    [msg] = wait_delivered(inst, ALICE, 1)
    user = local_user()
    assert msg.startswith(f"Return-Path: <{user}@{HOSTNAME}>\r\n".encode())
    assert re.search(rf"Received: from localhost \(local user {user}\)\r\n\tby {HOSTNAME} "
                     rf"\(postgate\) with ESMTPA id \w+\r\n".encode(), msg)
    # With -i a lone dot is text; dot-stuffing took a leading dot through.
    assert msg.endswith(b"\r\n\r\nline one\r\n.\r\n.leading dot\r\nend\r\n")
    assert header(msg, "Subject") == ["from php"]
    assert header(msg, "To") == ["Alice <alice@example.test>"]
    [from_] = header(msg, "From")
    assert from_.endswith(f"<{user}@{HOSTNAME}>")
    [date] = header(msg, "Date")
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
                        date)
    [mid] = header(msg, "Message-ID")
    assert re.fullmatch(rf"<\d+\.[0-9a-f]{{16}}@{re.escape(HOSTNAME)}>", mid)
    assert b"\n" not in msg.replace(b"\r\n", b"")  # every line end is CRLF
    inst.wait_log(rf"connect listener=local uid={os.getuid()} user={user}")


def spooled(inst):
    """The envelope texts of the messages waiting for the relayhost (down)."""
    return list(wait_for(lambda: spool_texts(inst, ".env"), what="the spooled envelope").values())


def start_with_relayhost_down(inst):
    """Remote mail waits in the spool for a relayhost that is down."""
    set_global_key(inst, "relayhost", f"127.0.0.1:{free_port()}")
    set_global_key(inst, "retry_initial", "1h")
    inst.start()


def test_f_and_F_recipients_as_arguments_and_a_lone_dot_ending_input(mail_server):
    inst = mail_server
    start_with_relayhost_down(inst)
    sendmail(inst, "-f", "carol@example.test", "-F", 'Carol "C" Example', "-oem", "-odb",
             "alice@example.test", "--", "bob@example.test",
             input=b"Subject: args\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nbody\n.\nnot sent\n")
    for rcpt in (ALICE, BOB):
        [msg] = wait_delivered(inst, rcpt, 1)
        assert msg.startswith(b"Return-Path: <carol@example.test>\r\n")
        assert header(msg, "From") == ['"Carol \\"C\\" Example" <carol@example.test>']
        assert header(msg, "Date") == ["Mon, 1 Jan 2024 00:00:00 +0000"]  # kept
        assert msg.endswith(b"\r\n\r\nbody\r\n")
    # -f<> is the null sender (a local program sending a bounce).
    sendmail(inst, "-f<>", ALICE, input=b"Subject: null\n\nx\n")
    msgs = wait_delivered(inst, ALICE, 2)
    assert sum(m.startswith(b"Return-Path: <>\r\n") for m in msgs) == 1
    # A bare name, as cron writes "root", is a mailbox on this host; so is
    # a bare -f. That host is not a hosted domain here: the message waits
    # in the spool for outbound delivery.
    sendmail(inst, "-f", "cron", "root", input=b"Subject: cron\n\nx\n")
    [env] = spooled(inst)
    lines = env.splitlines()
    assert f"reverse-path cron@{HOSTNAME}" in lines and f"rcpt root@{HOSTNAME}" in lines


def test_a_lone_dot_ends_the_input_while_stdin_stays_open(mail_server):
    inst = mail_server
    inst.start()
    argv = [str(POSTGATE), "-c", str(inst.config), "sendmail", ALICE]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"Subject: typed\n\nby hand\n.\n")
        proc.stdin.flush()
        # stdin is still open: sendmail must not wait for its end.
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    [msg] = wait_delivered(inst, ALICE, 1)
    assert msg.endswith(b"\r\n\r\nby hand\r\n")


def test_t_takes_to_cc_bcc_and_removes_bcc(mail_server):
    inst = mail_server
    inst.start()
    sendmail(inst, "-t", input=b"From: Alice <alice@example.test>\n"
                               b"To: \"Doe, Bob\" <bob@example.test>,\n"
                               b"  (team) carol@example.test\n"
                               b"Bcc: alice@example.test\n"
                               b"Subject: bcc\n\nhidden copy\n")
    for rcpt in (ALICE, BOB, CAROL):
        [msg] = wait_delivered(inst, rcpt, 1)
        assert header(msg, "Bcc") == [] and b"Bcc" not in msg
        assert header(msg, "From") == ["Alice <alice@example.test>"]  # not replaced
        assert msg.endswith(b"\r\n\r\nhidden copy\r\n")


def test_bs_speaks_smtp_on_stdin_and_stdout(mail_server):
    inst = mail_server
    inst.start()
    dialogue = (b"EHLO script\r\nMAIL FROM:<alice@example.test>\r\n"
                b"RCPT TO:<bob@example.test>\r\nDATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\n"
                b"QUIT\r\n")
    proc = sendmail(inst, "-bs", input=dialogue)
    codes = [l[:3] for l in proc.stdout.split(b"\r\n") if l[3:4] == b" "]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"], proc.stdout
    [msg] = wait_delivered(inst, BOB, 1)
    assert msg.endswith(b"Subject: bs\r\n\r\nvia -bs\r\n")
    assert f"(local user {local_user()})".encode() in msg


def test_the_local_user_is_recorded_in_the_envelope_and_may_relay(mail_server):
    inst = mail_server
    start_with_relayhost_down(inst)
    sendmail(inst, "-N", "failure", "-R", "hdrs", "-V", "id+1", REMOTE,
             input=b"Subject: out\n\nto the world\n")
    [env] = spooled(inst)
    lines = env.splitlines()
    assert f"auth-user local:{local_user()}" in lines
    assert "client-address local" in lines and "ret hdrs" in lines
    assert "envid id+2B1" in lines and "notify failure" in lines


def test_a_user_other_than_root_can_submit(mail_server):
    inst = mail_server
    inst.start()
    state = inst.dir / "state"
    assert stat.S_IMODE(os.stat(state).st_mode) & 0o011 == 0o011
    sock = os.lstat(state / "submit.sock")
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o666
    if not is_root():
        return
    proc = sendmail(inst, "-t", "-i", prefix=("runuser", "-u", "nobody", "--"),
                    input=b"To: alice@example.test\nSubject: nobody\n\nfrom nobody\n")
    assert proc.stderr == b""
    [msg] = wait_delivered(inst, ALICE, 1)
    assert msg.startswith(f"Return-Path: <nobody@{HOSTNAME}>\r\n".encode())
    assert b"(local user nobody)" in msg
    inst.wait_log(r"connect listener=local uid=65534 user=nobody")


def test_refusals_and_usage_errors_give_sendmail_exit_codes(mail_server):
    inst = mail_server
    inst.start()
    r = sendmail(inst, "nobody@example.test", input=b"Subject: x\n\nx\n", check=False)
    assert r.returncode == EX_NOUSER
    assert b"<nobody@example.test> refused: 550 5.1.1" in r.stderr
    assert b"the message was not sent" in r.stderr
    # One good, one refused: the good one gets it, the status says not all.
    r = sendmail(inst, "alice@example.test", "nobody@example.test",
                 input=b"Subject: partly\n\nx\n", check=False)
    assert r.returncode == EX_NOUSER and b"sent to the other 1 recipient" in r.stderr
    wait_delivered(inst, ALICE, 1)
    for args, text in [((), b"no recipients given"), (("-t",), b"no recipient addresses"),
                       (("-Z", ALICE), b"unknown option -Z"), (("-bp",), b"-bp is not supported"),
                       (("-f",), b"option -f needs a value"), (("-q",), b"postgate queue flush")]:
        r = sendmail(inst, *args, input=b"Subject: x\n\nx\n", check=False)
        assert r.returncode == EX_USAGE and text in r.stderr, (args, r)
    assert len(mailbox(inst, ALICE)) == 1


def test_daemon_down_is_a_clear_error(mail_server):
    inst = mail_server
    inst.start()
    path = inst.dir / "state" / "submit.sock"
    assert path.exists()
    assert_clean_stop(inst)
    assert not path.exists()
    for args in (("-t",), (ALICE,), ("-bs",)):
        r = sendmail(inst, *args, input=b"To: alice@example.test\n\nx\n", check=False)
        assert r.returncode == EX_UNAVAILABLE, (args, r)
        assert r.stderr.startswith(b"sendmail: postgated is not running (nothing answers on "
                                   + str(path).encode()), r.stderr
