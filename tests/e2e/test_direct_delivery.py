"""Local mail delivered at the end of DATA, without the queue (docs/spool.md,
"Delivering at once"; decisions/0200): the copies are in the Maildirs, each
with its own Delivered-To, by the time the 250 arrives; mail that needs the
queue (a remote recipient, NOTIFY=SUCCESS) still takes it; and concurrent
deliveries share file system syncs, as /metrics counts them."""
import re
import smtplib
import subprocess
import threading

import pytest

from conftest import (free_port, is_root, mailbox, parse_delivered, queued_id, send_data,
                      set_global_key, smtp_session, start_mail, wait_delivered,
                      wait_for)
from test_metrics import scrape, value

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
SENDER = "sender@remote.example"


def spool_names(inst, sub):
    d = inst.dir / "state" / "spool" / sub
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_local_recipients_have_their_copies_before_the_250(mail_server):
    inst = start_mail(mail_server)
    body = b"Subject: at once\r\n\r\nthree mailboxes\r\n"
    with smtp_session(inst) as s:
        qid = queued_id(send_data(s, SENDER, [ALICE, BOB, CAROL], body))
        # No waiting: the 250 came after the files were in new/.
        for rcpt in (ALICE, BOB, CAROL):
            [path] = mailbox(inst, rcpt)
            assert path.parent.name == "new"
            data = path.read_bytes()
            d = parse_delivered(data)
            assert (d["qid"], d["body"]) == (qid, body)
            assert d["return_path"] == SENDER
            assert d["delivered_to"] == rcpt
            assert d["for"] is None  # the other recipients are not revealed
            assert f"_{qid}-" in path.name and path.name.endswith(f",S={len(data)}")
        s.expect("QUIT", 221)
    log = inst.log()
    assert re.search(rf"smtp delivered qid={qid} from=<{re.escape(SENDER)}> rcpts=3 ", log)
    assert "smtp queued" not in log
    for rcpt in (ALICE, BOB, CAROL):
        assert re.search(rf"qid={qid} delivery to={re.escape(rcpt)} via=maildir "
                         rf"result=delivered ", log)
    # The queue never saw it, and nothing is left in the spool.
    assert spool_names(inst, "queue") == [] and spool_names(inst, "tmp") == []
    assert not any(p for rcpt in (ALICE, BOB, CAROL)
                   for p in (mailbox(inst, rcpt)[0].parent.parent / "tmp").iterdir())


def test_an_alias_and_its_owner_get_one_copy_each_way_it_is_named(mail_server):
    inst = mail_server
    inst.cli("alias", "add", "duo@example.test", ALICE, BOB)
    start_mail(inst)
    with smtp_session(inst) as s:
        qid = queued_id(send_data(s, SENDER, ["duo@example.test", ALICE],
                                  b"Subject: team\r\n\r\nx\r\n"))
    # alice is named twice (through the alias and directly): one copy.
    for rcpt in (ALICE, BOB):
        [path] = mailbox(inst, rcpt)
        assert parse_delivered(path.read_bytes())["delivered_to"] == rcpt
    assert re.search(rf"smtp delivered qid={qid} .* rcpts=2 ", inst.log())


def test_a_success_notice_or_a_remote_recipient_takes_the_queue(mail_server):
    inst = mail_server
    # Remote mail stays queued: the relay host does not answer.
    set_global_key(inst, "relayhost", f"127.0.0.1:{free_port()}")
    set_global_key(inst, "retry_initial", "1h")
    start_mail(inst)
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}> NOTIFY=SUCCESS", 250)
        s.expect("DATA", 354)
        r = s.cmd("Subject: notify\r\n\r\nplease tell me\r\n.")
        qid = queued_id(r)
    inst.wait_log(rf"smtp queued qid={qid} ")
    [msg] = wait_delivered(inst, ALICE, 1)
    assert parse_delivered(msg)["qid"] == qid
    # The success notice goes back to the remote sender, through the queue.
    inst.wait_log(rf"qid={qid} queue dsn qid=\w+ to=<{re.escape(SENDER)}>")
    inst.wait_log(rf"qid={qid} queue removed reason=done")


