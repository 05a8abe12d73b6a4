"""Blocking protocol work of the copy, on raw ``Wire`` connections (worker threads).

Reading a folder's identities (one pipelined EXAMINE + header FETCH per folder, content
hash only for messages without Message-ID), counting folders, probing and creating
destination folders in one round trip, fetching bodies, and appending them (MULTIAPPEND
when offered; a NO there refuses the whole batch, so the batch is retried one message at
a time to find the refused one). The planner and the lanes run these in worker threads;
verify reuses the readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import imapclient

from ..context import Accounts
from ..mail.headers import decode_bytes, decode_header_value
from ..mail.identity import HEADER_FETCH, header_info, identity_from_content
from ..net import imap as imapmod
from ..net.wire import (AppendResult, ConnectionLost, Incomplete, Selected, Wire, WireError, mailbox,
                        uid_set)
from ..progress import batches

HEADER_ITEMS = b"UID RFC822.SIZE FLAGS INTERNALDATE " + HEADER_FETCH


@dataclass
class SrcMsg:
    uid: int
    size: int
    flags: bytes          # as sent back in APPEND (without \Recent)
    date: bytes | None    # INTERNALDATE exactly as the source wrote it
    identity: str
    message_id: str | None
    raw_subject: bytes    # unfolded Subject header value, decoded only when shown

    @property
    def subject(self) -> str:
        """The Subject for people (refusals, verify reports). Decoding every message's
        subject up front cost ~15 % of the Python time on a mailbox of encoded subjects."""
        return _subject(self.raw_subject)


class Conn:
    """One logged-in connection of one side with its raw ``Wire``; blocking methods."""

    def __init__(self, accounts: Accounts, side: str) -> None:
        self.accounts = accounts
        self.side = side
        self.client: imapclient.IMAPClient | None = None
        self._wire: Wire | None = None

    @property
    def is_open(self) -> bool:
        return self._wire is not None

    @property
    def wire(self) -> Wire:
        """The raw connection; a closed one raises ConnectionLost (a lane reconnects)."""
        if self._wire is None:
            raise ConnectionLost("the connection was closed")
        return self._wire

    def open(self) -> "Conn":
        self.close()
        self.client = imapmod.connect(self.accounts.account(self.side))
        self._wire = Wire(self.client)
        return self

    def close(self) -> None:
        """LOGOUT without waiting for the answer (saves a round trip per connection)."""
        client, wire, self.client, self._wire = self.client, self._wire, None, None
        if client is None:
            return
        try:
            if wire is not None:
                wire.send(b"WX LOGOUT\r\n")
            client.shutdown()
        except Exception:
            try:
                client.shutdown()
            except Exception:
                pass


#: message bodies at least this big get their own memory mapping (see keep_heap_flat)
BIG_ALLOCATION = 4 * 2**20
_heap_set = False


def keep_heap_flat() -> None:
    """Give big message bodies back to the system as soon as they are freed.

    glibc serves an allocation above its mmap threshold with its own mapping, but after
    the first such block is freed it raises the threshold to that block's size (up to
    32 MB): later 10-15 MB bodies then come from the heaps of the worker threads, which
    fragment and keep the pages (peak RSS 199 MB on 500 messages of up to 15 MB, against
    97 MB with a fixed threshold). A fixed threshold of BIG_ALLOCATION keeps smaller
    bodies on the heap (no page-fault cost for the common case) and maps the big ones.
    Linux/glibc only; elsewhere nothing happens."""
    global _heap_set
    if _heap_set:
        return
    _heap_set = True
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is not None:
            mallopt(-3, BIG_ALLOCATION)      # M_MMAP_THRESHOLD (also stops its dynamic growth)
    except (OSError, AttributeError, ValueError):
        pass


def flags_for_append(flags: object) -> bytes:
    items = flags if isinstance(flags, list) else []
    return b" ".join(bytes(f) for f in items if bytes(f).upper() != b"\\RECENT")


def _subject(raw: bytes) -> str:
    """The Subject for display, from its raw (unfolded) header value."""
    if b"=?" not in raw:
        # no encoded word: only the charset to guess (core/mail/headers.py)
        return decode_bytes(raw)[:200]
    return decode_header_value(raw.decode("ascii", "surrogateescape"))[:200]


def identify(wire: Wire, uids: list[int], max_bytes: int) -> list[SrcMsg]:
    """Header FETCH of ``uids`` in the selected folder (one command); content hash for
    messages without Message-ID."""
    out: list[SrcMsg] = []
    no_mid: list[SrcMsg] = []

    def each(d: dict[bytes, Any]) -> None:
        m, anon = parse_fetch(d)
        out.append(m)
        if anon:
            no_mid.append(m)

    if uids:
        wire.fetch(uid_set(uids), HEADER_ITEMS, each)
    content_ids(wire, no_mid, max_bytes)
    out.sort(key=lambda m: m.uid)
    return out


def body_into(bodies: dict[int, bytes]) -> Callable[[dict[bytes, Any]], None]:
    def each(d: dict[bytes, Any]) -> None:
        body = d.get(b"BODY[]")
        if body is not None and not isinstance(body, list):
            bodies[d[b"UID"]] = bytes(body)
    return each


def fetch_bodies(wire: Wire, uids: list[int]) -> dict[int, bytes]:
    bodies: dict[int, bytes] = {}
    wire.fetch(uid_set(uids), b"UID BODY.PEEK[]", body_into(bodies))
    return bodies



def parse_fetch(d: dict[bytes, Any]) -> tuple[SrcMsg, bool]:
    block = bytes(d.get(b"HEADER") or b"")
    size = int(d.get(b"RFC822.SIZE") or 0)
    ident, mid, subject = header_info(block, size)   # one parse of the block
    date = d.get(b"INTERNALDATE")
    return SrcMsg(d[b"UID"], size, flags_for_append(d.get(b"FLAGS")), bytes(date) if date else None,
                  ident or "", mid, subject), ident is None


def content_ids(wire: Wire, msgs: list[SrcMsg], max_bytes: int) -> None:
    """Content hash for messages without Message-ID (the folder must be selected)."""
    for batch in batches(msgs, 200, max_bytes, size=_size):
        bodies = fetch_bodies(wire, [m.uid for m in batch])
        for m in batch:
            raw = bodies.get(m.uid)
            m.identity = identity_from_content(raw) if raw is not None else f"u:{m.uid}"


def _size(m: SrcMsg) -> int:
    return m.size


def _finish_examined(wire: Wire, examine: bytes, info: dict[str, int], then: bytes,
                     handler: Callable[[list[bytes]], None]) -> WireError | None:
    """Read the answers to a pipelined EXAMINE (into ``info``) and the command sent right
    after it; the first refusal, if any, is returned rather than raised."""
    err: WireError | None = None
    try:
        wire.finish(examine, Wire.select_handler(info))
    except WireError as e:
        err = e
    try:
        wire.finish(then, handler)
    except WireError as e:
        err = err or e
    return err


def _info() -> dict[str, int]:
    return {"exists": 0, "uidvalidity": 0, "uidnext": 0}


def _selected(name: str, info: dict[str, int]) -> Selected:
    return Selected(name, info["exists"], info["uidvalidity"], info["uidnext"])


def read_many(wire: Wire, reqs: list[tuple[str, bytes]], max_bytes: int
              ) -> dict[str, tuple[Selected, list[SrcMsg]] | WireError]:
    """EXAMINE + header FETCH of many folders, all pipelined (one round trip)."""
    out: dict[str, tuple[Selected, list[SrcMsg]] | WireError] = {}
    sent = []
    for name, uids in reqs:
        t1 = wire.start(b"EXAMINE " + mailbox(name))
        t2 = wire.start_fetch(uids, HEADER_ITEMS)
        sent.append((name, uids, t1, t2))
    pending: list[tuple[str, list[SrcMsg]]] = []
    for name, uids, t1, t2 in sent:
        info = _info()
        msgs: list[SrcMsg] = []
        no_mid: list[SrcMsg] = []

        def each(d: dict[bytes, Any], msgs: list[SrcMsg] = msgs, no_mid: list[SrcMsg] = no_mid) -> None:
            m, anon = parse_fetch(d)
            msgs.append(m)
            if anon:
                no_mid.append(m)

        err = _finish_examined(wire, t1, info, t2, _counting(Wire.fetch_handler(each), info))
        if err is None and uids == b"1:*" and len(msgs) != info["exists"]:
            err = Incomplete(f"the server counts {info['exists']:,} messages in {name} but "
                             f"listed {len(msgs):,}")
        if err is not None:
            out[name] = err
            continue
        msgs.sort(key=lambda m: m.uid)
        out[name] = (_selected(name, info), msgs)
        if no_mid:
            pending.append((name, no_mid))
    for name, no_mid in pending:
        wire.select(name)
        content_ids(wire, no_mid, max_bytes)
    wire.selected = None
    return out


def probe_many(wire: Wire, names: list[str]) -> dict[str, tuple[Selected, list[int]] | WireError]:
    """EXAMINE + UID SEARCH ALL of many folders, pipelined: {name: (Selected, uids) | WireError}.
    A listing that disagrees with the folder's EXISTS is asked again once, then an
    ``Incomplete`` error."""
    sent = [(n, wire.start(b"EXAMINE " + mailbox(n)), wire.start(b"UID SEARCH ALL")) for n in names]
    out: dict[str, tuple[Selected, list[int]] | WireError] = {}
    again: list[str] = []
    for name, t1, t2 in sent:
        info = _info()
        uids: list[int] = []
        err = _finish_examined(wire, t1, info, t2, Wire.search_handler(uids, info))
        out[name] = err if err else (_selected(name, info), uids)
        if err is None and len(uids) != info["exists"]:
            again.append(name)
    wire.selected = None
    for name in again:
        try:
            out[name] = wire.select_and_search(name)
        except WireError as e:
            out[name] = e
    wire.selected = None
    return out


def count_sizes(wire: Wire, names: list[str]) -> dict[str, tuple[int, int]]:
    """(messages, bytes) of every folder: EXAMINE + FETCH 1:* (RFC822.SIZE), all
    pipelined. The count is the server's own (EXISTS), never a short listing's."""
    out: dict[str, tuple[int, int]] = {}
    tags = [(name, wire.start(b"EXAMINE " + mailbox(name)), wire.start(b"FETCH 1:* (RFC822.SIZE)"))
            for name in names]
    for name, t1, t2 in tags:
        acc = [0, 0]
        info = _info()

        def each(parts: list[bytes], acc: list[int] = acc) -> None:
            head = parts[0]
            i = head.find(b"RFC822.SIZE ")
            if i >= 0:
                acc[0] += 1
                acc[1] += int(head[i + 12:].split(b")")[0].split()[0])

        # a refusal: an empty folder ("1:*" is invalid there) or one not selectable
        _finish_examined(wire, t1, info, t2, each)
        out[name] = (max(acc[0], info["exists"]), acc[1])
    wire.selected = None
    return out


def fetch_batch(wire: Wire, folder: str, uids: list[int]) -> tuple[int, dict[int, bytes]]:
    """(UIDVALIDITY, {uid: body}) of ``uids`` in ``folder``; EXAMINE and FETCH go in one
    round trip unless the folder is selected already."""
    if wire.selected is not None and wire.selected.name == folder:
        return wire.selected.uidvalidity, fetch_bodies(wire, uids)
    info = _info()
    bodies: dict[int, bytes] = {}
    t1 = wire.start(b"EXAMINE " + mailbox(folder))
    t2 = wire.start_fetch(uid_set(uids), b"UID BODY.PEEK[]")
    err = _finish_examined(wire, t1, info, t2, Wire.fetch_handler(body_into(bodies)))
    if err:
        raise err
    wire.selected = _selected(folder, info)
    return info["uidvalidity"], bodies


def _counting(handler: Callable[[list[bytes]], None], info: dict[str, int]
              ) -> Callable[[list[bytes]], None]:
    """``handler`` plus: an ``* n EXISTS`` during the command updates ``info``."""
    select = Wire.select_handler(info)

    def untagged(parts: list[bytes]) -> None:
        if parts[0].endswith(b"EXISTS"):
            select(parts)
        else:
            handler(parts)
    return untagged


def create_many(wire: Wire, names: list[str], delim: str, existing: set[str]) -> dict[str, str]:
    """CREATE (parents first) + SUBSCRIBE, pipelined; {name: server's words} for refusals."""
    paths: list[str] = []
    owner: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(delim) if delim else [name]
        for i in range(1, len(parts) + 1):
            path = delim.join(parts[:i]) if delim else name
            if path.casefold() == "inbox" or not parts[i - 1] or path in existing:
                continue
            if path not in owner:
                paths.append(path)
            owner.setdefault(path, []).append(name)
    sent = [(p, wire.start(b"CREATE " + mailbox(p)), wire.start(b"SUBSCRIBE " + mailbox(p)))
            for p in paths]
    errors: dict[str, str] = {}
    for path, tag, sub in sent:
        try:
            wire.finish(tag)
        except WireError as e:
            if not ("ALREADYEXISTS" in e.text.upper() or "already exists" in e.text.lower()):
                for name in owner[path]:
                    errors.setdefault(name, e.text)
        try:
            wire.finish(sub)
        except WireError:
            pass   # unsubscribed folders still hold the mail
    return errors


def append_batch(wire: Wire, folder: str, msgs: list[tuple[bytes, bytes | None, bytes]]
                 ) -> list[AppendResult]:
    """MULTIAPPEND when offered; a NO there refuses the whole batch, so retry one by one."""
    if wire.has_multiappend and len(msgs) > 1:
        try:
            return wire.multiappend(folder, msgs)
        except WireError:
            pass
    return wire.append_each(folder, msgs)


def refusal_words(err: WireError, what: str) -> str:
    """Why a folder could not be read: its listing was short (the words say so) or the
    server refused ``what`` (its words in brackets)."""
    return err.text if isinstance(err, Incomplete) else f"{what} ({err.text})"


class DstLost(ConnectionLost):
    """The destination connection broke (so the planner knows which side to reopen)."""


#: what a dropped connection looks like from the blocking calls
LOST = (ConnectionLost, OSError, imapclient.IMAPClient.AbortError)

T = TypeVar("T")


def dst_side(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark connection losses of a destination-side call (the planner reopens that side)."""
    def wrapped(*args: Any) -> T:
        try:
            return fn(*args)
        except DstLost:
            raise
        except LOST as e:
            raise DstLost(str(e)) from None
    return wrapped
