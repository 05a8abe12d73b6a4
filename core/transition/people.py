"""Who the old address talks to: the per-person state the transition needs — how much
mail went each way, their group (with the evidence), organisation and aliases, the
language of their own words, what the user chose (notify, group, language), notified,
bounced, switched, reminded. The only writer of ``correspondents`` and ``people_groups``
(the history scan, the watch, the notice campaign's events and the user's choices all
come through here), and its queries; the judging is core/people/'s.

Addresses are lowercase; the user's own configured addresses never become
correspondents. A choice overrides the guess and no scan ever overwrites it.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any, Callable, Iterable, Sequence

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import SwitchoverError
from ..events import Event, EventBus, NoticeChanged
from ..mail.dates import parse_date
from ..mail.language import majority
from ..people import groups as G
from ..people.audience import GROUPS, NOTICE_LANGUAGES, NOTIFY_GROUPS, Recipient
from ..people.choices import KEEP, Choice, changes
from ..people.csvfile import CsvRow
from ..store import Store
from .arrivals import Arrivals
from .classify import badge, own_addresses
from .history import Counted, HistoryScan

#: the states a person's notice shows (the CSV's ``state`` column)
STATES = ("not notified", "queued", "sent", "bounced", "switched")


@dataclass
class Correspondent:
    address: str
    name: str = ""
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    messages_from: int = 0
    messages_to: int = 0
    language: str = ""          # the user's choice, else the guess
    automated: bool = False
    customer: bool = False      # in the customer group
    notified: float | None = None
    switched: float | None = None
    last_reminded: float | None = None
    last_old_arrival: float | None = None
    group: str = "business"     # the user's choice, else the guess
    group_guess: str = ""
    evidence: str = ""
    organisation: str = ""
    alias_key: str = ""         # shared by the addresses of one person ("" alone)
    language_guess: str = ""
    notify: bool = True         # the user's choice, else the group's setting
    choice_group: str | None = None
    choice_language: str | None = None
    choice_notify: bool | None = None
    state: str = "not notified"
    bounced: float | None = None
    bounce_reason: str = ""


_GROUP = "COALESCE(choice_group, group_guess, 'business')"
_NOTIFY = (f"COALESCE(choice_notify, (SELECT g.notify FROM people_groups g WHERE g.name = {_GROUP}), "
           f"{_GROUP} IN ({', '.join(repr(g) for g in NOTIFY_GROUPS)}))")
_SELECT = f"SELECT *, {_GROUP} AS grp, {_NOTIFY} AS notify_now FROM correspondents"
_ROBOT = "('automated', 'newsletter', 'bounce', 'own')"
_FILTERS = {
    **{g: f"{_GROUP} = '{g}'" for g in GROUPS},
    **{f"group:{g}": f"{_GROUP} = '{g}'" for g in GROUPS},
    "customers": f"{_GROUP} = 'customer'",
    "switched": "switched IS NOT NULL",
    "not switched": f"switched IS NULL AND {_GROUP} NOT IN {_ROBOT}",
    "notified": "notified IS NOT NULL",
    "not notified": f"notified IS NULL AND {_NOTIFY}",
    "bounced": "bounced IS NOT NULL",
    "automated": f"{_GROUP} IN {_ROBOT}",      # every robot kind; "group:automated" the one group
    "people": f"{_GROUP} NOT IN {_ROBOT}",
    "notify": _NOTIFY,
    "silent": f"NOT {_NOTIFY}",
}
_ORDERS = {
    "last_seen": "COALESCE(MAX(COALESCE(last_seen,''), COALESCE(datetime(last_old_arrival,'unixepoch'),'')),'') DESC",
    "first_seen": "first_seen ASC",
    "messages": "(messages_from + messages_to) DESC",
    "address": "address ASC",
    "name": "name COLLATE NOCASE ASC",
    "switched": "switched DESC",
    # groups in their order, one person's addresses together, the busiest first
    "group": ("CASE " + " ".join(f"WHEN {_GROUP}='{g}' THEN {i}" for i, g in enumerate(GROUPS)) + " END, "
              "COALESCE(NULLIF(alias_key,''), address), (messages_from + messages_to) DESC"),
}
_COUNT_COLS = ("name", "first_seen", "last_seen", "messages_from", "messages_to", "language", "automated",
               "last_old_arrival", "auto_from", "list_from", "bounce_from", "sent_as", "folders", "lang_votes")
_SAVE = (f"INSERT INTO correspondents(address, {', '.join(_COUNT_COLS)}) VALUES ({', '.join('?' * 15)}) "
         "ON CONFLICT(address) DO UPDATE SET " + ", ".join(f"{c}=excluded.{c}" for c in _COUNT_COLS))


def _ts(value: float | dt.datetime | None) -> float:
    if value is None:
        return time.time()
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def _json(text: str | None) -> dict[str, int]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, n in b.items():
        out[k] = out.get(k, 0) + n
    return out


def _language(votes: dict[str, int]) -> str:
    own = {k: n for k, n in votes.items() if not k.startswith(">")}
    return majority(own) or majority({k[1:]: n for k, n in votes.items() if k.startswith(">")})


def _merge(old: Any, c: Counted) -> tuple[Any, ...]:
    """One person's row after a batch: counts add up, the earliest / latest dates win, a
    person once is a person always (automated only while every message was)."""
    folders = _add(_json(old["folders"]) if old else {}, c.folders)
    votes = _add(_json(old["lang_votes"]) if old else {}, c.votes)
    dates = [d for d in (old["first_seen"] if old else None, old["last_seen"] if old else None,
                         c.first_seen, c.last_seen) if d]
    first, last = (min(dates), max(dates)) if dates else (None, None)
    n_from = (old["messages_from"] if old else 0) + c.messages_from
    n_to = (old["messages_to"] if old else 0) + c.messages_to
    auto = (old["auto_from"] if old else 0) + c.auto_from
    lists = (old["list_from"] if old else 0) + c.list_from
    bounces = (old["bounce_from"] if old else 0) + c.bounce_from
    automated = bool(n_from and not n_to and auto + lists + bounces >= n_from)
    name = c.name or (old["name"] if old else "") or ""
    arrival = max(old["last_old_arrival"] or 0 if old else 0, c.last_from or 0) or None
    sent_as = (old["sent_as"] if old else 0) + c.sent_as
    return (c.address, name, first, last, n_from, n_to, _language(votes), int(automated), arrival,
            auto, lists, bounces, sent_as, json.dumps(folders, ensure_ascii=False), json.dumps(votes))


class Correspondents:
    """``engine.correspondents``."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, arrivals: Arrivals) -> None:
        self.store = store
        self.config = config
        self.arrivals = arrivals
        self.own = own_addresses(config)
        notices = getattr(config, "notices", None)
        self.company = G.company_domains(config.identity.new_address, config.identity.old_address,
                                         tuple(getattr(notices, "internal_domains", ()) or ()))
        #: the languages the notices have texts for, asked when an audience is built (the
        #: engine hands the composer's: building it loads the templates, not every command
        #: needs that)
        self.template_languages: Callable[[], tuple[str, ...]] = lambda: NOTICE_LANGUAGES
        self._scan = HistoryScan(store, bus, accounts, blocking, config, self)

    async def scan_history(self) -> int:
        """Scan what is new in every folder of the old mailbox since the last scan (see
        core/transition/history.py), then judge everyone's group; returns how many
        messages were read."""
        return await self._scan.run()

    # -- what others learned ------------------------------------------------------------
    async def save_counts(self, counted: Iterable[Counted]) -> None:
        """Add one batch of the history scan's counts (one transaction; the scan's mark
        joins it)."""
        batch = [c for c in counted if self._address(c.address)]
        if not batch:
            return
        async with self.store.transaction():
            old = {}
            for i in range(0, len(batch), 400):
                part = batch[i:i + 400]
                rows = await self.store.fetchall(
                    f"SELECT * FROM correspondents WHERE address IN ({', '.join('?' * len(part))})",
                    [c.address for c in part])
                old.update({r["address"]: r for r in rows})
            await self.store.executemany(_SAVE, [_merge(old.get(c.address), c) for c in batch])

    async def refresh_groups(self) -> None:
        """Judge everyone's group, organisation and aliases again from what is counted
        (core/people/groups.py); the user's choices are other columns and stay."""
        rows = await self.store.fetchall("SELECT * FROM correspondents")
        facts = [G.Facts(r["address"], r["name"] or "", r["messages_from"], r["messages_to"], r["auto_from"],
                         r["list_from"], r["bounce_from"], r["sent_as"], _json(r["folders"])) for r in rows]
        hints = G.org_hints(facts)
        by_address = {f.address: f for f in facts}
        verdicts = {f.address: G.classify(f, self.company, hints.get(G.organisation_of(f.address)))
                    for f in facts}
        keys = G.alias_keys([(f.address, f.name) for f in facts])
        shared: dict[str, list[str]] = {}
        for addr, key in keys.items():
            shared.setdefault(key, []).append(addr)
        for members in shared.values():     # one person: an unfiled address takes the filed one's group
            known = [(a, verdicts[a]) for a in members if verdicts[a].group in NOTIFY_GROUPS
                     and verdicts[a].group != "business"]
            for a in members:
                if known and verdicts[a].group in ("business", "cold"):
                    other, v = known[0]
                    f = by_address[a]
                    verdicts[a] = G.Verdict(v.group, f"same person as {other} ({v.evidence.split(';')[0]}); "
                                                     f"{f.messages_from} from, {f.messages_to} to")
        await self.store.executemany(
            "UPDATE correspondents SET group_guess=?, evidence=?, org=?, alias_key=?, customer=? WHERE address=?",
            [(v.group, v.evidence, G.organisation_of(a), keys.get(a, ""), int(v.group == "customer"), a)
             for a, v in verdicts.items()])

    async def refresh_customers(self) -> None:
        """Kept for callers of the old name: the groups' judgement."""
        await self.refresh_groups()

    async def note_arrival(self, address: str, name: str, language: str, automated: bool,
                           when: float) -> None:
        """They just wrote to the old address: their words are one more vote for their
        language."""
        addr = self._address(address)
        if not addr:
            return
        async with self.store.transaction():
            row = await self.store.fetchone("SELECT lang_votes FROM correspondents WHERE address=?", (addr,))
            votes = _add(_json(row["lang_votes"] if row else None), {language: 1} if language else {})
            await self.store.run(
                "INSERT INTO correspondents(address, name, language, automated, last_old_arrival, lang_votes) "
                "VALUES(?,?,?,?,?,?) ON CONFLICT(address) DO UPDATE SET "
                "name=COALESCE(NULLIF(correspondents.name,''), excluded.name), "
                "language=COALESCE(NULLIF(excluded.language,''), correspondents.language), "
                "lang_votes=excluded.lang_votes, "
                "last_old_arrival=MAX(COALESCE(correspondents.last_old_arrival, 0), excluded.last_old_arrival)",
                (addr, name, _language(votes), int(automated), when, json.dumps(votes)))

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
        """The change notice reached them."""
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

    async def on_notice(self, event: Event) -> None:
        """A notice changed state (core/notify publishes NoticeChanged): keep the person's
        notice state, ``notified`` when sent, the bounce and its reason. Test sends are ours."""
        if not isinstance(event, NoticeChanged):
            return
        addr = self._address(event.address)
        if not addr or event.campaign == "test":
            return
        at = event.at or time.time()
        if event.campaign == "final":
            if event.state == "sent":
                await self.store.run("UPDATE correspondents SET final_sent=COALESCE(final_sent, ?) "
                                     "WHERE address=?", (at, addr))
            elif event.state == "bounced":
                await self.store.run("UPDATE correspondents SET bounced=?, bounce_reason=? WHERE address=?",
                                     (at, event.detail, addr))
            return
        await self.store.run(
            "INSERT INTO correspondents(address, notice_state, notice_campaign, notice_at) VALUES(?,?,?,?) "
            "ON CONFLICT(address) DO UPDATE SET notice_state=excluded.notice_state, "
            "notice_campaign=excluded.notice_campaign, notice_at=excluded.notice_at, "
            "notified = CASE WHEN excluded.notice_state='sent' THEN COALESCE(correspondents.notified, "
            "  excluded.notice_at) ELSE correspondents.notified END, "
            "bounced = CASE WHEN excluded.notice_state='bounced' THEN excluded.notice_at "
            "  ELSE correspondents.bounced END, "
            "bounce_reason = CASE WHEN excluded.notice_state='bounced' THEN ? ELSE correspondents.bounce_reason END",
            (addr, event.state, event.campaign, at, event.detail))

    def _address(self, address: str) -> str:
        addr = address.strip().strip("<>").lower()
        return "" if not addr or addr in self.own else addr

    # -- the user's choices ---------------------------------------------------------------
    async def choose(self, address: str, choice: Choice) -> None:
        """The user's choice for one person (each field: KEEP unchanged, None back to the
        guess, else the value; core/people/choices.py)."""
        sets, params = _choice_sql(choice)
        if sets:
            await self.store.run(f"UPDATE correspondents SET {sets} WHERE address=?",
                                 (*params, address.strip().lower()))

    async def set_group_notify(self, group: str, notify: bool | None) -> None:
        """Notify the people of a whole group or not (None: back to the default); a
        person's own choice still wins."""
        if group not in GROUPS:
            raise SwitchoverError(f"'{group}' is not a group (one of: {', '.join(GROUPS)}).", exit_code=2)
        if notify is None:
            await self.store.run("DELETE FROM people_groups WHERE name=?", (group,))
        else:
            await self.store.run("INSERT INTO people_groups(name, notify) VALUES(?, ?) "
                                 "ON CONFLICT(name) DO UPDATE SET notify=excluded.notify", (group, int(notify)))

    async def group_counts(self) -> list[tuple[str, int, int, bool]]:
        """(group, people, of them notified-yes, the group's notify setting), in GROUPS order."""
        rows = await self.store.fetchall(
            f"SELECT {_GROUP} AS grp, COUNT(*) AS n, SUM({_NOTIFY}) AS yes FROM correspondents GROUP BY grp")
        got = {r["grp"]: (int(r["n"]), int(r["yes"] or 0)) for r in rows}
        settings = {r["name"]: bool(r["notify"]) for r in await self.store.fetchall("SELECT * FROM people_groups")}
        return [(g, *got.get(g, (0, 0)), settings.get(g, g in NOTIFY_GROUPS)) for g in GROUPS]

    async def import_rows(self, rows: Sequence[CsvRow]) -> int:
        """The rows of a CSV the user edited (core/people/csvfile.py validated them): a
        value that differs from what switchover shows becomes a choice, an empty cell
        clears the choice; all rows or none (one transaction). Returns people changed."""
        changed = 0
        async with self.store.transaction():
            for row in rows:
                current = await self.get(row.address)
                sets, params = _choice_sql(changes(row.name, row.group, row.language, row.notify, current))
                if not sets:
                    continue
                if current is None:
                    await self.store.run("INSERT INTO correspondents(address) VALUES(?)", (row.address,))
                await self.store.run(f"UPDATE correspondents SET {sets} WHERE address=?", (*params, row.address))
                changed += 1
        return changed

    # -- queries ----------------------------------------------------------------------------
    async def list(self, *, offset: int = 0, limit: int = 100, filter: str | None = None,
                   order: str = "last_seen") -> list[Correspondent]:
        """A page of correspondents. ``filter``: a group name ("group:automated" for that
        group alone; "automated" is every robot kind), or one of customers,
        switched, not switched, notified, not notified, bounced, automated, people,
        notify, silent — or any text, matched against address and name. ``order``:
        last_seen, first_seen, messages, address, name, switched, group."""
        sql = _SELECT
        params: list[Any] = []
        if filter:
            key = filter.strip().lower()
            if key in _FILTERS:
                sql += " WHERE " + _FILTERS[key]
            else:
                sql += " WHERE address LIKE ? OR name LIKE ? OR choice_name LIKE ?"
                params += [f"%{filter.strip()}%"] * 3
        sql += f" ORDER BY {_ORDERS.get(order, _ORDERS['last_seen'])}, address LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [_row(r) for r in await self.store.fetchall(sql, params)]

    async def get(self, address: str) -> Correspondent | None:
        r = await self.store.fetchone(f"{_SELECT} WHERE address=?", (address.strip().lower(),))
        return _row(r) if r else None

    async def badge(self, sender: str, msg: Message, flags: Sequence[object] = ()) -> str:
        """The feed badge of a message from ``sender`` (core/transition/classify.py)."""
        return badge(msg, flags, await self.get(sender) if sender else None)

    async def switched_count(self) -> int:
        return int(await self.store.scalar("SELECT COUNT(*) FROM correspondents WHERE switched IS NOT NULL",
                                           default=0))

    async def audience(self, campaign: str, *, group: str | None = None) -> "builtins.list[Recipient]":
        """Who a campaign speaks to, the busiest first: "notice" every notify-yes person
        outside the internal group; "internal" the notify-yes colleagues; "final" those
        sent the notice who have not switched and wrote to the old address after it."""
        where = {"notice": f"{_NOTIFY} AND {_GROUP} <> 'internal'",
                 "internal": f"{_NOTIFY} AND {_GROUP} = 'internal'",
                 "final": f"{_NOTIFY} AND notified IS NOT NULL AND switched IS NULL "
                          "AND COALESCE(last_old_arrival, 0) > notified"}.get(campaign)
        if where is None:
            raise SwitchoverError(f"'{campaign}' is no campaign (notice, internal or final).", exit_code=2)
        params: list[Any] = []
        if group:
            where += f" AND {_GROUP} = ?"
            params.append(group)
        rows = await self.store.fetchall(f"{_SELECT} WHERE {where} ORDER BY "
                                         "(messages_from + messages_to) DESC, address", params)
        out = []
        languages = self.template_languages()
        for r in rows:
            c = _row(r)
            lang = c.language if c.language in languages else "en"
            out.append(Recipient(c.address, r["choice_name"] or c.name, c.group, lang, c.organisation))
        return out

    async def switch_trend(self, days: int = 30) -> "builtins.list[tuple[dt.date, int]]":
        """Per day of the last ``days`` (today last), how many people had switched by its end."""
        stamps = sorted(float(r["switched"]) for r in await self.store.fetchall(
            f"SELECT switched FROM correspondents WHERE switched IS NOT NULL AND {_GROUP} NOT IN {_ROBOT}"))
        today = dt.date.today()
        out = []
        for i in range(days - 1, -1, -1):
            day = today - dt.timedelta(days=i)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp()
            out.append((day, sum(1 for s in stamps if s < end)))
        return out

    async def stats(self) -> dict[str, Any]:
        """total (people, not robots), customers, notify (yes), notified, bounced,
        switched, automated, switched_week (this last week),
        days_since_business_mail: days since a person last wrote to the old address
        (None when nobody has), groups ({group: people}) and trend (switched by the end
        of each of the last 14 days)."""
        r = await self.store.fetchone(
            f"SELECT SUM({_GROUP} NOT IN {_ROBOT}) AS total, SUM({_GROUP} = 'customer') AS customers, "
            f"SUM({_NOTIFY} AND {_GROUP} NOT IN {_ROBOT}) AS notify, "
            f"SUM(notified IS NOT NULL) AS notified, SUM(bounced IS NOT NULL) AS bounced, "
            f"SUM(switched IS NOT NULL AND {_GROUP} NOT IN {_ROBOT}) AS switched, "
            f"SUM(switched > ? AND {_GROUP} NOT IN {_ROBOT}) AS switched_week, "
            f"SUM({_GROUP} IN {_ROBOT}) AS automated, "
            f"MAX(CASE WHEN {_GROUP} NOT IN {_ROBOT} THEN last_old_arrival END) AS last_person "
            "FROM correspondents", (time.time() - 7 * 86400,))
        assert r is not None     # an aggregate always answers one row
        last_arrival = await self.arrivals.last_from_a_person()
        last = max([v for v in (r["last_person"], last_arrival) if v] or [0.0]) or None
        days = int((time.time() - last) // 86400) if last else None
        out: dict[str, Any] = {k: int(r[k] or 0) for k in ("total", "customers", "notify", "notified", "bounced",
                                                             "switched", "switched_week", "automated")}
        groups = {g: n for g, n, _yes, _on in await self.group_counts() if n}
        trend = [n for _d, n in await self.switch_trend(14)]
        return {**out, "days_since_business_mail": days, "last_business_mail": last, "groups": groups,
                "trend": trend}


_CHOICE_COLUMNS = {"name": "choice_name", "group": "choice_group", "language": "choice_language",
                   "notify": "choice_notify"}


def _choice_sql(choice: Choice) -> tuple[str, list[Any]]:
    sets, params = [], []
    for field, column in _CHOICE_COLUMNS.items():
        value = getattr(choice, field)
        if value is KEEP:
            continue
        if field == "group" and value is not None and value not in GROUPS:
            raise SwitchoverError(f"'{value}' is not a group (one of: {', '.join(GROUPS)}).", exit_code=2)
        sets.append(f"{column}=?")
        params.append(int(value) if isinstance(value, bool) else value)
    return ", ".join(sets), params


def _state(r: Any) -> str:
    if r["switched"] is not None:
        return "switched"
    if r["bounced"] is not None:
        return "bounced"
    if r["notified"] is not None or r["notice_state"] == "sent":
        return "sent"
    if r["notice_state"] in ("queued", "sending", "doubt"):
        return "queued"
    return "not notified"


def _row(r: Any) -> Correspondent:
    group = r["grp"] or "business"
    choice_notify = r["choice_notify"]
    return Correspondent(
        address=r["address"], name=r["choice_name"] or r["name"] or "", first_seen=parse_date(r["first_seen"]),
        last_seen=parse_date(r["last_seen"]), messages_from=r["messages_from"] or 0,
        messages_to=r["messages_to"] or 0, language=r["choice_language"] or r["language"] or "",
        automated=bool(r["automated"]), customer=group == "customer", notified=r["notified"],
        switched=r["switched"], last_reminded=r["last_reminded"], last_old_arrival=r["last_old_arrival"],
        group=group, group_guess=r["group_guess"] or "", evidence=r["evidence"] or "",
        organisation=r["org"] or "", alias_key=r["alias_key"] or "", language_guess=r["language"] or "",
        notify=bool(r["notify_now"]), choice_group=r["choice_group"], choice_language=r["choice_language"],
        choice_notify=None if choice_notify is None else bool(choice_notify), state=_state(r),
        bounced=r["bounced"], bounce_reason=r["bounce_reason"] or "")
