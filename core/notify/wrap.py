"""Wrapping the notice's text part to 76 columns, the way a person reads it in a
terminal or a plain-text client.

Hand-written because ``textwrap`` counts characters, not columns: a line of Chinese is
twice as wide as its length, has no spaces to break at, and must not start with a
closing punctuation mark. Each line of the text is wrapped on its own (a template writes
one paragraph per line); continuation lines keep the line's indentation; words with no
break inside (addresses, links) are never split, even when longer than the width.
"""

from __future__ import annotations

import re
import unicodedata

WIDTH = 76

# closing marks that must not begin a line (kinsoku), and openings that must not end one
_NO_START = set("，。、！？：；）」』】〉》”’,.!?:;)]}%·ー…")
_NO_END = set("（「『【〈《“‘([{")
# a token: a run of non-space, non-wide characters (a word, an address), one wide
# character, or one run of spaces (a regular space only: NBSP never breaks)
_TOKEN = re.compile(r"[ ]+|[^ \u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f"
                    r"\uff00-\uff60\uffe0-\uffe6\U00020000-\U0003fffd]+|.")


def columns(text: str) -> int:
    """Display width: East Asian wide and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c)
               else 1 for c in text)


def wrap_line(line: str, width: int = WIDTH) -> list[str]:
    """One line as lines of at most ``width`` columns (longer only for one unbreakable word)."""
    if columns(line) <= width:
        return [line]
    indent = line[:len(line) - len(line.lstrip(" "))]
    tokens = _TOKEN.findall(line[len(indent):])
    out: list[str] = []
    current: list[str] = []
    used = columns(indent)
    for tok in tokens:
        w = columns(tok)
        if tok.isspace():
            if current:
                current.append(tok)
                used += w
            continue
        if current and used + w > width:
            carry = _carry(current, tok)
            out.append(indent + "".join(current).rstrip(" "))
            current = carry
            used = columns(indent) + columns("".join(current))
        current.append(tok)
        used += w
    if current:
        out.append(indent + "".join(current).rstrip(" "))
    return out


def _carry(current: list[str], nxt: str) -> list[str]:
    """Tokens moved from the end of a full line to the next one so that neither a closing
    mark starts the next line nor an opening mark ends this one."""
    carry: list[str] = []
    if nxt[:1] in _NO_START and len(current) > 1 and not current[-1].isspace():
        carry.insert(0, current.pop())
    while len(current) > 1 and current[-1][-1:] in _NO_END:
        carry.insert(0, current.pop())
    return carry


def wrap_text(text: str, width: int = WIDTH) -> str:
    """Every line of ``text`` wrapped; blank lines and the signature separator kept."""
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(wrap_line(line.rstrip() if line != "-- " else line, width))
    return "\n".join(lines)
