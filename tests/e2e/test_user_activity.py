"""`postgate user show` and the recent activity only the running daemon
knows (docs/cli.md, docs/auth.md "Recent activity"): messages and
recipients, logins that succeeded and failed, the client addresses they
came from, the last automatic hold; asked over the control socket
(`activity ADDRESS`), kept in memory, forgotten by a restart, and a clear
"unavailable" line when the daemon is not running."""
import json
import poplib
import re
import smtplib
import socket

from conftest import DEMO_PASSWORD, assert_clean_stop, set_global_key
from test_queue_cli import control_raw
from test_smtp_auth import tls_context

ALICE, BOB = "alice@example.test", "bob@example.test"


def submission(inst, source):
    c = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30,
                     source_address=(source, 0))
    c.ehlo("pc")
    c.starttls(context=tls_context())
    c.ehlo("pc")
    return c


def plain_login(c, user, password):
    """One AUTH PLAIN (smtplib's login would try LOGIN after a failure)."""
    c.user, c.password = user, password
    return c.auth("PLAIN", c.auth_plain)


class POP3From(poplib.POP3):
    """poplib.POP3 from a chosen loopback address."""

    def __init__(self, host, port, source, timeout=30):
        self.source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def failed_login(inst, source, user, password):
    with submission(inst, source) as c:
        try:
            plain_login(c, user, password)
            raise AssertionError("login with a wrong password succeeded")
        except smtplib.SMTPAuthenticationError:
            pass


def show(inst, user=ALICE):
    return json.loads(inst.cli("user", "show", user, "--json").stdout)


def activity_words(reply):
    assert reply.startswith(b"ok ") and reply.endswith(b"\n"), reply
    words = reply[3:-1].decode().split(" ")
    return {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if not w.startswith("address=")}


def test_user_show_has_the_recent_activity(mail_server):
    inst = mail_server
    set_global_key(inst, "user_messages_per_hour", 1)
    inst.start()
    # Nothing yet: the daemon answers, with zeros.
    fresh = show(inst)["recent_activity"]
    assert fresh["available"] is True
    assert fresh["logins_ok_day"] == 0 and fresh["login_addresses"] == []
    assert fresh["automatic_hold"] is None

    # A message with two recipients from 127.0.0.1, then one over the
    # hourly limit of 1: refused, and (twice the limit tried) held.
    with submission(inst, "127.0.0.1") as c:
        plain_login(c, ALICE, DEMO_PASSWORD)
        c.sendmail(ALICE, [BOB, "carol@example.test"], b"Subject: one\r\n\r\nhi\r\n")
        code, text = c.mail(ALICE)
        assert code == 450, text
    inst.wait_log(r"warning policy hold user=alice@example\.test reason=burst")
    # Two wrong passwords from 127.0.0.3; a POP3 login from 127.0.0.4.
    failed_login(inst, "127.0.0.3", ALICE, "wrong one")
    failed_login(inst, "127.0.0.3", "ALICE@example.test", "wrong two")
    p = POP3From("127.0.0.1", inst.port("pop3"), "127.0.0.4")
    p.stls(context=tls_context())
    p.user(ALICE)
    assert p.pass_(DEMO_PASSWORD).startswith(b"+OK")
    p.quit()
    # Guesses at a name that does not exist leave nothing behind.
    failed_login(inst, "127.0.0.5", "nobody@example.test", "guess")

    a = show(inst)["recent_activity"]
    assert a["available"] is True
    assert (a["messages_hour"], a["messages_day"]) == (1, 1)
    assert (a["recipients_hour"], a["recipients_day"]) == (2, 2)
    assert a["refused_hour"] == 1
    assert (a["logins_ok_hour"], a["logins_ok_day"]) == (2, 2)
    assert (a["logins_failed_hour"], a["logins_failed_day"]) == (2, 2)
    assert a["automatic_hold"]["reason"] == "burst"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["automatic_hold"]["at"])
    by_address = {x["address"]: (x["ok"], x["failed"]) for x in a["login_addresses"]}
    assert by_address == {"127.0.0.1": (1, 0), "127.0.0.3": (0, 2), "127.0.0.4": (1, 0)}
    lasts = [x["last"] for x in a["login_addresses"]]
    assert lasts == sorted(lasts, reverse=True)  # newest first

    text = inst.cli("user", "show", ALICE).stdout
    assert re.search(r"^sending hold:\s+yes$", text, re.M)
    assert re.search(r"^recent activity:\s+in postgated's memory since it started$", text, re.M)
    assert re.search(r"^messages hour/day:\s+1 / 1$", text, re.M)
    assert re.search(r"^recipients hour/day:\s+2 / 2$", text, re.M)
    assert re.search(r"^logins ok hour/day:\s+2 / 2$", text, re.M)
    assert re.search(r"^logins failed hour/day:\s+2 / 2$", text, re.M)
    assert re.search(r"^automatic hold:\s+\S+Z reason=burst$", text, re.M)
    assert re.search(r"^(login addresses:|)\s+127\.0\.0\.3 ok=0 failed=2 last=\S+Z$", text, re.M)
    assert len(re.findall(r" ok=\d+ failed=\d+ last=", text)) == 3

    # The unknown name is not tracked; an address of 254 octets fits the
    # request line.
    assert activity_words(control_raw(inst, b"activity nobody@example.test\n"))["tracked"] == "no"
    assert activity_words(control_raw(inst, b"activity Alice@Example.Test\n"))["tracked"] == "yes"
    longest = b"a" * 64 + b"@" + b"b" * 189
    assert activity_words(control_raw(inst, b"activity " + longest + b"\r\n"))["tracked"] == "no"
    assert control_raw(inst, b"activity " + longest + b"b\r\n").startswith(b"error usage ")
    assert control_raw(inst, b"activity alice\n").startswith(b"error usage ")

    # Stopped: the store's part is shown, the activity is unavailable.
    assert_clean_stop(inst)
    text = inst.cli("user", "show", ALICE).stdout
    assert re.search(r"^address:\s+alice@example\.test$", text, re.M)
    assert text.endswith("\nrecent activity: unavailable (postgated is not running)\n")
    a = show(inst)["recent_activity"]
    assert a == {"available": False, "reason": "postgated is not running"}

    # A restart forgets it (the hold itself is in the store).
    inst.start()
    a = show(inst)
    assert a["sending_hold"] is True
    assert a["recent_activity"]["logins_failed_day"] == 0
    assert a["recent_activity"]["login_addresses"] == []
    assert a["recent_activity"]["automatic_hold"] is None
    assert_clean_stop(inst)
