"""Outbound delivery, the paths test_outbound.py leaves out: DSNs on request
(success, delay, NOTIFY/ORCPT/RET/ENVID), local permanent failures, expiry,
connection reuse and both connection limits, TLS verify/require, the EHLO
refusal and the SIZE/8BITMIME/SMTPUTF8 refusals, DNS temporary failures, and
a connection lost before the final dot's reply.

Our SMTP server does not take NOTIFY/ORCPT/RET/ENVID yet (another branch adds
them), so the DSN-parameter tests put them into a spooled envelope: a message
is deferred to a dead route, the daemon is stopped, its ID.env is rewritten
(docs/spool.md format) and ID.state removed, and the restarted daemon picks it
up from deferred/ at once."""
import re
import signal
import smtplib
import socket

import pytest

from conftest import (DEMO_PASSWORD, mailbox, start_mail, wait_delivered, wait_for)
from remote import (ConnectionCounter, Dns, Remote, Scripted, free_tcp_port_on, make_ca,
                    make_cert)
from test_outbound import ALICE, parse_dsn, spool, submit, tls_client_context

HOSTS = [f"127.0.0.{i}" for i in range(2, 12)]


@pytest.fixture
def port():
    """One TCP port free on every test host (smtp_port is global)."""
    return free_tcp_port_on(HOSTS)


@pytest.fixture
def dns(workdir):
    made = []

    def make(records):
        d = Dns(workdir, records)
        made.append(d)
        return d
    yield make
    for d in made:
        d.stop()


@pytest.fixture
def remotes():
    made = []

    def add(r):
        made.append(r)
        return r
    yield add
    for r in made:
        r.stop()


def add_routes(inst, routes):
    """Top-level `route DOMAIN = TARGET` lines, before the first section."""
    text = "".join(f"route {d} = {t}\n" for d, t in routes.items())
    inst.config.write_text(inst.config.read_text().replace("[listener", text + "[listener", 1))


def start(inst, dns_server, port, **extra):
    config = {"dns_servers": dns_server, "smtp_port": str(port), "retry_initial": "1s",
              "retry_max": "1s", "outbound_timeout_divisor": "50"}
    config.update(extra)
    return start_mail(inst, **config)


def dead_port():
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qid_of(inst, rcpt, result):
    m = inst.wait_log(rf"qid=(\w+) delivery to={re.escape(rcpt)} via=\w+ result={result}",
                      timeout=20)
    return m.group(1)


def dsn_for(groups, rcpt):
    [g] = [g for g in groups[1:] if g["final-recipient"] == f"rfc822; {rcpt}"]
    return g


def inject(inst, env_edit):
    """Stop the running daemon with one message deferred to hold.test (a
    route to a dead port), rewrite its ID.env with env_edit(text) -> text,
    drop its ID.state and start the daemon again. Returns the queue ID."""
    submit(inst, ["x@hold.test"], subject="injected")
    qid = qid_of(inst, "x@hold.test", "deferred")
    deferred = inst.dir / "state" / "spool" / "deferred"
    wait_for(lambda: (deferred / f"{qid}.state").exists(), what="the message in deferred/")
    assert inst.stop() == 0
    env = deferred / f"{qid}.env"
    env.write_text(env_edit(env.read_text()))
    (deferred / f"{qid}.state").unlink()
    inst.start()
    return qid


def with_recipients(*lines, ret=None, envid=None):
    """An env_edit for inject: the recipients (and their orcpt/notify lines)
    replaced, RET and ENVID set."""
    def edit(text):
        head = text[:text.index("\nrcpt ") + 1]
        if ret is not None:
            head = re.sub(r"^ret \w+$", f"ret {ret}", head, flags=re.M)
        if envid is not None:
            head = re.sub(r"^(ret \w+)$", rf"\1\nenvid {envid}", head, flags=re.M)
        return head + "".join(line + "\n" for line in lines) + "end\n"
    return edit


def log_after(inst, qid, event):
    """Whether the log has `qid=ID queue EVENT`."""
    return re.search(rf"qid={qid} queue {event}", inst.log()) is not None


def base_routes(inst, port, **more):
    """s.test → the scripted remote on 127.0.0.2; hold.test → a dead port."""
    add_routes(inst, {"s.test": f"127.0.0.2:{port}", "hold.test": f"127.0.0.1:{dead_port()}",
                      **more})


