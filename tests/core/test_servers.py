"""Smoke tests proving the shared test servers (tests/servers.py, tests/proxy.py) work."""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import time

import imapclient
import pytest

from switchover.core.config import load_config
from tests.support.proxy import Proxy
from tests.support.servers import MailServer, SmtpServer, write_config

RAW = (b"From: Bob <bob@example.org>\r\nTo: someone@example.com\r\n"
       b"Subject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <smoke-1@example.org>\r\n"
       b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\n"
       b"line one\r\n.leading dot\r\n\xc3\xa9 8bit\r\n\r\n")


def fetch_all(server: MailServer, user, folder: str = "INBOX") -> list[dict]:
    c = server.client(user)
    try:
        c.select_folder(folder, readonly=True)
        uids = c.search("ALL")
        data = c.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if uids else {}
        return [data[u] for u in sorted(data)]
    finally:
        c.logout()


def test_login_and_features(mailserver: MailServer, old_user) -> None:
    c = mailserver.client(old_user)
    caps = {x.decode().upper() for x in c.capabilities()}
    c.logout()
    assert "IDLE" in caps and "UIDPLUS" in caps
    if mailserver.kind == "dovecot":
        assert {"lmtp", "quota", "courier", "sieve", "special-use"} <= mailserver.features
        assert {"MULTIAPPEND", "LITERAL+", "SPECIAL-USE", "ID", "QUOTA"} <= caps


def test_wrong_password_is_refused(mailserver: MailServer, old_user) -> None:
    c = imapclient.IMAPClient(mailserver.host, mailserver.imap_port, ssl=False, timeout=10)
    with pytest.raises(imapclient.exceptions.LoginError):
        c.login(old_user.username, "wrong")
    c.shutdown()


def test_users_are_fresh_and_added_quickly(mailserver: MailServer) -> None:
    # passwd-file caching must not hide a user added right after another login
    for _ in range(3):
        u = mailserver.add_user("fresh")
        c = mailserver.client(u)
        c.select_folder("INBOX")
        assert c.search("ALL") == []
        c.logout()


def test_append_is_byte_exact_with_flags_and_date(mailserver: MailServer, old_user) -> None:
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    mailserver.append(old_user, "Projects/2024/Q1", RAW, flags=[r"\Seen", r"\Flagged"], date=when)
    [msg] = fetch_all(mailserver, old_user, "Projects/2024/Q1")
    assert msg[b"BODY[]"] == RAW
    assert {r"\Seen", r"\Flagged"} <= {f.decode() for f in msg[b"FLAGS"]}
    assert msg[b"INTERNALDATE"].astimezone(dt.timezone.utc).replace(tzinfo=None) \
        == when.replace(tzinfo=None) or msg[b"INTERNALDATE"] == when.replace(tzinfo=None)
    c = mailserver.client(old_user)
    names = {name for _f, _d, name in c.list_folders()}
    c.logout()
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= names


def test_courier_namespace(mailserver: MailServer) -> None:
    user = mailserver.add_user("courier", courier=True)
    mailserver.append(user, "INBOX.Clients.Acme", RAW)
    c = mailserver.client(user)
    try:
        listed = c.list_folders()
        personal = c.namespace().personal
    finally:
        c.logout()
    assert personal[0] == ("INBOX.", ".")
    assert {d for _f, d, _n in listed} == {b"."}
    names = {n for _f, _d, n in listed}
    assert {"INBOX", "INBOX.Clients", "INBOX.Clients.Acme", "INBOX.Sent"} <= names
    special = {n: f for f, _d, n in listed}
    assert b"\\Sent" in special["INBOX.Sent"]


def test_lmtp_delivery(mailserver: MailServer, old_user) -> None:
    mailserver.require("lmtp")
    mailserver.deliver(old_user, RAW, sender="bob@example.org")
    [msg] = fetch_all(mailserver, old_user)
    assert msg[b"BODY[]"].endswith(RAW)
    assert b"Delivered-To: " + old_user.address.encode() in msg[b"BODY[]"]


