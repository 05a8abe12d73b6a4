"""pymap for tests when Dovecot is absent: the dict backend in-process on its own loop.

Owns: PymapServer and start_pymap. pymap offers IMAP only (no LMTP, Sieve, quota or
per-user namespaces): ``deliver`` is an APPEND to INBOX and asking for a Courier user or
a quota skips the test. Import the public names from tests/servers.py.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from typing import Any

from tests.support.servers_base import (HOST, SPECIAL_FOLDERS, MailServer, MailUser, _logout,
                                _unsupported, free_port)


class PymapServer(MailServer):
    """pymap's in-memory dict backend on its own asyncio loop in a background thread."""

    kind = "pymap"

    def __init__(self) -> None:
        super().__init__()
        self.imap_port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Future | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pymap", daemon=True)
        self._thread.start()
        if not self._ready.wait(15) or self._error:
            raise RuntimeError(f"pymap did not start: {self._error!r}")
        atexit.register(self.stop)
        self.features = self._probe_features()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported to the starting thread
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        import argparse
        from contextlib import AsyncExitStack
        from pymap.backend.dict import DictBackend
        from pymap.imap import IMAPService
        parser = argparse.ArgumentParser()
        parser.add_argument("--debug", action="store_true")
        sub = parser.add_subparsers(dest="backend")
        DictBackend.add_subparser("dict", sub)
        IMAPService.add_arguments(parser)
        parser.set_defaults(skip_services=[], passlib_cfg=None)
        args = parser.parse_args(["--host", HOST, "--port", str(self.imap_port), "--no-tls", "dict"])
        from pysasl.hashing import Cleartext
        # Cleartext: a hashed password costs ~0.2 s of CPU per login, too slow for tests.
        backend, config = await DictBackend.init(args, invalid_user_sleep=0.0, secure_auth=False,
                                                 hash_context=Cleartext())
        config.apply_context()
        self._backend, self._config = backend, config
        self._stopping = self._loop.create_future()
        async with AsyncExitStack() as stack:
            await backend.start(stack)
            await IMAPService(backend, config).start(stack)
            self._ready.set()
            await self._stopping
        # Close the connections still open so the loop ends without pending tasks.
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    async def _add(self, name: str, password: str) -> None:
        from pymap.user import Passwords, UserMetadata
        hashed = await Passwords(self._config).hash_password(password)
        self._backend.login.users_dict[name] = UserMetadata(self._config, name, password=hashed)

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
        self._call(self._add(name, user.password))
        self.users[name.lower()] = user
        # The usual folders exist on every real server; pymap has no SPECIAL-USE, so
        # they are plain folders here.
        c = self.client(user)
        try:
            for folder in SPECIAL_FOLDERS:
                c.create_folder(folder)
        finally:
            _logout(c)
        return user

    def stop(self) -> None:
        if self._stopping is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(
                lambda: self._stopping.done() or self._stopping.set_result(None))
            self._thread.join(5)
        self._stopping = None
        super().stop()


def start_pymap() -> PymapServer:
    return PymapServer()
