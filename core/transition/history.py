"""The history scan: who the old address talked to, read from the old mailbox's headers.

Every selectable folder is read: From of received mail counts as ``messages_from``,
To/Cc/Bcc of sent mail (the Sent folder, or anything From one of our own addresses) as
``messages_to``. Junk, Drafts and Gmail's All Mail / Starred / Important (copies of other
folders) are skipped. The scan is incremental by UID per (folder, UIDVALIDITY) and
resumable: the last UID is saved with each chunk's counts. What it counts goes to the
correspondents facet (core/transition/people.py), which alone writes the table.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import imapclient

from ..config import Config
from ..context import Accounts, Blocking
from ..errors import ConnectError, SwitchoverError, sentence
from ..events import EventBus, JobProgress
from ..mail.dates import date_of
from ..mail.headers import addresses, header_text, parse_headers, sender_of
from ..mail.language import detect_language, subject_language
from ..net import imap as imapnet
from ..net.mailboxes import FolderInfo, list_folders, name_special
from ..store import Store
from .classify import is_automated, is_bounce, is_spam, own_addresses

_SCAN_FIELDS = (b"BODY.PEEK[HEADER.FIELDS (FROM SENDER TO CC BCC DATE SUBJECT MESSAGE-ID "
                b"AUTO-SUBMITTED PRECEDENCE LIST-ID LIST-UNSUBSCRIBE LIST-POST RETURN-PATH "
                b"CONTENT-TYPE X-SPAM-FLAG X-SPAM-STATUS X-FAILED-RECIPIENTS)]")
_CHUNK = 500
#: folders not worth reading that are no special folder (core/net/mailboxes.py's name table
#: knows Junk, Drafts and Gmail's virtual folders, also deeper down): outboxes, NetEase's
#: categories, and Gmail-like names outside a [Gmail] container (leaf names, lowercase)
SKIP_NAMES = {"outbox", "发件箱", "广告邮件", "病毒文件夹", "订阅邮件", "all mail", "所有邮件", "important",
              "starred"}
_SKIP_SPECIALS = {"\\Junk", "\\Drafts", "\\All", "\\Flagged", "\\Important"}


@dataclass(frozen=True)
class Counted:
    """What one chunk of the scan counted for one address."""
    address: str
    name: str
    first_seen: str | None       # ISO 8601, UTC
    last_seen: str | None
    messages_from: int
    messages_to: int
    language: str
    automated: bool
    last_from: float | None      # when they last wrote (epoch seconds)


class CountsSink(Protocol):
    """Where the counts go (the correspondents facet)."""
    async def save_counts(self, counted: Iterable[Counted]) -> None: ...
    async def refresh_customers(self) -> None: ...


@dataclass
class _Tally:
    name: str = ""
    first: str | None = None
    last: str | None = None
    n_from: int = 0
    n_to: int = 0
    automated_from: int = 0
    last_from_ts: float = 0.0
    langs: Counter[str] = field(default_factory=Counter)

    def seen(self, iso: str | None) -> None:
        if iso:
            self.first = iso if self.first is None or iso < self.first else self.first
            self.last = iso if self.last is None or iso > self.last else self.last

    def counted(self, address: str) -> Counted:
        lang = ""
        if self.langs:
            # subjects are short: any non-English guess beats the default
            non_en = [(n, lg) for lg, n in self.langs.items() if lg != "en"]
            lang = max(non_en)[1] if non_en else "en"
        automated = bool(self.n_from and self.automated_from == self.n_from and not self.n_to)
        return Counted(address, self.name, self.first, self.last, self.n_from, self.n_to, lang,
                       automated, self.last_from_ts or None)


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
            seen_ids: set[str] = set()
            for folder in work:
                info = await self.blocking.run(client.select_folder, folder.name, readonly=True)
                if int(info.get(b"UIDVALIDITY", 0) or 0) != folder.uidvalidity:
                    continue   # renumbered since the plan; the next scan re-plans it
                for i in range(0, len(folder.uids), _CHUNK):
                    chunk = folder.uids[i:i + _CHUNK]
                    data = await self.blocking.run(_fetch, client, chunk)
                    await self.sink.save_counts(self._count(data, folder.is_sent, seen_ids))
                    await self.store.set_setting(f"scan.mark.{folder.name}",
                                                 {"uidvalidity": folder.uidvalidity, "last_uid": max(chunk)})
                    done += len(chunk)
                    self._progress("running", total, done, folder.name)
            await self.sink.refresh_customers()
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

    async def _work(self, plan: list[_Folder]) -> list[_Folder]:
        """The UIDs not read yet, per folder (a renumbered folder starts from now: counting
        it again would double every count)."""
        work: list[_Folder] = []
        for f in plan:
            mark = await self.store.get_setting(f"scan.mark.{f.name}")
            if mark and int(mark["uidvalidity"]) != f.uidvalidity:
                await self.store.set_setting(f"scan.mark.{f.name}",
                                             {"uidvalidity": f.uidvalidity, "last_uid": f.uidnext - 1})
                continue
            last = int(mark["last_uid"]) if mark else 0
            todo = [u for u in f.uids if u > last]
            if todo:
                work.append(_Folder(f.name, f.is_sent, f.uidvalidity, f.uidnext, todo))
        return work

    def _progress(self, state: str, total: int, done: int, detail: str) -> None:
        self.bus.publish(JobProgress(job="scan", state=state, total_messages=total, total_bytes=0,
                                     done_messages=done, done_bytes=0, detail=detail))

    def _count(self, data: dict[int, tuple[bytes, Any]], is_sent: bool, seen_ids: set[str]) -> list[Counted]:
        tallies: dict[str, _Tally] = {}
        own = self.own
        for _uid, (block, internal) in sorted(data.items()):
            msg = parse_headers(block)
            mid = header_text(msg, "Message-ID")
            if mid:
                if mid in seen_ids:  # one message in several folders (Gmail labels)
                    continue
                seen_ids.add(mid)
            when = date_of(msg, internal)
            iso = when.astimezone(dt.timezone.utc).isoformat(timespec="seconds") if when else None
            name, sender = sender_of(msg)
            subject = header_text(msg, "Subject")
            if is_sent or sender in own:
                # what we write to them is a fair guess of what they read (the notices
                # use it); a reminder goes by what they write first
                lang = detect_language(subject)
                for rname, addr in addresses(msg, "To", "Cc", "Bcc"):
                    if addr in own or "@" not in addr:
                        continue
                    t = tallies.setdefault(addr, _Tally())
                    t.n_to += 1
                    t.seen(iso)
                    if rname and not t.name:
                        t.name = rname
                    if lang:
                        t.langs[lang] += 1
                continue
            if not sender or sender in own or is_spam(msg):
                continue
            t = tallies.setdefault(sender, _Tally())
            t.n_from += 1
            t.seen(iso)
            t.last_from_ts = max(t.last_from_ts, when.timestamp() if when else 0.0)
            if name:
                t.name = name   # the latest display name they use
            if is_automated(msg)[0] or is_bounce(msg):
                t.automated_from += 1
            # a subject they wrote themselves (a reply's is usually ours); the watch
            # learns better from the words of each new arrival
            lang = subject_language(subject)
            if lang:
                t.langs[lang] += 1
        return [t.counted(addr) for addr, t in tallies.items()]


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


def _fetch(client: imapclient.IMAPClient, uids: list[int]) -> dict[int, tuple[bytes, Any]]:
    client.normalise_times = False
    return imapnet.fetch_header_fields(client, uids, _SCAN_FIELDS)
