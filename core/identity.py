"""Message identities that survive a copy between servers.

A message with a Message-ID is known by ``m:`` + a hash of (Message-ID, the normalized
Date / From / To / Cc / Subject header block, size); one without by ``c:`` + a hash of
its full content. Two messages sharing a Message-ID but differing in body get different
identities through their size or, failing that, their header block.
"""

from __future__ import annotations

import hashlib
import re

#: the header fields fetched to compute an identity (one FETCH per batch)
IDENTITY_FIELDS = (b"MESSAGE-ID", b"DATE", b"FROM", b"TO", b"CC", b"SUBJECT")
#: the FETCH item that brings them, without setting \Seen
HEADER_FETCH = b"BODY.PEEK[HEADER.FIELDS (" + b" ".join(IDENTITY_FIELDS) + b")]"
HEADER_KEY = b"BODY[HEADER.FIELDS (" + b" ".join(IDENTITY_FIELDS) + b")]"

_WS = re.compile(rb"\s+")
_FOLD = re.compile(rb"\r?\n[ \t]+")


def parse_header_block(block: bytes) -> dict[bytes, bytes]:
    """Unfold and split a header block; the first occurrence of a field wins."""
    fields: dict[bytes, bytes] = {}
    text = _FOLD.sub(b" ", block)
    for line in re.split(rb"\r?\n", text):
        if b":" not in line or line[:1] in (b" ", b"\t"):
            continue
        name, _, value = line.partition(b":")
        key = name.strip().upper()
        if key and key not in fields:
            fields[key] = _WS.sub(b" ", value).strip()
    return fields


def message_id(block: bytes) -> str | None:
    mid = parse_header_block(block).get(b"MESSAGE-ID", b"").strip()
    return mid.decode("utf-8", "replace") if mid else None


def identity_from_headers(block: bytes, size: int) -> str | None:
    """The identity from a header block and RFC822.SIZE, or None without a Message-ID."""
    fields = parse_header_block(block)
    mid = fields.get(b"MESSAGE-ID", b"").strip()
    if not mid:
        return None
    h = hashlib.sha256()
    for name in IDENTITY_FIELDS:
        h.update(name + b":" + fields.get(name, b"") + b"\n")
    h.update(b"size:%d" % size)
    return "m:" + h.hexdigest()[:40]


def identity_from_content(raw: bytes) -> str:
    return "c:" + hashlib.sha256(raw).hexdigest()[:40]


def header_block(raw: bytes) -> bytes:
    """The header part of a full message (up to the first empty line)."""
    m = re.search(rb"\r?\n\r?\n", raw)
    return raw[: m.start()] if m else raw


def identity_of(raw: bytes) -> str:
    """Identity of a complete message held in memory (backup, import)."""
    return identity_from_headers(header_block(raw), len(raw)) or identity_from_content(raw)