# --- 1. success and delay DSNs, NOTIFY rules ----------------------------------


def test_success_dsn_only_with_notify_success_and_never_means_never(mail_server, dns, port,
                                                                     remotes):
    """Injected NOTIFY/ORCPT/RET: a local recipient with NOTIFY=SUCCESS gets
    "delivered", a remote one at a server without DSN "relayed" (with its
    ORCPT as Original-Recipient), one without NOTIFY no report, a refused one
    with NOTIFY=NEVER no bounce, a refused one with NOTIFY=FAILURE a bounce;
    RET=HDRS returns only the header section. One DSN for the attempt."""
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port)
    qid = inject(inst, with_recipients(
        "rcpt bob@example.test", "notify success",
        "rcpt carol@example.test",
        "rcpt ok@s.test", "orcpt rfc822;OK@s.test", "notify success,failure",
        "rcpt reject1@s.test", "notify never",
        "rcpt reject2@s.test", "notify failure",
        ret="hdrs"))
    [dsn] = wait_delivered(inst, ALICE, 1, timeout=20)
    msg, groups, parts = parse_dsn(dsn)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert sorted(g["final-recipient"] for g in groups[1:]) == [
        "rfc822; bob@example.test", "rfc822; ok@s.test", "rfc822; reject2@s.test"]
    bob = dsn_for(groups, "bob@example.test")
    assert bob["action"] == "delivered" and bob["status"].startswith("2.")
    assert "remote-mta" not in bob
    ok = dsn_for(groups, "ok@s.test")
    assert ok["action"] == "relayed" and ok["status"] == "2.0.0"
    assert ok["original-recipient"] == "rfc822; OK@s.test"
    assert ok["remote-mta"] == "dns; 127.0.0.2"
    r2 = dsn_for(groups, "reject2@s.test")
    assert r2["action"] == "failed" and r2["status"] == "5.1.1"
    assert r2["diagnostic-code"].startswith("smtp; 550 5.1.1")
    assert "last-attempt-date" in r2 and "arrival-date" in groups[0]
    # RET=HDRS: the header section only, even for a failure.
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Subject: injected" in dsn and b"Hello from alice." not in dsn
    wait_for(lambda: log_after(inst, qid, "removed"), what="the message removed")
    assert [m.rcpt_tos for m in remote.messages] == [["ok@s.test"]]
    assert len(wait_delivered(inst, "bob@example.test", 1)) == 1
    assert len(mailbox(inst, ALICE)) == 1


def test_dsn_parameters_go_to_a_remote_that_offers_dsn(mail_server, dns, port, remotes):
    """RFC 3461 5.2: RET, ENVID (xtext), NOTIFY and ORCPT are passed on to a
    server that offers DSN; it reports success itself, so we send no
    "relayed" DSN."""
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port, extensions=["PIPELINING", "DSN", "8BITMIME"]))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port)
    qid = inject(inst, with_recipients(
        "rcpt ok@s.test", "orcpt rfc822;Ok+2Bx@s.test", "notify success,delay",
        "rcpt ok2@s.test", "notify never",
        "rcpt ok3@s.test",
        ret="full", envid="QQ+2B1"))
    [got] = wait_for(lambda: remote.messages, timeout=20, what="the message at the remote")
    assert sorted(got.rcpt_tos) == ["ok2@s.test", "ok3@s.test", "ok@s.test"]
    [mail] = remote.mail_lines
    assert "RET=FULL" in mail.split() and "ENVID=QQ+2B1" in mail.split()
    rcpts = {line.split()[1]: line.split()[2:] for line in remote.rcpt_lines}
    assert sorted(rcpts["TO:<ok@s.test>"]) == ["NOTIFY=SUCCESS,DELAY",
                                               "ORCPT=rfc822;Ok+2Bx@s.test"]
    assert rcpts["TO:<ok2@s.test>"] == ["NOTIFY=NEVER"]
    assert rcpts["TO:<ok3@s.test>"] == []
    wait_for(lambda: log_after(inst, qid, "removed"), what="the message removed")
    assert not log_after(inst, qid, "dsn")
    assert mailbox(inst, ALICE) == []


