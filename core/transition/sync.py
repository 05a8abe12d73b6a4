"""Catching up one watched folder on an open connection: what arrived since the last
look becomes an arrival (core/transition/arrivals.py) and an ``ArrivalSeen`` event.

The last UID seen per (side, folder, UIDVALIDITY) is kept in ``settings``, so after any
gap the next sync goes on from there: nothing missed, nothing shown twice (the UID key
and the Message-ID dedupe are checked in the arrival's own write transaction, so another
process watching the same state file never doubles an arrival). The mark moves only
after the arrivals it covers are written.

The first look at an old folder starts where the migration last read it (its
UIDVALIDITY and UIDNEXT): what arrived after the migration's snapshot is in the feed.
Without a migration of that folder it starts at ``transition.start`` (messages whose
INTERNALDATE is on or after it), else at UIDNEXT: years of history belong to the
correspondents scan, not to the feed. The first look at the new INBOX learns who
already writes to the new address. Messages are only ever read with BODY.PEEK.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any, Awaitable, Callable, Iterable

import imapclient

from ..config import Config
from ..context import Blocking
from ..errors import FolderError, sentence
from ..events import ArrivalSeen, EventBus, LogLine
from ..mail.dates import date_of
from ..mail.headers import (addresses, header_text, message_id_of, parse_headers, parse_message,
                            recipients_of, sender_of)
from ..mail.identity import identity_from_headers
from ..mail.language import sender_language_of
from ..mail.text import message_text, preview_of
from ..net import imap as imapnet
from ..net.idle import mark_exists
from ..net.retry import is_connection_error
from ..store import Store
from .arrivals import Arrivals, NewArrival
from .classify import is_automated, is_bounce, is_spam, own_addresses
from .people import Correspondents

#: where the migration last read an old folder: (UIDVALIDITY, UIDNEXT), or None
Snapshots = Callable[[str], Awaitable["tuple[int, int] | None"]]

#: what one arrival fetch brings: whole header block, the first bytes of the body
_BODY_PEEK_BYTES = 16384
_FETCH = [b"UID", b"RFC822.SIZE", b"INTERNALDATE", b"FLAGS", b"BODY.PEEK[HEADER]",
          b"BODY.PEEK[TEXT]<0.%d>" % _BODY_PEEK_BYTES]
_SWITCHED_FIELDS = (b"BODY.PEEK[HEADER.FIELDS (FROM SENDER TO CC DATE DELIVERED-TO X-ORIGINAL-TO "
                    b"AUTO-SUBMITTED PRECEDENCE LIST-ID LIST-UNSUBSCRIBE RETURN-PATH CONTENT-TYPE "
                    b"X-SPAM-FLAG X-SPAM-STATUS SUBJECT)]")
_CHUNK = 100


@dataclass
class Fetched:
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


class FolderSync:
    """Brings watched folders up to date; one sync per (side, folder) at a time."""

    def __init__(self, store: Store, bus: EventBus, blocking: Blocking, config: Config,
                 arrivals: Arrivals, people: Correspondents, snapshots: Snapshots) -> None:
        self.store, self.bus, self.blocking, self.config = store, bus, blocking, config
        self.arrivals, self.people, self.snapshots = arrivals, people, snapshots
        self.own = own_addresses(config)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def sync(self, client: imapclient.IMAPClient, side: str, folder: str) -> int:
        """Bring one folder's arrivals up to date; returns how many were recorded."""
        run = self.blocking.run
        lock = self._locks.setdefault((side, folder), asyncio.Lock())
        async with lock:
            uidvalidity, uidnext = await run(_select, client, folder)
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
                    await self._learn_switched(client)
                return 0
            if mark.uidvalidity != uidvalidity:
                return await self._renumbered(client, side, folder, mark, uidvalidity, uidnext)
            count = 0
            uids = [u for u in await run(client.search, ["UID", f"{mark.last_uid + 1}:*"])
                    if u > mark.last_uid]
            for chunk in _chunks(sorted(uids), _CHUNK):
                count += await self._record_all(side, folder, uidvalidity, await run(_fetch, client, chunk))
                mark.last_uid = max(mark.last_uid, max(chunk))
                await self._set_mark(side, folder, mark)
            mark.checked = now
            if not uids:  # UIDs between were expunged before we saw them
                mark.last_uid = max(mark.last_uid, uidnext - 1)
            await self._set_mark(side, folder, mark)
            return count

    async def _renumbered(self, client: imapclient.IMAPClient, side: str, folder: str, mark: _Mark,
                          uidvalidity: int, uidnext: int) -> int:
        """The server renumbered the folder: announce only what arrived since the last
        check; the Message-ID dedupe keeps already-shown mail out."""
        since = dt.date.fromtimestamp(max(0.0, mark.checked - 86400))
        uids = await self.blocking.run(client.search, ["SINCE", since])
        cutoff = mark.checked - 120
        count = 0
        for chunk in _chunks(sorted(uids), _CHUNK):
            fetched = await self.blocking.run(_fetch, client, chunk)
            recent = [f for f in fetched if f.internaldate is None or f.internaldate.timestamp() >= cutoff]
            count += await self._record_all(side, folder, uidvalidity, recent)
        self.bus.publish(LogLine("info", f"The {side} server renumbered {folder} "
                                         f"(UIDVALIDITY changed); caught up by date."))
        await self._set_mark(side, folder, _Mark(uidvalidity, uidnext - 1, time.time()))
        return count

    async def _first_look(self, client: imapclient.IMAPClient, folder: str, uidvalidity: int,
                          uidnext: int) -> tuple[_Mark | None, int]:
        """Where the first watch of an old folder starts; sets the mark. (mark, 0) to sync
        on from the migration's snapshot; (None, n) when the arrivals since the start
        date were recorded here (n of them), or at UIDNEXT (n = 0)."""
        snap = await self.snapshots(folder)
        if snap is not None and snap[0] == uidvalidity:
            last = min(snap[1], uidnext) - 1
            mark = _Mark(uidvalidity, last, time.time())
            await self._set_mark("old", folder, mark)
            if uidnext - 1 > last:
                self.bus.publish(LogLine("info", f"The watch of {folder} starts where the migration "
                                                 f"last read it (UID {last + 1} on)."))
            return mark, 0
        start = self.config.transition.start
        if not start:
            await self._set_mark("old", folder, _Mark(uidvalidity, uidnext - 1, time.time()))
            return None, 0
        uids = sorted(await self.blocking.run(client.search, ["SINCE", start]))
        count = 0
        for chunk in _chunks(uids, _CHUNK):
            fetched = await self.blocking.run(_fetch, client, chunk)
            count += await self._record_all("old", folder, uidvalidity, fetched)
        await self._set_mark("old", folder, _Mark(uidvalidity, max([uidnext - 1, *uids]), time.time()))
        if count:
            self.bus.publish(LogLine("info", f"The watch of {folder} starts at the transition's "
                                             f"start, {start}: {count} arrival(s) since then."))
        return None, count

    async def _learn_switched(self, client: imapclient.IMAPClient) -> None:
        """On the first look at the new INBOX: who already wrote to the new address."""
        new_addr = self.config.identity.new_address
        criteria: list[Any] = ["OR", "TO", new_addr, "CC", new_addr]
        if self.config.transition.start:
            criteria = ["SINCE", self.config.transition.start] + criteria
        try:
            uids = await self.blocking.run(client.search, criteria)
        except Exception as e:  # noqa: BLE001 - a server that cannot search: learn it from arrivals
            if is_connection_error(e):
                raise
            return
        for chunk in _chunks(sorted(uids), 500):
            data = await self.blocking.run(imapnet.fetch_header_fields, client, chunk, _SWITCHED_FIELDS)
            for _uid, (block, internal) in data.items():
                msg = parse_headers(block)
                await self._maybe_switched(msg, date_of(msg, internal))

    async def _maybe_switched(self, msg: Message, when: dt.datetime | None) -> bool:
        """A message in the new mailbox marks its sender switched when it was addressed to
        the new address by a person (not migrated or forwarded old mail, not a robot)."""
        _, sender = sender_of(msg)
        if not sender or sender in self.own:
            return False
        new_addr = self.config.identity.new_address.lower()
        to = {a for _, a in addresses(msg, "To", "Cc", "Bcc", "Resent-To", "Resent-Cc",
                                      "Delivered-To", "X-Original-To", "Envelope-To")}
        if new_addr not in to:
            return False
        if is_automated(msg)[0] or is_bounce(msg) or is_spam(msg):
            return False
        await self.people.mark_switched(sender, when.timestamp() if when else time.time())
        return True

    # -- recording ------------------------------------------------------------------------
    async def _record_all(self, side: str, folder: str, uidvalidity: int, fetched: Iterable[Fetched]) -> int:
        count = 0
        for f in fetched:
            if await self.record(side, folder, uidvalidity, f) is not None:
                count += 1
        return count

    async def record(self, side: str, folder: str, uidvalidity: int, f: Fetched) -> int | None:
        """Store one fetched message as an arrival and announce it; None when it is
        already known (same UID, or same Message-ID on this side). One write
        transaction: the dedupe, the badge, the arrival and what it teaches about its
        sender land together or not at all."""
        msg = parse_headers(f.header)
        mid = message_id_of(msg)
        name, sender = sender_of(msg)
        subject = header_text(msg, "Subject")
        when = date_of(msg, f.internaldate)
        try:
            text = message_text(parse_message(f.header.rstrip(b"\r\n") + b"\r\n\r\n" + f.body_start))
        except Exception:  # noqa: BLE001 - an unreadable body still is an arrival
            text = ""
        language = sender_language_of(subject, text)
        # the migration's identity (needs a Message-ID; a message without one gets its
        # content identity when a forward reads it whole)
        identity = identity_from_headers(f.header, f.size) if f.size else None
        async with self.store.transaction():
            if mid and await self.arrivals.has_message_id(side, mid):
                return None
            if side == "new":
                await self._maybe_switched(msg, when)
            badge = await self.people.badge(sender, msg, f.flags)
            arrival_id = await self.arrivals.add(NewArrival(
                side, folder, uidvalidity, f.uid, mid, sender, name, recipients_of(msg), subject, when,
                f.size, language, badge, preview_of(text), f.header, identity))
            if arrival_id is None:
                return None
            if side == "old" and sender and sender not in self.own:
                await self.people.note_arrival(sender, name, language, badge in ("automated", "bounce"),
                                               when.timestamp() if when else time.time())
        self.bus.publish(ArrivalSeen(arrival_id, side, sender, subject, badge))
        return arrival_id

    # -- marks (settings) -------------------------------------------------------------------
    async def last_checked(self, side: str, folders: Iterable[str]) -> float | None:
        """When ``folders`` were last caught up, by this process or another on the same
        state file: the oldest check time among their marks (each sync sets it, whether
        or not mail came), None when none was ever checked (the check schedule reads it)."""
        times = []
        for folder in folders:
            mark = await self._get_mark(side, folder)
            if mark is not None and mark.checked:
                times.append(mark.checked)
        return min(times) if times else None

    async def _get_mark(self, side: str, folder: str) -> _Mark | None:
        v = await self.store.get_setting(f"monitor.mark.{side}.{folder}")
        if not v:
            return None
        return _Mark(int(v["uidvalidity"]), int(v["last_uid"]), float(v.get("checked", 0)))

    async def _set_mark(self, side: str, folder: str, mark: _Mark) -> None:
        await self.store.set_setting(f"monitor.mark.{side}.{folder}",
                                     {"uidvalidity": mark.uidvalidity, "last_uid": mark.last_uid,
                                      "checked": mark.checked})


