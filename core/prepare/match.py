"""Finding an email address in text as people and web sites write it: plainly, in any
case, with a full-width ＠ (Chinese text), URL-encoded (``old%40example.com`` in links),
as an HTML entity, or obfuscated against harvesters (``old [at] example [dot] com``,
``old(at)example.com``, ``old#example.com`` — "replace # with @" is common on Chinese
sites), plus Cloudflare's e-mail protection (``data-cfemail``, ``/cdn-cgi/l/email-
protection#…``: the address XOR-ed with its first byte).

A hand-written regular expression: no library matches obfuscated forms of one known
address (email-validator checks syntax, it does not search).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_OPEN, _CLOSE = r"[\[\(\{<（【]", r"[\]\)\}>）】]"
AT = (rf"(?:@|＠|%40|&#0*64;|&#x0*40;|\s*{_OPEN}\s*(?:at|@|艾特)\s*{_CLOSE}\s*"
      rf"|\s+at\s+|\s*#\s*)")
DOT = rf"(?:\.|%2e|\s*{_OPEN}\s*(?:dot|\.|点)\s*{_CLOSE}\s*|\s+dot\s+)"
# an address starts and ends where no address character touches it (ASCII only: a CJK
# character right before "old@…" is common in Chinese text and must not hide it)
_LEFT = r"(?<![A-Za-z0-9._%+\-])"
_RIGHT = r"(?![A-Za-z0-9\-])(?!\.[A-Za-z0-9])"
SNIPPET = 40


@dataclass(frozen=True)
class Hit:
    address: str        # the configured address it stands for
    form: str           # plain | url-encoded | obfuscated (a reader may say mailto / cloudflare)
    start: int
    end: int
    text: str           # as written


def _pattern(address: str) -> str:
    local, _, domain = address.partition("@")
    parts = [re.escape(p) for p in domain.split(".")]
    return _LEFT + re.escape(local) + AT + DOT.join(parts) + _RIGHT


class Matcher:
    """Finds any of ``addresses`` (case-insensitively) in a text."""

    def __init__(self, addresses: list[str] | tuple[str, ...]) -> None:
        self.addresses = tuple(dict.fromkeys(a.strip().lower() for a in addresses if "@" in a))
        if not self.addresses:
            raise ValueError("no address to search for")
        self._res = [(a, re.compile(_pattern(a), re.IGNORECASE)) for a in self.addresses]

    def find(self, text: str) -> list[Hit]:
        hits: list[Hit] = []
        for address, rx in self._res:
            for m in rx.finditer(text):
                written = m.group(0)
                if written.lower() == address:
                    form = "plain"
                elif "%40" in written.lower() and unquote(written).lower() == address:
                    form = "url-encoded"
                else:
                    form = "obfuscated"
                hits.append(Hit(address, form, m.start(), m.end(), written))
        return sorted(hits, key=lambda h: h.start)


def snippet(text: str, hit: Hit, width: int = SNIPPET) -> str:
    """The hit with some context, on one line."""
    a, b = max(0, hit.start - width), min(len(text), hit.end + width)
    s = " ".join(text[a:b].split())
    return ("…" if a > 0 else "") + s + ("…" if b < len(text) else "")


def cloudflare_decode(hexed: str) -> str | None:
    """The address Cloudflare's e-mail protection hides in ``hexed`` (None if it is not
    one): the first byte is the key, each following byte XOR the key is a character."""
    hexed = hexed.strip().split("#")[-1]
    if len(hexed) < 4 or len(hexed) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", hexed):
        return None
    key = int(hexed[:2], 16)
    try:
        return bytes(int(hexed[i:i + 2], 16) ^ key for i in range(2, len(hexed), 2)).decode("utf-8")
    except UnicodeDecodeError:
        return None
