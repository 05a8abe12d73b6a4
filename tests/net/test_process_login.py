"""A connection that ends during LOGIN is not a wrong password (issue 9, item 8).

imapclient raises LoginError for every failed login, a dropped connection and a BYE
included; switchover used to call all of them "refused the login … check the password"
and stop. Here real Dovecot sits behind tests/proxy.py (which cuts the connection after
the greeting, so the LOGIN never gets its answer) or behind a small relay that answers the
first LOGIN with ``* BYE`` and hangs up, as a server shutting down does. Only a real NO to
LOGIN is an authentication failure; the rest are connection failures that are retried.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from switchover.core.errors import AuthError, ConnectError
from switchover.core.net.imap import close, connect
from switchover.core.net.retry import Backoff, reconnect
from tests.support.proxy import Proxy
from tests.support.servers import MailServer, write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(90)


def _bytes_before_login(server: MailServer) -> int:
    """How many bytes the server sends before its answer to LOGIN: the greeting and the
    answer to imaplib's CAPABILITY (tagged like imaplib's ``ABCD1``), plus a little: a
    proxy cutting there lets the client get ready and then ends the LOGIN unanswered."""
    with socket.create_connection((server.host, server.imap_port), timeout=10) as s:
        f = s.makefile("rb")
        total = len(f.readline())
        s.sendall(b"ABCD1 CAPABILITY\r\n")
        while True:
            line = f.readline()
            assert line, "the server closed before answering CAPABILITY"
            total += len(line)
            if line.startswith(b"ABCD1 "):
                return total + 3


class LoginFault:
    """Relays to a real IMAP server; the first ``times`` connections that send LOGIN get
    ``* BYE`` (mode "bye") or a bare close (mode "cut") instead of the server's answer."""

    def __init__(self, target: tuple[str, int], mode: str, times: int = 1) -> None:
        self.target, self.mode, self.left = target, mode, times
        self.faults = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._sock.getsockname()[:2]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target, timeout=10)
        server.settimeout(None)

        def down() -> None:
            try:
                while data := server.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            _close(client)

        threading.Thread(target=down, daemon=True).start()
        try:
            while data := client.recv(65536):
                if b" LOGIN " in data.upper() or b" AUTHENTICATE " in data.upper():
                    with self._lock:
                        fault = self.left > 0
                        self.left -= fault
                        self.faults += fault
                    if fault:
                        if self.mode == "bye":
                            client.sendall(b"* BYE Server shutting down.\r\n")
                        break
                server.sendall(data)
        except OSError:
            pass
        _close(server)
        _close(client)

    def close(self) -> None:
        _close(self._sock)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def _via(server: MailServer, user, host: str, port: int, side: str = "old"):
    return dataclasses.replace(server.account(user, side), imap=dataclasses.replace(
        server.account(user, side).imap, host=host, port=port))


@pytest.mark.parametrize("mode", ["cut by tests/proxy.py", "BYE"])
def test_a_login_that_ends_early_is_a_connection_error_and_is_retried(mode, mailserver, old_user):
    if mode == "BYE":
        fault = LoginFault((mailserver.host, mailserver.imap_port), "bye", times=1)
        acct = _via(mailserver, old_user, fault.host, fault.port)
    else:
        # the greeting passes, the answer to LOGIN never comes: the proxy cuts there
        fault = Proxy(mailserver.host, mailserver.imap_port, drop_after_bytes=_bytes_before_login(mailserver))
        acct = _via(mailserver, old_user, fault.host, fault.port)
    try:
        with pytest.raises(ConnectError) as info:
            connect(acct, timeout=10)
        assert not isinstance(info.value, AuthError), info.value.message
        text = info.value.message
        assert "during login" in text and "password" not in text and "refused the login" not in text, text

        # the jobs' reconnect loop (core/net/retry.py) tries again and gets in once the link behaves
        states: list[str] = []

        def on_state(state: str, _detail: str) -> None:
            states.append(state)
            if state == "reconnecting" and isinstance(fault, Proxy):
                fault.drop_after_bytes = None          # the link heals before the next attempt

        if isinstance(fault, LoginFault):
            fault.left = 1
        client = asyncio.run(reconnect(lambda: asyncio.to_thread(connect, acct, timeout=10), side="old",
                                       backoff=Backoff(first=0.01, cap=0.1), on_state=on_state))
        try:
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
        finally:
            close(client)
        assert states == ["reconnecting", "connected"], states
    finally:
        fault.close()


async def test_a_wrong_password_is_an_auth_error_and_is_not_retried(make_engine, mailserver, old_user, new_user,
                                                                    tmp_path):
    with Proxy(mailserver.host, mailserver.imap_port) as proxy:
        acct = dataclasses.replace(_via(mailserver, old_user, proxy.host, proxy.port), password="wrong-one")
        with pytest.raises(AuthError) as info:
            connect(acct, timeout=10)
        assert "refused the login" in info.value.message and "password" in info.value.message
        assert "wrong-one" not in info.value.message
        states: list[str] = []
        with pytest.raises(AuthError):
            await reconnect(lambda: asyncio.to_thread(connect, acct, timeout=10), side="old",
                            on_state=lambda s, d: states.append(s))
        assert states == ["auth failed"]
        # the backup and import jobs open their connections through that loop
        via = {"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}}
        eng = await make_engine(old_user, new_user, old=via, new=via)
        eng.set_secret("old", "wrong-one")
        eng.set_secret("new", "wrong-one")
        with pytest.raises(AuthError):
            await eng.backups.backup(tmp_path / "bk")
        source = tmp_path / "one.eml"
        source.write_bytes(b"Subject: one\r\nMessage-ID: <one@x.example>\r\n\r\nbody\r\n")
        with pytest.raises(AuthError):
            await eng.backups.import_path(source, "Imported")
        assert proxy.connections_total == 4          # one login each: nothing was tried twice


def test_the_right_password_still_logs_in(mailserver, old_user):
    with Proxy(mailserver.host, mailserver.imap_port) as proxy:
        client = connect(_via(mailserver, old_user, proxy.host, proxy.port), timeout=10)
        try:
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
        finally:
            close(client)


def _cli(cfg: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_cli_check_says_the_connection_ended_not_the_password(mailserver, old_user, new_user, tmp_path):
    with Proxy(mailserver.host, mailserver.imap_port, drop_after_bytes=_bytes_before_login(mailserver)) as proxy:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver,
                           old={"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}})
        r = _cli(cfg, "check")
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert r.returncode == 3, out
    failed = [ln for ln in r.stdout.splitlines() if ln.lstrip().startswith("old: FAILED")]
    assert failed and "during login" in failed[0], out
    assert "refused the login" not in out and "check the username and the password" not in out, out


def test_cli_backup_gets_past_a_bye_during_login(mailserver, old_user, new_user, tmp_path):
    for i in range(3):
        mailserver.append(old_user, "INBOX", f"Subject: m{i}\r\nMessage-ID: <bye-{i}@x.example>\r\n\r\nbody {i}\r\n".encode())
    fault = LoginFault((mailserver.host, mailserver.imap_port), "bye", times=1)
    try:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver,
                           old={"imap": {"host": fault.host, "port": fault.port, "security": "none"}})
        r = _cli(cfg, "backup", str(tmp_path / "bk"))
    finally:
        fault.close()
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert r.returncode == 0, out           # used to end: "refused the login … check the password", exit 3
    assert fault.faults == 1
    assert "3 messages written" in r.stdout, out
