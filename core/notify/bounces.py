"""Delivery reports for the notices: reading them (RFC 3464 ``multipart/report`` with
``message/delivery-status``, and the common non-standard ones — a mailer-daemon text
with the original attached or quoted), saying why in plain words, and finding them in
an INBOX with one short IMAP connection.

Hand-written because no maintained library parses DSNs: the standard library reads
the MIME structure (``message/delivery-status`` comes back as header blocks), this
module only picks the fields (Final-Recipient, Original-Recipient, Action, Status,
Diagnostic-Code) and the original's Message-ID.

Blocking: :func:`fetch_reports` runs in a worker thread.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from typing import Any, Callable, Collection

from ..config import Account
from ..net import imap as imapnet
from .ledger import NoticeLedger, NoticeRow

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDR = re.compile(r"[\w.+%'-]+@[\w-]+(?:\.[\w-]+)+")
_MID = re.compile(r"(?im)^message-id:\s*(<[^>\s]+>)")
_BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.I)
_BOUNCE_SUBJECT = re.compile(r"undeliver|delivery (status|failure)|failure notice|returned mail|"
                             r"could not be delivered|not delivered|退信|未送达|无法送达|投递失败", re.I)
_DELAYED = re.compile(r"\bdelayed\b|will (keep )?(retry|trying)|still trying|warning: message", re.I)
#: the largest report fetched whole (the original is often attached)
MAX_REPORT_BYTES = 4 * 2**20

#: RFC 3463 codes in words a person understands
_WORDS = {
    "1.1": "the address does not exist",
    "1.2": "the domain does not exist or takes no mail",
    "1.3": "the address is not valid",
    "1.6": "the person has moved (mailbox no longer there)",
    "1.10": "the domain takes no mail (null MX)",
    "2.1": "the mailbox is disabled",
    "2.2": "the mailbox is full",
    "2.3": "the message is too large for the mailbox",
    "3.4": "the message is too large",
    "4.1": "their mail server did not answer",
    "4.4": "no route to their mail server",
    "4.7": "the delivery took too long and was given up",
    "7.1": "their server refused it (policy or spam filter)",
    "7.26": "their server refused it (sender authentication failed)",
}


@dataclass(frozen=True)
class Failure:
    address: str
    status: str           # "5.1.1" ("" when the report gives none)
    diagnostic: str       # the remote server's words

    @property
    def reason(self) -> str:
        return plain_words(self.status, self.diagnostic)


@dataclass(frozen=True)
class Report:
    """A delivery report: the original's Message-ID (when it shows) and who failed."""
    original_id: str | None
    failures: tuple[Failure, ...]


def from_mailer(sender: str) -> bool:
    """``sender`` is a mailer-daemon / postmaster (a report may have come in)."""
    return bool(_BOUNCE_FROM.search(sender or ""))


def plain_words(status: str, diagnostic: str) -> str:
    m = _STATUS.search(status) or _STATUS.search(diagnostic)
    code = m.group(0) if m else ""
    words = _WORDS.get(f"{m.group(2)}.{m.group(3)}", "") if m else ""
    if not words:
        words = "delivery failed" if not m or m.group(1) == "5" else "delivery delayed"
    diag = " ".join(diagnostic.split())[:200]
    detail = "; ".join(x for x in (code, diag) if x)
    return f"{words} ({detail})" if detail else words


def _value(block: Message, name: str) -> str:
    v = block.get(name)
    text = " ".join(str(v).split()) if v is not None else ""
    return text.split(";", 1)[1].strip() if ";" in text and name != "Action" else text


def _original_id(msg: Message) -> str | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
            # some senders encode the attached original (base64): read its headers
            body = inner.get_payload() if isinstance(inner, Message) else None
            if isinstance(body, str) and "base64" in str(part.get("Content-Transfer-Encoding", "")).lower():
                try:
                    m = _MID.search(base64.b64decode(body).decode("utf-8", "replace"))
                except ValueError:
                    m = None
                if m:
                    return m.group(1)
        if ctype == "text/rfc822-headers":
            text = _text(part)
            m = _MID.search(text)
            if m:
                return m.group(1)
    return None


