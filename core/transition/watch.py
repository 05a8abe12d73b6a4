"""The transition watch: every arrival in the old mailbox (INBOX + configured folders)
becomes a row in ``arrivals`` and an ``ArrivalSeen`` event; the new INBOX is watched
headers-only to learn who has switched.

One watcher per (side, folder), each on its own connection: IMAP IDLE where offered
(restarted well before the 29-minute limit, socket timeouts so a dead connection shows
up), polling elsewhere, reconnecting forever with backoff. The last UID seen per (side,
folder, UIDVALIDITY) lives in ``settings``, so after any gap the watch catches up from
there: nothing missed, nothing shown twice (UNIQUE uid key + Message-ID dedupe, in one
write transaction with the automatic rules, so another process watching the same state
file neither doubles an arrival nor skips its rules).

The first look at an old folder starts where the migration last read it (its
UIDVALIDITY and UIDNEXT in ``folders``): what arrived after the migration's snapshot is
in the feed. Without a migration of that folder it starts at ``transition.start``
(messages whose INTERNALDATE is on or after it), else at UIDNEXT: years of history
belong to the correspondents scan, not to the feed. Messages are only ever read with
BODY.PEEK (never marked \\Seen).

Trouble with the state file (another process holding it) is not trouble with the
server: the watcher keeps its connection, says so once, waits and goes on.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import email.utils
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import imapclient

from ..net import imap as imaplib_
from .classify import (addresses, badge_for, header_text, is_automated, is_bounce, is_spam,
                       message_text, own_addresses_of, parse_headers, parse_message,
                       preview_of, recipients_of, sender_language_of, sender_of)
from ..errors import AuthError, ConfigError, ConnectError, FolderError, SwitchoverError
from ..events import ArrivalSeen, ConnectionState, LogLine
from ..mail.identity import identity_from_headers

if TYPE_CHECKING:
    from ..engine import Engine

#: what one arrival fetch brings: whole header block, the first bytes of the body
_BODY_PEEK_BYTES = 16384
_FETCH = [b"UID", b"RFC822.SIZE", b"INTERNALDATE", b"FLAGS", b"BODY.PEEK[HEADER]",
          b"BODY.PEEK[TEXT]<0.%d>" % _BODY_PEEK_BYTES]
_CHUNK = 100
_HUMAN_BADGES = ("customer", "notified", "switched", "new sender")


@dataclass
class Arrival:
    id: int
    side: str
    folder: str
    uid: int
    message_id: str | None
    sender: str
    sender_name: str
    recipients: list[str]
    subject: str
    date: dt.datetime | None
    seen_at: float
    badge: str
    state: str                      # new | handled
    language: str
    preview: str
    actions: dict[str, str] = field(default_factory=dict)   # latest state per action kind
    size: int = 0
    uidvalidity: int = 0


@dataclass
class _Fetched:
    uid: int
    size: int
    internaldate: dt.datetime | None
    flags: tuple[Any, ...]
    header: bytes
    body_start: bytes


@dataclass
class _Mark:
    uidvalidity: int
    last_uid: int
    checked: float


def _utc_iso(d: dt.datetime | None) -> str | None:
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def message_date(msg: Any, fallback: dt.datetime | None = None) -> dt.datetime | None:
    """The Date header as an aware datetime, else the fallback (INTERNALDATE)."""
    raw = header_text(msg, "Date")
    if raw:
        try:
            d = email.utils.parsedate_to_datetime(raw)
            return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)
        except (TypeError, ValueError, IndexError):
            pass
    if fallback is not None and fallback.tzinfo is None:
        fallback = fallback.astimezone()
    return fallback


class _Stopped(Exception):
    pass


class Monitor:
    """``engine.monitor``. Options may be changed before ``run()``: ``use_idle`` (False
    forces polling), ``poll_seconds``, ``idle_restart`` (seconds, < 29 min),
    ``socket_timeout``, ``watch_new`` (watch the new INBOX too), ``learn_history``."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        t = engine.config.transition
        self.use_idle = True
        self.poll_seconds = float(t.poll_seconds)
        self.idle_restart = 9 * 60.0
        self.socket_timeout = 30.0
        self.watch_new = True
        #: scan the history (incrementally) before watching, so badges know every correspondent
        self.learn_history = True
        self.backoff_cap = 60.0
        self._stop_flag = threading.Event()          # seen by worker threads
        self._stop_async: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._db_trouble: set[tuple[str, str]] = set()
        self._conn: dict[tuple[str, str], str] = {}
        self._published: dict[str, str] = {}
        self._body_cache: collections.OrderedDict[int, str] = collections.OrderedDict()
        self.body_cache_size = 32

    # -- watched folders ------------------------------------------------------------------
    def _folders(self) -> list[tuple[str, str]]:
        out = [("old", f) for f in dict.fromkeys(self.engine.config.transition.watch_folders or ("INBOX",))]
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
                    for side, folder in self._folders()]
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
                if not task.cancelled() and task.exception() is not None:
                    self.engine.publish(LogLine("error", f"{task.get_name()}: {_short(task.exception())}"))
            for task in (stop_waiter, internal):
                if task is not None:
                    task.cancel()
            for side in {s for s, _ in self._folders()}:
                self.engine.publish(ConnectionState(side, "offline"))
            self._conn.clear()
            self._published.clear()

    async def learn_from_history(self) -> None:
        """Scan the mailbox history (incrementally) so arrivals are badged against every
        known correspondent; trouble here is logged, never fatal to the watch."""
        try:
            await self.engine.correspondents.scan_history()
        except SwitchoverError as e:
            self.engine.publish(LogLine("warning", f"history scan: {e.message}"))
        except Exception as e:  # the watch must go on
            self.engine.publish(LogLine("warning", f"history scan failed: {e}"))

    def stop(self) -> None:
        self._stop_flag.set()
        if self._stop_async is not None:
            self._stop_async.set()

    def reconnect_now(self) -> None:
        """Cut a backoff wait short (e.g. after the user typed a password)."""
        if self._wake is not None:
            self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        if self._stop_flag.is_set():
            raise _Stopped
        waits = [asyncio.create_task(e.wait()) for e in (self._stop_async, self._wake) if e is not None]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._wake is not None:
            self._wake.clear()
        if self._stop_flag.is_set():
            raise _Stopped

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
            self.engine.publish(ConnectionState(side, agg, detail))

    # -- one watcher ------------------------------------------------------------------------
    async def _watch(self, side: str, folder: str) -> None:
        backoff = imaplib_.Backoff(1.0, self.backoff_cap)
        db_backoff = imaplib_.Backoff(0.5, 30.0)
        while not self._stop_flag.is_set():
            client: imapclient.IMAPClient | None = None
            delay = 0.0
            try:
                client = await self.engine.run_blocking(self._connect, side)
                self._set_conn(side, folder, "connected")
                backoff.reset()
                idle = self.use_idle and client.has_capability("IDLE")
                while not self._stop_flag.is_set():
                    if not await self._sync_or_wait(client, side, folder, db_backoff):
                        continue      # the state file was busy: waited; sync again, same connection
                    if idle:
                        await self.engine.run_blocking(self._idle_wait, client, self.idle_restart)
                    else:
                        await self.engine.run_blocking(client.noop)
                        await self._sleep(self.poll_seconds)
            except _Stopped:
                pass
            except (AuthError, ConfigError) as e:
                # the user may fix it (dashboard prompt); retry slowly, forever
                self._set_conn(side, folder, "auth failed", str(e))
                delay = max(backoff.next(), min(30.0, self.backoff_cap))
            except (ConnectError, FolderError) as e:
                self._set_conn(side, folder, "reconnecting", str(e))
                delay = backoff.next()
            except Exception as e:  # noqa: BLE001 — the watch must outlive any one failure
                if self._stop_flag.is_set():
                    break
                if not imaplib_.is_connection_error(e):
                    self.engine.publish(LogLine("warning", f"Watching {side} {folder}: {e}"))
                self._set_conn(side, folder, "reconnecting", _short(e))
                delay = imaplib_.retry_after(e, backoff.next()) if imaplib_.is_throttle(e) else backoff.next()
            finally:
                if client is not None:
                    try:
                        await self.engine.run_blocking(imaplib_.close, client)
                    except Exception:
                        pass
            if delay and not self._stop_flag.is_set():
                try:
                    await self._sleep(delay)
                except _Stopped:
                    break

    async def _sync_or_wait(self, client: imapclient.IMAPClient, side: str, folder: str,
                            db_backoff: imaplib_.Backoff) -> bool:
        """One sync; False when the state file was busy (said once per episode, then
        waited out). A database error is no reason to drop the IMAP connection: what was
        not written is fetched again by the next sync (the mark moves only after it)."""
        key = (side, folder)
        try:
            # mail that arrives during a sync is announced in the answers to its
            # commands, and IDLE will not announce it again: sync until a pass saw none
            for _ in range(50):
                await self._sync(client, side, folder)
                if not _grew_since_select(client):
                    break
        except Exception as e:
            from .actions import is_database_error
            if not is_database_error(e):
                raise
            if key not in self._db_trouble:
                self._db_trouble.add(key)
                self.engine.publish(LogLine("warning", f"Watching {side} {folder}: the state file is "
                                                       f"busy ({_short(e)}); waiting, then going on."))
            await self._sleep(db_backoff.next())
            return False
        if key in self._db_trouble:
            self._db_trouble.discard(key)
            self.engine.publish(LogLine("info", f"Watching {side} {folder}: the state file is usable again."))
        db_backoff.reset()
        return True

    def _connect(self, side: str) -> imapclient.IMAPClient:
        client = imaplib_.connect(self.engine.account(side), timeout=self.socket_timeout)
        client.normalise_times = False   # aware INTERNALDATEs
        return client

    def _idle_wait(self, client: imapclient.IMAPClient, max_seconds: float) -> bool:
        """IDLE until the folder grows, ``max_seconds`` pass or the monitor stops.
        Ends IDLE before returning (DONE's answer also proves the connection lives)."""
        client.idle()
        grew = False
        unpatch = _literal_safe_lines(client)
        try:
            end = time.monotonic() + max_seconds
            while not self._stop_flag.is_set() and time.monotonic() < end:
                # idle_check waits on the socket; a response that came in the same packet
                # as IDLE's "+ idling" (mail that arrived during the last sync) already
                # sits in the reader's buffer and would wait for the next packet: sync now
                if _buffered(client):
                    grew = True
                    break
                t0 = time.monotonic()
                responses = client.idle_check(timeout=0.5)
                for r in responses:
                    if len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT"):
                        grew = True
                    if r and r[0] == b"BYE":
                        raise ConnectionError(f"server said BYE: {r[1:]!r}")
                if grew:
                    break
                # readable but nothing parsed at once: imapclient swallows EOF here, so
                # leave IDLE and let DONE's answer (or its failure) tell
                if not responses and time.monotonic() - t0 < 0.05:
                    break
        finally:
            try:
                client.idle_done()
            finally:
                unpatch()
        return grew

    # -- catching up ------------------------------------------------------------------------
    async def catch_up(self) -> int:
        """One pass over every watched folder; returns how many new old-side arrivals
        were recorded (new-side trouble is logged, old-side trouble raises)."""
        total = 0
        by_side: dict[str, list[str]] = {}
        # the new side first: who switched meanwhile decides the old arrivals' badges
        for side, folder in sorted(self._folders(), key=lambda sf: sf[0] != "new"):
            by_side.setdefault(side, []).append(folder)
        for side, folders in by_side.items():
            client = None
            try:
                client = await self.engine.run_blocking(self._connect, side)
                for folder in folders:
                    try:
                        n = await self._sync(client, side, folder)
                    except FolderError as e:   # one bad watch_folders entry spoils no other
                        self.engine.publish(LogLine("warning", f"The {side} mailbox: {e}"))
                        continue
                    if side == "old":
                        total += n
            except SwitchoverError as e:
                if side == "old":
                    raise
                self.engine.publish(LogLine("warning", f"The new mailbox was not checked: {e}"))
            except Exception as e:
                from .actions import is_database_error
                if is_database_error(e):
                    raise
                if side == "old":
                    raise ConnectError(f"The old mailbox: catching up failed ({_short(e)}).") from None
                self.engine.publish(LogLine("warning", f"The new mailbox was not checked: {_short(e)}"))
            finally:
                if client is not None:
                    await self.engine.run_blocking(imaplib_.close, client)
        return total

    def _lock(self, side: str, folder: str) -> asyncio.Lock:
        key = (side, folder)
        if key not in self._locks:
            self._locks[key] = asyncio.Lock()
        return self._locks[key]

    async def _get_mark(self, side: str, folder: str) -> _Mark | None:
        v = await self.engine.store.get_setting(f"monitor.mark.{side}.{folder}")
        if not v:
            return None
        return _Mark(int(v["uidvalidity"]), int(v["last_uid"]), float(v.get("checked", 0)))

    async def _set_mark(self, side: str, folder: str, mark: _Mark) -> None:
        await self.engine.store.set_setting(
            f"monitor.mark.{side}.{folder}",
            {"uidvalidity": mark.uidvalidity, "last_uid": mark.last_uid, "checked": mark.checked})

    async def _sync(self, client: imapclient.IMAPClient, side: str, folder: str) -> int:
        """Bring one folder's arrivals up to date on an open connection."""
        rb = self.engine.run_blocking
        async with self._lock(side, folder):
            uidvalidity, uidnext = await rb(_select, client, folder)
            mark = await self._get_mark(side, folder)
            now = time.time()
            if mark is None and side == "old":
                mark, count = await self._first_look(client, folder, uidvalidity, uidnext)
                if mark is None:
                    return count
            if mark is None:
                # first start: the feed begins now; history is the correspondents' job
                await self._set_mark(side, folder, _Mark(uidvalidity, uidnext - 1, now))
                if side == "new":
                    await self._learn_switched(client, folder)
                return 0
            count = 0
            if mark.uidvalidity != uidvalidity:
                # the server renumbered the folder: announce only what arrived since the
                # last check; Message-ID dedupe keeps already-shown mail out
                since = dt.date.fromtimestamp(max(0.0, mark.checked - 86400))
                uids = await rb(client.search, ["SINCE", since])
                cutoff = mark.checked - 120
                for chunk in _chunks(sorted(uids), _CHUNK):
                    for f in await rb(_fetch, client, chunk):
                        if f.internaldate is None or f.internaldate.timestamp() >= cutoff:
                            if await self._record(side, folder, uidvalidity, f) is not None:
                                count += 1
                self.engine.publish(LogLine("info", f"The {side} server renumbered {folder} "
                                                    f"(UIDVALIDITY changed); caught up by date."))
                await self._set_mark(side, folder, _Mark(uidvalidity, uidnext - 1, now))
                return count
            uids = [u for u in await rb(client.search, ["UID", f"{mark.last_uid + 1}:*"])
                    if u > mark.last_uid]
            for chunk in _chunks(sorted(uids), _CHUNK):
                for f in await rb(_fetch, client, chunk):
                    if await self._record(side, folder, uidvalidity, f) is not None:
                        count += 1
                mark.last_uid = max(mark.last_uid, max(chunk))
                await self._set_mark(side, folder, mark)
            mark.checked = now
            if not uids:  # UIDs between were expunged before we saw them
                mark.last_uid = max(mark.last_uid, uidnext - 1)
            await self._set_mark(side, folder, mark)
            return count

    async def _first_look(self, client: imapclient.IMAPClient, folder: str, uidvalidity: int,
                          uidnext: int) -> tuple[_Mark | None, int]:
        """Where the first watch of an old folder starts; sets the mark. (mark, 0) to sync
        on from the migration's snapshot; (None, n) when the arrivals since the start
        date were recorded here (n of them), or at UIDNEXT (n = 0)."""
        row = await self.engine.store.fetchone(
            "SELECT uidvalidity, uidnext FROM folders WHERE side='old' AND name=?", (folder,))
        if row is not None and row["uidnext"] and int(row["uidvalidity"] or 0) == uidvalidity:
            last = min(int(row["uidnext"]), uidnext) - 1
            mark = _Mark(uidvalidity, last, time.time())
            await self._set_mark("old", folder, mark)
            if uidnext - 1 > last:
                self.engine.publish(LogLine("info", f"The watch of {folder} starts where the migration "
                                                    f"last read it (UID {last + 1} on)."))
            return mark, 0
        t = self.engine.config.transition
        start = getattr(t, "start_date", None) or getattr(t, "start", None)
        if not start:
            await self._set_mark("old", folder, _Mark(uidvalidity, uidnext - 1, time.time()))
            return None, 0
        rb = self.engine.run_blocking
        uids = sorted(await rb(client.search, ["SINCE", start]))
        count = 0
        for chunk in _chunks(uids, _CHUNK):
            for f in await rb(_fetch, client, chunk):
                if await self._record("old", folder, uidvalidity, f) is not None:
                    count += 1
        last = max([uidnext - 1, *uids])
        await self._set_mark("old", folder, _Mark(uidvalidity, last, time.time()))
        if count:
            self.engine.publish(LogLine("info", f"The watch of {folder} starts at the transition's "
                                                f"start, {start}: {count} arrival(s) since then."))
        return None, count

    async def _learn_switched(self, client: imapclient.IMAPClient, folder: str) -> None:
        """On the first look at the new INBOX: who already wrote to the new address."""
        new_addr = self.engine.config.identity.new_address
        start = self.engine.config.transition.start
        criteria: list[Any] = ["OR", "TO", new_addr, "CC", new_addr]
        if start:
            criteria = ["SINCE", start] + criteria
        try:
            uids = await self.engine.run_blocking(client.search, criteria)
        except Exception:
            return
        for chunk in _chunks(sorted(uids), 500):
            data = await self.engine.run_blocking(_fetch_headers, client, chunk)
            for uid, (header, internal) in data.items():
                msg = parse_headers(header)
                await self._maybe_switched(msg, message_date(msg, internal))

    async def _maybe_switched(self, msg: Any, when: dt.datetime | None) -> bool:
        """A message in the new mailbox marks its sender switched when it was addressed to
        the new address by a person (not migrated or forwarded old mail, not a robot)."""
        _, sender = sender_of(msg)
        own = own_addresses_of(self.engine)
        if not sender or sender in own:
            return False
        new_addr = self.engine.config.identity.new_address.lower()
        to = {a for _, a in addresses(msg, "To", "Cc", "Bcc", "Resent-To", "Resent-Cc",
                                      "Delivered-To", "X-Original-To", "Envelope-To")}
        if new_addr not in to:
            return False
        if is_automated(msg)[0] or is_bounce(msg) or is_spam(msg):
            return False
        ts = when.timestamp() if when else time.time()
        await self.engine.correspondents.mark_switched(sender, ts)
        return True

    # -- recording --------------------------------------------------------------------------
    async def _record(self, side: str, folder: str, uidvalidity: int, f: _Fetched) -> int | None:
        """Store one fetched message as an arrival, apply the automatic rules and announce
        it, all in one write transaction; None when it is already known (same UID, or
        same Message-ID on this side)."""
        store = self.engine.store
        msg = parse_headers(f.header)
        mid = (header_text(msg, "Message-ID") or "").strip() or None
        name, sender = sender_of(msg)
        subject = header_text(msg, "Subject")
        when = message_date(msg, f.internaldate)
        try:
            full = parse_message(f.header.rstrip(b"\r\n") + b"\r\n\r\n" + f.body_start)
            text = message_text(full)
        except Exception:
            text = ""
        language = sender_language_of(subject, text)
        # the migration's identity (needs a Message-ID; a message without one gets its
        # content identity when a forward reads it whole)
        identity = identity_from_headers(f.header, f.size) if f.size else None
        own = own_addresses_of(self.engine)
        async with store.transaction():
            if mid and await store.fetchone("SELECT 1 FROM arrivals WHERE side=? AND message_id=?",
                                            (side, mid)):
                return None
            if side == "new":
                await self._maybe_switched(msg, when)
            badge = await badge_for(self.engine, sender, msg, f.flags)
            cur = await store.run(
                "INSERT INTO arrivals(side, folder, uidvalidity, uid, message_id, sender, sender_name, "
                "recipients, subject, date, seen_at, size, language, badge, state, preview, headers, "
                "identity) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,'new',?,?,?) "
                "ON CONFLICT(side, folder, uidvalidity, uid) DO NOTHING",
                (side, folder, uidvalidity, f.uid, mid, sender, name,
                 ", ".join(recipients_of(msg)), subject, _utc_iso(when), time.time(), f.size,
                 language, badge, preview_of(text), f.header.decode("latin-1"), identity))
            if cur.rowcount != 1:
                return None
            arrival_id = int(cur.lastrowid or 0)
            if side == "old" and sender and sender not in own:
                automated = 1 if badge in ("automated", "bounce") else 0
                # what they just wrote tells their language better than old subjects
                await store.run(
                    "INSERT INTO correspondents(address, name, language, automated, last_old_arrival) "
                    "VALUES(?,?,?,?,?) ON CONFLICT(address) DO UPDATE SET "
                    "name=COALESCE(NULLIF(correspondents.name,''), excluded.name), "
                    "language=COALESCE(NULLIF(excluded.language,''), correspondents.language), "
                    "last_old_arrival=MAX(COALESCE(correspondents.last_old_arrival, 0), excluded.last_old_arrival)",
                    (sender, name, language, automated, when.timestamp() if when else time.time()))
            self.engine.publish(ArrivalSeen(arrival_id, side, sender, subject, badge))
            if side == "old":
                await self._hook(arrival_id)
        return arrival_id

    async def _hook(self, arrival_id: int) -> None:
        """Let the actions facet apply auto rules (it records before it acts), inside the
        arrival's transaction: a crash or a busy state file leaves neither the arrival
        nor its rules half done. Only a database error undoes the arrival (the next sync
        records it again); any other failure of a rule is logged."""
        try:
            on_arrival = self.engine.actions.on_arrival
        except (AttributeError, ImportError):
            return
        try:
            await on_arrival(arrival_id)
        except (AttributeError, ImportError):
            pass
        except Exception as e:
            from .actions import is_database_error
            if is_database_error(e):
                raise
            self.engine.publish(LogLine("warning", f"Auto rules for arrival #{arrival_id}: {_short(e)}"))

    # -- queries ------------------------------------------------------------------------------
    async def arrivals(self, *, side: str = "old", offset: int = 0, limit: int = 50,
                       state: str | None = None) -> list[Arrival]:
        sql = "SELECT * FROM arrivals WHERE side=?"
        params: list[Any] = [side]
        if state:
            sql += " AND state=?"
            params.append(state)
        sql += " ORDER BY seen_at DESC, id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        rows = await self.engine.store.fetchall(sql, params)
        return await self._with_actions(rows)

    async def arrival(self, arrival_id: int) -> Arrival | None:
        rows = await self.engine.store.fetchall("SELECT * FROM arrivals WHERE id=?", (arrival_id,))
        found = await self._with_actions(rows)
        return found[0] if found else None

    async def message_headers(self, arrival_id: int) -> Any | None:
        """The stored header block of an arrival, parsed (for classify / actions)."""
        row = await self.engine.store.fetchone("SELECT headers FROM arrivals WHERE id=?", (arrival_id,))
        return parse_headers(row["headers"] or "") if row else None

    async def _with_actions(self, rows: list[Any]) -> list[Arrival]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        acts: dict[int, dict[str, str]] = {i: {} for i in ids}
        marks = ",".join("?" * len(ids))
        for a in await self.engine.store.fetchall(
                f"SELECT arrival_id, kind, state FROM actions WHERE arrival_id IN ({marks}) ORDER BY id", ids):
            acts[a["arrival_id"]][a["kind"]] = a["state"]
        return [_arrival(r, acts[r["id"]]) for r in rows]

    async def counts(self) -> dict[str, int]:
        """Old-side arrivals: unhandled (state new, not spam or automated; bounces count,
        a failed notice matters), today (since local midnight), total; and switched
        correspondents."""
        store = self.engine.store
        midnight = dt.datetime.combine(dt.date.today(), dt.time()).timestamp()
        row = await store.fetchone(
            "SELECT COUNT(*) AS total, "
            "SUM(CASE WHEN state='new' AND badge NOT IN ('spam','automated') THEN 1 ELSE 0 END) AS unhandled, "
            "SUM(CASE WHEN seen_at >= ? THEN 1 ELSE 0 END) AS today FROM arrivals WHERE side='old'",
            (midnight,))
        sw = await store.fetchone("SELECT COUNT(*) FROM correspondents WHERE switched IS NOT NULL")
        return {"unhandled": int(row["unhandled"] or 0), "today": int(row["today"] or 0),
                "total": int(row["total"] or 0), "switched": int(sw[0] or 0)}

    async def mark_handled(self, arrival_id: int, handled: bool = True) -> None:
        await self.engine.store.execute("UPDATE arrivals SET state=? WHERE id=?",
                                        ("handled" if handled else "new", arrival_id))

    async def body_text(self, arrival_id: int) -> str:
        """The readable text of an arrival, fetched on demand (BODY.PEEK), cached."""
        if arrival_id in self._body_cache:
            self._body_cache.move_to_end(arrival_id)
            return self._body_cache[arrival_id]
        row = await self.engine.store.fetchone("SELECT * FROM arrivals WHERE id=?", (arrival_id,))
        if row is None:
            raise SwitchoverError(f"There is no arrival #{arrival_id}.")
        raw = await self.engine.run_blocking(self._fetch_full, row["side"], row["folder"],
                                             row["uidvalidity"], row["uid"], row["message_id"])
        if raw is None:
            text = (row["preview"] or "") + "\n\n[The message is no longer in the mailbox; this is the saved preview.]"
        else:
            text = message_text(parse_message(raw), attachments=True)
        self._body_cache[arrival_id] = text
        while len(self._body_cache) > self.body_cache_size:
            self._body_cache.popitem(last=False)
        return text

    def _fetch_full(self, side: str, folder: str, uidvalidity: int, uid: int,
                    message_id: str | None) -> bytes | None:
        client = self._connect(side)
        try:
            info = client.select_folder(folder, readonly=True)
            target: int | None = uid if int(info.get(b"UIDVALIDITY", 0)) == uidvalidity else None
            if target is not None and not client.search(["UID", str(uid)]):
                target = None
            if target is None and message_id:
                found = client.search(["HEADER", "Message-ID", message_id])
                target = found[0] if found else None
            if target is None:
                return None
            data = client.fetch([target], [b"BODY.PEEK[]"])
            item = data.get(target) or {}
            return item.get(b"BODY[]")
        finally:
            imaplib_.close(client)