def test_managesieve_answers(mailserver: MailServer) -> None:
    mailserver.require("sieve")
    with socket.create_connection((mailserver.host, mailserver.sieve_port), timeout=5) as s:
        greeting = b""
        while b"OK" not in greeting:
            chunk = s.recv(4096)
            assert chunk
            greeting += chunk
    assert b'"IMPLEMENTATION"' in greeting and b'"SIEVE"' in greeting


def test_quota_refusal_has_server_words(mailserver: MailServer) -> None:
    mailserver.require("quota")
    user = mailserver.add_user("small", quota_kb=20, max_message_kb=8)
    big = RAW + b"x" * 10_000 + b"\r\n"
    with pytest.raises(imapclient.exceptions.IMAPClientError, match="(?i)size|large|limit"):
        mailserver.append(user, "INBOX", big)
    mailserver.append(user, "INBOX", RAW + b"y" * 6_000 + b"\r\n")
    mailserver.append(user, "INBOX", RAW + b"y" * 6_000 + b"\r\n")
    mailserver.append(user, "INBOX", RAW + b"y" * 6_000 + b"\r\n")
    with pytest.raises(imapclient.exceptions.IMAPClientError, match="(?i)quota"):
        mailserver.append(user, "INBOX", RAW + b"y" * 6_000 + b"\r\n")


def test_smtp_records_and_delivers(mailserver: MailServer, smtp_server: SmtpServer,
                                   old_user, new_user) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as s:
        s.login(old_user.username, old_user.password)
        s.sendmail(old_user.address, [new_user.address, "outside@example.net"], RAW)
    [(mail_from, rcpts, raw)] = smtp_server.wait_for(1)
    assert mail_from == old_user.address
    assert rcpts == [new_user.address, "outside@example.net"]
    assert raw == RAW
    assert smtp_server.logins == [old_user.username]
    [msg] = fetch_all(mailserver, new_user)
    assert msg[b"BODY[]"].endswith(RAW)


def test_smtp_password_table(mailserver: MailServer) -> None:
    with SmtpServer(mailserver, passwords={"alice": "right"}) as smtp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as s:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("alice", "wrong")
            s.login("alice", "right")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as s:
            s.ehlo()
            s.user, s.password = "alice", "right"
            code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
            assert code == 235
    assert smtp.logins == ["alice", "alice"]


def test_vacation_reply_reaches_smtp_sink(mailserver: MailServer, smtp_server: SmtpServer,
                                          old_user) -> None:
    mailserver.require("sieve")
    script = ('require ["vacation"];\r\n'
              'vacation :days 1 :subject "Away" :from "' + old_user.address + '" '
              '"I have moved.";\r\n')
    mailserver.put_sieve(old_user, "away", script)
    msg = (f"From: bob@example.org\r\nTo: {old_user.address}\r\nSubject: hello\r\n"
           f"Message-ID: <v1@example.org>\r\n\r\nhi\r\n").encode()
    mailserver.deliver(old_user, msg, sender="bob@example.org")
    [(mail_from, rcpts, raw)] = smtp_server.wait_for(1)
    assert rcpts == ["bob@example.org"]
    assert b"Auto-Submitted: auto-replied" in raw and b"I have moved." in raw


def test_write_config_loads(tmp_path, mailserver: MailServer, smtp_server, old_user,
                            new_user) -> None:
    p = write_config(tmp_path, old_user=old_user, new_user=new_user, server=mailserver,
                     smtp=smtp_server, migration={"archive_prefix": "Old"},
                     transition={"poll_seconds": 2})
    assert p.stat().st_mode & 0o777 == 0o600
    cfg = load_config(p)
    assert cfg.warnings == ()
    assert cfg.old.imap.port == mailserver.imap_port and cfg.old.secret() == old_user.password
    assert cfg.new.username == new_user.username
    assert cfg.old.smtp.port == smtp_server.port
    assert cfg.migration.archive_prefix == "Old" and cfg.transition.poll_seconds == 2
    assert cfg.state == tmp_path / "switchover.sqlite"


