"""The transition watch: every arrival in the old mailbox (INBOX + configured folders)
becomes a row in ``arrivals`` and an ``ArrivalSeen`` event; the new INBOX is watched
headers-only to learn who has switched. Reactions to an arrival (the automatic rules of
core/transition/rules.py) subscribe to that event; the watch calls no other facet.

One watcher per (side, folder), each on its own connection: IMAP IDLE where offered
(core/net/idle.py; restarted well before the 29-minute limit, socket timeouts so a dead
connection shows up), polling elsewhere, reconnecting forever through
core/net/retry.reconnect (a refused login is retried slowly until the person types a new
password; :meth:`Monitor.reconnect_now` cuts the wait short). Each wakeup syncs the folder
(core/transition/sync.py): after any gap the watch catches up from its last mark.

Trouble with the state file (another process holding it) is not trouble with the
server: the watcher keeps its connection, says so once, waits and goes on.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from email.message import Message

import imapclient

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import ConnectError, FolderError, StateFileError, SwitchoverError, sentence
from ..events import ConnectionState, EventBus, LogLine
from ..mail.headers import parse_message
from ..mail.text import message_text
from ..net import imap as imapnet
from ..net.idle import grew_since_mark, idle_wait
from ..net.retry import Backoff, Stopped, is_connection_error, pause, reconnect, wait_after
from ..store import Store
from .arrivals import Arrival, Arrivals
from .mailbox import Where, fetch_original
from .people import Correspondents
from .sync import FolderSync, Snapshots

__all__ = ["Arrival", "Monitor"]    # Arrival: faces import the record from here too


class Monitor:
    """``engine.monitor``. Options may be changed before ``run()``: ``use_idle`` (False
    forces polling), ``poll_seconds``, ``idle_restart`` (seconds, < 29 min),
    ``socket_timeout``, ``watch_new`` (watch the new INBOX too), ``learn_history``,
    ``backoff_cap``."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, arrivals: Arrivals, people: Correspondents, snapshots: Snapshots) -> None:
        self.bus, self.accounts, self.blocking, self.config = bus, accounts, blocking, config
        self._arrivals = arrivals
        self.people = people
        self.folders = FolderSync(store, bus, blocking, config, arrivals, people, snapshots)
        self.use_idle = True
        self.poll_seconds = float(config.transition.poll_seconds)
        self.idle_restart = 9 * 60.0
        self.socket_timeout = 30.0
        self.watch_new = True
        #: scan the history (incrementally) before watching, so badges know every correspondent
        self.learn_history = True
        self.backoff_cap = 60.0
        self._stop_flag = threading.Event()          # seen by worker threads
        self._stop_async: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._db_trouble: set[tuple[str, str]] = set()
        self._conn: dict[tuple[str, str], str] = {}
        self._published: dict[str, str] = {}
        self._body_cache: collections.OrderedDict[int, str] = collections.OrderedDict()
        self.body_cache_size = 32

    def _watched(self) -> list[tuple[str, str]]:
        out = [("old", f) for f in dict.fromkeys(self.config.transition.watch_folders or ("INBOX",))]
        if self.watch_new:
            out.append(("new", "INBOX"))
        return out

    # -- life cycle -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Watch until ``stop`` is set or :meth:`stop` is called; never raises for network
        trouble (it shows as ConnectionState events and LogLines)."""
        self._stop_flag.clear()
        self._stop_async = asyncio.Event()
        self._wake = asyncio.Event()
        if self.learn_history:
            await self.learn_from_history()
        watchers = [asyncio.create_task(self._watch(side, folder), name=f"watch:{side}:{folder}")
                    for side, folder in self._watched()]
        stop_waiter = asyncio.create_task(stop.wait()) if stop is not None else None
        internal = asyncio.create_task(self._stop_async.wait())
        try:
            waiting = {internal, *([stop_waiter] if stop_waiter else [])}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stop_flag.set()
            self._stop_async.set()
            done, pending = await asyncio.wait(watchers, timeout=5)
            for task in pending:
                task.cancel()
            for task in done:      # looked at once: never "Task exception was never retrieved"
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    self.bus.publish(LogLine("error", f"{task.get_name()}: {sentence(exc)}"))
            for waiter in (stop_waiter, internal):
                if waiter is not None:
                    waiter.cancel()
            for side in {s for s, _ in self._watched()}:
                self.bus.publish(ConnectionState(side, "offline"))
            self._conn.clear()
            self._published.clear()

    async def learn_from_history(self) -> None:
        """Scan the mailbox history (incrementally) so arrivals are badged against every
        known correspondent; trouble here is logged, never fatal to the watch."""
        try:
            await self.people.scan_history()
        except Exception as e:  # noqa: BLE001 - the watch must go on
            self.bus.publish(LogLine("warning", f"history scan: {sentence(e)}"))

    def stop(self) -> None:
        self._stop_flag.set()
        if self._stop_async is not None:
            self._stop_async.set()

    def reconnect_now(self) -> None:
        """Cut a backoff wait short (e.g. after the user typed a password)."""
        if self._wake is not None:
            self._wake.set()

    def _stopped(self) -> bool:
        return self._stop_flag.is_set()

    async def _pause(self, seconds: float) -> None:
        await pause(seconds, stopped=self._stopped, wake=self._wake)

    def _set_conn(self, side: str, folder: str, state: str, detail: str = "") -> None:
        """Aggregate the watchers of a side into one state; publish changes only."""
        self._conn[(side, folder)] = state
        states = [s for (sd, _), s in self._conn.items() if sd == side]
        if "auth failed" in states:
            agg = "auth failed"
        elif "reconnecting" in states:
            agg = "reconnecting"
        elif all(s == "connected" for s in states):
            agg = "connected"
        else:
            agg = "connecting"
        if self._published.get(side) != agg or (detail and agg != "connected"):
            self._published[side] = agg
            self.bus.publish(ConnectionState(side, agg, detail))

    # -- one watcher ------------------------------------------------------------------------
    async def _watch(self, side: str, folder: str) -> None:
        """Connect (core/net/retry.reconnect), sync, wait for mail; after any failure wait
        (backoff, or the server's throttle hint) and start again."""
        backoff = Backoff(1.0, self.backoff_cap)
        db_backoff = Backoff(0.5, 30.0)

        def on_state(state: str, detail: str) -> None:
            self._set_conn(side, folder, state, detail)

        while not self._stopped():
            client: imapclient.IMAPClient | None = None
            try:
                client = conn = await reconnect(
                    lambda: self.blocking.run(self._connect, side), side=side, backoff=backoff,
                    attempts=None, auth_retry=min(30.0, self.backoff_cap), stopped=self._stopped,
                    wake=self._wake, on_state=on_state)
                idle = self.use_idle and conn.has_capability("IDLE")
                while not self._stopped():
                    if not await self._sync_or_wait(conn, side, folder, db_backoff):
                        continue      # the state file was busy: waited; sync again, same connection
                    backoff.reset()
                    if idle:
                        await self.blocking.run(idle_wait, conn, self.idle_restart, self._stopped)
                    else:
                        await self.blocking.run(conn.noop)
                        await self._pause(self.poll_seconds)
            except Stopped:
                break
            except Exception as e:  # noqa: BLE001 - the watch must outlive any one failure
                if self._stopped():
                    break
                if not isinstance(e, (ConnectError, FolderError)) and not is_connection_error(e):
                    self.bus.publish(LogLine("warning", f"Watching {side} {folder}: {sentence(e)}"))
                self._set_conn(side, folder, "reconnecting", sentence(e, limit=200))
                try:
                    await self._pause(wait_after(e, backoff))
                except Stopped:
                    break
            finally:
                if client is not None:
                    try:
                        await self.blocking.run(imapnet.close, client)
                    except Exception:  # noqa: BLE001 - closing a dead connection may fail
                        pass

    async def _sync_or_wait(self, client: imapclient.IMAPClient, side: str, folder: str,
                            db_backoff: Backoff) -> bool:
        """One sync; False when the state file was busy (said once per episode, then
        waited out). A state-file error is no reason to drop the IMAP connection: what
        was not written is fetched again by the next sync (the mark moves only after it)."""
        key = (side, folder)
        try:
            # mail that arrives during a sync is announced in the answers to its
            # commands, and IDLE will not announce it again: sync until a pass saw none
            for _ in range(50):
                await self.folders.sync(client, side, folder)
                if not grew_since_mark(client):
                    break
        except StateFileError as e:
            if key not in self._db_trouble:
                self._db_trouble.add(key)
                self.bus.publish(LogLine("warning", f"Watching {side} {folder}: the state file is "
                                                    f"busy ({sentence(e)}); waiting, then going on."))
            await self._pause(db_backoff.next())
            return False
        if key in self._db_trouble:
            self._db_trouble.discard(key)
            self.bus.publish(LogLine("info", f"Watching {side} {folder}: the state file is usable again."))
        db_backoff.reset()
        return True

    def _connect(self, side: str) -> imapclient.IMAPClient:
        client = imapnet.connect(self.accounts.account(side), timeout=self.socket_timeout)
        client.normalise_times = False   # aware INTERNALDATEs
        return client

    # -- catching up ------------------------------------------------------------------------
    async def catch_up(self) -> int:
        """One pass over every watched folder; returns how many new old-side arrivals
        were recorded (new-side trouble is logged, old-side trouble raises). Returns once
        the reactions to them (the automatic rules) have run."""
        total = 0
        by_side: dict[str, list[str]] = {}
        # the new side first: who switched meanwhile decides the old arrivals' badges
        for side, folder in sorted(self._watched(), key=lambda sf: sf[0] != "new"):
            by_side.setdefault(side, []).append(folder)
        for side, folders in by_side.items():
            total += await self._catch_up_side(side, folders)
        await self.bus.drain()
        return total

    async def _catch_up_side(self, side: str, folders: list[str]) -> int:
        client = None
        total = 0
        try:
            client = await self.blocking.run(self._connect, side)
            for folder in folders:
                try:
                    n = await self.folders.sync(client, side, folder)
                except FolderError as e:   # one bad watch_folders entry spoils no other
                    self.bus.publish(LogLine("warning", f"The {side} mailbox: {e.message}"))
                    continue
                total += n if side == "old" else 0
        except StateFileError:
            raise
        except SwitchoverError as e:
            if side == "old":
                raise
            self.bus.publish(LogLine("warning", f"The new mailbox was not checked: {e.message}"))
        except Exception as e:  # noqa: BLE001 - a dropped connection has many shapes
            if side == "old":
                raise ConnectError(f"The old mailbox: catching up failed ({sentence(e)}).") from None
            self.bus.publish(LogLine("warning", f"The new mailbox was not checked: {sentence(e)}"))
        finally:
            if client is not None:
                await self.blocking.run(imapnet.close, client)
        return total

    # -- for the faces (the records live in core/transition/arrivals.py) -------------------
    async def arrivals(self, *, side: str = "old", offset: int = 0, limit: int = 50,
                       state: str | None = None) -> list[Arrival]:
        return await self._arrivals.page(side=side, offset=offset, limit=limit, state=state)

    async def arrival(self, arrival_id: int) -> Arrival | None:
        return await self._arrivals.get(arrival_id)

    async def message_headers(self, arrival_id: int) -> Message | None:
        return await self._arrivals.headers(arrival_id)

    async def last_checked(self) -> float | None:
        """When the watched old folders were last caught up (a running watch, ``watch
        --once``, the dashboard; any process on this state file), as a timestamp; None
        before the first look. The check schedule (core/wrapup/schedule.py) reads it."""
        return await self.folders.last_checked("old", [f for side, f in self._watched() if side == "old"])

    async def counts(self) -> dict[str, int]:
        """Old-side arrivals (unhandled, today, total) and switched correspondents."""
        return {**await self._arrivals.counts(), "switched": await self.people.switched_count()}

    async def mark_handled(self, arrival_id: int, handled: bool = True) -> None:
        await self._arrivals.mark_handled(arrival_id, handled)

    async def body_text(self, arrival_id: int) -> str:
        """The readable text of an arrival, fetched on demand (BODY.PEEK), cached."""
        if arrival_id in self._body_cache:
            self._body_cache.move_to_end(arrival_id)
            return self._body_cache[arrival_id]
        a = await self._arrivals.require(arrival_id)
        where = Where(a.side, a.folder, a.uidvalidity, a.uid, a.message_id)
        original = await self.blocking.run(fetch_original, self.accounts.account(a.side), where)
        if original is None:
            text = a.preview + "\n\n[The message is no longer in the mailbox; this is the saved preview.]"
        else:
            text = message_text(parse_message(original.raw), attachments=True)
        self._body_cache[arrival_id] = text
        while len(self._body_cache) > self.body_cache_size:
            self._body_cache.popitem(last=False)
        return text
