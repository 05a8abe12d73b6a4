"""A small in-memory stand-in for core.engine.Engine, used ONLY by the TUI snapshot tests
so their pictures are deterministic (fixed data, no clock, no servers). It exposes the
same facet API the dashboard calls; the Pilot tests in test_tui.py use the real Engine
against real servers."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from core.events import ActionChanged, ConnectionState, Event, EventBus, FolderProgress

NOW = dt.datetime(2026, 11, 26, 15, 30, tzinfo=dt.timezone.utc)


def clock() -> dt.datetime:
    return NOW


@dataclass(frozen=True)
class Arrival:
    id: int
    side: str
    folder: str
    uid: int
    message_id: str
    sender: str
    sender_name: str
    recipients: str
    subject: str
    date: str
    seen_at: float
    badge: str
    state: str
    language: str
    preview: str
    actions: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Correspondent:
    address: str
    name: str
    first_seen: str
    last_seen: str
    messages_from: int
    messages_to: int
    language: str
    automated: bool
    customer: bool
    notified: bool
    switched: bool
    last_reminded: str | None = None


@dataclass
class AutoReplyStatus:
    supported: bool
    active: bool
    script_name: str
    detail: str
    steps: tuple = ()


FOLDERS = [
    ("INBOX", "INBOX", 4210, 812_000_000, 4210, "verified"),
    ("Sent Messages", "Sent", 2981, 655_000_000, 2981, "done"),
    ("客户/墨西哥", "历史邮件-2025年前/客户/墨西哥", 1204, 233_000_000, 760, "copying"),
    ("报价单", "历史邮件-2025年前/报价单", 388, 120_500_000, 0, "planned"),
    ("Drafts", "Drafts", 12, 98_000, 0, "planned"),
    ("Junk", "Junk", 140, 2_100_000, 0, "skipped"),
]

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
     "new", {"remind": "done", "forward": "done"}, "Olá, gostaríamos de receber amostras ..."),
]

PEOPLE = [
    ("maria@importadora.mx", "María López", 312, 290, "2026-11-26", "es", False, True, True, False),
    ("ivan@stroy-snab.ru", "Иван Петров", 120, 131, "2026-11-26", "ru", False, True, True, False),
    ("lw@shanghai-logistics.cn", "王丽", 88, 92, "2026-11-25", "zh", False, True, True, True),
    ("ana@construtora.com.br", "Ana Souza", 4, 1, "2026-11-24", "pt", False, True, False, False),
    ("news@alibaba.com", "Alibaba.com", 260, 0, "2026-11-26", "en", True, False, False, False),
    ("tom@acme-tools.com", "Tom Becker", 45, 51, "2026-10-02", "en", False, True, True, True),
]


class _Checklist:
    def __init__(self, engine: "FakeEngine") -> None:
        from core.checklist import ITEMS, ChecklistItem

        self.engine = engine
        done = {"request": ("person", "ticked 2026-09-01 10:12"), "approval": ("person", "ticked 2026-09-03 16:40"),
                "service": ("person", "ticked 2026-09-10 09:00"),
                "login_old": ("engine", "logged in 2026-11-26 09:02 (imap.exmail.qq.com, IMAP4rev1, ID)"),
                "login_new": ("engine", "logged in 2026-11-26 09:02 (imap.gmail.com, 15 GB quota)"),
                "backup": ("engine", "8,935 messages in 6 folders written and verified 2026-11-20 14:02")}
        self._items = {}
        for spec in ITEMS:
            by, evidence = done.get(spec.key, (None, ""))
            self._items[spec.key] = ChecklistItem(
                key=spec.key, phase=spec.phase, title=spec.title, advice=spec.advice,
                state="done" if by else "open", by=by, evidence=evidence,
                note="Ask IT about the MX switch date" if spec.key == "setup" else "",
                due="2026-12-15" if spec.key == "notice" else None,
                provable=spec.provable, proof_hint=spec.proof_hint)

    async def items(self) -> list:
        return list(self._items.values())

    async def tick(self, key: str, done: bool = True) -> None:
        from core.errors import SwitchoverError
        from core.events import ChecklistChanged

        item = self._items[key]
        if item.provable:
            raise SwitchoverError(f"'{item.title}' cannot be ticked by hand: {item.proof_hint}.")
        self._items[key] = replace(item, state="done" if done else "open",
                                  by="person" if done else None)
        self.engine.publish(ChecklistChanged(key, self._items[key].state))

    async def skip(self, key: str) -> None:
        self._items[key] = replace(self._items[key], state="skipped", by="person")

    async def set_note(self, key: str, text: str) -> None:
        self._items[key] = replace(self._items[key], note=text)

    async def set_due(self, key: str, date: Any) -> None:
        self._items[key] = replace(self._items[key], due=date.isoformat() if date else None)

    async def refresh_evidence(self) -> None:
        return None

    async def progress(self) -> dict:
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

    async def plan(self) -> Any:
        raise NotImplementedError("plan is not part of the snapshot data")

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def cancel(self) -> None: ...


class _Monitor:
    def __init__(self) -> None:
        base = NOW.timestamp()
        self.rows = [Arrival(id=i, side="old", folder="INBOX", uid=100 + i, message_id=f"<m{i}@x>",
                             sender=s, sender_name=n, recipients="company12345@service.com",
                             subject=subj, date=(NOW - dt.timedelta(hours=3 * (7 - i))).isoformat(),
                             seen_at=base - 3 * 3600 * (7 - i) - (86400 if i < 4 else 0), badge=b,
                             state=st, language=lang, preview=body[:80], actions=acts)
                     for i, s, n, subj, b, lang, st, acts, body in
                     [(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]) for a in ARRIVALS]]
        self.bodies = {a[0]: a[8] for a in ARRIVALS}

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def arrivals(self, side: str = "old", offset: int = 0, limit: int = 50) -> list:
        return self.rows[offset:offset + limit]

    async def arrival(self, arrival_id: int) -> Arrival:
        return next(a for a in self.rows if a.id == arrival_id)

    async def body_text(self, arrival_id: int) -> str:
        return self.bodies[arrival_id]

    async def counts(self) -> dict:
        return {"unhandled": 4, "today": 3, "total": 6, "switched": 2}

    async def mark_handled(self, arrival_id: int) -> None: ...


class _Actions:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine
        self.next_id = 100

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def request(self, arrival_id: int, kind: str, delay: float | None = None) -> int:
        self.next_id += 1
        self.engine.publish(ActionChanged(self.next_id, arrival_id, kind, "pending"))
        return self.next_id

    async def cancel(self, action_id: int) -> bool:
        return True

    async def retry(self, action_id: int) -> None: ...

    async def for_arrival(self, arrival_id: int) -> list:
        return []


class _People:
    async def list(self, offset: int = 0, limit: int = 100, filter: str | None = None) -> list:
        rows = [Correspondent(address=a, name=n, first_seen="2021-03-01", last_seen=last,
                              messages_from=f, messages_to=t, language=lang, automated=auto,
                              customer=cust, notified=notif, switched=sw)
                for a, n, f, t, last, lang, auto, cust, notif, sw in PEOPLE]
        if filter:
            rows = [r for r in rows if filter in r.address or filter in r.name]
        return rows[offset:offset + limit]

    async def stats(self) -> dict:
        return {"correspondents": 412, "customers": 233, "notified": 198, "switched": 61}


class _AutoReply:
    async def status(self) -> AutoReplyStatus:
        return AutoReplyStatus(True, True, "switchover-vacation", "until 2027-02-28")


@dataclass
class _Transition:
    start: dt.date = dt.date(2026, 11, 1)
    close_date: dt.date = dt.date(2027, 2, 28)
    undo_seconds: float = 5.0


@dataclass
class _Config:
    transition: _Transition = field(default_factory=_Transition)
    state: Path = Path("/tmp/switchover-fake/state.db")


class FakeEngine:
    """Same surface as core.engine.Engine for what the dashboard uses."""

    def __init__(self) -> None:
        self.config = _Config()
        self.bus = EventBus()
        self.connection_state = {"old": "connected", "new": "reconnecting"}
        self.checklist = _Checklist(self)
        self.migration = _Migration()
        self.monitor = _Monitor()
        self.actions = _Actions(self)
        self.correspondents = _People()
        self.autoreply = _AutoReply()
        self.backups = None

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def publish(self, event: Event) -> None:
        if isinstance(event, ConnectionState):
            self.connection_state[event.side] = event.state
        self.bus.publish(event)

    def needs_secret(self, side: str) -> bool:
        return False

    def set_secret(self, side: str, secret: str) -> None: ...

    async def close(self) -> None: ...