def test_delay_warning_once_for_every_deferred_recipient(mail_server, dns, port, remotes):
    """delay_warning: once a message has waited that long, one "delayed" DSN
    lists every recipient still deferred (not only the first), is sent once
    (delay-warned in ID.state), and the later delivery sends nothing more."""
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port, delay_warning="1s")
    submit(inst, ["defer1@s.test", "defer2@s.test", "ok@s.test"], subject="delayed")
    [dsn] = wait_delivered(inst, ALICE, 1, timeout=20)
    msg, groups, parts = parse_dsn(dsn)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert sorted(g["final-recipient"] for g in groups[1:]) == [
        "rfc822; defer1@s.test", "rfc822; defer2@s.test"]
    for g in groups[1:]:
        assert g["action"] == "delayed"
        assert g["status"] == "4.2.0"
        assert g["remote-mta"] == "dns; 127.0.0.2"
        assert g["diagnostic-code"] == "smtp; 451 4.2.0 try again later"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    qid = qid_of(inst, "defer1@s.test", "deferred")
    state = inst.dir / "state" / "spool" / "deferred" / f"{qid}.state"
    wait_for(lambda: state.exists() and "delay-warned" in state.read_text(),
             what="delay-warned in ID.state")
    # More deferred attempts send no second warning.
    inst.wait_log(rf"qid={qid} queue deferred attempts=3", timeout=20)
    assert len(mailbox(inst, ALICE)) == 1
    # The remote stops deferring: delivered, and no success report (no NOTIFY).
    remote.accept_all = True
    wait_for(lambda: log_after(inst, qid, "removed"), timeout=20, what="the message removed")
    assert sorted(r for m in remote.messages for r in m.rcpt_tos) == [
        "defer1@s.test", "defer2@s.test", "ok@s.test"]
    assert len(mailbox(inst, ALICE)) == 1


# --- 2. local permanent failure -------------------------------------------


def test_local_account_deleted_after_acceptance_bounces_5_1_1(mail_server, dns, port):
    """A message for bob waits in the spool; bob's account is deleted; the
    next attempt fails him with 550 5.1.1 and alice gets the DSN."""
    d = dns([])
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port)
    # As inject(), with bob's account deleted while the daemon is stopped.
    submit(inst, ["x@hold.test"], subject="injected")
    qid = qid_of(inst, "x@hold.test", "deferred")
    deferred = inst.dir / "state" / "spool" / "deferred"
    wait_for(lambda: (deferred / f"{qid}.state").exists(), what="the message in deferred/")
    assert inst.stop() == 0
    env = deferred / f"{qid}.env"
    env.write_text(with_recipients("rcpt bob@example.test")(env.read_text()))
    (deferred / f"{qid}.state").unlink()
    inst.cli("user", "del", "bob@example.test")
    inst.start()
    [dsn] = wait_delivered(inst, ALICE, 1, timeout=20)
    _, groups, parts = parse_dsn(dsn)
    [g] = groups[1:]
    assert g["final-recipient"] == "rfc822; bob@example.test"
    assert g["action"] == "failed" and g["status"] == "5.1.1"
    assert "remote-mta" not in g
    assert parts[2].get_content_type() == "message/rfc822"
    wait_for(lambda: log_after(inst, qid, "removed"), what="the message removed")
    assert not any(n.startswith(qid) for n in spool(inst, "deferred") + spool(inst, "queue"))
    assert mailbox(inst, "bob@example.test") == []


# --- 8. expiry -----------------------------------------------------------------


def test_expiry_bounces_5_4_7_with_the_last_reply_and_leaves_the_spool(mail_server, dns, port,
                                                                       remotes):
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port, max_queue_lifetime="2s")
    submit(inst, ["defer@s.test"], subject="expiring")
    qid = qid_of(inst, "defer@s.test", "deferred")
    [dsn] = wait_delivered(inst, ALICE, 1, timeout=20)
    msg, groups, parts = parse_dsn(dsn)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    [g] = groups[1:]
    assert g["final-recipient"] == "rfc822; defer@s.test"
    assert g["action"] == "failed"
    assert g["status"] == "5.4.7"
    assert g["remote-mta"] == "dns; 127.0.0.2"
    assert "expired in queue; last: 451 4.2.0 try again later" in g["diagnostic-code"]
    assert "last-attempt-date" in g and "arrival-date" in groups[0]
    assert parts[2].get_content_type() == "message/rfc822"
    inst.wait_log(rf"qid={qid} queue removed reason=expired")
    assert all(not n.startswith(qid) for n in spool(inst, "deferred") + spool(inst, "queue"))
    assert remote.messages == []


