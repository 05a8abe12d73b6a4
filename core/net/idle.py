"""IMAP IDLE for the months-long watch, and the one place the watch reads imapclient's
internals (written against imapclient 4.x; pyproject pins that major version).

Why private API: imapclient's ``idle_check`` reads with the socket non-blocking, one line
at a time, and parses each line alone. That loses sync when a server writes a response
in pieces (a partial line: "unterminated line") or sends one carrying a literal (the
literal and the rest of the line would be read as new responses) — pymap does both, and
so can any server over a slow link. :func:`idle_wait` patches the connection's line
reader (``client._imap._get_line``) for the duration of one IDLE. It also peeks into the
reader's buffer (``client._imap.file``): a response that came in the same packet as
IDLE's "+ idling" already sits there and would wait for the next packet. And it counts
the EXISTS answers imaplib collected (``client._imap.untagged_responses``): mail that
arrives during a sync is announced in the answers to its commands, and IDLE will not
announce it again.

Blocking; runs in a worker thread, one connection per thread.
"""

from __future__ import annotations

import re
import ssl
import time
from typing import Any, Callable

import imapclient

_RESPONSE_START = re.compile(rb"^(\* |\+|[A-Za-z0-9.]+ (OK|NO|BAD|BYE|PREAUTH)\b)")
_EXISTS_MARK = "_switchover_exists"


def _exists_answers(client: imapclient.IMAPClient) -> int:
    return len(client._imap.untagged_responses.get("EXISTS", []))


def mark_exists(client: imapclient.IMAPClient) -> None:
    """Remember how many EXISTS answers were seen (call right after SELECT / EXAMINE)."""
    setattr(client, _EXISTS_MARK, _exists_answers(client))


def grew_since_mark(client: imapclient.IMAPClient) -> bool:
    """True when the server announced new mail (EXISTS) after :func:`mark_exists`."""
    seen = getattr(client, _EXISTS_MARK, None)
    return seen is not None and _exists_answers(client) > int(seen)


def _buffered(client: imapclient.IMAPClient) -> bool:
    """True when the connection's reader holds received bytes not yet parsed."""
    sock = client.socket()
    mode = sock.gettimeout()
    try:
        sock.setblocking(False)
        try:
            return bool(client._imap.file.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
            return False
    finally:
        sock.settimeout(mode)


def _literal_safe_lines(client: imapclient.IMAPClient) -> Callable[[], None]:
    """Make the connection's line reader robust while IDLE runs: wait for a line that
    has begun to arrive, consume literals whole (NIL takes their place: the watch only
    needs to know that something happened), and turn a line that is no IMAP response
    into a harmless untagged OK. Returns the function that removes the patch."""
    imap = client._imap
    original: Callable[[], bytes] = imap._get_line

    def whole(read: Callable[[], Any]) -> Any:
        sock = client.socket()
        mode = sock.gettimeout()
        if mode != 0.0:
            return read()
        sock.settimeout(30.0)   # it has begun to arrive: the rest follows
        try:
            return read()
        finally:
            sock.setblocking(False)

    def get_line() -> bytes:
        if client.socket().gettimeout() == 0.0:
            try:
                ready = imap.file.peek(1)
            except ssl.SSLWantReadError:
                ready = b""
            if not ready:
                # nothing buffered or on the socket now (or EOF): ends idle_check's loop
                raise BlockingIOError("no IDLE response waiting")
        line: bytes = whole(original)
        while line.endswith(b"}") and b"{" in line:
            head, _, size = line.rpartition(b"{")
            size = size[:-1].rstrip(b"+")
            if not size.isdigit():
                break
            count = int(size)
            whole(lambda: imap.read(count))
            line = head + b"NIL" + whole(original)
        if not _RESPONSE_START.match(line):
            return b"* OK [switchover] ignored a malformed line"
        return line

    imap._get_line = get_line

    def unpatch() -> None:
        imap.__dict__.pop("_get_line", None)

    return unpatch


def idle_wait(client: imapclient.IMAPClient, max_seconds: float, stopped: Callable[[], bool]) -> bool:
    """IDLE until the selected folder grows (True), ``max_seconds`` pass or ``stopped()``.
    Ends IDLE before returning (DONE's answer also proves the connection lives); a BYE
    or a dead connection raises."""
    client.idle()
    grew = False
    unpatch = _literal_safe_lines(client)
    try:
        end = time.monotonic() + max_seconds
        while not stopped() and time.monotonic() < end:
            if _buffered(client):
                grew = True
                break
            t0 = time.monotonic()
            responses = client.idle_check(timeout=0.5)
            for r in responses:
                if len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT"):
                    grew = True
                if r and r[0] == b"BYE":
                    raise ConnectionError(f"server said BYE: {r[1:]!r}")
            if grew:
                break
            # readable but nothing parsed at once: imapclient swallows EOF here, so
            # leave IDLE and let DONE's answer (or its failure) tell
            if not responses and time.monotonic() - t0 < 0.05:
                break
    finally:
        try:
            client.idle_done()
        finally:
            unpatch()
    return grew