# -- blocking helpers (worker threads) ---------------------------------------------------------

def _select(client: imapclient.IMAPClient, folder: str) -> tuple[int, int]:
    """EXAMINE the folder (read-only: nothing gets \\Seen); (UIDVALIDITY, UIDNEXT)."""
    try:
        info = client.select_folder(folder, readonly=True)
    except imapclient.exceptions.IMAPClientError as e:
        if is_connection_error(e):
            raise
        raise FolderError(f"Cannot open the folder {folder}: {sentence(e)}.") from None
    mark_exists(client)      # an EXISTS after this means the folder grew meanwhile
    uidvalidity = int(info.get(b"UIDVALIDITY", 0) or 0)
    uidnext = info.get(b"UIDNEXT")
    if not uidnext:  # a few servers omit it; the highest UID + 1 will do
        uids = client.search(["ALL"]) if info.get(b"EXISTS") else []
        uidnext = (max(uids) + 1) if uids else 1
    return uidvalidity, int(uidnext)


def _fetch(client: imapclient.IMAPClient, uids: list[int]) -> list[Fetched]:
    data = client.fetch(uids, _FETCH)
    out: list[Fetched] = []
    for uid in sorted(data):
        item = data[uid]
        body = b""
        for k, v in item.items():
            if isinstance(k, bytes) and k.startswith(b"BODY[TEXT]"):
                body = v or b""
        out.append(Fetched(uid=int(item.get(b"UID", uid)), size=int(item.get(b"RFC822.SIZE", 0) or 0),
                           internaldate=item.get(b"INTERNALDATE"), flags=tuple(item.get(b"FLAGS", ())),
                           header=item.get(b"BODY[HEADER]") or b"", body_start=body))
    return out


def _chunks(items: list[int], n: int) -> Iterable[list[int]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
