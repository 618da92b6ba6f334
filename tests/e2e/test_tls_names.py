"""Certificates per server name (SNI, RFC 6066 3) from tls_cert_dir in
certbot's live/ layout, the name the server introduces itself with, reloading
certificates on SIGHUP without dropping sessions, and `postgate tls names` /
`config check` for the names the default certificate must carry."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess

from conftest import HOSTNAME, assert_clean_stop, ensure_daemon_user, is_root

DOMAINS = ("a.test", "b.test")


def make_cert(directory, name):
    """A self-signed certificate for name in directory/name/{fullchain,privkey}.pem."""
    d = directory / name
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-days", "2",
                    "-keyout", str(d / "privkey.pem"), "-out", str(d / "fullchain.pem")],
                   check=True, capture_output=True, timeout=60)
    return cert_der(d / "fullchain.pem")


def cert_der(path):
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def readable_by_daemon(path):
    """A reload reads the files as the daemon's user."""
    if is_root():
        ensure_daemon_user()
        shutil.chown(path, "postgate", "postgate")
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                shutil.chown(os.path.join(root, n), "postgate", "postgate")


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def implicit(inst, sni):
    """Connect to submissions asking for sni; returns (socket, reader, greeting, DER)."""
    raw = socket.create_connection(("127.0.0.1", inst.port("submissions")), timeout=10)
    tls = context().wrap_socket(raw, server_hostname=sni)
    f = tls.makefile("rb")
    return tls, f, f.readline().decode(), tls.getpeercert(binary_form=True)


def configure_names(instance):
    inst = instance
    for d in DOMAINS:
        inst.cli("domain", "add", d)
    certs = inst.dir / "names"
    der = {f"{p}.{d}": make_cert(certs, f"{p}.{d}") for d in DOMAINS for p in ("smtp", "pop")}
    (certs / "README").write_text("certbot leaves this here\n")
    readable_by_daemon(certs)
    lines = inst.config.read_text().splitlines()
    lines.insert(0, f"tls_cert_dir = {certs}")
    inst.config.write_text("\n".join(lines) + "\n")
    return certs, der


def test_names_and_config_check(instance):
    inst = instance
    certs, _ = configure_names(inst)
    names = inst.cli("tls", "names").stdout.split()
    want = sorted({HOSTNAME, "smtp.example.test", "pop.example.test",
                   *(f"{p}.{d}" for d in DOMAINS for p in ("smtp", "pop"))})
    assert names == want
    assert json.loads(inst.cli("tls", "names", "--json").stdout) == want
    check = inst.cli("config", "check")
    # The default certificate (made by init: the hostname and the first
    # domain's names) misses the names of the domains added since.
    covered = {HOSTNAME, "smtp.example.test", "pop.example.test"}
    for name in want:
        line = f"does not cover {name} (clients without SNI get this certificate)"
        assert (line in check.stderr) == (name not in covered), (name, check.stderr)
    assert check.returncode == 0  # warnings, not problems
    # A named certificate that does not cover its directory's name is a problem.
    shutil.copytree(certs / "smtp.a.test", certs / "smtp.c.test")
    bad = inst.cli("config", "check", check=False)
    assert bad.returncode == 78
    assert "fullchain.pem does not cover the name smtp.c.test" in bad.stderr


def test_sni_picks_certificate_and_name(instance):
    inst = instance
    _, der = configure_names(inst)
    inst.start()
    inst.wait_log(r"tls names=4 dir=")
    default = None
    for sni, want_name in (("smtp.a.test", "smtp.a.test"), ("SMTP.B.TEST", "smtp.b.test"),
                           (None, HOSTNAME), ("evil.example", HOSTNAME)):
        tls, f, greeting, peer = implicit(inst, sni)
        assert greeting == f"220 {want_name} ESMTP\r\n", (sni, greeting)
        if want_name != HOSTNAME:
            assert peer == der[want_name], sni
        elif default is None:
            default = peer
        else:
            assert peer == default  # a name we do not have gets the default one
        assert peer not in der.values() or want_name != HOSTNAME
        tls.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221 ")
        tls.close()
    # STARTTLS on 587: the EHLO reply after the upgrade says the asked name.
    raw = socket.create_connection(("127.0.0.1", inst.port("submission")), timeout=10)
    f = raw.makefile("rb")
    assert f.readline() == f"220 {HOSTNAME} ESMTP\r\n".encode()
    raw.sendall(b"EHLO pc\r\nSTARTTLS\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    assert f.readline().startswith(b"220 ")
    tls = context().wrap_socket(raw, server_hostname="smtp.b.test")
    assert tls.getpeercert(binary_form=True) == der["smtp.b.test"]
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO pc\r\n")
    assert tf.readline() == b"250-smtp.b.test\r\n"
    tls.close()
    # POP3 over implicit TLS: the same, in its greeting.
    for sni, want_name in (("pop.a.test", "pop.a.test"), (None, HOSTNAME)):
        raw = socket.create_connection(("127.0.0.1", inst.port("pop3s")), timeout=10)
        tls = context().wrap_socket(raw, server_hostname=sni)
        assert tls.makefile("rb").readline() == \
            f"+OK {want_name} POP3 server ready\r\n".encode(), sni
        if sni is not None:
            assert tls.getpeercert(binary_form=True) == der[sni]
        tls.close()
    assert_clean_stop(inst)


def test_sighup_swaps_a_certificate_and_keeps_sessions(instance):
    inst = instance
    certs, der = configure_names(inst)
    inst.start()
    old_tls, old_f, greeting, peer = implicit(inst, "smtp.a.test")
    assert peer == der["smtp.a.test"]
    # Renewal: a new certificate and key at the same paths, then SIGHUP.
    new_der = make_cert(certs, "smtp.a.test")
    readable_by_daemon(certs)
    assert new_der != der["smtp.a.test"]
    inst.proc.send_signal(signal.SIGHUP)
    inst.wait_log(r"reload applied tls names=4")
    tls, f, _, peer = implicit(inst, "smtp.a.test")
    assert peer == new_der
    tls.close()
    # The session that began before goes on.
    old_tls.sendall(b"EHLO pc\r\n")
    assert old_f.readline() == b"250-smtp.a.test\r\n"
    old_tls.sendall(b"QUIT\r\n")
    while not old_f.readline().startswith(b"221 "):
        pass
    old_tls.close()

    # A renewal that does not load (key and certificate apart) changes nothing.
    (certs / "smtp.a.test" / "privkey.pem").write_bytes(
        (certs / "smtp.b.test" / "privkey.pem").read_bytes())
    readable_by_daemon(certs)
    inst.proc.send_signal(signal.SIGHUP)
    inst.wait_log(r"error reload tls failed, the old certificates stay: private key .*"
                  r"smtp\.a\.test/privkey\.pem does not match")
    tls, f, greeting, peer = implicit(inst, "smtp.a.test")
    assert peer == new_der and greeting == "220 smtp.a.test ESMTP\r\n"
    tls.close()
    assert_clean_stop(inst)
