"""Who the old address talks to: the history scan of the old mailbox (headers only),
and the per-person state the transition needs — notified, switched, automated, customer.

``scan_history`` walks every selectable folder of the old mailbox: From of received mail
counts as ``messages_from``, To/Cc/Bcc of sent mail (the Sent folder, or anything From
one of our own addresses) as ``messages_to``. It is incremental by UID per (folder,
UIDVALIDITY) and resumable: the last UID is saved with each chunk's counts. Addresses
are lowercase; the user's own addresses never become correspondents.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import imapclient

from ..net import imap as imaplib_
from .classify import (REPLY_SUBJECT, addresses, detect_language, header_text, is_automated,
                       is_bounce, is_spam, own_addresses_of, parse_headers, sender_of)
from ..errors import ConnectError, SwitchoverError
from ..events import JobProgress

if TYPE_CHECKING:
    from ..engine import Engine

_SCAN_FIELDS = (b"BODY.PEEK[HEADER.FIELDS (FROM SENDER TO CC BCC DATE SUBJECT MESSAGE-ID "
                b"AUTO-SUBMITTED PRECEDENCE LIST-ID LIST-UNSUBSCRIBE LIST-POST RETURN-PATH "
                b"CONTENT-TYPE X-SPAM-FLAG X-SPAM-STATUS X-FAILED-RECIPIENTS)]")
_CHUNK = 500

#: folder names (last path component, lowercase) when the server gives no special-use flag
SENT_NAMES = {"sent", "sent items", "sent messages", "sent mail", "sent-mail", "已发送",
              "已发送邮件", "已發送", "寄件備份", "отправленные", "enviados", "enviadas",
              "itens enviados", "gesendet", "gesendete objekte", "envoyés", "elementos enviados",
              "posta inviata", "inviati"}
SKIP_NAMES = {"junk", "spam", "junk email", "junk e-mail", "bulk mail", "垃圾邮件", "垃圾箱",
              "广告邮件", "病毒文件夹", "订阅邮件", "drafts", "draft", "草稿箱", "草稿", "спам",
              "черновики", "all mail", "所有邮件", "important", "starred", "outbox", "发件箱"}
_SKIP_FLAGS = {"\\noselect", "\\nonexistent", "\\junk", "\\drafts", "\\all",
               "\\flagged", "\\important"}
_SKIP_SPECIALS = {"\\Junk", "\\Drafts", "\\All", "\\Flagged", "\\Important"}


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


@dataclass
class _Agg:
    name: str = ""
    first: str | None = None
    last: str | None = None
    n_from: int = 0
    n_to: int = 0
    automated_from: int = 0
    last_from_ts: float = 0.0
    langs: Counter = field(default_factory=Counter)

    def seen(self, iso: str | None) -> None:
        if iso:
            self.first = iso if self.first is None or iso < self.first else self.first
            self.last = iso if self.last is None or iso > self.last else self.last


def _iso(msg: Any, fallback: Any) -> tuple[str | None, float]:
    from .watch import message_date
    d = message_date(msg, fallback)
    if d is None:
        return None, 0.0
    d = d.astimezone(dt.timezone.utc)
    return d.isoformat(timespec="seconds"), d.timestamp()


def _leaf(name: str, delimiter: str | None) -> str:
    leaf = name.rsplit(delimiter, 1)[-1] if delimiter else name
    return leaf.strip().lower()


def _ts(value: float | dt.datetime | None) -> float:
    if value is None:
        return time.time()
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


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


class Correspondents:
    """``engine.correspondents``."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self._scanning = False

    # -- the history scan -----------------------------------------------------------------
    async def scan_history(self) -> int:
        """Scan what is new in every folder since the last scan; returns how many
        messages were read. Publishes JobProgress(job="scan")."""
        if self._scanning:
            raise SwitchoverError("A history scan is already running.")
        self._scanning = True
        store = self.engine.store
        run_id = await store.start_run("scan")
        rb = self.engine.run_blocking
        client = None
        done = 0
        total = 0
        try:
            try:
                client = await rb(imaplib_.connect, self.engine.account("old"))
            except SwitchoverError:
                raise
            except Exception as e:
                raise ConnectError(f"The old mailbox: {e}.") from None
            plan = await rb(self._plan, client)
            work: list[tuple[str, bool, int, list[int]]] = []
            for folder, is_sent, uidvalidity, uidnext, uids in plan:
                mark = await store.get_setting(f"scan.mark.{folder}")
                if mark and int(mark["uidvalidity"]) != uidvalidity:
                    # renumbered: counting again would double every count; start from now
                    await store.set_setting(f"scan.mark.{folder}",
                                            {"uidvalidity": uidvalidity, "last_uid": uidnext - 1})
                    continue
                last = int(mark["last_uid"]) if mark else 0
                todo = [u for u in uids if u > last]
                if todo:
                    work.append((folder, is_sent, uidvalidity, todo))
            total = sum(len(w[3]) for w in work)
            self._progress("running", total, 0, "")
            own = own_addresses_of(self.engine)
            seen_ids: set[str] = set()
            for folder, is_sent, uidvalidity, todo in work:
                info = await rb(client.select_folder, folder, readonly=True)
                if int(info.get(b"UIDVALIDITY", 0) or 0) != uidvalidity:
                    continue   # renumbered since the plan; the next scan re-plans it
                for i in range(0, len(todo), _CHUNK):
                    chunk = todo[i:i + _CHUNK]
                    data = await rb(_fetch, client, chunk)
                    aggs = self._aggregate(data, is_sent, own, seen_ids)
                    await self._save(aggs)
                    await store.set_setting(f"scan.mark.{folder}",
                                            {"uidvalidity": uidvalidity, "last_uid": max(chunk)})
                    done += len(chunk)
                    self._progress("running", total, done, folder)
            await store.execute(
                "UPDATE correspondents SET customer = "
                "(messages_from > 0 AND messages_to > 0 AND automated = 0)")
            self._progress("done", total, done, "")
            await store.end_run(run_id, "done", {"messages": done})
            return done
        except BaseException as e:
            self._progress("failed", total, done, str(e)[:200])
            try:
                await store.end_run(run_id, "failed", {"messages": done, "error": str(e)[:200]})
            except Exception:
                pass
            raise
        finally:
            self._scanning = False
            if client is not None:
                await rb(imaplib_.close, client)

    def _progress(self, state: str, total: int, done: int, detail: str) -> None:
        self.engine.publish(JobProgress(job="scan", state=state, total_messages=total, total_bytes=0,
                                        done_messages=done, done_bytes=0, detail=detail))

    def _plan(self, client: imapclient.IMAPClient) -> list[tuple[str, bool, int, int, list[int]]]:
        """(folder, is_sent, UIDVALIDITY, UIDNEXT, all UIDs) of every folder worth reading:
        not Junk, Drafts, Gmail's All Mail / Starred / Important (copies of other folders)."""
        rows: list[tuple[str, str | None, set[str], str | None]] = []
        try:
            from ..net.mailboxes import list_folders   # special-use flags + the shared name table
            for fi in list_folders(client):
                rows.append((fi.name, fi.delimiter, {f.lower() for f in fi.flags}
                             | ({"\\noselect"} if not fi.selectable else set()), fi.special))
        except ImportError:
            for flags, delimiter, name in client.list_folders():
                delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
                fl = {(f.decode() if isinstance(f, bytes) else f).lower() for f in flags}
                special = "\\Sent" if "\\sent" in fl else None
                rows.append((name, delim, fl, special))
        has_sent = any(special == "\\Sent" for *_x, special in rows)
        out = []
        for name, delim, flags, special in rows:
            leaf = _leaf(name, delim)
            if flags & _SKIP_FLAGS or special in _SKIP_SPECIALS or leaf in SKIP_NAMES:
                continue
            is_sent = special == "\\Sent" or (not has_sent and leaf in SENT_NAMES)
            try:
                info = client.select_folder(name, readonly=True)
            except imapclient.exceptions.IMAPClientError:
                continue
            uidvalidity = int(info.get(b"UIDVALIDITY", 0) or 0)
            uids = client.search(["ALL"]) if info.get(b"EXISTS") else []
            uidnext = int(info.get(b"UIDNEXT") or ((max(uids) + 1) if uids else 1))
            out.append((name, is_sent, uidvalidity, uidnext, sorted(uids)))
        return out

    def _aggregate(self, data: dict[int, tuple[bytes, Any]], is_sent: bool, own: set[str],
                   seen_ids: set[str]) -> dict[str, _Agg]:
        aggs: dict[str, _Agg] = {}
        for _uid, (header, internal) in sorted(data.items()):
            msg = parse_headers(header)
            mid = header_text(msg, "Message-ID")
            if mid:
                if mid in seen_ids:  # one message in several folders (Gmail labels)
                    continue
                seen_ids.add(mid)
            iso, ts = _iso(msg, internal)
            name, sender = sender_of(msg)
            subject = header_text(msg, "Subject")
            if is_sent or sender in own:
                # what we write to them is a fair guess of what they read (the notices
                # use it); a reminder goes by what they write first (core/actions.py)
                lang = detect_language(subject)
                for rname, addr in addresses(msg, "To", "Cc", "Bcc"):
                    if addr in own or "@" not in addr:
                        continue
                    a = aggs.setdefault(addr, _Agg())
                    a.n_to += 1
                    a.seen(iso)
                    if rname and not a.name:
                        a.name = rname
                    if lang:
                        a.langs[lang] += 1
                continue
            if not sender or sender in own or is_spam(msg):
                continue
            a = aggs.setdefault(sender, _Agg())
            a.n_from += 1
            a.seen(iso)
            a.last_from_ts = max(a.last_from_ts, ts)
            if name:
                a.name = name   # the latest display name they use
            if is_automated(msg)[0] or is_bounce(msg):
                a.automated_from += 1
            # a subject they wrote themselves (a reply's is usually ours); the monitor
            # learns better from the words of each new arrival
            lang = "" if REPLY_SUBJECT.match(subject) else detect_language(subject)
            if lang:
                a.langs[lang] += 1
        return aggs

    async def _save(self, aggs: dict[str, _Agg]) -> None:
        rows = []
        for addr, a in aggs.items():
            lang = ""
            if a.langs:
                # subjects are short: any non-English guess beats the default
                non_en = [(n, l) for l, n in a.langs.items() if l != "en"]
                lang = max(non_en)[1] if non_en else "en"
            automated = 1 if a.n_from and a.automated_from == a.n_from and not a.n_to else 0
            rows.append((addr, a.name, a.first, a.last, a.n_from, a.n_to, lang, automated,
                         a.last_from_ts or None))
        await self.engine.store.executemany(
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
            "  COALESCE(excluded.last_old_arrival, 0))",
            rows)

    # -- queries and updates ----------------------------------------------------------------
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
        return [_row(r) for r in await self.engine.store.fetchall(sql, params)]

    async def get(self, address: str) -> Correspondent | None:
        r = await self.engine.store.fetchone("SELECT * FROM correspondents WHERE address=?",
                                             (address.strip().lower(),))
        return _row(r) if r else None

    async def mark_switched(self, address: str, when: float | dt.datetime | None = None) -> None:
        """They wrote to the new address (at ``when``); the earliest time is kept."""
        addr = address.strip().strip("<>").lower()
        if not addr or addr in own_addresses_of(self.engine):
            return
        await self.engine.store.execute(
            "INSERT INTO correspondents(address, switched) VALUES(?, ?) ON CONFLICT(address) DO UPDATE SET "
            "switched = CASE WHEN correspondents.switched IS NULL OR excluded.switched < correspondents.switched "
            "THEN excluded.switched ELSE correspondents.switched END", (addr, _ts(when)))

    async def mark_notified(self, address: str, when: float | dt.datetime | None = None) -> None:
        """The change notice reached them (for the notices feature)."""
        addr = address.strip().strip("<>").lower()
        if not addr or addr in own_addresses_of(self.engine):
            return
        await self.engine.store.execute(
            "INSERT INTO correspondents(address, notified) VALUES(?, ?) ON CONFLICT(address) DO UPDATE SET "
            "notified = COALESCE(correspondents.notified, excluded.notified)", (addr, _ts(when)))

    async def stats(self) -> dict[str, Any]:
        """total (people, not robots), customers, notified, switched, automated, and
        days_since_business_mail: days since a person last wrote to the old address
        (None when nobody has)."""
        store = self.engine.store
        r = await store.fetchone(
            "SELECT SUM(automated=0) AS total, SUM(customer=1 AND automated=0) AS customers, "
            "SUM(notified IS NOT NULL AND automated=0) AS notified, "
            "SUM(switched IS NOT NULL AND automated=0) AS switched, SUM(automated=1) AS automated, "
            "MAX(CASE WHEN automated=0 THEN last_old_arrival END) AS last_person FROM correspondents")
        a = await store.fetchone(
            "SELECT MAX(seen_at) FROM arrivals WHERE side='old' AND badge IN "
            "('customer','notified','switched','new sender')")
        last = max([v for v in (r["last_person"], a[0]) if v] or [0.0]) or None
        days = int((time.time() - last) // 86400) if last else None
        return {"total": int(r["total"] or 0), "customers": int(r["customers"] or 0),
                "notified": int(r["notified"] or 0), "switched": int(r["switched"] or 0),
                "automated": int(r["automated"] or 0), "days_since_business_mail": days,
                "last_business_mail": last}


def _fetch(client: imapclient.IMAPClient, uids: list[int]) -> dict[int, tuple[bytes, Any]]:
    client.normalise_times = False
    return imaplib_.fetch_header_fields(client, uids, _SCAN_FIELDS)


def _parse_iso(v: str | None) -> dt.datetime | None:
    if not v:
        return None
    try:
        return dt.datetime.fromisoformat(v)
    except ValueError:
        return None


def _row(r: Any) -> Correspondent:
    return Correspondent(
        address=r["address"], name=r["name"] or "", first_seen=_parse_iso(r["first_seen"]),
        last_seen=_parse_iso(r["last_seen"]), messages_from=r["messages_from"] or 0,
        messages_to=r["messages_to"] or 0, language=r["language"] or "",
        automated=bool(r["automated"]), customer=bool(r["customer"]), notified=r["notified"],
        switched=r["switched"], last_reminded=r["last_reminded"], last_old_arrival=r["last_old_arrival"])