# --- 3. connection reuse and limits ----------------------------------------


def submit_many(inst, rcpt_sets, subject):
    """One authenticated session, one message per recipient list; each also
    goes to carol, whose local delivery shows the message was loaded (the
    remote job is queued in the same step)."""
    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10) as client:
        client.ehlo("pc")
        client.starttls(context=tls_client_context())
        client.ehlo("pc")
        client.login(ALICE, DEMO_PASSWORD)
        for i, rcpts in enumerate(rcpt_sets):
            msg = f"From: {ALICE}\r\nSubject: {subject} {i}\r\n\r\nbody {i}\r\n"
            assert client.sendmail(ALICE, rcpts + ["carol@example.test"], msg.encode()) == {}


@pytest.mark.parametrize("limit", [1, 2])
def test_queued_messages_share_connections_within_the_destination_limit(
        mail_server, dns, port, remotes, limit):
    """Five messages for one destination while its server holds every DATA:
    at most max_destination_connections connections open, and those carry
    all five (a connection that finished a message takes the next)."""
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port, hold_data=True))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port, max_destination_connections=str(limit),
          outbound_timeout_divisor="10")
    submit_many(inst, [[f"m{i}@s.test"] for i in range(5)], "reuse")
    wait_delivered(inst, "carol@example.test", 5)
    wait_for(lambda: remote.counter.now == limit, what=f"{limit} connection(s) open")
    remote.release()
    wait_for(lambda: len(remote.messages) == 5, timeout=20, what="five messages")
    assert remote.counter.most == limit
    assert remote.counter.total == limit


def test_global_connection_limit_across_destinations(mail_server, dns, port, remotes):
    """max_outbound_connections=2 with three destinations, their servers
    holding DATA: never more than two connections at once in all."""
    d = dns([])
    counter = ConnectionCounter()
    rs = [remotes(Scripted(f"127.0.0.{2 + i}", port, hold_data=True, counter=counter))
          for i in range(3)]
    inst = mail_server
    add_routes(inst, {f"g{i}.test": f"127.0.0.{2 + i}:{port}" for i in range(3)})
    start(inst, d.server, port, max_outbound_connections="2", outbound_timeout_divisor="10")
    submit_many(inst, [[f"x@g{i}.test"] for i in range(3)], "global")
    wait_delivered(inst, "carol@example.test", 3)
    wait_for(lambda: counter.now == 2, what="two connections open")
    for r in rs:
        r.release()
    wait_for(lambda: sum(len(r.messages) for r in rs) == 3, timeout=20, what="three messages")
    assert counter.most == 2
    assert counter.total == 3


# --- 4. TLS verify and require ----------------------------------------------


