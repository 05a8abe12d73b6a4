"""The messages switchover writes: a forward of an old arrival to the new address (the
original attached unchanged) and the reminder that answers a sender of the old address.

Both are built the same way for a preview and for the send: the same Message-ID, and for
the forward a MIME boundary derived from it, so what a person previews is what goes
(only the Date differs). Pure functions of their inputs; nothing here talks to a server.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
import email.utils
import hashlib
import re
import uuid
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage

from ..config import Identity
from .templates import Text


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1] if "@" in address else "switchover.invalid"


def new_message_id(address: str) -> str:
    """A fresh Message-ID in the domain of ``address``."""
    return f"<{uuid.uuid4().hex}.switchover@{_domain(address)}>"


def crlf(raw: bytes) -> bytes:
    """Every line ending as CRLF (what a message/rfc822 part must carry)."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


@dataclass(frozen=True)
class About:
    """What a forward's cover text says of the original."""
    arrival_id: int
    sender: str
    sender_name: str
    date: dt.datetime | None
    subject: str
    message_id: str | None


def forward_message(identity: Identity, about: About, original: bytes, message_id: str) -> bytes:
    """multipart/mixed: a short cover text + the original as message/rfc822, from and to
    the new address. The boundary comes from the Message-ID, so a preview and the send
    are the same bytes but for the Date."""
    boundary = "=_switchover_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    when = about.date.isoformat(timespec="seconds") if about.date else ""
    cover = (f"Forwarded by switchover from your old address {identity.old_address}.\n\n"
             f"From:    {about.sender_name} <{about.sender}>\n"
             f"Date:    {when}\n"
             f"Subject: {about.subject}\n\n"
             f"The original message is attached unchanged.\n")
    b64 = base64.encodebytes(cover.encode("utf-8")).replace(b"\n", b"\r\n")
    inner = crlf(original)
    if not inner.endswith(b"\r\n"):
        inner += b"\r\n"
    eightbit = any(b > 127 for b in inner)
    heads = [
        "From: " + email.utils.formataddr((identity.name, identity.new_address), charset="utf-8"),
        "To: " + identity.new_address,
        "Subject: " + Header("Fwd: " + about.subject, "utf-8").encode(),
        "Date: " + email.utils.formatdate(localtime=True),
        "Message-ID: " + message_id,
        f"X-Switchover-Arrival: {about.arrival_id}",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
    ]
    if about.message_id:
        heads.append("References: " + about.message_id)
    parts = [
        "\r\n".join(heads).encode() + b"\r\n\r\n",
        f"--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n".encode(), b64,
        f"--{boundary}\r\nContent-Type: message/rfc822\r\n"
        f"Content-Disposition: attachment; filename=\"original.eml\"\r\n"
        f"Content-Transfer-Encoding: {'8bit' if eightbit else '7bit'}\r\n\r\n".encode(),
        inner, f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)


def reminder_message(identity: Identity, text: Text, *, to: str, to_name: str, message_id: str,
                     in_reply_to: str | None, references: str, auto: bool) -> bytes:
    """The reminder from the old address, threaded under the message it answers
    (In-Reply-To, the last References); marked Auto-Submitted when a rule sent it."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = email.utils.formataddr((identity.name, identity.old_address))
    msg["To"] = email.utils.formataddr((to_name, to)) if to_name else to
    msg["Subject"] = text.subject
    msg["Date"] = email.utils.format_datetime(dt.datetime.now().astimezone())
    msg["Message-ID"] = message_id
    orig = (in_reply_to or "").strip()
    if orig:
        refs = " ".join(references.split()[-10:])
        msg["In-Reply-To"] = orig
        msg["References"] = f"{refs} {orig}".strip() if orig not in refs else refs
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg["Content-Language"] = text.language
    cte = "base64" if text.language == "zh" else "quoted-printable"
    msg.set_content(text.body, charset="utf-8", cte=cte)
    return msg.as_bytes(policy=email.policy.SMTP)
