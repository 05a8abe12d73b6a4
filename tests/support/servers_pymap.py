"""pymap for tests when Dovecot is absent, on the one in-process harness the demo uses
too (switchover/demo/harness.py: pymap's dict backend on its own loop thread).

Owns: PymapServer and start_pymap — the MailServer API (tests/support/servers_base.py)
on a harness ImapServer. pymap offers IMAP only (no LMTP, Sieve, quota or per-user
namespaces): ``deliver`` is an APPEND to INBOX and asking for a Courier user or a quota
skips the test. Import the public names from tests/support/servers.py.
"""

from __future__ import annotations

import atexit

from switchover.demo.harness import ImapServer, ServerLoop
from tests.support.servers_base import SPECIAL_FOLDERS, MailServer, MailUser, _logout, _unsupported


class PymapServer(MailServer):
    """A harness ImapServer (pymap, many users) behind the MailServer API."""

    kind = "pymap"

    def __init__(self) -> None:
        super().__init__()
        self._loop = ServerLoop("pymap")
        self._imap = ImapServer("pymap")
        try:
            self._loop.call(self._imap.start(), timeout=15)
        except BaseException as e:
            self._loop.close()
            raise RuntimeError(f"pymap did not start: {e!r}") from e
        self.imap_port = self._imap.port
        self._stopped = False
        atexit.register(self.stop)
        self.features = self._probe_features()

    def _probe_features(self) -> set[str]:
        probe = self.add_user("probe")
        c = self.client(probe)
        try:
            caps = {x.decode().upper() for x in c.capabilities()}
        finally:
            _logout(c)
        feats = set()
        for cap, feat in (("MULTIAPPEND", "multiappend"), ("IDLE", "idle"), ("UIDPLUS", "uidplus"),
                          ("SPECIAL-USE", "special-use"), ("ID", "id"), ("LITERAL+", "literal+")):
            if cap in caps:
                feats.add(feat)
        return feats

    def add_user(self, prefix: str = "u", *, courier: bool = False, quota_kb: int | None = None,
                 max_message_kb: int | None = None,
                 password: str | None = None) -> MailUser:
        if courier:
            _unsupported("pymap cannot give a user a Courier-style INBOX. namespace")
        if quota_kb is not None or max_message_kb is not None:
            _unsupported("pymap has no quota")
        name = self._new_name(prefix)
        user = MailUser(username=name, password=password or f"pw-{name.split('@')[0]}",
                        address=name)
        self._loop.call(self._imap.add_user(name, user.password), timeout=15)
        self.users[name.lower()] = user
        # The usual folders exist on every real server; pymap has no SPECIAL-USE, so
        # they are plain folders here (created over IMAP, as a client would).
        c = self.client(user)
        try:
            for folder in SPECIAL_FOLDERS:
                c.create_folder(folder)
        finally:
            _logout(c)
        return user

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            try:
                self._loop.call(self._imap.stop(), timeout=10)
            except Exception:
                pass
            self._loop.close()
        super().stop()


def start_pymap() -> PymapServer:
    return PymapServer()
