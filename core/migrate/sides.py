"""The two mailboxes as the migration and verify see them: opening connections (both
logins first, so a refused login is an error before anything is written), the copy
connections of the lanes, reopening a dropped one (core/net/retry.reconnect), listing
both sides into the folder plan (``Layout``), and choosing folders by name (``--folder``).

Connection states and reconnects are published (``ConnectionState``, ``LogLine``).
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass
from typing import Callable

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import AuthError, ConnectError, SwitchoverError, sentence
from ..events import ConnectionState, EventBus, LogLine
from ..jobs import Cancelled
from ..net import retry
from ..net.mailboxes import FolderInfo, list_folders, namespace_of
from ..net.wire import ConnectionLost
from .folders import FolderMapping, plan_folders
from .transfer import Conn


@dataclass
class Layout:
    """Both sides listed and the folder plan made from them."""
    mappings: list[FolderMapping]
    dst_folders: dict[str, FolderInfo]     # the destination's folders by name
    dst_delimiter: str

    def copied(self) -> list[FolderMapping]:
        """The folders the plan copies (not skipped)."""
        return [m for m in self.mappings if m.role != "skip"]

    def choose(self, wanted: list[str]) -> list[FolderMapping]:
        """See :func:`choose_folders`."""
        return choose_folders(self.mappings, wanted)


def choose_folders(mappings: list[FolderMapping], wanted: list[str]) -> list[FolderMapping]:
    """The mappings of the source folders named in ``wanted`` (INBOX in any case), in
    plan order; an unknown name, a folder that holds no mail or one the config leaves
    out is a SwitchoverError (exit 2) with one sentence, before anything is written."""
    by_name = {m.source: m for m in mappings}
    names = list(by_name)
    chosen: set[str] = set()
    unknown: list[str] = []
    refused: list[str] = []
    for w in wanted:
        m = by_name.get(w) or (by_name.get("INBOX") if w.strip().casefold() == "inbox" else None)
        if m is None:
            unknown.append(w)
        elif m.role == "skip":
            if m.reason.startswith("not selectable"):
                kids = [n for n in names if n != m.source and n.startswith(m.source)
                        and by_name[n].role != "skip"]
                hint = (f"; choose its subfolders ({', '.join(repr(k) for k in kids[:4])}"
                        f"{', …' if len(kids) > 4 else ''})" if kids else "")
                refused.append(f"'{m.source}' holds no mail (the server marks it not selectable){hint}")
            else:
                refused.append(f"'{m.source}' is not copied ({m.reason})")
        else:
            chosen.add(m.source)
    if unknown:
        hints: list[str] = []
        for w in unknown:
            low = {n.casefold(): n for n in names}
            close = difflib.get_close_matches(w, names, n=3, cutoff=0.6)
            # "Sent" for "INBOX.Sent" (a Courier-style prefix), any case
            leaf = [n for n in names if n.casefold().endswith(("." + w.casefold(), "/" + w.casefold()))]
            ci = low.get(w.casefold())
            for c in ([ci] if ci else []) + leaf:
                if c not in close:
                    close.insert(0, c)
            hints += [c for c in close if c not in hints]
        what = " or ".join(f"'{w}'" for w in unknown)
        sugg = f" (did you mean {', '.join(repr(h) for h in hints[:3])}?)" if hints else ""
        raise SwitchoverError(f"The old mailbox has no folder {what}{sugg}; "
                              f"'switchover migrate --dry-run' lists its folders.", exit_code=2)
    if refused:
        raise SwitchoverError("; ".join(refused) + ".", exit_code=2)
    return [m for m in mappings if m.source in chosen]


class Sides:
    """Connections to the old and the new mailbox, and the folder plan between them."""

    def __init__(self, accounts: Accounts, blocking: Blocking, bus: EventBus, config: Config) -> None:
        self.accounts = accounts
        self.blocking = blocking
        self.bus = bus
        self.config = config

    def _state(self, side: str, state: str, detail: str = "") -> None:
        self.bus.publish(ConnectionState(side, state, detail))

    async def open(self, side: str) -> Conn:
        conn = Conn(self.accounts, side)
        self._state(side, "connecting")
        try:
            await self.blocking.run(conn.open)
        except AuthError:
            self._state(side, "auth failed")
            raise
        except ConnectError as e:
            self._state(side, "offline", sentence(e))
            raise
        self._state(side, "connected")
        return conn

    async def open_pair(self) -> tuple[Conn, Conn]:
        """Both sides at once; AuthError / ConnectError before anything is written."""
        res = await asyncio.gather(self.open("old"), self.open("new"), return_exceptions=True)
        opened = [r for r in res if isinstance(r, Conn)]
        if len(opened) < 2:
            await self.close_all(opened)
            raise next(r for r in res if isinstance(r, BaseException))
        return opened[0], opened[1]

    async def open_lanes(self, n: int, conns: list[Conn]) -> list[tuple[Conn, Conn]]:
        """Open ``n`` connection pairs in parallel (each is added to ``conns`` to be
        closed at the end); keep those the servers accept."""
        if n <= 0:
            return []
        pairs = [(Conn(self.accounts, "old"), Conn(self.accounts, "new")) for _ in range(n)]
        for pair in pairs:
            conns.extend(pair)
        results = await asyncio.gather(*(self.blocking.run(c.open) for pair in pairs for c in pair),
                                       return_exceptions=True)
        for res in results:
            if isinstance(res, AuthError):
                raise res
        lanes = [p for p in pairs if p[0].is_open and p[1].is_open]
        if not lanes:
            raise next(r for r in results if isinstance(r, BaseException))
        if len(lanes) < n:
            self.bus.publish(LogLine("warning", f"the servers accepted {len(lanes)} of {n} extra connections"))
        return lanes

    async def close_all(self, conns: list[Conn]) -> None:
        await asyncio.gather(*(self.blocking.run(c.close) for c in conns), return_exceptions=True)

    async def reconnect(self, conn: Conn, exc: BaseException, cancelled: Callable[[], bool]) -> None:
        """Reopen ``conn`` after ``exc`` (core/net/retry.reconnect: backoff, the server's
        hint when it throttles); raises jobs.Cancelled when the job is cancelled meanwhile."""
        words = sentence(exc, limit=200)
        self._state(conn.side, "reconnecting", words)
        self.bus.publish(LogLine("warning", f"{conn.side} mailbox: connection lost ({words}); reconnecting"))
        await self.blocking.run(conn.close)

        async def open_once() -> Conn:
            return await self.blocking.run(conn.open)

        try:
            await retry.reconnect(open_once, side=conn.side, error=exc, stopped=cancelled,
                                  on_state=lambda state, detail: self._state(conn.side, state, detail))
        except retry.Stopped:
            raise Cancelled() from None

    async def alive(self, conns: list[Conn], cancelled: Callable[[], bool]) -> None:
        """NOOP every connection (in parallel); reopen the ones that died meanwhile."""
        def noop(c: Conn) -> bool:
            try:
                c.wire.command(b"NOOP")
                return True
            except Exception:
                return False
        alive = await asyncio.gather(*(self.blocking.run(noop, c) for c in conns))
        await asyncio.gather(*(self.reconnect(c, ConnectionLost("the connection was closed"), cancelled)
                               for c, ok in zip(conns, alive) if not ok))

    async def layout(self, src: Conn, dst: Conn) -> Layout:
        """List both sides (with their namespaces) and make the folder plan."""
        def side(conn: Conn) -> tuple[list[FolderInfo], tuple[str, str]]:
            if conn.client is None:
                raise ConnectionLost("the connection was closed")
            return list_folders(conn.client), namespace_of(conn.client)

        (src_list, (sprefix, sdelim)), (dst_list, (dprefix, ddelim)) = await asyncio.gather(
            self.blocking.run(side, src), self.blocking.run(side, dst))
        cfg = self.config
        mappings = plan_folders(src_list, dst_list, settings=cfg.migration,
                                src_provider=cfg.old.provider, dst_provider=cfg.new.provider,
                                dst_prefix=dprefix, dst_delimiter=ddelim,
                                src_prefix=sprefix, src_delimiter=sdelim)
        return Layout(mappings, {f.name: f for f in dst_list}, ddelim)