def test_tls_verify_and_require(mail_server, dns, port, remotes, workdir):
    """tls=verify with outbound_ca_file: a certificate from the test CA for
    the host's name (or, for a route to an IP address, for that address) is
    delivered over TLS; one from another CA, or for
    another name, is deferred and never sent in plaintext (the servers would
    take plaintext); tls=require to a server without STARTTLS is deferred."""
    ca, other_ca = make_ca(workdir, "Test CA"), make_ca(workdir, "Other CA")
    d = dns(["host-record=mx.good.test,127.0.0.2", "host-record=mx.wrongca.test,127.0.0.3",
             "host-record=mx.badname.test,127.0.0.4", "host-record=mx.plain.test,127.0.0.5"])
    good = remotes(Remote("127.0.0.2", port, tls=make_cert(workdir, ca, "mx.good.test")))
    wrong_ca = remotes(Remote("127.0.0.3", port,
                              tls=make_cert(workdir, other_ca, "mx.wrongca.test")))
    bad_name = remotes(Remote("127.0.0.4", port, tls=make_cert(workdir, ca, "other.test")))
    plain = remotes(Remote("127.0.0.5", port))
    by_ip = remotes(Remote("127.0.0.6", port,
                           tls=make_cert(workdir, ca, "127.0.0.6", san="IP:127.0.0.6")))
    inst = mail_server
    add_routes(inst, {"good.test": f"mx.good.test:{port} tls=verify",
                      "wrongca.test": f"mx.wrongca.test:{port} tls=verify",
                      "badname.test": f"mx.badname.test:{port} tls=verify",
                      "plain.test": f"mx.plain.test:{port} tls=require",
                      "ip.test": f"127.0.0.6:{port} tls=verify"})
    start(inst, d.server, port, outbound_ca_file=str(ca[0]))
    submit(inst, ["a@good.test", "b@wrongca.test", "c@badname.test", "d@plain.test",
                  "e@ip.test"], subject="tls modes")
    [got] = wait_for(lambda: good.messages, timeout=20, what="the message at mx.good.test")
    assert got.tls and got.rcpt_tos == ["a@good.test"]
    # A route to an IP address: the certificate must name that address.
    [got] = wait_for(lambda: by_ip.messages, timeout=20, what="the message at 127.0.0.6")
    assert got.tls and got.rcpt_tos == ["e@ip.test"]
    qid = qid_of(inst, "b@wrongca.test", "deferred")
    for rcpt in ("b@wrongca.test", "c@badname.test", "d@plain.test"):
        inst.wait_log(rf"qid={qid} delivery to={re.escape(rcpt)} via=smtp result=deferred "
                      rf".*detail=\"451 4\.4\.1")
    inst.wait_log(r"host=mx.wrongca.test failed reason=\"TLS")
    inst.wait_log(r"host=mx.badname.test failed reason=\"TLS")
    inst.wait_log(r"host=mx.plain.test failed reason=\"TLS is required")
    # A retry does the same.
    inst.wait_log(rf"qid={qid} queue deferred attempts=2", timeout=20)
    assert wrong_ca.messages == [] and bad_name.messages == [] and plain.messages == []
    assert mailbox(inst, ALICE) == []


# --- 5. EHLO refused, SIZE, 8BITMIME, SMTPUTF8 --------------------------------


def test_helo_fallback_and_extension_refusals(mail_server, dns, port, remotes):
    """EHLO refused with 500 or 502 → HELO, delivered. SIZE smaller than the
    message → 552 5.3.4; an 8-bit body to a server without 8BITMIME → 554
    5.6.3; an SMTPUTF8 message to a server without SMTPUTF8 → 553 5.6.7: each
    a bounce, and nothing sent to the server beyond EHLO."""
    d = dns([])
    helo502 = remotes(Scripted("127.0.0.2", port, ehlo_reply="502 5.5.1 no EHLO here"))
    helo500 = remotes(Scripted("127.0.0.3", port, ehlo_reply="500 5.5.2 what"))
    small = remotes(Scripted("127.0.0.4", port, extensions=["PIPELINING", "8BITMIME",
                                                            "SIZE 300"]))
    seven = remotes(Scripted("127.0.0.5", port, extensions=["PIPELINING", "SMTPUTF8"]))
    ascii_only = remotes(Scripted("127.0.0.6", port, extensions=["PIPELINING", "8BITMIME"]))
    inst = mail_server
    add_routes(inst, {"helo502.test": f"127.0.0.2:{port}", "helo500.test": f"127.0.0.3:{port}",
                      "small.test": f"127.0.0.4:{port}", "seven.test": f"127.0.0.5:{port}",
                      "ascii.test": f"127.0.0.6:{port}"})
    start(inst, d.server, port)
    submit(inst, ["x@helo502.test", "y@helo500.test"], subject="helo")
    for r, rcpt in ((helo502, "x@helo502.test"), (helo500, "y@helo500.test")):
        [got] = wait_for(lambda: r.messages, timeout=20, what=f"the message for {rcpt}")
        assert got.rcpt_tos == [rcpt]
        assert r.greetings == ["EHLO mail.example.test", "HELO mail.example.test"]
        # HELO: no ESMTP parameters.
        assert r.mail_lines == [f"MAIL FROM:<{ALICE}>"]

    submit(inst, ["big@small.test"], subject="too big", body="x" * 400 + "\r\n")
    [dsn] = wait_delivered(inst, ALICE, 1, timeout=20)
    _, groups, _ = parse_dsn(dsn)
    assert groups[1]["final-recipient"] == "rfc822; big@small.test"
    assert groups[1]["status"] == "5.3.4" and groups[1]["action"] == "failed"
    assert groups[1]["remote-mta"] == "dns; 127.0.0.4"
    assert small.mail_lines == []

    msg = (f"From: {ALICE}\r\nSubject: eight\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nGr\u00fc\u00dfe\r\n").encode()
    send_raw(inst, ALICE, ["e@seven.test"], msg, ["BODY=8BITMIME"])
    dsns = wait_delivered(inst, ALICE, 2, timeout=20)
    _, groups, _ = parse_dsn(report_on(dsns, "e@seven.test"))
    assert groups[1]["final-recipient"] == "rfc822; e@seven.test"
    assert groups[1]["status"] == "5.6.3"
    assert seven.mail_lines == []

    msg = f"From: {ALICE}\r\nSubject: utf8\r\n\r\nhi\r\n".encode()
    send_raw(inst, ALICE, ["j\u00f6rg@ascii.test"], msg, ["SMTPUTF8"])
    dsns = wait_delivered(inst, ALICE, 3, timeout=20)
    _, groups, _ = parse_dsn(report_on(dsns, "j\u00f6rg@ascii.test"))
    assert groups[1]["final-recipient"] == "rfc822; j\u00f6rg@ascii.test"
    assert groups[1]["status"] == "5.6.7"
    assert ascii_only.mail_lines == []


