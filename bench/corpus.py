"""Deterministic corpora for the benchmark.

small:    10,000 messages, 6.9 KB average, 5 folders
attach:   500 messages with attachments, 687 MB in all (0.7-2.1 MB each)
attach15: 500 messages with attachments, ~690 MB in all, one in twenty of 10-15 MB (the
          mailbox of issue 10.13: peak memory with big messages)
wan:      1,200 small messages (run through a 25 ms-each-way proxy)
huge:     200,000 small messages (1.5 KB) in one INBOX (issue 9.1: a UID list over 1 MiB)
large:    50,000 small messages (memory growth; not run by default)
mixed:    10,000 messages of the demo's export-business history (12 folders, Chinese names,
          small PDF/photo attachments, several languages and charsets)
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
    folders: tuple[str, ...] = ()     # () = FOLDERS
    big_every: int = 0                # attachments: every n-th message is 10-15 MB
    repeat: int = 0                   # at most this many timed runs per tool (0: --repeat)


SPECS = {
    "small": Spec("small", 10_000, 6_900),
    "attach": Spec("attach", 500, 1_386_700, attachments=True),   # 687 MB in all
    "attach15": Spec("attach15", 500, 760_000, attachments=True, big_every=20),
    "wan": Spec("wan", 1_200, 6_900),
    "mixed": Spec("mixed", 10_000, 0),
    "huge": Spec("huge", 200_000, 1_500, folders=("INBOX",), repeat=1),
    # not in the default set: shows whether memory stays flat as the mailbox grows
    "large": Spec("large", 50_000, 6_900),
}

MIXED_END = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
# base64 lines of 76 characters + CRLF: the encoded attachment is 4/3 x 78/76 of its bytes
B64_GROWTH = 4 / 3 * 78 / 76

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


def generate(spec_name: str, seed: int = 1, count: int | None = None) -> Iterator[Message]:
    """The corpus's messages in order; ``count`` makes fewer or more than its usual number
    (the first messages stay the same, except for "mixed", whose history is drawn anew)."""
    spec = SPECS[spec_name]
    n = count or spec.count
    if spec_name == "mixed":
        from switchover.demo.history import generate_messages
        # a fixed end date: the demo's default (today) would change the corpus daily
        yield from generate_messages(seed, n, end=MIXED_END)
        return
    rng = random.Random(f"{spec_name}-{seed}")
    start = dt.datetime(2021, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    folders = spec.folders or FOLDERS
    for i in range(n):
        folder = folders[i % len(folders)]
        when = start + dt.timedelta(minutes=37 * i)
        if spec.attachments:
            if spec.big_every and i % spec.big_every == 0:
                size = int(rng.uniform(10e6, 15e6))
            else:
                size = int(spec.avg_bytes * rng.uniform(0.5, 1.5))
            payload = base64.encodebytes(rng.randbytes(int(size / B64_GROWTH))).replace(b"\n", b"\r\n")
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
