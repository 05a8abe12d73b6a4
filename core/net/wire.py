"""Raw IMAP commands over an imapclient connection, for the bulk paths of migrate/verify.

imapclient parses every response through a general lexer and its ``append`` rewrites
bare CR / LF, so the copy speaks the protocol itself on the already logged-in socket:
pipelined commands, streaming FETCH with literals, APPEND / MULTIAPPEND with LITERAL+
(or synchronizing literals) that send the message bytes untouched, APPENDUID parsing.
Blocking; one ``Wire`` per connection, used by one thread at a time.
"""

from __future__ import annotations

import itertools
import re
import socket
from typing import Any, BinaryIO, Callable

import imapclient

# the protocol text the wire speaks; callers import these names from here
from .protocol import (_CODE, _TOKEN, _UNTAGGED_NUM, AppendResult, ConnectionLost, Incomplete,
                       ResponseTooLong, Selected, WireError, check_listed, expand_uid_set, mailbox,
                       parse_tokens, quote, uid_set)

__all__ = ["MAX_LINE", "AppendResult", "ConnectionLost", "Incomplete", "ResponseTooLong", "Selected",
           "Wire", "WireError", "check_listed", "expand_uid_set", "mailbox", "parse_tokens", "quote",
           "uid_set", "_TOKEN"]


#: longest server line read (a UID SEARCH of 5 million messages is ~45 MB)
MAX_LINE = 64 * 2**20
_PIECE = 1 << 20

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_tags = itertools.count(1)


