"""Reading mail headers as people wrote them: lenient parsing, charset and RFC 2047
decoding, addresses, the author and the recipients.

Headers are parsed with the ``compat32`` policy because real mail is full of malformed
and raw 8-bit headers (Chinese mailers still send raw GBK subjects); :func:`header_text`
decodes them. Everything here is pure and synchronous, and never raises for bad input.
"""

from __future__ import annotations

import email.utils
import re
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

#: charsets mislabelled in the wild, mapped to the superset that decodes them
_CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "euc-cn": "gb18030", "hz-gb-2312": "hz", "big5": "big5hkscs", "x-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "iso-8859-1": "cp1252",
    "latin1": "cp1252", "us-ascii": "utf-8", "ascii": "utf-8", "unknown-8bit": "",
    "x-unknown": "", "utf8": "utf-8", "default": "",
}
_SURROGATES = re.compile("[\udc80-\udcff]")
_FOLD = re.compile(r"\r?\n[ \t]*")


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes to text: the declared charset (via the aliases above) if it works, else
    UTF-8, else GB18030 (the common undeclared case for this product's users), else
    cp1252, which never fails."""
    tried: list[str] = []
    cs = (charset or "").strip().strip('"').lower()
    cs = _CHARSET_ALIASES.get(cs, cs)
    for candidate in (cs, "utf-8", "gb18030"):
        if not candidate or candidate in tried:
            continue
        tried.append(candidate)
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", "replace")


def _unescape_raw(text: str) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogate escapes; decode them smartly."""
    if _SURROGATES.search(text):
        return decode_bytes(text.encode("ascii", "surrogateescape"))
    return text


def decode_header_value(value: object) -> str:
    """An RFC 2047 (or raw 8-bit) header value as readable, unfolded text."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)   # a Header from a lenient parse
    text = _FOLD.sub(" ", text)
    try:
        parts = decode_header(text)
    except Exception:  # noqa: BLE001 - malformed encoded words: keep the raw text
        return _unescape_raw(text).strip()
    out: list[str] = []
    for chunk, cs in parts:
        if isinstance(chunk, bytes):
            out.append(decode_bytes(chunk, cs) if cs else _unescape_raw(chunk.decode("ascii", "surrogateescape")))
        else:
            out.append(_unescape_raw(chunk))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def parse_headers(raw_headers: bytes | str) -> Message:
    """A header block (or a whole message) parsed leniently; never raises."""
    if isinstance(raw_headers, str):
        try:
            block = raw_headers.encode("latin-1")   # arrivals store their headers this way
        except UnicodeEncodeError:
            block = raw_headers.encode("utf-8")
    else:
        block = raw_headers
    if not block.endswith(b"\n"):
        block += b"\r\n"
    return BytesParser(policy=compat32).parsebytes(block, headersonly=True)


def parse_message(raw: bytes) -> Message:
    """A whole message, parsed leniently (compat32) for its text and attachments."""
    return BytesParser(policy=compat32).parsebytes(raw)


def raw_values(msg: Message, name: str) -> list[str]:
    """Header values as parsed (raw 8-bit bytes kept as surrogate escapes)."""
    lname = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == lname]


def header(msg: Message, name: str) -> str | None:
    """The first raw value of a header as plain unfolded text, or None when absent."""
    values = raw_values(msg, name)
    return _FOLD.sub(" ", values[0]) if values else None


def header_text(msg: Message, name: str) -> str:
    """The first value of a header, decoded for people ("" when absent)."""
    values = raw_values(msg, name)
    return decode_header_value(values[0]) if values else ""


def addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, lowercase address) pairs of the given headers, decoded, in order."""
    values: list[str] = []
    for n in names:
        for v in raw_values(msg, n):
            values.append(_unescape_raw(_FOLD.sub(" ", v)))
    out: list[tuple[str, str]] = []
    for name, addr in email.utils.getaddresses(values):
        addr = addr.strip().strip("<>").lower()
        if "@" not in addr and addr not in ("mailer-daemon", "postmaster"):
            continue
        out.append((decode_header_value(name), addr))
    return out


def sender_of(msg: Message) -> tuple[str, str]:
    """(display name, address) of the author: From, else Sender, else Return-Path."""
    for h in ("From", "Sender", "Return-Path"):
        found = addresses(msg, h)
        if found:
            return found[0]
    return "", ""


def recipients_of(msg: Message) -> list[str]:
    """The To and Cc addresses, each once, in order."""
    seen: list[str] = []
    for _, a in addresses(msg, "To", "Cc"):
        if a not in seen:
            seen.append(a)
    return seen


def message_id_of(msg: Message) -> str | None:
    """The Message-ID as written, or None."""
    return header_text(msg, "Message-ID").strip() or None
