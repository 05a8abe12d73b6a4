"""Identities must never change: state files (SQLite) store them, and a rerun matches
the source's messages against them. The expected values below were computed with the
code before header blocks were parsed once per message (2026-11-26), and must stay
byte-for-byte the same. Also: the faster per-message parsers (header blocks, FETCH
tokens) give what the first versions gave, on random input. Pure functions: no server."""

from __future__ import annotations

import pytest

from switchover.core.mail.identity import header_info, identity_from_headers, identity_of, message_id
from switchover.core.migrate.transfer import parse_fetch

# (header block, RFC822.SIZE, identity, Message-ID, Subject as parse_fetch decodes it)
CASES = [
    (b"Message-ID: <abc@example.com>\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n"
     b"From: A <a@example.com>\r\nTo: b@example.com\r\nSubject: Hello world\r\n\r\n", 1234,
     "m:aff02fa290025f478a4b82afc8fa88c28a5901b1", "<abc@example.com>", "Hello world"),
    (b"message-id:   <Folded@x>\r\nSUBJECT: =?utf-8?B?5oql5Lu35Y2V?=\r\n =?utf-8?q?_2?=\r\n"
     b"From: \"X\"\r\n\t<x@y>\r\nCc: c@d\r\nCc: second@d\r\n\r\n", 99,
     "m:d1f68530ba3dda658da4c1d94497e87e189349eb", "<Folded@x>", "报价单 2"),
    (b"Date: Tue, 3 Jan 2023 10:00:00 +0100\nFrom: nobody@x\nSubject: no id here\n\n", 50,
     None, None, "no id here"),
    (b"Message-ID: <u@x>\nSubject: Caf\xc3\xa9  au   lait\n To: folded-continuation\nTo:  z@z \n", 7,
     "m:fb3dcab78deb211680c3d00a0e83542c0c710a50", "<u@x>", "Café au lait To: folded-continuation"),
    (b"Message-ID:\r\nSubject: empty id\r\n\r\n", 10, None, None, "empty id"),
    (b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= und mehr\r\nMessage-ID: <g@x>\r\nX-Bad line\r\n"
     b":novalue\r\n\r\n", 4321,
     "m:ec886cc7d2c13ce2e6cdff9fb64aaff463794026", "<g@x>", "Grüße und mehr"),
    (b"", 0, None, None, ""),
]


@pytest.mark.parametrize("block,size,ident,mid,subject", CASES)
def test_identities_unchanged(block: bytes, size: int, ident: str | None, mid: str | None,
                              subject: str) -> None:
    assert identity_from_headers(block, size) == ident
    assert message_id(block) == mid
    info = header_info(block, size)
    assert (info.identity, info.message_id) == (ident, mid)
    m, anon = parse_fetch({b"UID": 7, b"HEADER": block, b"RFC822.SIZE": size,
                           b"FLAGS": [b"\\Seen", b"\\Recent"], b"INTERNALDATE": None})
    assert (m.identity, m.message_id, m.subject, anon) == (ident or "", mid, subject, ident is None)
    assert m.flags == b"\\Seen"


def test_identity_of_full_message_unchanged() -> None:
    raw = CASES[0][0] + b"body\r\n"
    assert identity_of(raw) == "m:c5eaeaa3bba475e7c26eab2ee426a4351b9dc33e"
    assert identity_of(b"Subject: x\r\n\r\nno id\r\n") == "c:812324bf4f60a9205d3501861d220f27be15ccf8"


def _reference_parse(block: bytes) -> dict[bytes, bytes]:
    """parse_header_block as it was written first (regular expressions); identities
    stored before the faster version hash what this returns."""
    import re
    fields: dict[bytes, bytes] = {}
    text = re.sub(rb"\r?\n[ \t]+", b" ", block)
    for line in re.split(rb"\r?\n", text):
        if b":" not in line or line[:1] in (b" ", b"\t"):
            continue
        name, _, value = line.partition(b":")
        key = name.strip().upper()
        if key and key not in fields:
            fields[key] = re.sub(rb"\s+", b" ", value).strip()
    return fields


def test_parse_matches_reference_on_random_blocks() -> None:
    import random
    from switchover.core.mail.identity import parse_header_block
    rng = random.Random(3834)
    pieces = [b"a", b"B", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\x0b", b"\x0c", b"\x1c",
              b"Subject", b"message-id", b"\xc3\xa9", b"\x85", b"\xa0", b"=?", b"<x@y>"]
    for _ in range(20000):
        block = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert parse_header_block(block) == _reference_parse(block), block
    for block, *_ in CASES:
        assert parse_header_block(block) == _reference_parse(block)


def _reference_tokens(parts: list[bytes]) -> list:
    """imapwire.parse_tokens as first written (a hand-written scanning loop)."""
    import re
    from switchover.core.net.wire import _TOKEN
    root: list = []
    stack = [root]
    for i, part in enumerate(parts):
        if i % 2:
            stack[-1].append(part)
            continue
        pos, n = 0, len(part)
        while pos < n:
            m = _TOKEN.match(part, pos)
            if not m or m.end() == pos:
                pos += 1
                continue
            pos = m.end()
            if m.group(1):
                new: list = []
                stack[-1].append(new)
                stack.append(new)
            elif m.group(2):
                if len(stack) > 1:
                    stack.pop()
            elif m.group(3) is not None:
                stack[-1].append(re.sub(rb"\\(.)", rb"\1", m.group(3)))
            else:
                stack[-1].append(m.group(4))
    return root


def test_tokens_match_reference() -> None:
    import random
    from switchover.core.net.wire import parse_tokens
    fetch = [b'* 12 FETCH (UID 12 RFC822.SIZE 6934 FLAGS (\\Seen $Label1) INTERNALDATE '
             b'"01-Jan-2021 00:00:00 +0800" BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] ',
             b"Message-ID: <x>\r\n\r\n", b")"]
    assert parse_tokens(fetch)[-1][-2:] == [b"BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)]", fetch[1]]
    rng = random.Random(3501)
    pieces = [b"(", b")", b'"', b"\\", b" ", b"\t", b"[", b"]", b"{", b"}", b"a", b"1", b"NIL",
              b"\r", b"\x80"]
    samples = [fetch]
    for _ in range(20000):
        parts = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))]
        if rng.random() < 0.5:
            parts += [b"literal", b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))]
        samples.append(parts)
    for parts in samples:
        assert parse_tokens(parts) == _reference_tokens(parts), parts
