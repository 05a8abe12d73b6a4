"""The readable text of a message: the body a person wrote (plain text, else HTML turned
into text), the names of attached files, the one-line preview of the feed, and the part
of a reply its sender wrote above the quote. Pure and synchronous.
"""

from __future__ import annotations

import re
from email.message import Message
from html.parser import HTMLParser

from .headers import decode_bytes, decode_header_value

#: a line that starts the quoted part of a reply (the sender's own words end above it)
_QUOTE_START = re.compile(
    r"^(on\b.{0,200}\bwrote:?|le\b.{0,200}\ba écrit ?:?|am\b.{0,200}\bschrieb\b.{0,80}:?|"
    r"el\b.{0,200}\bescribió:?|em\b.{0,200}\bescreveu:?|il\b.{0,200}\bha scritto:?|"
    r"-{2,}\s*(original message|原始邮件|原始郵件|original nachricht|message d'origine|"
    r"mensaje original|mensagem original|исходное сообщение)\s*-{2,}|"
    r"_{5,}|"
    r"(from|发件人|寄件者|發件人|von|de|от)\s*[:：].{0,200}[@<].*|"
    r"在\s*.{0,100}(写道|寫道)\s*[:：]?)\s*$", re.I)
#: the prefix of a reply's or a forward's subject ("Re:", "AW:", "回复：" ...)
REPLY_SUBJECT = re.compile(r"^\s*(re|aw|sv|vs|antw|rif|odp|ha|fw|fwd|wg|tr|回复|回覆|答复|转发)"
                           r"\s*(\[\d+\]|\(\d+\))?\s*[:：]", re.I)


class _HTMLText(HTMLParser):
    """HTML to plain text: drops script/style/head, breaks lines at block elements."""

    _BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
              "blockquote", "pre", "hr", "section", "article", "header", "footer", "ul", "ol"}
    _SKIP = {"script", "style", "head", "title", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.out.append("\n")
        elif tag == "td":
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - broken markup: keep what was parsed
        pass
    text = "".join(parser.out).replace("\xa0", " ")
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, (bytes, bytearray)):
        return ""
    text = decode_bytes(bytes(payload), part.get_content_charset())
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n")


def message_text(msg: Message, *, attachments: bool = False) -> str:
    """The readable text of a parsed message: the first text/plain part that is not an
    attachment, else the first text/html converted to text. With ``attachments`` the names
    of attached files are listed after the text."""
    plain: str | None = None
    html: str | None = None
    files: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = str(part.get("Content-Disposition") or "").lower()
        filename = part.get_filename()
        ctype = part.get_content_type()
        if disposition.startswith("attachment") or (filename and not ctype.startswith("text/")):
            if filename:
                files.append(decode_header_value(filename))
            continue
        if ctype == "text/plain" and plain is None:
            plain = _part_text(part)
        elif ctype == "text/html" and html is None:
            html = _part_text(part)
    text = plain if plain and plain.strip() else (html or plain or "")
    text = text.strip()
    if attachments and files:
        text += "\n\n" + "\n".join(f"[attachment: {f}]" for f in files)
    return text


def preview_of(text: str, limit: int = 300) -> str:
    """A one-line snippet: quoted lines dropped, whitespace collapsed."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(">")]
    flat = re.sub(r"\s+", " ", " ".join(lines)).strip()
    return flat[:limit]


def own_words(text: str) -> str:
    """The part of a body its sender wrote: up to the first quoted block or reply
    header, without '>' lines."""
    out: list[str] = []
    for line in (text or "").splitlines():
        s = line.strip()
        if s.startswith(">"):
            continue
        if _QUOTE_START.match(s):
            break
        out.append(line)
    return "\n".join(out)