# -- blocking helpers (worker threads) ---------------------------------------------------------

def _select(client: imapclient.IMAPClient, folder: str) -> tuple[int, int]:
    """EXAMINE the folder (read-only: nothing gets \\Seen); (UIDVALIDITY, UIDNEXT)."""
    try:
        info = client.select_folder(folder, readonly=True)
    except imapclient.exceptions.IMAPClientError as e:
        if imaplib_.is_connection_error(e):
            raise
        raise FolderError(f"Cannot open the folder {folder}: {_short(e)}.") from None
    # EXISTS answers seen so far; one more later means the folder grew meanwhile
    client._switchover_exists = len(client._imap.untagged_responses.get("EXISTS", []))  # type: ignore[attr-defined]
    uidvalidity = int(info.get(b"UIDVALIDITY", 0) or 0)
    uidnext = info.get(b"UIDNEXT")
    if not uidnext:  # a few servers omit it; the highest UID + 1 will do
        uids = client.search(["ALL"]) if info.get(b"EXISTS") else []
        uidnext = (max(uids) + 1) if uids else 1
    return uidvalidity, int(uidnext)


def _fetch(client: imapclient.IMAPClient, uids: list[int]) -> list[_Fetched]:
    data = client.fetch(uids, _FETCH)
    out: list[_Fetched] = []
    for uid in sorted(data):
        item = data[uid]
        body = b""
        for k, v in item.items():
            if isinstance(k, bytes) and k.startswith(b"BODY[TEXT]"):
                body = v or b""
        out.append(_Fetched(uid=int(item.get(b"UID", uid)), size=int(item.get(b"RFC822.SIZE", 0) or 0),
                            internaldate=item.get(b"INTERNALDATE"), flags=tuple(item.get(b"FLAGS", ())),
                            header=item.get(b"BODY[HEADER]") or b"", body_start=body))
    return out