def report_on(dsns, rcpt):
    """The one DSN among dsns that reports on rcpt. Maildir names do not sort
    by time within one second (their microseconds are not zero-padded), so
    the newest is found by content, not by position."""
    [dsn] = [d for d in dsns if parse_dsn(d)[1][1].get("final-recipient") == f"rfc822; {rcpt}"]
    return dsn


def send_raw(inst, sender, rcpts, msg, mail_options):
    with smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10) as client:
        client.ehlo("pc")
        client.starttls(context=tls_client_context())
        client.ehlo("pc")
        client.login(ALICE, DEMO_PASSWORD)
        assert client.sendmail(sender, rcpts, msg, mail_options=mail_options) == {}


# --- 7. DNS temporary failures -------------------------------------------------


def test_servfail_and_dns_timeout_defer_and_never_bounce(mail_server, dns, port):
    """A domain whose server fails (dnsmasq forwarding to a dead upstream →
    SERVFAIL/REFUSED) and one whose upstream never answers (a c-ares
    timeout): deferred with 4.4.3, retried, never bounced."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    try:
        d = dns([f"server=/sf.test/127.0.0.1#{dead}",
                 f"server=/slow.test/127.0.0.1#{silent.getsockname()[1]}"])
        inst = start(mail_server, d.server, port)
        submit(inst, ["x@sf.test", "y@slow.test"], subject="dns trouble")
        qid = qid_of(inst, "x@sf.test", "deferred")
        for rcpt in ("x@sf.test", "y@slow.test"):
            inst.wait_log(rf"qid={qid} delivery to={re.escape(rcpt)} via=smtp "
                          rf"result=deferred .*detail=\"451 4\.4\.3 MX look-up of")
        inst.wait_log(r"MX look-up of slow.test failed: Timeout")
        inst.wait_log(rf"qid={qid} queue deferred attempts=2", timeout=20)
        assert mailbox(inst, ALICE) == []
        assert any(n.startswith(qid) for n in spool(inst, "deferred"))
    finally:
        silent.close()


# --- a connection lost before the final dot's reply -----------------------------


def test_connection_lost_before_the_dot_reply_is_not_a_delivery(mail_server, dns, port,
                                                                 remotes):
    """The server takes RCPT (250) and the body, then closes without answering
    the final dot: RFC 5321 4.1.1.4 — not delivered. The recipient stays
    pending (421), the retry delivers it, and no bounce goes out."""
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port, drop_at_dot=True))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port)
    submit(inst, ["ok@s.test"], subject="dropped")
    inst.wait_log(r"delivery to=ok@s.test via=smtp result=deferred .*detail=\"421 4\.4\.2",
                  timeout=20)
    assert remote.dropped >= 1 and remote.messages == []
    remote.drop_at_dot = False
    [got] = wait_for(lambda: remote.messages, timeout=20, what="the retried message")
    assert got.rcpt_tos == ["ok@s.test"]
    inst.wait_log(r"delivery to=ok@s.test via=smtp result=delivered")
    assert mailbox(inst, ALICE) == []


# --- 9. every MX before deferring; a crash in the middle of a delivery ---------


def test_every_mx_is_tried_in_order_before_deferring(mail_server, dns, port, remotes):
    """Three MX hosts: the first greets with 554, the second refuses the
    connection, the third takes the message. When the third is gone too,
    all three are tried again and the message is deferred with the last
    host's failure (451 4.4.1), never bounced."""
    d = dns(["mx-host=three.test,mx1.three.test,10", "mx-host=three.test,mx2.three.test,20",
             "mx-host=three.test,mx3.three.test,30",
             "host-record=mx1.three.test,127.0.0.2", "host-record=mx2.three.test,127.0.0.3",
             "host-record=mx3.three.test,127.0.0.4"])
    refuser = remotes(Scripted("127.0.0.2", port, greeting="554 5.3.2 no service here"))
    third = remotes(Scripted("127.0.0.4", port))
    inst = start(mail_server, d.server, port)
    submit(inst, ["a@three.test"], subject="three mx")
    [got] = wait_for(lambda: third.messages, timeout=20, what="the message at mx3")
    assert got.rcpt_tos == ["a@three.test"]
    assert refuser.counter.total == 1
    inst.wait_log(r"host=mx1.three.test failed reason=\"554 5.3.2")
    inst.wait_log(r"host=mx2.three.test failed reason=\"Connection refused")
    third.stop()
    submit(inst, ["b@three.test"], subject="all down")
    inst.wait_log(r"delivery to=b@three.test via=smtp result=deferred .*"
                  r"detail=\"451 4\.4\.1 mx3.three.test: Connection refused", timeout=20)
    assert refuser.counter.total == 2
    qid = qid_of(inst, "b@three.test", "deferred")
    inst.wait_log(rf"qid={qid} queue deferred attempts=2", timeout=20)
    assert refuser.counter.total == 3
    assert mailbox(inst, ALICE) == []


