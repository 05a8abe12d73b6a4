"""Test data for the dashboard.

``FakeEngine``: an in-memory stand-in for core.engine.Engine, used ONLY where a real
engine on Dovecot is impractical — a picture that must be the same every time (the
snapshot tests, a few wiring tests): fixed data, a frozen clock, no servers. Everything
it hands the panes is the engine's own record type (a real ``Config``; ``Arrival``,
``ActionRow``, ``Preview``, ``Correspondent``, ``ChecklistItem``, ``AutoReplyStatus``,
``FolderProgress``), built here with fixed values, so the panes see exactly the types the
real engine gives them and need no branch for either. The keyboard flows against real
servers are in test_tui*.py.

``record_arrivals``: record arrivals in a real state file through their owner
(core/transition/arrivals.py), as the watch does (then an ``ArrivalSeen`` when the
writer is the dashboard's own engine) — for the live-feed tests and bench/tui_memory.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from switchover.core.checklist import ITEMS, ChecklistItem, Proof
from switchover.core.config import Account, Config, Endpoint, Identity, TransitionSettings
from switchover.core.errors import SwitchoverError
from switchover.core.events import (ActionChanged, ArrivalSeen, ChecklistChanged, ConnectionState,
                                    Event, EventBus, FolderProgress)
from switchover.core.migrate.records import Plan, RunInfo
from switchover.core.migrate.verify import FolderVerify, Mismatch, VerifyReport
from switchover.core.transition.actions import Preview
from switchover.core.transition.arrivals import Arrival, Arrivals, NewArrival
from switchover.core.transition.autoreply import AutoReplyStatus
from switchover.core.transition.ledger import ActionRow
from switchover.core.transition.people import Correspondent

NOW = dt.datetime(2026, 11, 26, 15, 30, tzinfo=dt.timezone.utc)


def clock() -> dt.datetime:
    return NOW


FOLDERS = [
    ("INBOX", "INBOX", 4210, 812_000_000, 4210, "verified"),
    ("Sent Messages", "Sent", 2981, 655_000_000, 2981, "done"),
    ("客户/墨西哥", "历史邮件-2025年前/客户/墨西哥", 1204, 233_000_000, 760, "copying"),
    ("报价单", "历史邮件-2025年前/报价单", 388, 120_500_000, 0, "planned"),
    ("Drafts", "Drafts", 12, 98_000, 0, "planned"),
    ("Junk", "Junk", 140, 2_100_000, 0, "skipped"),
]

# id, sender, name, subject, badge, language, state, actions, body
ARRIVALS = [
    (7, "maria@importadora.mx", "María López", "RE: Cotización 2026 - válvulas DN50", "customer", "es",
     "new", {}, "Hola John,\n\nGracias por la cotización. ¿Pueden enviar 200 unidades más antes de diciembre?\n\nSaludos,\nMaría"),
    (6, "ivan@stroy-snab.ru", "Иван Петров", "Order 4471 — payment sent", "notified", "ru",
     "new", {"forward": "done"}, "Dear John, payment for order 4471 was sent today. Ivan"),
    (5, "news@alibaba.com", "Alibaba.com", "Your weekly buyer digest", "automated", "en",
     "handled", {"handled": "done"}, "Top buyer requests this week ..."),
    (4, "MAILER-DAEMON@mx.example.net", "Mail Delivery System", "Undelivered Mail Returned to Sender",
     "bounce", "en", "new", {}, "This is the mail system at host mx.example.net ..."),
    (3, "lw@shanghai-logistics.cn", "王丽", "提单草稿 B/L draft 8812", "switched", "zh",
     "new", {"remind": "failed"}, "John 你好，附件是提单草稿，请确认。"),
    (2, "ana@construtora.com.br", "Ana Souza", "Pedido de amostras", "new sender", "pt",
     "new", {"remind": "doubt"}, "Olá, gostaríamos de receber amostras ..."),
]

# address, name, from, to, last seen, language, automated, customer, notified, switched
PEOPLE = [
    ("maria@importadora.mx", "María López", 312, 290, "2026-11-26", "es", False, True, True, False),
    ("ivan@stroy-snab.ru", "Иван Петров", 120, 131, "2026-11-26", "ru", False, True, True, False),
    ("lw@shanghai-logistics.cn", "王丽", 88, 92, "2026-11-25", "zh", False, True, True, True),
    ("ana@construtora.com.br", "Ana Souza", 4, 1, "2026-11-24", "pt", False, True, False, False),
    ("news@alibaba.com", "Alibaba.com", 260, 0, "2026-11-26", "en", True, False, False, False),
    ("tom@acme-tools.com", "Tom Becker", 45, 51, "2026-10-02", "en", False, True, True, True),
]
OLD_ADDRESS = "company12345@service.com"
NEW_ADDRESS = "john.wu@company.example"


def _stamp(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=9, tzinfo=dt.timezone.utc)


def _config() -> Config:
    """A real Config for the fake (its servers are never contacted)."""
    here = Path("/tmp/switchover-fake")

    def account(side: str, user: str) -> Account:
        nowhere = Endpoint("127.0.0.1", 9, "none")
        return Account(side=side, provider="custom", imap=nowhere, smtp=nowhere, username=user,
                       password="not-used")

    return Config(path=here / "switchover.yaml",
                  identity=Identity("John Wu", "Example Trading Co.", OLD_ADDRESS, NEW_ADDRESS),
                  old=account("old", OLD_ADDRESS), new=account("new", NEW_ADDRESS),
                  state=here / "state.db",
                  transition=TransitionSettings(start=dt.date(2026, 11, 1),
                                                close_date=dt.date(2027, 2, 28), undo_seconds=5.0))


class _Checklist:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine
        done = {"request": ("person", "ticked 2026-09-01 10:12"), "approval": ("person", "ticked 2026-09-03 16:40"),
                "service": ("person", "ticked 2026-09-10 09:00"),
                "login_old": ("engine", "logged in 2026-11-26 09:02 (imap.exmail.qq.com, IMAP4rev1, ID)"),
                "login_new": ("engine", "logged in 2026-11-26 09:02 (imap.gmail.com, 15 GB quota)"),
                "backup": ("engine", "8,935 messages in 6 folders written and verified 2026-11-20 14:02")}
        self._items: dict[str, ChecklistItem] = {}
        for spec in ITEMS:
            by, evidence = done.get(spec.key, (None, ""))
            self._items[spec.key] = ChecklistItem(
                key=spec.key, phase=spec.phase, title=spec.title, advice=spec.advice,
                state="done" if by else "open", by=by, evidence=evidence,
                note="Ask IT about the MX switch date" if spec.key == "setup" else "",
                due="2026-12-15" if spec.key == "notice" else None,
                provable=spec.provable, proof_hint=spec.proof_hint, dated=spec.dated)

    async def items(self) -> list[ChecklistItem]:
        return list(self._items.values())

    async def item(self, key: str) -> ChecklistItem:
        return self._items[key]

    async def tick(self, key: str, done: bool = True) -> ChecklistItem:
        item = self._items[key]
        if item.provable:
            raise SwitchoverError(f"'{item.title}' cannot be ticked by hand: {item.proof_hint}.")
        self._items[key] = replace(item, state="done" if done else "open",
                                  by="person" if done else None)
        self.engine.publish(ChecklistChanged(key, self._items[key].state))
        return self._items[key]

    async def skip(self, key: str) -> ChecklistItem:
        self._items[key] = replace(self._items[key], state="skipped", by="person")
        return self._items[key]

    async def set_note(self, key: str, text: str) -> None:
        self._items[key] = replace(self._items[key], note=text)

    async def set_due(self, key: str, date: dt.date | None) -> None:
        self._items[key] = replace(self._items[key], due=date.isoformat() if date else None)

    async def refresh_evidence(self) -> list[Proof]:
        return []

    async def recheck(self) -> list[Proof]:
        return []

    async def check_logins(self, *, explicit: bool = True) -> dict[str, str]:
        return {}


class _Migration:
    state = "running"

    async def folder_rows(self) -> list[FolderProgress]:
        rows = []
        for src, dst, total, size, done, state in FOLDERS:
            copying = state == "copying"
            rows.append(FolderProgress(
                job="migrate", source=src, destination=dst, state=state, total_messages=total,
                total_bytes=size, done_messages=done, done_bytes=int(size * done / total),
                msgs_per_s=42.0 if copying else 0.0, bytes_per_s=8.4e6 if copying else 0.0,
                eta_s=(total - done) / 42.0 if copying else None))
        return rows

    async def last_run(self) -> RunInfo | None:
        return None

    async def plan(self) -> Plan:
        raise SwitchoverError("plan is not part of the snapshot data")

    async def verify(self) -> VerifyReport:
        """One folder with one message missing in the new mailbox."""
        missing = Mismatch("id", "Order 12", source_uid=4711)
        return VerifyReport([FolderVerify("INBOX", "INBOX", 670, 669, missing=[missing])], ok=False)

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def cancel(self) -> None: ...
    def stop(self) -> None: ...


class _Monitor:
    def __init__(self) -> None:
        base = NOW.timestamp()
        self.rows = [Arrival(id=i, side="old", folder="INBOX", uid=100 + i, message_id=f"<m{i}@x>",
                             sender=s, sender_name=n, recipients=[OLD_ADDRESS], subject=subj,
                             date=NOW - dt.timedelta(hours=3 * (7 - i)),
                             seen_at=base - 3 * 3600 * (7 - i) - (86400 if i < 4 else 0), badge=b,
                             state=st, language=lang, preview=body[:80], actions=dict(acts))
                     for i, s, n, subj, b, lang, st, acts, body in ARRIVALS]
        self.bodies = {a[0]: a[8] for a in ARRIVALS}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        if stop is not None:
            await stop.wait()

    def stop(self) -> None: ...
    def reconnect_now(self) -> None: ...

    async def arrivals(self, *, side: str = "old", offset: int = 0, limit: int = 50) -> list[Arrival]:
        return self.rows[offset:offset + limit]

    async def arrival(self, arrival_id: int) -> Arrival | None:
        return next((a for a in self.rows if a.id == arrival_id), None)

    async def body_text(self, arrival_id: int) -> str:
        return self.bodies[arrival_id]

    async def counts(self) -> dict[str, int]:
        return {"unhandled": 4, "today": 3, "total": 6, "switched": 2}

    async def mark_handled(self, arrival_id: int, handled: bool = True) -> None: ...


class _Actions:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine
        self.next_id = 100
        self.requests: list[tuple[int, str, bool]] = []
        self.resolved: list[tuple[int, bool]] = []
        self.rows: dict[int, ActionRow] = {}

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def _row(self, action_id: int, arrival: Arrival | None, kind: str, state: str,
             not_before: float) -> ActionRow:
        return ActionRow(id=action_id, arrival_id=arrival.id if arrival else None, kind=kind,
                         state=state, requested=NOW.timestamp(), not_before=not_before, done=None,
                         recipient=arrival.sender if arrival else None, outcome=None,
                         attempts=0 if state == "pending" else 1, auto=False)

    async def request(self, arrival_id: int, kind: str, *, delay: float | None = None,
                      auto: bool = False, confirmed: bool = False) -> int:
        self.next_id += 1
        self.requests.append((arrival_id, kind, confirmed))
        wait = self.engine.config.transition.undo_seconds if delay is None else delay
        self.rows[self.next_id] = self._row(self.next_id, await self.engine.monitor.arrival(arrival_id),
                                            kind, "pending", time.time() + wait)
        self.engine.publish(ActionChanged(self.next_id, arrival_id, kind, "pending"))
        return self.next_id

    async def get(self, action_id: int) -> ActionRow:
        return self.rows[action_id]

    async def cancel(self, action_id: int) -> bool:
        return True

    async def retry(self, action_id: int) -> int:
        return action_id

    async def for_arrival(self, arrival_id: int) -> list[ActionRow]:
        a = await self.engine.monitor.arrival(arrival_id)
        return [self._row(arrival_id * 10 + i, a, kind, state, NOW.timestamp())
                for i, (kind, state) in enumerate((a.actions if a else {}).items())]

    async def remind_warning(self, arrival_id: int) -> str | None:
        a = await self.engine.monitor.arrival(arrival_id)
        if a is not None and a.badge == "automated":
            return (f"{a.sender} sends automated mail (List-Unsubscribe): a reminder would go "
                    f"to a mailing list, not a person.")
        return None

    async def preview(self, arrival_id: int, kind: str) -> Preview:
        a = await self.engine.monitor.arrival(arrival_id)
        assert a is not None
        return Preview(
            kind=kind, to=f"{a.sender_name} <{a.sender}>", subject=f"Re: {a.subject}",
            language=a.language or "en",
            text=(f"Hello {a.sender_name},\n\nthank you for your message. Please note my new "
                  f"address: {NEW_ADDRESS} — the old one, {OLD_ADDRESS}, stops on "
                  f"2027-02-28.\n\nBest regards,\nJohn Wu"), raw=b"")

    async def resolve_doubt(self, action_id: int, delivered: bool) -> int:
        self.resolved.append((action_id, delivered))
        return action_id


#: the fake people's groups (the real engine guesses them from folders, domains, replies)
PEOPLE_GROUPS = {"maria@importadora.mx": "customer", "ivan@stroy-snab.ru": "customer",
                 "lw@shanghai-logistics.cn": "logistics", "ana@construtora.com.br": "customer",
                 "news@alibaba.com": "newsletter", "tom@acme-tools.com": "supplier"}
_ORDER = ("customer", "supplier", "logistics", "internal", "business", "automated", "newsletter", "bounce",
          "cold", "own")


class _People:
    async def list(self, *, offset: int = 0, limit: int = 100, filter: str | None = None,
                   order: str = "last_seen") -> list[Correspondent]:
        rows = [Correspondent(address=a, name=n, first_seen=_stamp("2021-03-01"), last_seen=_stamp(last),
                              messages_from=f, messages_to=t, language=lang, automated=auto,
                              customer=cust, notified=NOW.timestamp() if notif else None,
                              switched=NOW.timestamp() if sw else None, group=PEOPLE_GROUPS[a],
                              notify=not auto, state="switched" if sw else ("sent" if notif else "not notified"))
                for a, n, f, t, last, lang, auto, cust, notif, sw in PEOPLE]
        if order == "group":
            rows.sort(key=lambda r: (_ORDER.index(r.group), -(r.messages_from + r.messages_to)))
        if filter and filter.startswith("group:"):
            rows = [r for r in rows if r.group == filter[6:]]
        elif filter:
            rows = [r for r in rows if filter in r.address or filter in r.name]
        return rows[offset:offset + limit]

    async def stats(self) -> dict[str, Any]:
        return {"total": 412, "customers": 233, "notify": 380, "notified": 198, "bounced": 3, "switched": 61,
                "switched_week": 9, "groups": {"customer": 233, "supplier": 41, "logistics": 12, "internal": 9,
                                               "business": 70, "newsletter": 31, "automated": 16},
                "trend": [20, 22, 25, 25, 30, 34, 38, 41, 45, 48, 52, 55, 58, 61]}


class _AutoReply:
    async def status(self) -> AutoReplyStatus:
        return AutoReplyStatus(True, True, "switchover-vacation", "until 2027-02-28")


class FakeEngine:
    """Same surface as core.engine.Engine for what the dashboard uses."""

    def __init__(self) -> None:
        self.config = _config()
        self.bus = EventBus()
        self.connection_state = {"old": "connected", "new": "reconnecting"}
        self.checklist = _Checklist(self)
        self.migration = _Migration()
        self.monitor = _Monitor()
        self.actions = _Actions(self)
        self.correspondents = _People()
        self.autoreply = _AutoReply()
        self.secrets: dict[str, str] = {}

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def publish(self, event: Event) -> None:
        if isinstance(event, ConnectionState):
            self.connection_state[event.side] = event.state
        self.bus.publish(event)

    async def changed_elsewhere(self) -> bool:
        return False

    def account(self, side: str) -> Account:
        return self.config.account(side)

    def needs_secret(self, side: str) -> bool:
        return False

    def set_secret(self, side: str, secret: str) -> None:
        self.secrets[side] = secret

    async def close(self) -> None: ...


# -- arrivals into a real state file ------------------------------------------------------

_BADGES = ("customer", "new sender", "notified", "automated", "customer", "switched")


def _new_arrival(uid: int) -> NewArrival:
    sender = f"buyer{uid}@customer{uid % 97}.example"
    subject = f"Quote request {uid} — valves DN{50 + uid % 7 * 10}"
    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    headers = (f"From: Buyer {uid} <{sender}>\r\nTo: {OLD_ADDRESS}\r\nSubject: {subject}\r\n"
               f"Date: {when:%a, %d %b %Y %H:%M:%S +0000}\r\n"
               f"Message-ID: <q{uid}@customer.example>\r\nReceived: from mx.customer.example by "
               f"mx.service.com with ESMTPS id {uid:08x}\r\n" + "X-Pad: " + "x" * 1200 + "\r\n")
    return NewArrival(side="old", folder="INBOX", uidvalidity=1, uid=uid,
                      message_id=f"<q{uid}@customer.example>", sender=sender,
                      sender_name=f"Buyer {uid}", recipients=[OLD_ADDRESS], subject=subject,
                      date=when, size=4000 + uid % 5000, language="en",
                      badge=_BADGES[uid % len(_BADGES)],
                      preview=f"Hello, please send your best price for {uid % 500 + 1} valves. " * 3,
                      headers=headers.encode("utf-8"), identity=None)


async def record_arrivals(store: Any, first_uid: int, n: int, *,
                          publish: Callable[[Event], None] | None = None) -> list[int]:
    """Record ``n`` old-side arrivals (uids ``first_uid`` …) through their owner in one
    transaction, newest last; ``publish`` (the writer's own engine.publish) announces each
    as the watch does. Returns their ids."""
    arrivals = Arrivals(store)
    ids: list[int] = []
    async with store.transaction():
        for uid in range(first_uid, first_uid + n):
            arrival_id = await arrivals.add(_new_arrival(uid))
            assert arrival_id is not None, f"uid {uid} was recorded already"
            ids.append(arrival_id)
    if publish is not None:
        for uid, arrival_id in enumerate(ids, first_uid):
            publish(ArrivalSeen(arrival_id, "old", f"buyer{uid}@customer{uid % 97}.example",
                                f"Quote request {uid}", _BADGES[uid % len(_BADGES)]))
    return ids


def bare_config(directory: Path, **transition: Any) -> Path:
    """A valid switchover.yaml whose servers are never contacted (start_background=False):
    enough for a dashboard over a real state file."""
    import os

    import yaml

    def side(user: str) -> dict[str, Any]:
        return {"provider": "custom", "imap": {"host": "127.0.0.1", "port": 9, "security": "none"},
                "smtp": {"host": "127.0.0.1", "port": 9, "security": "none"},
                "username": user, "password": "not-used"}

    data: dict[str, Any] = {
        "identity": {"name": "Ada", "old_address": OLD_ADDRESS,
                     "new_address": NEW_ADDRESS, "language": "en"},
        "old": side(OLD_ADDRESS), "new": side(NEW_ADDRESS),
        "state": str(directory / "switchover.sqlite")}
    if transition:
        data["transition"] = transition
    path = directory / "switchover.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    os.chmod(path, 0o600)
    return path

