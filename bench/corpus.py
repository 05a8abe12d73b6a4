"""Deterministic corpora for the benchmark.

small:  10,000 messages, 6.9 KB average, 5 folders
attach: 500 messages with attachments, 687 MB in all
wan:    1,200 small messages (run through a 25 ms-each-way proxy)
mixed:  the demo's export-business history (Chinese folders, attachments, languages)
Each message: (folder, raw CRLF bytes, flags, internal date).
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from dataclasses import dataclass
from typing import Iterator

FOLDERS = ["INBOX", "Sent", "Archive", "Customers/Mexico", "Customers/Brazil"]
WORDS = ("quote order shipment invoice container price sample delivery payment terms FOB CIF "
         "pallet carton inspection contract discount customs booking vessel ETA ETD packing "
         "list certificate origin quality warranty").split()


@dataclass(frozen=True)
class Spec:
    name: str
    count: int
    avg_bytes: int
    attachments: bool = False
    scale_note: str = ""


SPECS = {
    "small": Spec("small", 10_000, 6_900),
    "attach": Spec("attach", 500, 687_000_000 // 500, attachments=True),
    "wan": Spec("wan", 1_200, 6_900),
    "mixed": Spec("mixed", 3_000, 0),
}

Message = tuple[str, bytes, tuple[bytes, ...], dt.datetime]


def _flags(rng: random.Random) -> tuple[bytes, ...]:
    flags = []
    if rng.random() < 0.85:
        flags.append(b"\\Seen")
    if rng.random() < 0.1:
        flags.append(b"\\Flagged")
    if rng.random() < 0.2:
        flags.append(b"\\Answered")
    if rng.random() < 0.05:
        flags.append(b"$Label1")
    return tuple(flags)


def _text(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines).encode()


def _headers(rng: random.Random, i: int, name: str, when: dt.datetime, extra: str = "") -> bytes:
    return (f"Message-ID: <{name}-{i}.{rng.getrandbits(40):x}@bench.example>\r\n"
            f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S %z')}\r\n"
            f"From: Customer {i % 97} <customer{i % 97}@buyer{i % 13}.example>\r\n"
            f"To: Sales <sales@old.example>\r\n"
            f"Subject: RE: {rng.choice(WORDS)} {rng.choice(WORDS)} #{i}\r\n"
            f"MIME-Version: 1.0\r\n{extra}").encode()


def generate(spec_name: str, seed: int = 1) -> Iterator[Message]:
    spec = SPECS[spec_name]
    if spec_name == "mixed":
        from switchover.demo.history import generate_messages
        yield from generate_messages(seed, spec.count)
        return
    rng = random.Random(f"{spec_name}-{seed}")
    start = dt.datetime(2021, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    for i in range(spec.count):
        folder = FOLDERS[i % len(FOLDERS)]
        when = start + dt.timedelta(minutes=37 * i)
        if spec.attachments:
            size = int(spec.avg_bytes * rng.uniform(0.5, 1.5))
            payload = base64.encodebytes(rng.randbytes(size * 3 // 4)).replace(b"\n", b"\r\n")
            body = (b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + _text(rng, 600) +
                    b"\r\n--b1\r\nContent-Type: application/pdf; name=\"quote.pdf\"\r\n"
                    b"Content-Transfer-Encoding: base64\r\n"
                    b"Content-Disposition: attachment; filename=\"quote.pdf\"\r\n\r\n" +
                    payload + b"--b1--\r\n")
            head = _headers(rng, i, spec_name, when, 'Content-Type: multipart/mixed; boundary="b1"\r\n')
        else:
            size = max(500, int(rng.gauss(spec.avg_bytes, spec.avg_bytes * 0.4)))
            head = _headers(rng, i, spec_name, when, "Content-Type: text/plain; charset=utf-8\r\n")
            body = _text(rng, max(100, size - len(head)))
        yield folder, head + b"\r\n" + body + b"\r\n", _flags(rng), when
