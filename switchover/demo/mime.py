"""Building the demo's messages as real MIME: charsets, transfer encodings, RFC 2047
headers, attachments (a small valid PDF, PNG and JPEG images), list mail and DSN bounces.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime
import io
from email import encoders, policy
from email.charset import BASE64, QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

# a 32x24 JPEG made once for the demo (a blue box on orange)
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA0JCgsKCA0LCgsODg0PEyAVExISEyccHhcgLikxMC4pLSwzOko+MzZGNywtQFdBRkxOUlNSMj5a"
    "YVpQYEpRUk//2wBDAQ4ODhMREyYVFSZPNS01T09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT0//wAAR"
    "CAAYACADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEG"
    "E1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWG"
    "h4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEB"
    "AQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYk"
    "NOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0"
    "tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCO7uvs2z5N27PfFVv7U/6Y/wDj3/1qNW/5"
    "Zfj/AEqvb2wkQzTyrDADjeQSWPUhQOpx9ByMkZFPBYKhUoRnON279X3Hi8XWp1nCD0+XYu295NcuUgtWcgbmw3Cj1JxgD3PAq9bX0QLC0O51"
    "xumZeh/2M8jpndwenA5ziXFyJEEMESwwA52Aklj0BYnqcfQcnAGTVjSf+Wv4f1oxmCo0qEqkI2at1fcMLi6tSsoSd18uxp3NjECpuxudc7YV"
    "bof9vHI6Y28HryOM0bizmuXDz3TOQNq5XhR6AZwB7DgUUV5kcZWorkhKyXoeg8LSq+/Nav1Iv7L/AOm3/jv/ANerNpa/Zt/z7t2O2KKKmpja"
    "9WLhOV0/JDp4SjTlzRWvzP/Z")


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, ASCII text) with a correct cross-reference table."""
    def esc(s: str) -> str:
        s = s.encode("ascii", "replace").decode()
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    ops = ["BT", "/F1 16 Tf", "60 780 Td", f"({esc(lines[0])}) Tj", "/F1 10 Tf"]
    for line in lines[1:]:
        ops += ["0 -18 Td", f"({esc(line)}) Tj"]
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def png_image(rng: random.Random, width: int = 24, height: int = 16) -> bytes:
    """A small RGB PNG: two colour bands and a diagonal, different per call."""
    a = bytes(rng.randrange(256) for _ in range(3))
    b = bytes(rng.randrange(256) for _ in range(3))
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += b"\xff\xff\xff" if x == y else (a if y < height // 2 else b)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))


@dataclass
class Mail:
    """What one message says; ``render`` turns it into bytes."""

    sender: tuple[str, str]                # (display name, address)
    to: list[tuple[str, str]]
    subject: str
    body: str
    date: datetime                         # aware
    message_id: str
    cc: list[tuple[str, str]] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    charset: str = "utf-8"
    cte: str | None = None                 # quoted-printable | base64 | 8bit | None (auto)
    html: str | None = None
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # (filename, mime type, data)
    headers: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> bytes:
        """The message as bytes with CRLF line ends (hand-built headers: the email
        package's header folding is the slow part when thousands are generated)."""
        head = [f"From: {_addr(self.sender)}", "To: " + ",\r\n ".join(_addr(a) for a in self.to)]
        if self.cc:
            head.append("Cc: " + ",\r\n ".join(_addr(a) for a in self.cc))
        head += [f"Subject: {_subject(self.subject)}", f"Date: {format_datetime(self.date)}",
                 f"Message-ID: {self.message_id}"]
        if self.in_reply_to:
            head.append(f"In-Reply-To: {self.in_reply_to}")
        if self.references:
            head.append("References: " + "\r\n ".join(self.references))
        head += [f"{k}: {v if v.isascii() else _subject(v)}" for k, v in self.headers]
        root = self._body()
        tag = hashlib.sha1(self.message_id.encode()).hexdigest()[:20]
        for i, part in enumerate(p for p in root.walk() if p.is_multipart()):
            part.set_boundary(f"=_part{i}_{tag}")  # reproducible output
        buf = io.BytesIO()
        BytesGenerator(buf, mangle_from_=False, policy=_GEN).flatten(root)
        return ("\r\n".join(head) + "\r\n").encode("ascii") + buf.getvalue()

    def _body(self) -> Message:
        cs = Charset(self.charset)
        cte = self.cte or ("base64" if self.charset.lower() != "utf-8" else "quoted-printable")
        cs.body_encoding = {"base64": BASE64, "quoted-printable": QP}.get(cte)
        body = self.body.replace("\n", "\r\n") if cte == "base64" else self.body
        part: Message = MIMEText(body, "plain", cs)
        if self.html is not None:
            alt = MIMEMultipart("alternative")
            html_cs = Charset("utf-8")
            html_cs.body_encoding = QP
            for sub in (part, MIMEText(self.html, "html", html_cs)):
                del sub["MIME-Version"]
                alt.attach(sub)
            part = alt
        if self.attachments:
            mixed = MIMEMultipart("mixed")
            del part["MIME-Version"]
            mixed.attach(part)
            for filename, ctype, data in self.attachments:
                main, sub = ctype.split("/", 1)
                att = MIMEBase(main, sub)
                del att["MIME-Version"]
                att.set_payload(data)
                encoders.encode_base64(att)
                att.add_header("Content-Disposition", "attachment",
                               filename=filename if filename.isascii() else ("utf-8", "", filename))
                mixed.attach(att)
            part = mixed
        return part


_GEN = policy.compat32.clone(linesep="\r\n")


def _addr(a: tuple[str, str]) -> str:
    name, address = a
    return formataddr((name, address), charset="utf-8") if name else address


def _subject(subject: str) -> str:
    if subject.isascii():
        return subject
    return Header(subject, "utf-8").encode(linesep="\r\n")


def dsn(*, postmaster: str, original_from: str, failed_rcpt: str, subject: str, date: datetime,
        message_id: str, original_id: str, reason: str) -> bytes:
    """A multipart/report delivery status notification (RFC 3464) for a failed message."""
    boundary = "=_dsn_" + message_id.strip("<>").split("@")[0][-12:]
    text = (f"This is the mail system at host {postmaster.split('@')[1]}.\r\n\r\n"
            f"I'm sorry to have to inform you that your message could not be delivered to one or\r\n"
            f"more recipients.\r\n\r\n<{failed_rcpt}>: {reason}\r\n")
    status = (f"Reporting-MTA: dns; {postmaster.split('@')[1]}\r\n"
              f"Arrival-Date: {format_datetime(date)}\r\n\r\n"
              f"Final-Recipient: rfc822; {failed_rcpt}\r\nOriginal-Recipient: rfc822; {failed_rcpt}\r\n"
              f"Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 {reason}\r\n")
    if not subject.isascii():
        subject = Header(subject, "utf-8").encode()
    headers = (f"From: {original_from}\r\nTo: {failed_rcpt}\r\nSubject: {subject}\r\n"
               f"Date: {format_datetime(date)}\r\nMessage-ID: {original_id}\r\n")
    parts = [
        f"From: Mail Delivery System <{postmaster}>\r\n",
        f"To: {original_from}\r\n",
        "Subject: Undelivered Mail Returned to Sender\r\n",
        f"Date: {format_datetime(date)}\r\n",
        f"Message-ID: {message_id}\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="{boundary}"\r\n',
        "\r\nThis is a MIME-encapsulated message.\r\n\r\n",
        f"--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        text, "\r\n",
        f"--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n",
        status, "\r\n",
        f"--{boundary}\r\nContent-Description: Undelivered Message Headers\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\n",
        headers, "\r\n",
        f"--{boundary}--\r\n",
    ]
    return "".join(parts).encode("utf-8")