def _text(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - an undecodable part reads as empty
        return ""
    if isinstance(data, bytes):
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    return str(part.get_payload()) if isinstance(part.get_payload(), str) else ""


def _standard(msg: Message) -> list[Failure] | None:
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            return []
        out = []
        for block in blocks[1:] if len(blocks) > 1 else blocks:
            if not isinstance(block, Message):
                continue
            action = _value(block, "Action").lower()
            addr = _value(block, "Final-Recipient") or _value(block, "Original-Recipient")
            if not addr or action not in ("failed", ""):
                continue
            original = _value(block, "Original-Recipient")
            out.append(Failure(addr.strip("<>").lower(), _value(block, "Status"),
                               _value(block, "Diagnostic-Code")))
            if original and original.strip("<>").lower() != addr.strip("<>").lower():
                out.append(Failure(original.strip("<>").lower(), _value(block, "Status"),
                                   _value(block, "Diagnostic-Code")))
        return out
    return None


def _nonstandard(msg: Message, own: set[str]) -> list[Failure]:
    text = "\n".join(_text(p) for p in msg.walk()
                     if p.get_content_type() == "text/plain" and not _inside_original(msg, p))
    if _DELAYED.search(text):
        return []
    m = _STATUS.search(text)
    status = m.group(0) if m else ""
    diag = next((ln.strip() for ln in text.splitlines() if re.search(r"\b[45]\d\d\b", ln)), "")
    seen: list[str] = []
    for a in _ADDR.findall(text):
        a = a.lower().strip(".")
        if a not in own and a not in seen and not _BOUNCE_FROM.search(a):
            seen.append(a)
    return [Failure(a, status, diag) for a in seen]


def _inside_original(msg: Message, part: Message) -> bool:
    for p in msg.walk():
        if p.get_content_type() == "message/rfc822" and p is not part:
            if any(q is part for q in p.walk()):
                return True
    return False


def parse_report(raw: bytes, own: Collection[str] = ()) -> Report | None:
    """The report in ``raw``, or None when it is not a delivery report."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    failures = _standard(msg) if msg.get_content_type() == "multipart/report" else None
    if failures is None:
        sender = str(msg.get("From", "")) + " " + str(msg.get("Return-Path", ""))
        subject = str(msg.get("Subject", ""))
        if not (_BOUNCE_FROM.search(sender) or _BOUNCE_SUBJECT.search(subject)):
            return None
        failures = _nonstandard(msg, {a.lower() for a in own})
    if not failures:
        return None
    return Report(_original_id(msg), tuple(failures))


def fetch_reports(account: Account, mark: dict[str, Any] | None,
                  since: dt.date) -> tuple[dict[str, Any], list[bytes]]:
    """Delivery reports in ``account``'s INBOX after ``mark`` (its UIDVALIDITY and last
    UID looked at), else since ``since``; returns the new mark and the reports' bytes."""
    client = imapnet.connect(account)
    try:
        info = client.select_folder("INBOX", readonly=True)
        uidvalidity = int(info.get(b"UIDVALIDITY", 0) or 0)
        uidnext = int(info.get(b"UIDNEXT", 0) or 0)
        which: list[Any] = ["OR", "OR", "OR", "FROM", "mailer-daemon", "FROM", "postmaster",
                            "HEADER", "Content-Type", "report", "SUBJECT", "undeliver"]
        if mark and int(mark.get("uidvalidity", 0)) == uidvalidity:
            last = int(mark.get("last_uid", 0))
            uids = [u for u in client.search(["UID", f"{last + 1}:*", *which]) if u > last]
        else:
            last = 0
            uids = client.search(["SINCE", since, *which])
        raws: list[bytes] = []
        if uids:
            sizes = client.fetch(uids, ["RFC822.SIZE"])
            small = [u for u in uids if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) <= MAX_REPORT_BYTES]
            for uid, data in sorted(client.fetch(small, ["BODY.PEEK[]"]).items()) if small else []:
                raws.append(bytes(data.get(b"BODY[]", b"")))
        top = max([last, uidnext - 1, *uids]) if uidnext else max([last, *uids])
        return {"uidvalidity": uidvalidity, "last_uid": top}, raws
    finally:
        imapnet.close(client)


async def mark_bounced(ledger: NoticeLedger, report: Report,
                       changed: Callable[[NoticeRow, str, str], None]) -> int:
    """Mark the notices ``report`` names bounced (sent or in doubt → bounced, with the
    reason): by the original's Message-ID, else by the failed address's latest notice.
    Returns how many."""
    by_id = await ledger.by_message_id(report.original_id) if report.original_id else None
    marked = 0
    for f in report.failures:
        row = by_id if by_id is not None and (by_id.address == f.address or len(report.failures) == 1) else None
        if row is None:
            live = [r for r in await ledger.for_address(f.address) if r.state in ("sent", "doubt")]
            row = max(live, key=lambda r: r.sent or r.data_at or 0.0) if live else None
        if row is None or row.state not in ("sent", "doubt"):
            continue
        if await ledger.finish(row.id, "bounced", f.reason, from_states=("sent", "doubt"), bounce=f.reason):
            changed(row, "bounced", f.reason)
            marked += 1
    return marked