def _fetch_headers(client: imapclient.IMAPClient, uids: list[int]) -> dict[int, tuple[bytes, Any]]:
    fields = b"BODY.PEEK[HEADER.FIELDS (FROM SENDER TO CC DATE DELIVERED-TO X-ORIGINAL-TO " \
             b"AUTO-SUBMITTED PRECEDENCE LIST-ID LIST-UNSUBSCRIBE RETURN-PATH CONTENT-TYPE " \
             b"X-SPAM-FLAG X-SPAM-STATUS SUBJECT)]"
    return imaplib_.fetch_header_fields(client, uids, fields)


def _chunks(items: list[int], n: int) -> Iterable[list[int]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _short(e: BaseException) -> str:
    text = str(e).strip()
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return (text or e.__class__.__name__)[:200]


def _arrival(r: Any, actions: dict[str, str]) -> Arrival:
    date = None
    if r["date"]:
        try:
            date = dt.datetime.fromisoformat(r["date"])
        except ValueError:
            date = None
    recips = [a.strip() for a in (r["recipients"] or "").split(",") if a.strip()]
    return Arrival(id=r["id"], side=r["side"], folder=r["folder"], uid=r["uid"], message_id=r["message_id"],
                   sender=r["sender"] or "", sender_name=r["sender_name"] or "", recipients=recips,
                   subject=r["subject"] or "", date=date, seen_at=r["seen_at"], badge=r["badge"] or "",
                   state=r["state"], language=r["language"] or "", preview=r["preview"] or "",
                   actions=actions, size=r["size"] or 0, uidvalidity=r["uidvalidity"])


def _grew_since_select(client: imapclient.IMAPClient) -> bool:
    """True when the server announced new mail (EXISTS) after the last EXAMINE."""
    seen = getattr(client, "_switchover_exists", None)
    return seen is not None and len(client._imap.untagged_responses.get("EXISTS", [])) > seen


def _buffered(client: imapclient.IMAPClient) -> bool:
    """True when the connection's reader holds received bytes not yet parsed."""
    sock = client.socket()
    mode = sock.gettimeout()
    try:
        sock.setblocking(False)
        try:
            return bool(client._imap.file.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
            return False
    finally:
        sock.settimeout(mode)


_RESPONSE_START = re.compile(rb"^(\* |\+|[A-Za-z0-9.]+ (OK|NO|BAD|BYE|PREAUTH)\b)")


def _literal_safe_lines(client: imapclient.IMAPClient) -> "Callable[[], None]":
    """Make the connection's line reader robust while IDLE runs.

    imapclient's idle_check reads with the socket non-blocking, one line at a time, and
    then parses each line alone. That loses sync when a server writes a response in
    pieces (a partial line arrives: "unterminated line") or sends one carrying a literal
    (the literal and the rest of the line would be read as new responses) — pymap does
    both, and so can any server over a slow link. The patched reader waits for a line
    that has begun to arrive, consumes literals whole (NIL takes their place: the monitor
    only needs to know that something happened), and turns a line that is no IMAP
    response into a harmless untagged OK. Returns the function that removes the patch.
    """
    imap = client._imap
    original = imap._get_line

    def whole(read: "Callable[[], Any]") -> Any:
        sock = client.socket()
        mode = sock.gettimeout()
        if mode != 0.0:
            return read()
        sock.settimeout(30.0)   # it has begun to arrive: the rest follows
        try:
            return read()
        finally:
            sock.setblocking(False)

    def get_line() -> bytes:
        if client.socket().gettimeout() == 0.0:
            try:
                ready = imap.file.peek(1)
            except ssl.SSLWantReadError:
                ready = b""
            if not ready:
                # nothing buffered or on the socket now (or EOF): ends idle_check's loop
                raise BlockingIOError("no IDLE response waiting")
        line = whole(original)
        while line.endswith(b"}") and b"{" in line:
            head, _, size = line.rpartition(b"{")
            size = size[:-1].rstrip(b"+")
            if not size.isdigit():
                break
            whole(lambda: imap.read(int(size)))
            line = head + b"NIL" + whole(original)
        if not _RESPONSE_START.match(line):
            return b"* OK [switchover] ignored a malformed line"
        return line

    imap._get_line = get_line

    def unpatch() -> None:
        imap.__dict__.pop("_get_line", None)

    return unpatch
