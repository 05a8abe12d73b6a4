"""The first words of a message from a bounded prefix of its body: what the history scan
fetches (``BODY.PEEK[TEXT]<0.N>``) to learn the language a person writes.

A prefix of a MIME body is a broken message (a cut base64 line, a multipart without its
closing boundary); the standard parser reads it leniently and this module takes the
first text part it finds, decoding what survived the cut. Pure and synchronous. Hand
written because no library parses a truncated MIME body on purpose.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.policy
import quopri
import re
from email.message import Message

from ..mail.headers import decode_bytes
from ..mail.text import html_to_text

#: how much of each body the scan reads: enough for the first text part's opening
#: paragraphs after a multipart preamble and part headers
PREFIX_BYTES = 3072


def _decode(raw: bytes, cte: str) -> bytes:
    cte = cte.strip().lower()
    if cte == "base64":
        data = re.sub(rb"[^A-Za-z0-9+/=]", b"", raw)
        data = data[: len(data) - len(data) % 4]
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError):
            return b""
    if cte == "quoted-printable":
        return quopri.decodestring(raw.rsplit(b"=", 1)[0] if raw.rstrip().endswith(b"=") else raw)
    return raw


def _text(raw: bytes, charset: str | None) -> str:
    """Bytes cut anywhere to text: an incremental decoder keeps a character the cut split
    in two from failing the whole prefix."""
    for cs in (charset or "", "utf-8", "gb18030"):
        try:
            if cs:
                return codecs.getincrementaldecoder(cs)().decode(raw, final=False)
        except (LookupError, UnicodeDecodeError):
            continue
    return decode_bytes(raw, charset)


def _first_text(msg: Message) -> Message | None:
    html = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        if str(part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            return part
        if ctype == "text/html" and html is None:
            html = part
    return html


def prefix_text(header: bytes | Message, prefix: bytes) -> str:
    """The readable start of a message from its header block (raw, or parsed; Content-Type
    and Content-Transfer-Encoding at least) and the first bytes of its body; "" when the
    prefix holds no text part (an attachment first, a report)."""
    if not prefix:
        return ""
    if isinstance(header, Message):
        ctype = header.get_content_type()
        if not ctype.startswith("multipart/"):    # one part: no parser needed
            return _part(header, prefix) if ctype in ("text/plain", "text/html") else ""
        head = f"Content-Type: {header.get('Content-Type', '')}".encode("utf-8", "replace")
    else:
        head = header.rstrip(b"\r\n")
    try:
        msg = email.message_from_bytes(head + b"\r\n\r\n" + prefix, policy=email.policy.compat32)
    except Exception:  # noqa: BLE001 - a prefix is broken by design; nothing to read
        return ""
    part = _first_text(msg)
    return "" if part is None else _part(part, None)


def _part(part: Message, body: bytes | None) -> str:
    """The text of one part: its payload as parsed, or ``body`` (the raw bytes after a
    header block that was parsed alone)."""
    cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    if body is not None:
        raw = _decode(body, cte) if cte in ("base64", "quoted-printable") else body
    elif cte in ("base64", "quoted-printable"):
        payload = part.get_payload(decode=False)
        if not isinstance(payload, str):
            return ""
        raw = _decode(payload.encode("ascii", "ignore"), cte)
    else:   # 7bit / 8bit: the parser undoes its own surrogate escapes
        data = part.get_payload(decode=True)
        raw = bytes(data) if isinstance(data, (bytes, bytearray)) else b""
    text = _text(raw, part.get_content_charset())
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n").strip()
