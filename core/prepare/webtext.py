"""The pieces of an HTML page (a file or a fetched page) where an address can hide: the
visible text line by line, link targets (``mailto:``, Cloudflare's
``/cdn-cgi/l/email-protection#…``), ``data-cfemail`` (decoded), scripts (JSON-LD
contact data) and other attribute values (``content=``, ``value=``, ``title=``).

bs4 parses and decodes (the charset from HTTP, else the page's own meta, else a guess);
entities such as ``&#64;`` arrive decoded.
"""

from __future__ import annotations

from typing import Iterator

from bs4 import BeautifulSoup, Comment, Tag

from .match import cloudflare_decode
from .piece import Chunk

INVISIBLE = ("script", "style", "noscript", "template")


def html_chunks(data: bytes, charset: str | None = None) -> Iterator[Chunk]:
    soup = BeautifulSoup(data, "html.parser", from_encoding=charset)
    for el in soup.find_all(INVISIBLE):
        if el.name == "script" and el.string:
            yield Chunk("script", el.string)
        el.extract()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        yield Chunk("HTML comment", str(comment))
        comment.extract()
    for tag in soup.find_all(True):
        if not isinstance(tag, Tag):
            continue
        for attr, value in tag.attrs.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if not isinstance(v, str) or not v:
                    continue
                yield from _attribute(tag.name, attr, v, tag.get_text(" ", strip=True))
    text = soup.get_text("\n")
    n = 0
    for line in text.splitlines():
        if line.strip():
            n += 1
            yield Chunk(f"text line {n}", line)


def _attribute(tag: str, attr: str, value: str, label: str) -> Iterator[Chunk]:
    shown = f" ('{label[:30]}')" if label else ""
    if attr == "data-cfemail":
        decoded = cloudflare_decode(value)
        if decoded:
            yield Chunk(f"<{tag}> protected address{shown}", decoded, "cloudflare")
        return
    if attr == "href" and "email-protection#" in value:
        decoded = cloudflare_decode(value)
        if decoded:
            yield Chunk(f"<{tag}> protected link{shown}", decoded, "cloudflare")
        return
    if attr == "href" and value.lower().startswith("mailto:"):
        yield Chunk(f"<{tag}> mailto link{shown}", value, "mailto")
        return
    yield Chunk(f"<{tag} {attr}>{shown}", value, "link" if attr in ("href", "src", "action") else "")
