"""Finding mail in local files for an import, and reading what each message says about
itself.

Sources: an ``.mbox`` file (any mbox flavour, see core/backup/mbox.py; Apple Mail's
``Name.mbox/mbox`` and Thunderbird's extension-less profile files next to their ``.msf``
too), a single ``.eml`` file, or a directory searched recursively for both (Outlook,
Foxmail and Thunderbird exports). The root of a switchover backup holding both formats is
read from its ``eml/`` tree only, so nothing arrives twice.

* **Line endings.** IMAP wants CRLF, so bare LF becomes CRLF; nothing else changes.
* **Flags** from ``Status`` / ``X-Status`` / ``X-Mozilla-Status`` headers when present.
* **Dates**: the ``Date`` header, the mbox ``From `` line, the file's modification time.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import SwitchoverError
from ..mail.dates import parse_date
from ..mail.identity import header_block, parse_header_block
from .index import INDEX_NAME
from .mbox import NotMbox, is_from_line, split_mbox

_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_BARE_LF = re.compile(rb"(?<!\r)\n")
MAIL_SUFFIXES = {".eml"}
MBOX_SUFFIXES = {".mbox", ".mbx"}


@dataclass
class Source:
    """One message found on disk (``raw`` None when it could not be used)."""

    ref: str
    raw: bytes | None
    reason: str = ""
    mtime: float = 0.0
    from_date: dt.datetime | None = None
    from_mbox: bool = False


def looks_like_mail(raw: bytes) -> str:
    """'' when raw starts like a mail message, else one sentence why not."""
    if not raw.strip():
        return "the file is empty"
    if not _HEADER_LINE.match(raw.lstrip(b"\r\n")[:1000]):
        return "it does not start with mail header fields (such as From: or Subject:), so it is not a mail message"
    return ""


def to_crlf(raw: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", raw)


def read_mbox(path: Path, ref: str) -> Iterator[Source]:
    """Messages of an mbox file, one at a time (memory bounded by the largest one)."""
    try:
        mtime = path.stat().st_mtime
        f = open(path, "rb")
    except OSError as e:
        yield Source(ref, None, f"it cannot be read ({e.strerror})")
        return
    n = 0
    with f:
        try:
            for msg in split_mbox(f):
                n += 1
                yield Source(f"{ref}#{n}", msg.raw, "", mtime, msg.from_date, from_mbox=True)
        except NotMbox:
            yield Source(ref, None, "it does not start with a 'From ' line, so it is not an mbox file", mtime)
            return
    if n == 0:
        yield Source(ref, None, "the file is empty", mtime)


def _eml_source(path: Path, ref: str) -> Source:
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except OSError as e:
        return Source(ref, None, f"it cannot be read ({e.strerror})")
    return Source(ref, raw, "", mtime)


def iter_sources(path: Path) -> Iterator[Source]:
    """Every message under ``path`` (file or directory), in a stable order."""
    if not path.exists():
        raise SwitchoverError(f"{path} does not exist.")
    if path.is_file():
        yield from _file_sources(path, path.name, explicit=True)
        return
    skip: set[str] = set()
    if (path / INDEX_NAME).is_file() and (path / "eml").is_dir() and (path / "mbox").is_dir():
        skip.add(str(path / "mbox"))     # a switchover backup holds each message twice
    for dirpath, dirnames, filenames in os.walk(path):
        if dirpath in skip:
            dirnames[:] = []
            continue
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            yield from _file_sources(p, p.relative_to(path).as_posix(), explicit=False)


def _starts_with_from_line(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return is_from_line(f.readline(4096))
    except OSError:
        return False


def _file_sources(p: Path, ref: str, explicit: bool) -> Iterator[Source]:
    suffix = p.suffix.lower()
    if suffix in MAIL_SUFFIXES:
        if _starts_with_from_line(p):
            yield from read_mbox(p, ref)         # "raw" saves that keep the envelope line
        else:
            yield _eml_source(p, ref)
    elif suffix in MBOX_SUFFIXES or p.name == "mbox" or (not suffix and p.with_name(p.name + ".msf").exists()):
        # .mbox / .mbx, Apple Mail's Name.mbox/mbox, Thunderbird's profile files (Inbox + Inbox.msf)
        yield from read_mbox(p, ref)
    elif suffix == ".msg":
        yield Source(ref, None, "it is an Outlook .msg file, not MIME mail; save it from Outlook as .eml")
    elif explicit:
        try:
            with open(p, "rb") as f:
                head = f.read(5)
        except OSError as e:
            yield Source(ref, None, f"it cannot be read ({e.strerror})")
            return
        if head == b"From ":
            yield from read_mbox(p, ref)
        else:
            yield _eml_source(p, ref)
    # other files in a directory (indexes, table_of_contents, .DS_Store) are not mail


# -- flags and dates ----------------------------------------------------------------------
def status_flags(raw: bytes) -> list[str] | None:
    """Flags from Status / X-Status / X-Mozilla-Status headers, or None when absent."""
    fields = parse_header_block(header_block(raw))
    flags: set[str] = set()
    found = False
    moz = fields.get(b"X-MOZILLA-STATUS")
    if moz:
        try:
            v = int(moz.strip(), 16)
            found = True
            if v & 0x1:
                flags.add("\\Seen")
            if v & 0x2:
                flags.add("\\Answered")
            if v & 0x4:
                flags.add("\\Flagged")
        except ValueError:
            pass
    status = fields.get(b"STATUS")
    if status is not None:
        found = True
        if b"R" in status:
            flags.add("\\Seen")
    xstatus = fields.get(b"X-STATUS")
    if xstatus is not None:
        found = True
        for ch, flag in ((b"A", "\\Answered"), (b"F", "\\Flagged"), (b"T", "\\Draft")):
            if ch in xstatus:
                flags.add(flag)
    return sorted(flags) if found else None


def header_date(raw: bytes) -> dt.datetime | None:
    """The Date header as an aware datetime (UTC when it names no zone), or None — also
    for a year outside 1970–2100, which is a mailer's mistake, not a date."""
    value = parse_header_block(header_block(raw)).get(b"DATE")
    d = parse_date(value) if value else None
    return d if d is not None and 1970 <= d.year <= 2100 else None