async def test_engine_fixture(engine, old_user) -> None:
    assert engine.config.old.username == old_user.username


def test_proxy_delay_keeps_pipelining(mailserver: MailServer, old_user) -> None:
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.05) as proxy:
        t0 = time.monotonic()
        c = imapclient.IMAPClient(proxy.host, proxy.port, ssl=False, timeout=10)
        greet = time.monotonic() - t0
        c.login(old_user.username, old_user.password)
        c.select_folder("INBOX")
        t1 = time.monotonic()
        c.noop()
        rtt = time.monotonic() - t1
        c.logout()
        assert greet >= 0.05
        assert 0.1 <= rtt < 0.5
        assert proxy.bytes_up > 0 and proxy.bytes_down > 0
        # pipelined: 20 commands sent at once come back in about one round trip
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as s:
            f = s.makefile("rb")
            f.readline()
            t2 = time.monotonic()
            s.sendall(b"".join(b"a%d NOOP\r\n" % i for i in range(20)))
            lines = [f.readline() for _ in range(20)]
            took = time.monotonic() - t2
        assert lines[-1].startswith(b"a19 OK")
        assert took < 0.5


def test_proxy_drop_after_bytes_and_drop_all(mailserver: MailServer, old_user) -> None:
    big = RAW + b"z" * 200_000 + b"\r\n"
    mailserver.append(old_user, "INBOX", big)
    with Proxy(mailserver.host, mailserver.imap_port, drop_after_bytes=50_000) as proxy:
        c = imapclient.IMAPClient(proxy.host, proxy.port, ssl=False, timeout=10)
        c.login(old_user.username, old_user.password)
        c.select_folder("INBOX")
        uids = c.search("ALL")
        with pytest.raises((OSError, imapclient.exceptions.IMAPClientError, EOFError)):
            c.fetch(uids, ["BODY.PEEK[]"])
        assert proxy.bytes_down <= 50_000
    with Proxy(mailserver.host, mailserver.imap_port) as proxy:
        c = imapclient.IMAPClient(proxy.host, proxy.port, ssl=False, timeout=10)
        c.login(old_user.username, old_user.password)
        assert proxy.live == 1
        assert proxy.drop_all() == 1
        with pytest.raises((OSError, imapclient.exceptions.IMAPClientError, EOFError)):
            c.noop()


