"""Who the old address talks to: the per-person state the transition needs — how much
mail went each way, their language, notified, switched, reminded, automated, customer.
The only writer of ``correspondents`` (the history scan, the watch and the actions
all tell this facet what they learned), and its queries.

Addresses are lowercase; the user's own addresses never become correspondents.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any, Iterable, Sequence

from ..config import Config
from ..context import Accounts, Blocking
from ..events import EventBus
from ..mail.dates import parse_date
from ..store import Store
from .arrivals import Arrivals
from .classify import badge, own_addresses
from .history import Counted, HistoryScan


@dataclass
class Correspondent:
    address: str
    name: str = ""
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    messages_from: int = 0
    messages_to: int = 0
    language: str = ""
    automated: bool = False
    customer: bool = False
    notified: float | None = None
    switched: float | None = None
    last_reminded: float | None = None
    last_old_arrival: float | None = None


_FILTERS = {
    "customers": "customer=1",
    "switched": "switched IS NOT NULL",
    "not switched": "switched IS NULL AND automated=0",
    "notified": "notified IS NOT NULL",
    "not notified": "notified IS NULL AND automated=0",
    "automated": "automated=1",
    "people": "automated=0",
}
_ORDERS = {
    "last_seen": "COALESCE(MAX(COALESCE(last_seen,''), COALESCE(datetime(last_old_arrival,'unixepoch'),'')),'') DESC",
    "first_seen": "first_seen ASC",
    "messages": "(messages_from + messages_to) DESC",
    "address": "address ASC",
    "name": "name COLLATE NOCASE ASC",
    "switched": "switched DESC",
}
_SAVE_COUNTS = (
    "INSERT INTO correspondents(address, name, first_seen, last_seen, messages_from, messages_to, "
    "language, automated, last_old_arrival) VALUES(?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(address) DO UPDATE SET "
    "name = COALESCE(NULLIF(excluded.name,''), correspondents.name), "
    "first_seen = CASE WHEN correspondents.first_seen IS NULL OR excluded.first_seen < correspondents.first_seen "
    "  THEN excluded.first_seen ELSE correspondents.first_seen END, "
    "last_seen = CASE WHEN correspondents.last_seen IS NULL OR excluded.last_seen > correspondents.last_seen "
    "  THEN excluded.last_seen ELSE correspondents.last_seen END, "
    "messages_from = correspondents.messages_from + excluded.messages_from, "
    "messages_to = correspondents.messages_to + excluded.messages_to, "
    "language = CASE WHEN COALESCE(correspondents.language,'') IN ('', 'en') AND excluded.language <> '' "
    "  THEN excluded.language ELSE correspondents.language END, "
    # a person once, a person always: automated only while every message was
    "automated = CASE WHEN excluded.messages_to > 0 THEN 0 "
    "  WHEN excluded.messages_from > 0 AND excluded.automated = 0 THEN 0 "
    "  WHEN correspondents.messages_from + correspondents.messages_to = 0 THEN excluded.automated "
    "  ELSE correspondents.automated END, "
    "last_old_arrival = MAX(COALESCE(correspondents.last_old_arrival, 0), "
    "  COALESCE(excluded.last_old_arrival, 0))")


def _ts(value: float | dt.datetime | None) -> float:
    if value is None:
        return time.time()
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


class Correspondents:
    """``engine.correspondents``."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, arrivals: Arrivals) -> None:
        self.store = store
        self.config = config
        self.arrivals = arrivals
        self.own = own_addresses(config)
        self._scan = HistoryScan(store, bus, accounts, blocking, config, self)

    async def scan_history(self) -> int:
        """Scan what is new in every folder of the old mailbox since the last scan (see
        core/transition/history.py); returns how many messages were read."""
        return await self._scan.run()

    # -- what others learned ------------------------------------------------------------
    async def save_counts(self, counted: Iterable[Counted]) -> None:
        """Add one chunk of the history scan's counts (one transaction)."""
        rows = [(c.address, c.name, c.first_seen, c.last_seen, c.messages_from, c.messages_to,
                 c.language, int(c.automated), c.last_from) for c in counted]
        await self.store.executemany(_SAVE_COUNTS, rows)

    async def refresh_customers(self) -> None:
        """A customer is someone mail went to and came from, who is not a robot."""
        await self.store.run("UPDATE correspondents SET customer = "
                             "(messages_from > 0 AND messages_to > 0 AND automated = 0)")

    async def note_arrival(self, address: str, name: str, language: str, automated: bool,
                           when: float) -> None:
        """They just wrote to the old address: what they wrote tells their language better
        than old subjects."""
        addr = self._address(address)
        if not addr:
            return
        await self.store.run(
            "INSERT INTO correspondents(address, name, language, automated, last_old_arrival) "
            "VALUES(?,?,?,?,?) ON CONFLICT(address) DO UPDATE SET "
            "name=COALESCE(NULLIF(correspondents.name,''), excluded.name), "
            "language=COALESCE(NULLIF(excluded.language,''), correspondents.language), "
            "last_old_arrival=MAX(COALESCE(correspondents.last_old_arrival, 0), excluded.last_old_arrival)",
            (addr, name, language, int(automated), when))

    async def mark_switched(self, address: str, when: float | dt.datetime | None = None) -> None:
        """They wrote to the new address (at ``when``); the earliest time is kept."""
        addr = self._address(address)
        if not addr:
            return
        await self.store.run(
            "INSERT INTO correspondents(address, switched) VALUES(?, ?) ON CONFLICT(address) DO UPDATE SET "
            "switched = CASE WHEN correspondents.switched IS NULL OR excluded.switched < correspondents.switched "
            "THEN excluded.switched ELSE correspondents.switched END", (addr, _ts(when)))

    async def mark_notified(self, address: str, when: float | dt.datetime | None = None) -> None:
        """The change notice reached them (for the notices feature)."""
        addr = self._address(address)
        if not addr:
            return
        await self.store.run(
            "INSERT INTO correspondents(address, notified) VALUES(?, ?) ON CONFLICT(address) DO UPDATE SET "
            "notified = COALESCE(correspondents.notified, excluded.notified)", (addr, _ts(when)))

    async def mark_reminded(self, address: str, when: float | None = None) -> None:
        """A reminder reached them (the automatic rule reminds once per N days)."""
        addr = address.strip().strip("<>").lower()
        if not addr:
            return
        await self.store.run(
            "INSERT INTO correspondents (address, last_reminded) VALUES (?, ?) "
            "ON CONFLICT(address) DO UPDATE SET last_reminded=excluded.last_reminded", (addr, _ts(when)))

    def _address(self, address: str) -> str:
        addr = address.strip().strip("<>").lower()
        return "" if not addr or addr in self.own else addr

    # -- queries ----------------------------------------------------------------------------
    async def list(self, *, offset: int = 0, limit: int = 100, filter: str | None = None,
                   order: str = "last_seen") -> list[Correspondent]:
        """A page of correspondents. ``filter``: one of customers, switched, not switched,
        notified, not notified, automated, people — or any text, matched against address
        and name. ``order``: last_seen, first_seen, messages, address, name, switched."""
        sql = "SELECT * FROM correspondents"
        params: list[Any] = []
        if filter:
            key = filter.strip().lower()
            if key in _FILTERS:
                sql += " WHERE " + _FILTERS[key]
            else:
                sql += " WHERE address LIKE ? OR name LIKE ?"
                params += [f"%{filter.strip()}%"] * 2
        sql += f" ORDER BY {_ORDERS.get(order, _ORDERS['last_seen'])}, address LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [_row(r) for r in await self.store.fetchall(sql, params)]

    async def get(self, address: str) -> Correspondent | None:
        r = await self.store.fetchone("SELECT * FROM correspondents WHERE address=?",
                                      (address.strip().lower(),))
        return _row(r) if r else None

    async def badge(self, sender: str, msg: Message, flags: Sequence[object] = ()) -> str:
        """The feed badge of a message from ``sender`` (core/transition/classify.py)."""
        return badge(msg, flags, await self.get(sender) if sender else None)

    async def switched_count(self) -> int:
        return int(await self.store.scalar("SELECT COUNT(*) FROM correspondents WHERE switched IS NOT NULL",
                                           default=0))

    async def stats(self) -> dict[str, Any]:
        """total (people, not robots), customers, notified, switched, automated, and
        days_since_business_mail: days since a person last wrote to the old address
        (None when nobody has)."""
        r = await self.store.fetchone(
            "SELECT SUM(automated=0) AS total, SUM(customer=1 AND automated=0) AS customers, "
            "SUM(notified IS NOT NULL AND automated=0) AS notified, "
            "SUM(switched IS NOT NULL AND automated=0) AS switched, SUM(automated=1) AS automated, "
            "MAX(CASE WHEN automated=0 THEN last_old_arrival END) AS last_person FROM correspondents")
        assert r is not None     # an aggregate always answers one row
        last_arrival = await self.arrivals.last_from_a_person()
        last = max([v for v in (r["last_person"], last_arrival) if v] or [0.0]) or None
        days = int((time.time() - last) // 86400) if last else None
        return {"total": int(r["total"] or 0), "customers": int(r["customers"] or 0),
                "notified": int(r["notified"] or 0), "switched": int(r["switched"] or 0),
                "automated": int(r["automated"] or 0), "days_since_business_mail": days,
                "last_business_mail": last}


def _row(r: Any) -> Correspondent:
    return Correspondent(
        address=r["address"], name=r["name"] or "", first_seen=parse_date(r["first_seen"]),
        last_seen=parse_date(r["last_seen"]), messages_from=r["messages_from"] or 0,
        messages_to=r["messages_to"] or 0, language=r["language"] or "",
        automated=bool(r["automated"]), customer=bool(r["customer"]), notified=r["notified"],
        switched=r["switched"], last_reminded=r["last_reminded"], last_old_arrival=r["last_old_arrival"])
