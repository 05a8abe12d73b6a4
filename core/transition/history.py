"""The history scan: who the old address talked to, read from the old mailbox's headers
and the first bytes of each body.

Every selectable folder is read in batches: From of received mail counts as
``messages_from`` (with the folder it is filed in, what kind of robot sent it, and the
language of the sender's own words in the body's first ~3 KB), To/Cc/Bcc of sent mail
(the Sent folder, or anything From one of our own addresses) as ``messages_to``. Junk,
Drafts and Gmail's All Mail / Starred / Important (copies of other folders) are skipped.
The scan is incremental by UID per (folder, UIDVALIDITY) and resumable: the folder's mark
(the ``history_marks`` table, owned here) is saved in the same transaction as each
batch's counts, so a crash never counts a message twice. What it counts goes to the
correspondents facet (core/transition/people.py), which alone writes that table.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from email.message import Message
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import imapclient

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import ConnectError, SwitchoverError, sentence
from ..events import EventBus, JobProgress
from ..mail.dates import date_of
from ..mail.headers import addresses, header, header_text, parse_headers, sender_of
from ..mail.language import detect_language, majority, person_words
from ..net import imap as imapnet
from ..net.mailboxes import FolderInfo, list_folders, name_special
from ..people.prefix import PREFIX_BYTES, prefix_text
from ..store import Store
from .classify import is_automated, is_bounce, is_spam, own_addresses

_SCAN_FIELDS = (b"BODY.PEEK[HEADER.FIELDS (FROM SENDER TO CC BCC DATE SUBJECT MESSAGE-ID "
                b"AUTO-SUBMITTED PRECEDENCE LIST-ID LIST-UNSUBSCRIBE LIST-POST RETURN-PATH "
                b"CONTENT-TYPE CONTENT-TRANSFER-ENCODING X-SPAM-FLAG X-SPAM-STATUS "
                b"X-FAILED-RECIPIENTS X-AUTO-RESPONSE-SUPPRESS X-AUTOREPLY X-AUTORESPOND)]")
_PREFIX = f"BODY.PEEK[TEXT]<0.{PREFIX_BYTES}>".encode()
_CHUNK = 250
#: messages judged for their language per person and scan: the majority of a busy
#: correspondent's first few tells as much as all of them, at a fraction of the time
_JUDGED_PER_PERSON = 8
#: folders not worth reading that are no special folder (core/net/mailboxes.py's name table
#: knows Junk, Drafts and Gmail's virtual folders, also deeper down): outboxes, NetEase's
#: categories, and Gmail-like names outside a [Gmail] container (leaf names, lowercase)
SKIP_NAMES = {"outbox", "发件箱", "广告邮件", "病毒文件夹", "订阅邮件", "all mail", "所有邮件", "important",
              "starred"}
_SKIP_SPECIALS = {"\\Junk", "\\Drafts", "\\All", "\\Flagged", "\\Important"}


@dataclass(frozen=True)
class Counted:
    """What one batch of the scan counted for one address."""
    address: str
    name: str
    first_seen: str | None       # ISO 8601, UTC
    last_seen: str | None
    messages_from: int
    messages_to: int
    language: str                # majority of this batch's confident guesses ("" none)
    automated: bool              # every message they sent in this batch was a robot's
    last_from: float | None      # when they last wrote (epoch seconds)
    auto_from: int = 0           # RFC 3834 / no-reply messages from them
    list_from: int = 0           # newsletters, mailing lists, bulk
    bounce_from: int = 0         # delivery reports
    sent_as: int = 0             # Sent-folder messages sent from this (our own other) address
    folders: dict[str, int] = field(default_factory=dict)   # folder -> messages from them
    votes: dict[str, int] = field(default_factory=dict)     # language -> their messages; ">xx" ours to them


class CountsSink(Protocol):
    """Where the counts go (the correspondents facet)."""
    async def save_counts(self, counted: Iterable[Counted]) -> None: ...
    async def refresh_groups(self) -> None: ...


@dataclass
class _Tally:
    name: str = ""
    first: str | None = None
    last: str | None = None
    n_from: int = 0
    n_to: int = 0
    auto: int = 0
    lists: int = 0
    bounces: int = 0
    sent_as: int = 0
    last_from_ts: float = 0.0
    folders: Counter[str] = field(default_factory=Counter)
    votes: Counter[str] = field(default_factory=Counter)

    def seen(self, iso: str | None) -> None:
        if iso:
            self.first = iso if self.first is None or iso < self.first else self.first
            self.last = iso if self.last is None or iso > self.last else self.last

    def counted(self, address: str) -> Counted:
        own = {k: n for k, n in self.votes.items() if not k.startswith(">")}
        lang = majority(own) or majority({k[1:]: n for k, n in self.votes.items() if k.startswith(">")})
        robot = self.auto + self.lists + self.bounces
        automated = bool(self.n_from and robot >= self.n_from and not self.n_to)
        return Counted(address, self.name, self.first, self.last, self.n_from, self.n_to, lang,
                       automated, self.last_from_ts or None, self.auto, self.lists, self.bounces,
                       self.sent_as, dict(self.folders), dict(self.votes))


def robot_kind(msg: Message) -> str:
    """"bounce", "newsletter", "automated" or "" (a person wrote it)."""
    if is_bounce(msg):
        return "bounce"
    if (header(msg, "List-Id") or header(msg, "List-Unsubscribe") or header(msg, "List-Post")
            or (header(msg, "Precedence") or "").strip().lower() in ("bulk", "list")):
        return "newsletter"
    return "automated" if is_automated(msg)[0] else ""


@dataclass(frozen=True)
class _Folder:
    name: str
    is_sent: bool
    uidvalidity: int
    uidnext: int
    uids: list[int]


def _leaf(name: str, delimiter: str | None) -> str:
    leaf = name.rsplit(delimiter, 1)[-1] if delimiter else name
    return leaf.strip().lower()


class HistoryScan:
    """One scan at a time; publishes JobProgress(job="scan")."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config, sink: CountsSink) -> None:
        self.store, self.bus, self.accounts, self.blocking = store, bus, accounts, blocking
        self.sink = sink
        self.own = own_addresses(config)
        self._running = False

    async def run(self) -> int:
        """Scan what is new in every folder since the last scan; returns how many
        messages were read."""
        if self._running:
            raise SwitchoverError("A history scan is already running.")
        self._running = True
        run_id = await self.store.start_run("scan")
        client: imapclient.IMAPClient | None = None
        done = total = 0
        try:
            client = await self._connect()
            work = await self._work(await self.blocking.run(_plan, client))
            total = sum(len(f.uids) for f in work)
            self._progress("running", total, 0, "")
            memory = _ScanMemory()
            for folder in work:
                info = await self.blocking.run(client.select_folder, folder.name, readonly=True)
                if int(info.get(b"UIDVALIDITY", 0) or 0) != folder.uidvalidity:
                    continue   # renumbered since the plan; the next scan re-plans it
                for i in range(0, len(folder.uids), _CHUNK):
                    chunk = folder.uids[i:i + _CHUNK]
                    # fetching, parsing and judging the language are the worker's job
                    counted = await self.blocking.run(_read_batch, client, chunk, folder, self.own, memory)
                    async with self.store.transaction():
                        await self.sink.save_counts(counted)
                        await self._mark(folder.name, folder.uidvalidity, max(chunk))
                    done += len(chunk)
                    self._progress("running", total, done, folder.name)
            await self.sink.refresh_groups()
            self._progress("done", total, done, "")
            await self.store.end_run(run_id, "done", {"messages": done})
            return done
        except BaseException as e:
            self._progress("failed", total, done, sentence(e, limit=200))
            try:
                await self.store.end_run(run_id, "failed", {"messages": done, "error": sentence(e, limit=200)})
            except Exception:  # noqa: BLE001 - the scan's own failure is what matters
                pass
            raise
        finally:
            self._running = False
            if client is not None:
                await self.blocking.run(imapnet.close, client)

    async def _connect(self) -> imapclient.IMAPClient:
        try:
            return await self.blocking.run(imapnet.connect, self.accounts.account("old"))
        except SwitchoverError:
            raise
        except Exception as e:  # noqa: BLE001 - any trouble reaching the server is one sentence
            raise ConnectError(f"The old mailbox: {sentence(e)}.") from None

    async def _mark(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        await self.store.run(
            "INSERT INTO history_marks(folder, uidvalidity, last_uid) VALUES(?,?,?) "
            "ON CONFLICT(folder) DO UPDATE SET uidvalidity=excluded.uidvalidity, last_uid=excluded.last_uid",
            (folder, uidvalidity, last_uid))

    async def _work(self, plan: list[_Folder]) -> list[_Folder]:
        """The UIDs not read yet, per folder (a renumbered folder starts from now: counting
        it again would double every count)."""
        marks = {r["folder"]: (int(r["uidvalidity"]), int(r["last_uid"]))
                 for r in await self.store.fetchall("SELECT folder, uidvalidity, last_uid FROM history_marks")}
        work: list[_Folder] = []
        for f in plan:
            mark = marks.get(f.name)
            if mark and mark[0] != f.uidvalidity:
                await self._mark(f.name, f.uidvalidity, f.uidnext - 1)
                continue
            last = mark[1] if mark else 0
            todo = [u for u in f.uids if u > last]
            if todo:
                work.append(_Folder(f.name, f.is_sent, f.uidvalidity, f.uidnext, todo))
        return work

    def _progress(self, state: str, total: int, done: int, detail: str) -> None:
        self.bus.publish(JobProgress(job="scan", state=state, total_messages=total, total_bytes=0,
                                     done_messages=done, done_bytes=0, detail=detail))


# -- blocking (worker threads) -------------------------------------------------------------

def _plan(client: imapclient.IMAPClient) -> list[_Folder]:
    """Every folder worth reading, with its UIDVALIDITY, UIDNEXT and UIDs."""
    out: list[_Folder] = []
    for fi in list_folders(client):
        if not _worth_reading(fi):
            continue
        is_sent = fi.special == "\\Sent"     # by its special-use flag, else by its name
        try:
            info = client.select_folder(fi.name, readonly=True)
        except imapclient.exceptions.IMAPClientError:
            continue
        uidvalidity = int(info.get(b"UIDVALIDITY", 0) or 0)
        uids = sorted(client.search(["ALL"])) if info.get(b"EXISTS") else []
        uidnext = int(info.get(b"UIDNEXT") or ((max(uids) + 1) if uids else 1))
        out.append(_Folder(fi.name, is_sent, uidvalidity, uidnext, uids))
    return out


def _worth_reading(fi: FolderInfo) -> bool:
    if not fi.selectable or fi.special in _SKIP_SPECIALS:
        return False
    if any(f.lower() in ("\\junk", "\\drafts", "\\all", "\\flagged", "\\important") for f in fi.flags):
        return False
    leaf = fi.name.rsplit(fi.delimiter, 1)[-1] if fi.delimiter else fi.name
    # a Junk or Drafts folder deeper down, by the same name table
    if name_special(leaf, None) in _SKIP_SPECIALS:
        return False
    return _leaf(fi.name, fi.delimiter) not in SKIP_NAMES


def _fetch(client: imapclient.IMAPClient, uids: list[int]) -> dict[int, tuple[bytes, bytes, Any]]:
    """{uid: (header block, body prefix, INTERNALDATE)}; nothing is marked \\Seen."""
    client.normalise_times = False
    out: dict[int, tuple[bytes, bytes, Any]] = {}
    for uid, item in client.fetch(uids, [_SCAN_FIELDS, _PREFIX, b"INTERNALDATE"]).items():
        head = body = b""
        for k, v in item.items():
            if isinstance(k, bytes) and k.startswith(b"BODY[HEADER"):
                head = v or b""
            elif isinstance(k, bytes) and k.startswith(b"BODY[TEXT]"):
                body = v or b""
        out[uid] = (head, body, item.get(b"INTERNALDATE"))
    return out


@dataclass
class _ScanMemory:
    """What one scan remembers across batches: Message-IDs read (one message in several
    Gmail labels counts once), how many messages of each person were judged."""
    seen_ids: set[str] = field(default_factory=set)
    judged: Counter[str] = field(default_factory=Counter)


def _read_batch(client: imapclient.IMAPClient, uids: list[int], folder: _Folder, own: set[str],
                memory: _ScanMemory) -> list[Counted]:
    return _count(_fetch(client, uids), folder, own, memory)


def _count(data: dict[int, tuple[bytes, bytes, Any]], folder: _Folder, own: set[str],
           memory: _ScanMemory) -> list[Counted]:
    seen_ids, judged = memory.seen_ids, memory.judged
    tallies: dict[str, _Tally] = {}
    for _uid, (block, prefix, internal) in sorted(data.items()):
        msg = parse_headers(block)
        mid = header_text(msg, "Message-ID")
        if mid:
            if mid in seen_ids:  # one message in several folders (Gmail labels)
                continue
            seen_ids.add(mid)
        when = date_of(msg, internal)
        iso = when.astimezone(dt.timezone.utc).isoformat(timespec="seconds") if when else None
        name, sender = sender_of(msg)
        if folder.is_sent or sender in own:
            _count_sent(tallies, msg, prefix, block, iso, folder.is_sent and sender not in own and sender, own,
                        judged)
            continue
        if not sender or is_spam(msg):
            continue
        t = tallies.setdefault(sender, _Tally())
        t.n_from += 1
        t.seen(iso)
        t.last_from_ts = max(t.last_from_ts, when.timestamp() if when else 0.0)
        if name:
            t.name = name   # the latest display name they use
        kind = robot_kind(msg)
        if kind:
            t.bounces += kind == "bounce"
            t.lists += kind == "newsletter"
            t.auto += kind == "automated"
            continue
        t.folders[folder.name] += 1
        # their own words, not a subject (a reply's is ours: "RE: PI-2291") nor our quote;
        if judged[sender] < _JUDGED_PER_PERSON:
            judged[sender] += 1
            lang = detect_language(person_words(prefix_text(msg, prefix)))
            if lang:
                t.votes[lang] += 1
    return [t.counted(addr) for addr, t in tallies.items()]


def _count_sent(tallies: dict[str, _Tally], msg: Message, prefix: bytes, block: bytes, iso: str | None,
                other_self: str | bool, own: set[str], judged: Counter[str]) -> None:
    """Mail we wrote: who it went to, and (a weak vote) the language we write them in."""
    if other_self:   # the Sent folder holds mail from an address of ours the config lacks
        t = tallies.setdefault(str(other_self), _Tally())
        t.sent_as += 1
        t.seen(iso)
    lang = ""
    for rname, addr in addresses(msg, "To", "Cc", "Bcc"):
        if addr in own or "@" not in addr or addr == other_self:
            continue
        if not lang and judged[">" + addr] < _JUDGED_PER_PERSON:
            judged[">" + addr] += 1
            lang = detect_language(person_words(prefix_text(msg, prefix))) or "-"
        t = tallies.setdefault(addr, _Tally())
        t.n_to += 1
        t.seen(iso)
        if rname and not t.name:
            t.name = rname
        if lang and lang != "-":
            t.votes[">" + lang] += 1
