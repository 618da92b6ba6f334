"""Logins and their cost, through the real daemon: a re-login with the same
password is answered from the credential cache without a hash (the
`auth_cache_hits` and `auth_hash_runs` counters of `postgate status`), a
wrong password, a password changed with `postgate user passwd` and a
`postgate user disable` are hashed and take effect on the very next login,
a reload (SIGHUP) empties the cache, and the hashes run on the
`auth_threads` of their own (docs/auth.md)."""
import json
import poplib
import signal

import pytest

from conftest import DEMO_PASSWORD, set_global_key, start_mail
from test_pop3 import pop3s

BOB = "bob@example.test"
NEW_PASSWORD = "new horse battery"


def status(inst):
    return json.loads(inst.cli("status", "--json").stdout)


def login_ok(inst, password=DEMO_PASSWORD):
    client = pop3s(inst, BOB, password)
    client.quit()


def login_refused(inst, password):
    with pytest.raises(poplib.error_proto):
        login_ok(inst, password)


def counters(inst):
    s = status(inst)
    return s["auth_hash_runs"], s["auth_cache_hits"]


def test_relogin_costs_no_hash_and_changes_count_at_once(mail_server):
    inst = start_mail(mail_server, auth_threads="2")
    assert counters(inst) == (0, 0)

    # A client polling: one hash, then only cache hits.
    for _ in range(5):
        login_ok(inst)
    assert counters(inst) == (1, 4)
    assert status(inst)["auth_ok"] == 5
    inst.wait_log(rf"auth ok listener=pop3s client=127\.0\.0\.1 mech=USER user={BOB} cached=yes")

    # The cache is per (user, password): a wrong one is hashed and refused.
    login_refused(inst, "wrong horse")
    assert counters(inst) == (2, 4)

    # A new password, set by another process: the old one is refused at
    # once (hashed against the new secret), the new one hashed once, then cached.
    inst.cli("user", "passwd", BOB, "--password-stdin", input=NEW_PASSWORD + "\n")
    login_refused(inst, DEMO_PASSWORD)
    assert counters(inst) == (3, 4)
    login_ok(inst, NEW_PASSWORD)
    login_ok(inst, NEW_PASSWORD)
    assert counters(inst) == (4, 5)

    # Disabled: the cached password no longer opens the maildrop.
    inst.cli("user", "disable", BOB)
    login_refused(inst, NEW_PASSWORD)
    assert counters(inst) == (5, 5)
    inst.cli("user", "enable", BOB)
    login_ok(inst, NEW_PASSWORD)
    login_ok(inst, NEW_PASSWORD)
    assert counters(inst) == (6, 6)

    # A reload forgets every verified password: the next login is hashed.
    inst.proc.send_signal(signal.SIGHUP)
    inst.wait_log(r"info reload auth cache cleared entries=1\n")
    login_ok(inst, NEW_PASSWORD)
    login_ok(inst, NEW_PASSWORD)
    assert counters(inst) == (7, 7)


def test_auth_threads_bounds(mail_instance):
    inst = mail_instance
    for value, ok in (("0", True), ("64", True), ("65", False)):
        set_global_key(inst, "auth_threads", value)
        r = inst.cli("config", "check", check=False)
        assert (r.returncode == 0) == ok, (value, r.stdout, r.stderr)
        if not ok:
            assert "auth_threads" in r.stderr + r.stdout