def test_kill_during_a_delivery_loses_nothing_and_repeats_no_local_delivery(
        mail_server, dns, port, remotes):
    """SIGKILL while the remote holds its reply to the final dot (carol's
    local copy already in her Maildir, not yet recorded): after the restart
    the remote recipient gets the message once and carol keeps one copy."""
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port, hold_data=True))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port)
    submit(inst, ["ok@s.test", "carol@example.test"], subject="crash")
    wait_for(lambda: remote.held == 1, timeout=20, what="the body at the remote")
    wait_delivered(inst, "carol@example.test", 1)
    inst.stop(signal.SIGKILL)
    remote.release()
    inst.start()
    [got] = wait_for(lambda: remote.messages, timeout=20, what="the message after the restart")
    assert got.rcpt_tos == ["ok@s.test"]
    qid = qid_of(inst, "ok@s.test", "delivered")
    inst.wait_log(rf"qid={qid} queue removed reason=done")
    assert len(remote.messages) == 1 and remote.held == 2
    assert len(mailbox(inst, "carol@example.test")) == 1
    assert mailbox(inst, ALICE) == []


def test_no_bounce_to_the_null_sender(mail_server, dns, port, remotes):
    """A message from <> (a bounce) refused by the remote fails without a DSN
    (RFC 5321 4.5.5; RFC 3461 6.2)."""
    d = dns([])
    remote = remotes(Scripted("127.0.0.2", port))
    inst = mail_server
    base_routes(inst, port)
    start(inst, d.server, port)
    # Submission refuses <> (553 5.7.1): a spooled envelope gets it instead.
    def null_sender(text):
        text = with_recipients("rcpt reject@s.test")(text)
        return re.sub(r"^reverse-path .*$", "reverse-path", text, flags=re.M)
    qid = inject(inst, null_sender)
    inst.wait_log(rf"qid={qid} delivery to=reject@s.test via=smtp result=failed", timeout=20)
    inst.wait_log(rf"qid={qid} queue removed reason=done")
    assert not log_after(inst, qid, "dsn")
    assert remote.mail_lines[0].startswith("MAIL FROM:<>")
    assert mailbox(inst, ALICE) == []