def test_append_many_and_helpers(mailserver: MailServer, old_user) -> None:
    when = dt.datetime(2024, 5, 6, 7, 8, 9)
    n = mailserver.append_many(old_user, "Bulk", [RAW, (RAW + b"2\r\n", [r"\Answered"], when)])
    assert n == 2
    stored = mailserver.fetch(old_user, "Bulk")
    assert [m.raw for m in stored] == [RAW, RAW + b"2\r\n"]
    assert r"\Answered" in stored[1].flags
    assert mailserver.messages(old_user, "No such folder") == []
    names = [n for _f, _d, n in mailserver.folders(old_user)]
    assert {"INBOX", "Bulk", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(names)


def test_smtp_rejects_on_request(mailserver: MailServer, smtp_server: SmtpServer,
                                 new_user) -> None:
    smtp_server.reject["gone@example.net"] = "550 5.1.1 <gone@example.net>: no such user"
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as s:
        refused = s.sendmail("a@example.org", ["gone@example.net", new_user.address], RAW)
        assert refused == {"gone@example.net": (550, b"5.1.1 <gone@example.net>: no such user")}
        smtp_server.fail_data = "452 4.3.1 Insufficient system storage"
        with pytest.raises(smtplib.SMTPDataError, match="Insufficient"):
            s.sendmail("a@example.org", [new_user.address], RAW)
    assert len(smtp_server.messages) == 1


def _sieve_cmd(f, s: socket.socket, line: bytes) -> list[bytes]:
    s.sendall(line)
    out = []
    while True:
        got = f.readline()
        assert got, "ManageSieve closed the connection"
        out.append(got)
        if got.startswith((b"OK", b"NO", b"BYE")):
            return out


def test_managesieve_putscript_lands_on_disk(mailserver: MailServer, old_user) -> None:
    mailserver.require("sieve")
    import base64
    script = b'require "vacation";\r\nvacation :days 3 "Moved.";\r\n'
    with socket.create_connection((mailserver.host, mailserver.sieve_port), timeout=5) as s:
        f = s.makefile("rb")
        while not f.readline().startswith(b"OK"):
            pass
        token = base64.b64encode(b"\0" + old_user.username.encode() + b"\0"
                                 + old_user.password.encode())
        assert _sieve_cmd(f, s, b'AUTHENTICATE "PLAIN" "' + token + b'"\r\n')[-1].startswith(b"OK")
        put = b'PUTSCRIPT "switchover" {%d+}\r\n%s\r\n' % (len(script), script)
        assert _sieve_cmd(f, s, put)[-1].startswith(b"OK")
        assert _sieve_cmd(f, s, b'SETACTIVE "switchover"\r\n')[-1].startswith(b"OK")
        _sieve_cmd(f, s, b"LOGOUT\r\n")
    assert mailserver.active_sieve(old_user) == "switchover"
    assert mailserver.sieve_scripts(old_user)["switchover"].encode() == script



def test_smtp_passes_on_the_servers_refusal(mailserver: MailServer, smtp_server: SmtpServer) -> None:
    mailserver.require("quota")
    small = mailserver.add_user("tiny", max_message_kb=4)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPDataError) as err:
            s.sendmail("a@example.org", [small.address], RAW + (b"x" * 98 + b"\r\n") * 80)
    assert err.value.smtp_code >= 400         # Dovecot LMTP says 451 4.2.0 for size
    assert b"size" in err.value.smtp_error.lower() or b"large" in err.value.smtp_error.lower()
    assert smtp_server.delivery_errors and not smtp_server.messages


def test_write_config_across_two_servers(tmp_path, mailserver: MailServer,
                                         pymap_server: MailServer) -> None:
    old, new = mailserver.add_user("old"), pymap_server.add_user("new")
    p = write_config(tmp_path / "cfg" / "switchover.yaml", old_user=old, new_user=new,
                     server=mailserver, new_server=pymap_server,
                     identity={"name": "Zoë Example", "language": "es"})
    cfg = load_config(p)
    assert cfg.old.imap.port == mailserver.imap_port
    assert cfg.new.imap.port == pymap_server.imap_port and cfg.new.smtp is None
    assert cfg.identity.name == "Zoë Example" and cfg.identity.language == "es"
    c = pymap_server.client(new)
    c.logout()


def test_pymap_and_smtp_run_on_the_demos_harness(pymap_server: MailServer,
                                                 smtp_server: SmtpServer) -> None:
    """One in-process harness for the demo and the tests (switchover/demo/harness.py):
    the test's pymap is a harness ImapServer — keywords stick in STORE, as on Dovecot —
    and the test's SMTP server a harness SmtpService."""
    from switchover.demo import harness

    assert isinstance(pymap_server._imap, harness.ImapServer)      # type: ignore[attr-defined]
    assert isinstance(smtp_server._service, harness.SmtpService)
    user = pymap_server.add_user("kw")
    pymap_server.append(user, "INBOX", RAW)
    c = pymap_server.client(user)
    try:
        c.select_folder("INBOX")
        uid = c.search("ALL")[0]
        c.add_flags([uid], [b"$Forwarded"])
        assert b"$Forwarded" in c.get_flags([uid])[uid]
    finally:
        c.logout()
