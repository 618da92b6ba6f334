"""Compromised-account containment: per-user sending limits (450/452 4.7.1),
the automatic sending hold after a burst or after logins from many
addresses, the operator's `user hold`/`user release`, and a held account
that may still fetch its mail over POP3."""
import json
import poplib
import smtplib

from conftest import DEMO_PASSWORD, assert_clean_stop, set_global_key
from test_smtp_auth import tls_context

ALICE, BOB = "alice@example.test", "bob@example.test"
REMOTE = "friend@remote.example"


def login(inst, user, source="127.0.0.1"):
    c = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=10,
                     source_address=(source, 0))
    c.ehlo("pc")
    c.starttls(context=tls_context())
    c.ehlo("pc")
    c.login(user, DEMO_PASSWORD)
    return c


def held(inst, user):
    return json.loads(inst.cli("user", "show", user, "--json").stdout)["sending_hold"]


def test_limits_then_a_burst_puts_the_account_on_hold(mail_server):
    inst = mail_server
    set_global_key(inst, "user_messages_per_hour", 2)
    set_global_key(inst, "user_recipients_per_hour", 3)
    inst.start()
    c = login(inst, ALICE)
    # Message 1: two recipients. Message 2: the fourth recipient is over.
    assert c.mail(ALICE)[0] == 250
    assert c.rcpt(BOB)[0] == 250 and c.rcpt(REMOTE)[0] == 250
    c.data(b"Subject: one\r\n\r\nfirst\r\n")
    assert c.mail(ALICE)[0] == 250
    assert c.rcpt(BOB)[0] == 250
    code, text = c.rcpt("other@remote.example")
    assert (code, text[:6]) == (452, b"4.7.1 "), text
    assert b"Sending limit reached for this account (3 recipients-per-hour)" in text
    assert c.data(b"Subject: two\r\n\r\nsecond\r\n")[0] == 250  # the accepted one goes
    # Message 3: over the messages of the hour.
    code, text = c.mail(ALICE)
    assert code == 450 and b"(2 messages-per-hour)" in text, text
    c.rset()
    assert not held(inst, ALICE)
    # Trying twice the limit within the hour: the account is held.
    c.mail(ALICE)
    inst.wait_log(r"warning policy hold user=alice@example\.test reason=burst")
    c.quit()
    assert held(inst, ALICE)
    inst.wait_log(r"smtp rate refused user=alice@example\.test limit=messages-per-hour max=2")
    # A held account logs in, but sends nothing; its POP3 goes on.
    c = login(inst, ALICE)
    code, text = c.mail(ALICE)
    assert code == 550 and text.startswith(b"5.7.1 Sending is suspended"), text
    c.quit()
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=10)
    p.stls(context=tls_context())
    p.user(ALICE)
    assert p.pass_(DEMO_PASSWORD).startswith(b"+OK")
    p.quit()
    assert_clean_stop(inst)


def test_operator_hold_and_release(mail_server):
    inst = mail_server
    inst.start()
    c = login(inst, BOB)
    assert c.mail(BOB)[0] == 250
    c.rset()
    assert inst.cli("user", "hold", BOB).stdout == f"put on a sending hold: {BOB}\n"
    # The next message of a session that began before the hold is refused.
    assert c.mail(BOB)[0] == 550
    assert inst.cli("user", "release", BOB).stdout == \
        f"released from its sending hold: {BOB}\n"
    assert c.mail(BOB)[0] == 250
    c.quit()
    bad = inst.cli("user", "hold", "nobody@example.test", check=False)
    assert bad.returncode != 0 and "nobody@example.test" in bad.stderr
    assert_clean_stop(inst)


def test_logins_from_many_addresses_hold_the_account(mail_server):
    inst = mail_server
    set_global_key(inst, "hold_login_addresses", 2)
    inst.start()
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.1"):
        login(inst, BOB, source).quit()
    assert not held(inst, BOB)
    login(inst, BOB, "127.0.0.3").quit()
    inst.wait_log(r"warning policy hold user=bob@example\.test "
                  r"reason=logins-from-many-addresses")
    assert held(inst, BOB)
    # Another account is not touched.
    c = login(inst, ALICE, "127.0.0.4")
    assert c.mail(ALICE)[0] == 250
    c.quit()
    assert_clean_stop(inst)


def test_limits_per_domain_and_per_user(mail_server):
    """A user's own limit, else its domain's, else the configuration's."""
    inst = mail_server
    out = inst.cli("domain", "limits", "example.test", "--messages-per-hour", "2").stdout
    assert out == ("sending limits of domain example.test: messages-per-hour=2 "
                   "messages-per-day=inherit recipients-per-hour=inherit "
                   "recipients-per-day=inherit\n")
    carol = "carol@example.test"
    inst.cli("user", "limits", carol, "--messages-per-hour", "3", "--recipients-per-day", "0")
    assert "sending limits: messages-per-hour=3 messages-per-day=inherit " \
        "recipients-per-hour=inherit recipients-per-day=0" in inst.cli("user", "show", carol).stdout
    bad = inst.cli("user", "limits", carol, "--messages-per-day", "lots", check=False)
    assert bad.returncode == 64 and "expected a number from 0 to" in bad.stderr
    inst.start()
    for user, limit in ((BOB, 2), (carol, 3)):
        c = login(inst, user)
        for _ in range(limit):
            assert c.mail(user)[0] == 250
            c.rset()
        code, text = c.mail(user)
        assert code == 450 and f"({limit} messages-per-hour)".encode() in text, (user, text)
        c.quit()
    # Back to the domain's.
    inst.cli("user", "limits", carol, "--messages-per-hour", "inherit")
    c = login(inst, carol)
    code, text = c.mail(carol)
    assert code == 450 and b"(2 messages-per-hour)" in text, text
    c.quit()
    assert_clean_stop(inst)