def test_a_message_refused_by_a_full_mailbox_disk_leaves_no_copy(mail_server):
    """A Maildir that cannot be made (its domain directory is a file): 452,
    no copy for anyone, the session goes on and the next message is served."""
    inst = mail_server
    inst.cli("domain", "add", "blocked.test")
    inst.add_user("x@blocked.test")
    start_mail(inst)
    blocked = inst.dir / "mail" / "blocked.test"
    assert not blocked.exists()
    blocked.write_text("not a directory\n")
    with smtp_session(inst) as s:
        r = send_data(s, SENDER, [ALICE, "x@blocked.test"], b"Subject: no\r\n\r\nx\r\n")
        assert r.code == 452 and r.lines[-1].startswith("4.3.1"), r
        assert mailbox(inst, ALICE) == []
        qid = queued_id(send_data(s, SENDER, [ALICE], b"Subject: yes\r\n\r\nok\r\n"))
    [path] = mailbox(inst, ALICE)
    assert parse_delivered(path.read_bytes())["qid"] == qid
    assert spool_names(inst, "tmp") == []
    assert re.search(r"smtp direct delivery failed: ", inst.log())


def test_concurrent_deliveries_share_syncs(mail_server):
    inst = start_mail(mail_server)
    before = scrape(inst)
    senders, per_sender = 8, 5
    errors = []

    def send(n):
        try:
            with smtplib.SMTP("127.0.0.1", inst.port("mx"), timeout=30) as c:
                for i in range(per_sender):
                    c.sendmail(SENDER, [BOB], f"Subject: {n}-{i}\r\n\r\nx\r\n")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert len(mailbox(inst, BOB)) == senders * per_sender
    after = scrape(inst)
    waits = (value(after, "postgate_spool_sync_waits_total")
             - value(before, "postgate_spool_sync_waits_total"))
    syncs = value(after, "postgate_spool_syncs_total") - value(before, "postgate_spool_syncs_total")
    # Two durable steps per message, each waiting for a sync; never more
    # syncs than waits (how many are shared depends on the timing).
    assert waits == 2 * senders * per_sender
    assert 1 <= syncs <= waits


def test_a_transaction_abandoned_after_rcpt_leaves_no_spool_file(mail_server):
    """The spool file is begun with the first local recipient's look-up, to
    spare DATA a trip to a worker: RSET, QUIT or a vanished client remove it."""
    inst = start_mail(mail_server)
    with smtp_session(inst) as s:
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{ALICE}>", 250)
        wait_for(lambda: len(spool_names(inst, "tmp")) == 1, what="the begun spool file")
        s.expect("RSET", 250)
        wait_for(lambda: spool_names(inst, "tmp") == [], what="spool/tmp emptied by RSET")
        s.expect(f"MAIL FROM:<{SENDER}>", 250)
        s.expect(f"RCPT TO:<{BOB}>", 250)
        s.expect("QUIT", 221)
    wait_for(lambda: spool_names(inst, "tmp") == [], what="spool/tmp emptied by QUIT")
    s = smtp_session(inst)
    s.expect(f"MAIL FROM:<{SENDER}>", 250)
    s.expect(f"RCPT TO:<{CAROL}>", 250)
    s.close()
    wait_for(lambda: spool_names(inst, "tmp") == [], what="spool/tmp emptied at disconnect")
    # Then the session is served as ever.
    with smtp_session(inst) as s:
        queued_id(send_data(s, SENDER, [ALICE], b"Subject: after\r\n\r\nx\r\n"))
    assert len(mailbox(inst, ALICE)) == 1


def test_maildirs_behind_a_bind_mount_get_synced_copies(mail_server):
    """The spool and the Maildirs on one file system but two mounts (a bind
    mount, as containers make): no rename between them (EXDEV), so the first
    mailbox gets a copy fsynced on its own; nothing is refused."""
    if not is_root():
        pytest.skip("bind mounts need root")
    inst = mail_server
    mail = inst.dir / "mail"
    mail.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "--bind", str(mail), str(mail)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount: {proc.stderr.strip()}")
    try:
        start_mail(inst)
        body = b"Subject: across mounts\r\n\r\nstill delivered\r\n"
        with smtp_session(inst) as s:
            qid = queued_id(send_data(s, SENDER, [ALICE, BOB], body))
        for rcpt in (ALICE, BOB):
            [path] = mailbox(inst, rcpt)
            d = parse_delivered(path.read_bytes())
            assert (d["qid"], d["body"], d["delivered_to"]) == (qid, body, rcpt)
        assert spool_names(inst, "tmp") == []
        assert re.search(rf"smtp delivered qid={qid} ", inst.log())
        inst.stop()
    finally:
        subprocess.run(["umount", str(mail)], check=True)