class Wire:
    """Raw protocol access to a logged-in imapclient connection."""

    def __init__(self, client: imapclient.IMAPClient) -> None:
        self.client = client
        # imapclient (3.x) offers no raw access: its imaplib connection's socket and
        # buffered reader are private; the bulk paths need them (see the module docstring)
        self.imap = client._imap
        self.sock: socket.socket = self.imap.sock
        self.file: BinaryIO = self.imap.file
        try:   # many small writes (pipelined commands, literal heads) must not wait for ACKs
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._out: list[bytes] = []
        self._out_size = 0
        caps = {c.upper() for c in client.capabilities()}
        self.literal_plus = b"LITERAL+" in caps
        self.has_multiappend = b"MULTIAPPEND" in caps
        self.uidplus = b"UIDPLUS" in caps
        self.unselect = b"UNSELECT" in caps
        self.selected: Selected | None = None

    # -- low level ----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.queue(data)
        self.flush()

    def queue(self, data: bytes) -> None:
        """Buffer small writes into few large segments (flushed at 256 KB or by send);
        a big piece (a message) goes out as it is, never copied into a buffer."""
        if len(data) >= 1 << 16:
            self.flush()
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise ConnectionLost(f"connection lost while sending ({e})") from None
            return
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= 1 << 18:
            self.flush()

    def flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out, self._out_size = [], 0
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost(f"connection lost while sending ({e})") from None

    def _line(self) -> bytes:
        """One server line, CRLF included, however long (a ``* SEARCH`` of 200,000 UIDs
        is 1.4 MB): read in pieces to the LF, bounded by MAX_LINE."""
        try:
            line = self.file.readline(_PIECE)
            if len(line) == _PIECE and not line.endswith(b"\n"):
                pieces = [line]
                size = len(line)
                while not pieces[-1].endswith(b"\n"):
                    piece = self.file.readline(_PIECE)
                    if not piece:
                        break
                    pieces.append(piece)
                    size += len(piece)
                    if size > MAX_LINE:
                        self._abandon()
                        raise ResponseTooLong(
                            f"the server sent a response line longer than {MAX_LINE / 2**20:g} MiB")
                line = b"".join(pieces)
        except OSError as e:
            raise ConnectionLost(f"connection lost ({e})") from None
        if not line.endswith(b"\n"):
            raise ConnectionLost("the server closed the connection")
        return line

    def _abandon(self) -> None:
        """Close the socket: the stream is out of step (the next use reconnects)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read(self, n: int) -> bytes:
        try:
            data = self.file.read(n)
        except OSError as e:
            raise ConnectionLost(f"connection lost ({e})") from None
        if len(data) != n:
            raise ConnectionLost("the server closed the connection in a literal")
        return data

    def read_response(self) -> list[bytes]:
        """One response: [text, literal, text, literal, ..., text] (CRLF stripped)."""
        parts: list[bytes] = []
        while True:
            line = self._line()
            # only a line ending in "}CRLF" announces a literal: look at its tail, not at
            # the whole line (a SEARCH answer can be megabytes long)
            m = _LITERAL.match(line, line.rfind(b"{")) if line.endswith(b"}\r\n") else None
            if m:
                parts.append(line[: m.start()])
                parts.append(self._read(int(m.group(1))))
                continue
            parts.append(line.rstrip(b"\r\n"))
            return parts

    def start(self, command: bytes) -> bytes:
        """Queue a command; it goes out with the next flush (``finish`` flushes), so
        several ``start`` calls in a row are pipelined into one segment."""
        tag = b"W%d" % next(_tags)
        self.queue(tag + b" " + command + b"\r\n")
        return tag

    def finish(self, tag: bytes, on_untagged: Callable[[list[bytes]], None] | None = None) -> str:
        """Read until ``tag`` completes; returns the OK text or raises WireError."""
        self.flush()
        while True:
            parts = self.read_response()
            head = parts[0]
            if head.startswith(b"* "):
                if head.startswith(b"* BYE"):
                    raise ConnectionLost(head[6:].decode("utf-8", "replace"))
                if on_untagged is not None:
                    on_untagged(parts)
                continue
            if head.startswith(b"+"):
                continue
            t, _, rest = head.partition(b" ")
            status, _, text = rest.partition(b" ")
            if t != tag:
                continue   # completion of an earlier command we were not waiting for
            words = text.decode("utf-8", "replace")
            if status.upper() != b"OK":
                raise WireError(status.decode("ascii", "replace").upper(), words)
            return words

    def command(self, command: bytes, on_untagged: Callable[[list[bytes]], None] | None = None) -> str:
        return self.finish(self.start(command), on_untagged)

    # -- commands -------------------------------------------------------------------------
    @staticmethod
    def select_handler(info: dict[str, int]) -> Callable[[list[bytes]], None]:
        """EXISTS, UIDVALIDITY and UIDNEXT of a SELECT / EXAMINE answer into ``info``."""
        def untagged(parts: list[bytes]) -> None:
            head = parts[0]
            m = _UNTAGGED_NUM.match(head)
            if m and m.group(2) == b"EXISTS":
                info["exists"] = int(m.group(1))
            for code, arg in _CODE.findall(head):
                if code in (b"UIDVALIDITY", b"UIDNEXT") and arg.strip().isdigit():
                    info[code.decode().lower()] = int(arg)
        return untagged

    def select(self, name: str, readonly: bool = True) -> Selected:
        return self.select_and_search(name, readonly, search=False)[0]

    def select_and_search(self, name: str, readonly: bool = True,
                          search: bool = True) -> tuple[Selected, list[int]]:
        """EXAMINE/SELECT and UID SEARCH ALL pipelined in one round trip."""
        info = {"exists": 0, "uidvalidity": 0, "uidnext": 0}
        uids: list[int] = []
        self.selected = None
        verb = b"EXAMINE " if readonly else b"SELECT "
        t1 = self.start(verb + mailbox(name))
        t2 = self.start(b"UID SEARCH ALL") if search else None
        err: WireError | None = None
        try:
            self.finish(t1, self.select_handler(info))
        except WireError as e:
            err = e
        if t2 is not None:
            try:
                self.finish(t2, self.search_handler(uids, info))
            except WireError as e:
                err = err or e
        if err is not None:
            raise err
        if search and len(uids) != info["exists"]:
            # mail arrived or left between the two answers: ask once more, then insist
            uids = []
            self.command(b"UID SEARCH ALL", self.search_handler(uids, info))
            check_listed(name, len(uids), info["exists"])
        self.selected = Selected(name, info["exists"], info["uidvalidity"], info["uidnext"])
        return self.selected, uids

    @staticmethod
    def _search_handler(uids: list[int]) -> Callable[[list[bytes]], None]:
        def untagged(parts: list[bytes]) -> None:
            if parts[0].startswith(b"* SEARCH"):
                uids.extend(int(x) for x in parts[0][8:].split() if x.isdigit())
        return untagged

    @staticmethod
    def search_handler(uids: list[int], info: dict[str, int]) -> Callable[[list[bytes]], None]:
        """UIDs of ``* SEARCH`` into ``uids``; an ``* n EXISTS`` sent meanwhile updates
        ``info["exists"]`` (what the listing is checked against)."""
        def untagged(parts: list[bytes]) -> None:
            head = parts[0]
            if head.startswith(b"* SEARCH"):
                uids.extend(int(x) for x in head[8:].split() if x.isdigit())
                return
            m = _UNTAGGED_NUM.match(head)
            if m and m.group(2) == b"EXISTS":
                info["exists"] = int(m.group(1))
        return untagged

    def status_many(self, names: list[str]) -> dict[str, dict[str, int] | WireError]:
        """STATUS (MESSAGES UIDNEXT UIDVALIDITY) of many folders in one round trip."""
        tags = [(n, self.start(b"STATUS " + mailbox(n) + b" (MESSAGES UIDNEXT UIDVALIDITY)"))
                for n in names]
        out: dict[str, Any] = {}
        for name, tag in tags:
            got: dict[str, int] = {}

            def untagged(parts: list[bytes], got: dict[str, int] = got) -> None:
                if parts[0].startswith(b"* STATUS"):
                    toks = parse_tokens(parts)
                    items = toks[-1] if toks and isinstance(toks[-1], list) else []
                    for k, v in zip(items[::2], items[1::2]):
                        if isinstance(v, bytes) and v.isdigit():
                            got[bytes(k).decode().lower()] = int(v)

            try:
                self.finish(tag, untagged)
                out[name] = got
            except WireError as e:
                out[name] = e
        return out

    def uid_search_all(self) -> list[int]:
        uids: list[int] = []
        self.command(b"UID SEARCH ALL", self._search_handler(uids))
        return uids

    def expunge_uids(self, folder: str, uids: list[int]) -> None:
        """Remove exactly these messages (SELECT, UID STORE \\Deleted, UID EXPUNGE): only
        with UIDPLUS, whose UID EXPUNGE leaves every other \\Deleted message alone."""
        if not self.uidplus:
            raise WireError("NO", "the server has no UIDPLUS: messages cannot be removed one by one")
        self.selected = None
        self.select(folder, readonly=False)
        self.selected = None      # read-write: the next EXAMINE re-selects
        s = uid_set(uids)
        t1 = self.start(b"UID STORE " + s + b" +FLAGS.SILENT (\\Deleted)")
        t2 = self.start(b"UID EXPUNGE " + s)
        # never CLOSE: it would expunge every \\Deleted message of the folder
        tags = [t1, t2] + ([self.start(b"UNSELECT")] if self.unselect else [])
        err = None
        for t in tags:
            try:
                self.finish(t)
            except WireError as e:
                err = err or e
        if err is not None:
            raise err

    def fetch(self, uids: bytes, items: bytes, each: Callable[[dict[bytes, Any]], None]) -> None:
        """UID FETCH ``uids`` (items); ``each`` gets {ITEM: value} per message (streaming)."""
        self.finish(self.start_fetch(uids, items), self.fetch_handler(each))

    def start_fetch(self, uids: bytes, items: bytes) -> bytes:
        return self.start(b"UID FETCH " + uids + b" (" + items + b")")

    @staticmethod
    def fetch_handler(each: Callable[[dict[bytes, Any]], None]) -> Callable[[list[bytes]], None]:

        def untagged(parts: list[bytes]) -> None:
            m = _UNTAGGED_NUM.match(parts[0])
            if not m or m.group(2) != b"FETCH":
                return
            toks = parse_tokens(parts)
            lst = next((t for t in toks if isinstance(t, list)), [])
            d: dict[bytes, Any] = {}
            for k, v in zip(lst[::2], lst[1::2]):
                key = bytes(k).upper()
                if key.startswith(b"BODY[HEADER.FIELDS"):
                    key = b"HEADER"
                d[key] = v
            if b"UID" in d:
                d[b"UID"] = int(d[b"UID"])
                each(d)

        return untagged

    # -- append ---------------------------------------------------------------------------
    @staticmethod
    def _msg_args(flags: bytes, date: bytes | None, size: int, plus: bool) -> bytes:
        out = b" (" + flags + b")"
        if date:
            out += b' "' + date + b'"'
        return out + (b" {%d+}\r\n" % size if plus else b" {%d}\r\n" % size)

    def _send_literal_sync(self, head: bytes, tag: bytes) -> None:
        """Send ``head`` ending in {n}, wait for the continuation."""
        self.send(head)
        while True:
            parts = self.read_response()
            if parts[0].startswith(b"+"):
                return
            t, _, rest = parts[0].partition(b" ")
            if t == tag:
                status, _, text = rest.partition(b" ")
                raise WireError(status.decode().upper(), text.decode("utf-8", "replace"))
            if parts[0].startswith(b"* BYE"):
                raise ConnectionLost(parts[0][6:].decode("utf-8", "replace"))

    def multiappend(self, folder: str, messages: list[tuple[bytes, bytes | None, bytes]]) -> list[AppendResult]:
        """One MULTIAPPEND of (flags, internaldate, raw) messages; all or none (raises WireError)."""
        tag = b"W%d" % next(_tags)
        self.queue(tag + b" APPEND " + mailbox(folder))
        for flags, date, raw in messages:
            head = self._msg_args(flags, date, len(raw), self.literal_plus)
            if self.literal_plus:
                self.queue(head)
            else:
                self._send_literal_sync(head, tag)
            self.queue(raw)
        self.send(b"\r\n")
        text = self.finish(tag)
        return self._results(text, len(messages))

    def append_each(self, folder: str, messages: list[tuple[bytes, bytes | None, bytes]]) -> list[AppendResult]:
        """Single APPENDs, pipelined when LITERAL+ allows; a NO refuses only that message."""
        results: list[AppendResult] = []
        if self.literal_plus:
            tags = []
            for flags, date, raw in messages:
                tag = b"W%d" % next(_tags)
                self.queue(tag + b" APPEND " + mailbox(folder) + self._msg_args(flags, date, len(raw), True))
                self.queue(raw)
                self.queue(b"\r\n")
                tags.append(tag)
            self.flush()
            for tag in tags:
                results.append(self._one_result(tag))
            return results
        for flags, date, raw in messages:
            tag = b"W%d" % next(_tags)
            try:
                self._send_literal_sync(tag + b" APPEND " + mailbox(folder)
                                        + self._msg_args(flags, date, len(raw), False), tag)
            except WireError as e:
                results.append(AppendResult(False, text=e.text))
                continue
            self.queue(raw)          # the message as it is: no copy with the CRLF joined
            self.send(b"\r\n")
            results.append(self._one_result(tag))
        return results

    def _one_result(self, tag: bytes) -> AppendResult:
        try:
            text = self.finish(tag)
        except WireError as e:
            return AppendResult(False, text=e.text)
        return self._results(text, 1)[0]

    @staticmethod
    def _results(text: str, n: int) -> list[AppendResult]:
        m = re.search(r"\[APPENDUID (\d+) ([0-9:,]+)\]", text)
        if m:
            uids = expand_uid_set(m.group(2))
            if len(uids) == n:
                return [AppendResult(True, u, int(m.group(1)), text) for u in uids]
        return [AppendResult(True, text=text) for _ in range(n)]
