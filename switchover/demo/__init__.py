"""The built-in demo: real mail servers on loopback, a five-year mailbox, live arrivals.

``start_demo()`` starts, in this process, two pymap IMAP servers (the old and the new
mailbox) and an aiosmtpd SMTP server that delivers into them, fills the old mailbox
with a generated export-business history, writes ``switchover.yaml`` for them into the
demo's own state directory and, if asked, keeps new mail arriving. The engine opens
that config like any other: nothing in ``core/`` knows it is a demo.

The mailboxes are saved to ``demo-mail.sqlite`` in the state directory, so a restarted
demo finds the same messages with the same UIDVALIDITY and UIDs — including mail that
arrived, folders a migration created and mail forwarded to the new mailbox — and
switchover's own state (``switchover.sqlite``) stays valid. ``reset=True`` starts over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from switchover.core.errors import SwitchoverError
from switchover.core.joblock import try_lock

from .history import generate_messages
from .people import (COMPANY, FOLDERS, NEW_ADDRESS, OLD_ADDRESS, OWNER_NAME)
from .persist import MailPersistence
from .servers import HOST, DemoServers, DemoUser

__all__ = ["DEFAULT_DIR", "DemoHandle", "start_demo", "run_headless", "DemoError"]

DEFAULT_DIR = Path(os.environ.get("SWITCHOVER_DEMO_DIR", "~/.local/state/switchover-demo")).expanduser()
MARKER = ".switchover-demo"
CONFIG_NAME = "switchover.yaml"
MAIL_DB = "demo-mail.sqlite"
#: how often the mailboxes are saved while the demo runs
SAVE_EVERY = 2.0


class DemoError(SwitchoverError):
    exit_code = 2


@dataclass
class DemoHandle:
    config_path: Path
    state_dir: Path
    old_port: int
    new_port: int
    smtp_port: int
    sieve_port: int | None
    history_messages: int = 0
    restored: bool = False          # True when the mailboxes came back from a saved run
    _servers: DemoServers | None = field(default=None, repr=False)
    _persist: MailPersistence | None = field(default=None, repr=False)
    _live: Any = field(default=None, repr=False)
    _saver: Any = field(default=None, repr=False)
    _lock: IO[str] | None = field(default=None, repr=False)

    def arrivals_sent(self) -> int:
        """Live arrivals delivered since this start."""
        return self._live.sent if self._live is not None else 0

    def folder_counts(self, side: str = "old") -> dict[str, int]:
        """Messages per folder of the old or new mailbox, read from the server."""
        srv = self._servers
        if srv is None:
            return {}
        server = srv.old if side == "old" else srv.new
        return srv.call(_counts(server))

    def outside_mail(self) -> list[tuple[str, list[str], bytes]]:
        """Mail the SMTP server was asked to send beyond the two demo mailboxes."""
        return list(self._servers.outside) if self._servers else []

    def save(self) -> None:
        if self._servers is not None and self._persist is not None:
            self._servers.call(_save(self._persist))

    def stop(self) -> None:
        """Stop arrivals, save the mailboxes, stop the servers (idempotent)."""
        if self._live is not None:
            self._live.stop()
        if self._saver is not None:
            self._saver.cancel()
        if self._servers is not None:
            try:
                self.save()
            except Exception:
                pass
            self._servers.stop()
            self._servers = None
        if self._persist is not None:
            if self._live is not None:
                self._persist.set_meta("arrivals_total", str(self._live.index))
            self._persist.close()
            self._persist = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "DemoHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


async def _counts(server: Any) -> dict[str, int]:
    return server.counts()


async def _save(persist: MailPersistence) -> int:
    return persist.save()


def uid_validity(seed: int, server: str, folder: str) -> int:
    """A fixed UIDVALIDITY per (seed, server, folder): regenerated history keeps it."""
    return (zlib.crc32(f"{seed}:{server}:{folder}".encode()) & 0x7FFFFFFF) | 1


def _prepare_dir(state_dir: Path, reset: bool) -> IO[str]:
    if (state_dir.exists() and any(p.name != ".lock" for p in state_dir.iterdir())
            and not (state_dir / MARKER).exists()):
        raise DemoError(f"{state_dir} exists and is not a switchover demo directory; "
                        f"choose another with SWITCHOVER_DEMO_DIR.")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = open(state_dir / ".lock", "w")
    # flock on POSIX, msvcrt on Windows (core/joblock.py); the lock dies with the process
    if not try_lock(lock.fileno()):
        lock.close()
        raise DemoError(f"Another switchover demo is running on {state_dir}; stop it first.") from None
    if reset:
        for p in state_dir.iterdir():
            if p.name == ".lock":
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    (state_dir / MARKER).write_text("This directory belongs to 'switchover demo'; --reset wipes it.\n")
    return lock


def _passwords(config_path: Path) -> tuple[str, str]:
    """Keep the passwords of an existing demo config, so a restart changes nothing."""
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        return str(data["old"]["password"]), str(data["new"]["password"])
    except Exception:
        return secrets.token_urlsafe(12), secrets.token_urlsafe(12)


def write_config(path: Path, *, old: DemoUser, new: DemoUser, old_port: int, new_port: int,
                 smtp_port: int, start: dt.date, close: dt.date) -> Path:
    def account(user: DemoUser, port: int) -> dict[str, Any]:
        return {"provider": "custom",
                "imap": {"host": HOST, "port": port, "security": "none"},
                "smtp": {"host": HOST, "port": smtp_port, "security": "none"},
                "username": user.username, "password": user.password}
    data = {
        "identity": {"name": OWNER_NAME, "company": COMPANY, "old_address": OLD_ADDRESS,
                     "new_address": NEW_ADDRESS, "language": "en",
                     "signature": f"{OWNER_NAME}\n{COMPANY}\n{NEW_ADDRESS}"},
        "old": account(old, old_port),
        "new": account(new, new_port),
        "state": "switchover.sqlite",
        "transition": {"start": start.isoformat(), "close_date": close.isoformat()},
        # the demo's SMTP server has no provider's limits: the campaign goes at about two
        # notices a second, so the demo shows it sending, bouncing and people switching
        "notices": {"per_hour": 7200, "per_day": 100000},
    }
    text = ("# switchover demo: written by 'switchover demo' for its own servers on 127.0.0.1.\n"
            "# Rewritten at every start (the ports change); a real config never lives here.\n"
            + yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def start_demo(state_dir: Path = DEFAULT_DIR, *, reset: bool = False, live: bool = True,
               arrival_every: float = 6.0, seed: int = 7, history_size: int = 3000) -> DemoHandle:
    """Start the demo's servers and mail; returns a handle whose ``stop()`` ends it."""
    state_dir = Path(state_dir).expanduser()
    lock = _prepare_dir(state_dir, reset)
    handle: DemoHandle | None = None
    servers: DemoServers | None = None
    persist: MailPersistence | None = None
    try:
        persist = MailPersistence(state_dir / MAIL_DB, [])
        wanted = f"{seed}:{history_size}"
        if persist.get_meta("history") not in (None, wanted):
            # another seed or size: the old mail and switchover's state would not match
            persist.close()
            lock.close()
            return start_demo(state_dir, reset=True, live=live, arrival_every=arrival_every,
                              seed=seed, history_size=history_size)
        config_path = state_dir / CONFIG_NAME
        old_pw, new_pw = _passwords(config_path)
        servers = DemoServers(DemoUser(OLD_ADDRESS, old_pw, OLD_ADDRESS),
                              DemoUser(NEW_ADDRESS, new_pw, NEW_ADDRESS))
        servers.start()
        persist.servers = [servers.old, servers.new]
        handle = DemoHandle(config_path, state_dir, servers.old_imap.port, servers.new_imap.port,
                            servers.smtp_port, servers.old_imap.sieve_port,
                            _servers=servers, _persist=persist, _lock=lock)
        if persist.has_mail():
            handle.history_messages = servers.call(persist.restore())
            handle.restored = True
        else:
            handle.history_messages = servers.call(_load_history(servers, seed, history_size))
            servers.call(_save(persist))
            persist.set_meta("history", wanted)
            persist.set_meta("created", dt.date.today().isoformat())
        # always mid-transition: day 21 of 90, whenever the demo is started
        today = dt.date.today()
        write_config(config_path, old=servers.old_user, new=servers.new_user,
                     old_port=servers.old_imap.port, new_port=servers.new_imap.port,
                     smtp_port=servers.smtp_port, start=today - dt.timedelta(days=20),
                     close=today + dt.timedelta(days=70))
        handle._saver = asyncio.run_coroutine_threadsafe(_save_forever(persist), servers.loop.loop)
        if live:
            from .live import LiveArrivals
            handle._live = LiveArrivals(HOST, servers.smtp_port, seed=seed, every=arrival_every,
                                        start_index=int(persist.get_meta("arrivals_total") or 0),
                                        on_sent=lambda n: persist.set_meta("arrivals_total", str(n)))
            servers.delivery.on_outside = handle._live.on_outside
            handle._live.start()
        return handle
    except BaseException:
        if handle is not None:
            handle.stop()
        else:
            if servers is not None:
                servers.stop()
            if persist is not None:
                persist.close()
            lock.close()
        raise


async def _load_history(servers: DemoServers, seed: int, count: int) -> int:
    old = servers.old
    for folder in FOLDERS:
        await old.folder(folder, uid_validity=uid_validity(seed, "old", folder))
    # the parent pymap created for 客户/… gets a fixed value too
    await old.folder("客户", uid_validity=uid_validity(seed, "old", "客户"))
    await servers.new.folder("INBOX", uid_validity=uid_validity(seed, "new", "INBOX"))
    return await old.inject_many(generate_messages(seed, count))


async def _save_forever(persist: MailPersistence) -> None:
    while True:
        await asyncio.sleep(SAVE_EVERY)
        try:
            persist.save()
        except Exception:  # a full disk must not stop the servers
            pass


def run_headless(handle: DemoHandle, seconds: float, out: Any = None) -> int:
    """Watch the demo with the engine for ``seconds``, printing arrivals (see run.py)."""
    from .run import run_headless as _run  # the engine is imported only when needed
    return _run(handle, seconds, out)
