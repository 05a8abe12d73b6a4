"""What an arrival in the old mailbox is: header decoding, the RFC 3834 never-answer
rules, bounce / automated / spam detection, a cheap language guess, and the badge the
feed shows.

Everything here except :func:`badge_for` is pure and synchronous (it runs on header
blocks fetched by the monitor and the history scan). Headers are parsed with the
``compat32`` policy because real mail is full of malformed and raw 8-bit headers
(Chinese mailers still send raw GBK subjects); :func:`header_text` decodes them.
"""

from __future__ import annotations

import email.utils
import re
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from ..engine import Engine

BADGES = ("customer", "notified", "switched", "new sender", "automated", "bounce", "spam")

# -- decoding -------------------------------------------------------------------------

#: charsets mislabelled in the wild, mapped to the superset that decodes them
_CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "euc-cn": "gb18030", "hz-gb-2312": "hz", "big5": "big5hkscs", "x-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "iso-8859-1": "cp1252",
    "latin1": "cp1252", "us-ascii": "utf-8", "ascii": "utf-8", "unknown-8bit": "",
    "x-unknown": "", "utf8": "utf-8", "default": "",
}


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes to text: the declared charset (via the aliases above) if it works, else
    UTF-8, else GB18030 (the common undeclared case for this product's users), else
    cp1252, which never fails."""
    tried: list[str] = []
    cs = (charset or "").strip().strip('"').lower()
    cs = _CHARSET_ALIASES.get(cs, cs)
    for candidate in (cs, "utf-8", "gb18030"):
        if not candidate or candidate in tried:
            continue
        tried.append(candidate)
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", "replace")


_SURROGATES = re.compile("[\udc80-\udcff]")


def _unescape_raw(text: str) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogate escapes; decode them smartly."""
    if _SURROGATES.search(text):
        return decode_bytes(text.encode("ascii", "surrogateescape"))
    return text


def decode_header_value(value: Any) -> str:
    """An RFC 2047 (or raw 8-bit) header value as readable, unfolded text."""
    if value is None:
        return ""
    if not isinstance(value, str):  # an email.header.Header from a lenient parse
        value = str(value)
    value = re.sub(r"\r?\n[ \t]*", " ", value)
    try:
        parts = decode_header(value)
    except Exception:
        return _unescape_raw(value).strip()
    out: list[str] = []
    for chunk, cs in parts:
        if isinstance(chunk, bytes):
            out.append(decode_bytes(chunk, cs) if cs else _unescape_raw(chunk.decode("ascii", "surrogateescape")))
        else:
            out.append(_unescape_raw(chunk))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def raw_values(msg: Message, name: str) -> list[str]:
    """Header values as parsed (raw 8-bit bytes kept as surrogate escapes)."""
    lname = name.lower()
    return [v for k, v in msg.raw_items() if k.lower() == lname]


def parse_headers(raw_headers: bytes | str) -> Message:
    """A header block (or a whole message) parsed leniently; never raises."""
    if isinstance(raw_headers, str):
        try:
            raw_headers = raw_headers.encode("latin-1")   # the monitor stores headers this way
        except UnicodeEncodeError:
            raw_headers = raw_headers.encode("utf-8")
    if not raw_headers.endswith(b"\n"):
        raw_headers += b"\r\n"
    return BytesParser(policy=compat32).parsebytes(raw_headers, headersonly=True)


def header_text(msg: Message, name: str) -> str:
    values = raw_values(msg, name)
    return decode_header_value(values[0]) if values else ""


def addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, lowercase address) pairs of the given headers, decoded, in order."""
    values: list[str] = []
    for n in names:
        for v in raw_values(msg, n):
            values.append(_unescape_raw(re.sub(r"\r?\n[ \t]*", " ", v)))
    out: list[tuple[str, str]] = []
    for name, addr in email.utils.getaddresses(values):
        addr = addr.strip().strip("<>").lower()
        if "@" not in addr and addr not in ("mailer-daemon", "postmaster"):
            continue
        out.append((decode_header_value(name), addr))
    return out


def sender_of(msg: Message) -> tuple[str, str]:
    """(display name, address) of the author: From, else Sender, else Return-Path."""
    for h in ("From", "Sender", "Return-Path"):
        found = addresses(msg, h)
        if found:
            return found[0]
    return "", ""


def recipients_of(msg: Message) -> list[str]:
    seen: list[str] = []
    for _, a in addresses(msg, "To", "Cc"):
        if a not in seen:
            seen.append(a)
    return seen


# -- the rules --------------------------------------------------------------------------

def _h(msg: Message, name: str) -> str | None:
    """The first raw value of a header as plain unfolded text, or None."""
    values = raw_values(msg, name)
    if not values:
        return None
    return re.sub(r"\r?\n[ \t]*", " ", values[0])


_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery failure|delivery has failed|"
    r"mail delivery (failed|failure|system)|returned mail|failure notice|delivery report|"
    r"non[- ]?delivery|could not be delivered|nicht zustellbar|退信|系统退信|投递失败|无法投递|"
    r"未能送达|邮件被退回", re.I)
_DAEMON_LOCAL = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)$", re.I)
_NOREPLY_LOCAL = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|bounces?|"
                            r"notifications?|mailer)([-+_.].*)?$", re.I)


def _local(addr: str) -> str:
    return addr.rsplit("@", 1)[0] if "@" in addr else addr


def _content_type(msg: Message) -> tuple[str, str]:
    ctype = (_h(msg, "Content-Type") or "").lower()
    report_type = ""
    m = re.search(r"report-type\s*=\s*\"?([\w-]+)", ctype)
    if m:
        report_type = m.group(1)
    return ctype.split(";", 1)[0].strip(), report_type


def is_bounce(msg: Message) -> bool:
    """A delivery report: DSN (multipart/report; report-type=delivery-status), a message
    from MAILER-DAEMON / postmaster, or an empty return path with a bounce subject."""
    ctype, report_type = _content_type(msg)
    if ctype == "multipart/report" and report_type in ("delivery-status", ""):
        return True
    _, sender = sender_of(msg)
    if sender and _DAEMON_LOCAL.match(_local(sender)):
        return True
    subject = header_text(msg, "Subject")
    if _BOUNCE_SUBJECT.search(subject):
        rp = _h(msg, "Return-Path")
        if (rp is not None and rp.strip() in ("<>", "")) or "postmaster" in sender:
            return True
        if _h(msg, "X-Failed-Recipients") or "daemon" in sender:
            return True
    return bool(_h(msg, "X-Failed-Recipients"))


def is_automated(msg: Message) -> tuple[bool, str]:
    """RFC 3834 section 2 signals that a message was not written by a person, with the
    reason; the same list PRODUCT.md gives for 'never answer'."""
    auto = (_h(msg, "Auto-Submitted") or "").strip().lower()
    if auto and auto.split(";", 1)[0].strip() != "no":
        return True, f"Auto-Submitted: {auto.split(';', 1)[0].strip()}"
    prec = (_h(msg, "Precedence") or "").strip().lower()
    if prec in ("bulk", "list", "junk", "auto_reply"):
        return True, f"Precedence: {prec}"
    for key in msg.keys():
        if key.lower().startswith("list-"):
            return True, f"mailing list ({key} header)"
    for key in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        v = (_h(msg, key) or "").strip().lower()
        if v and (key != "X-Auto-Response-Suppress" or v in ("all", "oof")):
            return True, f"{key} header"
    rp = _h(msg, "Return-Path")
    if rp is not None and str(rp).strip() in ("<>", ""):
        return True, "empty return path"
    _, sender = sender_of(msg)
    local = _local(sender)
    if _DAEMON_LOCAL.match(local):
        return True, f"sender is {local}"
    if local.startswith("owner-") or local.endswith("-request") or local.endswith("-owner"):
        return True, f"list address {sender}"
    if _NOREPLY_LOCAL.match(local):
        return True, f"no-reply sender {sender}"
    return False, ""


_SPAM_FLAGS = {"\\junk", "$junk", "junk", "$phishing", "\\spam", "$spam", "spam"}
_SPAM_SCORE = re.compile(r"(?:score|hits)\s*=\s*(-?\d+(?:\.\d+)?)(?:.*?required\s*=\s*(-?\d+(?:\.\d+)?))?",
                         re.I | re.S)


def _flag_text(f: Any) -> str:
    return (f.decode("utf-8", "replace") if isinstance(f, (bytes, bytearray)) else str(f)).lower()


def is_spam(msg: Message, flags: Iterable[Any] = ()) -> bool:
    """The server or an upstream filter called it spam: junk keywords, SpamAssassin /
    rspamd headers, Microsoft's SCL."""
    if any(_flag_text(f) in _SPAM_FLAGS for f in flags or ()):
        return True
    if (_h(msg, "X-Spam-Flag") or "").strip().upper().startswith("YES"):
        return True
    status = (_h(msg, "X-Spam-Status") or "").strip()
    if status.lower().startswith("yes"):
        return True
    for h in ("X-Spam", "X-Spam-Verdict", "X-QQ-Spam", "X-Spam-Result"):
        v = (_h(msg, h) or "").strip().lower()
        if v.startswith(("yes", "spam", "true")):
            return True
    score_hdr = _h(msg, "X-Spam-Score") or _h(msg, "X-Rspamd-Score") or ""
    try:
        if score_hdr and float(str(score_hdr).split()[0].strip("()")) >= 5.0:
            return True
    except ValueError:
        pass
    m = _SPAM_SCORE.search(status)
    if m:
        score, required = float(m.group(1)), float(m.group(2) or 5.0)
        if score >= required:
            return True
    if (_h(msg, "X-Spam-Level") or "").count("*") >= 5:
        return True
    scl = (_h(msg, "X-MS-Exchange-Organization-SCL") or "").strip()
    if scl.lstrip("-").isdigit() and int(scl) >= 5:
        return True
    report = _h(msg, "X-Forefront-Antispam-Report") or ""
    return bool(re.search(r"SFV:SPM|SCL:[5-9]", str(report)))


def own_addresses_of(engine: "Engine") -> set[str]:
    """The user's own addresses (old and new), lowercase; never correspondents."""
    cfg = engine.config
    own = {cfg.identity.old_address.lower(), cfg.identity.new_address.lower()}
    for acct in (cfg.old, cfg.new):
        if "@" in acct.username:
            own.add(acct.username.lower())
    return own


def rfc3834_allows_reply(msg: Message, own_addresses: set[str]) -> tuple[bool, str]:
    """May an automatic reminder answer this message? (False, reason) for every RFC 3834
    never-answer rule, bounces, loops to ourselves, and mail where none of our addresses
    is in To / Cc / Bcc / Resent-*."""
    own = {a.lower() for a in own_addresses}
    if is_bounce(msg):
        return False, "delivery report (bounce)"
    auto, why = is_automated(msg)
    if auto:
        return False, why
    _, sender = sender_of(msg)
    if not sender:
        return False, "no sender address"
    if sender in own:
        return False, "sent by one of our own addresses"
    to = {a for _, a in addresses(msg, "To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")}
    if not to & own:
        return False, "our address is not in To/Cc/Bcc (Bcc'd list or alias delivery)"
    return True, ""


# -- language ---------------------------------------------------------------------------

_STOP = {
    "en": "the and you for with this that have are your our will please thank thanks regards "
          "from would could order price we is of to in it be dear best",
    "es": "el la los las de que por para con una estimado estimada saludos gracias pedido "
          "precio nuestro su usted muy es en y del al hola cordiales",
    "pt": "o os de que para com uma não obrigado obrigada prezado prezada atenciosamente "
          "pedido preço nosso seu você muito é em e do da olá cumprimentos",
    "fr": "le la les des que pour avec une vous nous merci cordialement bonjour commande prix "
          "est et du au",
    "de": "der die das und mit für eine sie wir danke grüße freundlichen bestellung preis ist "
          "nicht zu den",
    "it": "il lo gli della che per con una grazie saluti cordiali ordine prezzo nostro è e di",
}
_STOPSETS = {k: set(v.split()) for k, v in _STOP.items()}
_WORD = re.compile(r"[a-zà-öø-ÿ]+", re.I)


def detect_language(text: str) -> str:
    """A cheap guess: "zh", "ja", "ko", "ru", "ar", "en", "es", "pt", "fr", "de", "it";
    "" when there is nothing to judge. Script ratios first, then stopword counts."""
    sample = (text or "")[:4000]
    letters = [c for c in sample if c.isalpha()]
    if not letters:
        return ""
    n = len(letters)
    kana = sum(1 for c in letters if "\u3040" <= c <= "\u30ff")
    hangul = sum(1 for c in letters if "\uac00" <= c <= "\ud7af")
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    cyr = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    arab = sum(1 for c in letters if "\u0600" <= c <= "\u06ff")
    if kana and kana / n > 0.05:
        return "ja"
    if hangul / n > 0.2:
        return "ko"
    # CJK characters carry a word each; a few among Latin signatures still mean Chinese
    if cjk / n > 0.1 or cjk >= 8:
        return "zh"
    if cyr / n > 0.3:
        return "ru"
    if arab / n > 0.3:
        return "ar"
    words = [w.lower() for w in _WORD.findall(sample)]
    scores = {lang: sum(1 for w in words if w in s) for lang, s in _STOPSETS.items()}
    # accents are decisive between Spanish and Portuguese
    low = sample.lower()
    if re.search(r"[ãõç]|ção|ções", low):
        scores["pt"] += 3
    if re.search(r"[ñ¿¡]|ción", low):
        scores["es"] += 3
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "en"


#: a line that starts the quoted part of a reply (the sender's own words end above it)
_QUOTE_START = re.compile(
    r"^(on\b.{0,200}\bwrote:?|le\b.{0,200}\ba écrit ?:?|am\b.{0,200}\bschrieb\b.{0,80}:?|"
    r"el\b.{0,200}\bescribió:?|em\b.{0,200}\bescreveu:?|il\b.{0,200}\bha scritto:?|"
    r"-{2,}\s*(original message|原始邮件|原始郵件|original nachricht|message d'origine|"
    r"mensaje original|mensagem original|исходное сообщение)\s*-{2,}|"
    r"_{5,}|"
    r"(from|发件人|寄件者|發件人|von|de|от)\s*[:：].{0,200}[@<].*|"
    r"在\s*.{0,100}(写道|寫道)\s*[:：]?)\s*$", re.I)
REPLY_SUBJECT = re.compile(r"^\s*(re|aw|sv|vs|antw|rif|odp|ha|fw|fwd|wg|tr|回复|回覆|答复|转发)"
                            r"\s*(\[\d+\]|\(\d+\))?\s*[:：]", re.I)


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


def sender_language_of(subject: str, text: str) -> str:
    """The language the sender writes in: their own words in the body, plus the subject
    when they wrote it (a reply's subject is usually ours, in our language); "" when
    there is nothing to judge."""
    own_subject = "" if REPLY_SUBJECT.match(subject or "") else (subject or "")
    lang = detect_language(f"{own_subject}\n{own_words(text)}")
    if lang:
        return lang
    return detect_language(REPLY_SUBJECT.sub("", subject or ""))


# -- the badge --------------------------------------------------------------------------

async def badge_for(engine: "Engine", sender: str, msg: Message, flags: Iterable[Any] = ()) -> str:
    """The feed badge; precedence spam > bounce > automated > switched > notified >
    customer > new sender. 'customer' means the history scan saw mail from or to them."""
    if is_spam(msg, flags):
        return "spam"
    if is_bounce(msg):
        return "bounce"
    if is_automated(msg)[0]:
        return "automated"
    row = None
    if sender:
        row = await engine.store.fetchone(
            "SELECT automated, switched, notified, messages_from, messages_to, customer "
            "FROM correspondents WHERE address=?", (sender.lower(),))
    if row is None:
        return "new sender"
    if row["switched"] is not None:
        return "switched"
    if row["notified"] is not None:
        return "notified"
    if row["automated"] and not row["messages_to"]:
        return "automated"
    if row["customer"] or row["messages_from"] or row["messages_to"]:
        return "customer"
    return "new sender"


# -- readable text ----------------------------------------------------------------------

class _HTMLText(HTMLParser):
    """HTML to plain text: drops script/style/head, breaks lines at block elements."""

    _BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
              "blockquote", "pre", "hr", "section", "article", "header", "footer", "ul", "ol"}
    _SKIP = {"script", "style", "head", "title", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
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
    except Exception:  # broken markup: keep what was parsed
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
        disposition = (part.get("Content-Disposition") or "").lower()
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


def parse_message(raw: bytes) -> Message:
    return BytesParser(policy=compat32).parsebytes(raw)


def preview_of(text: str, limit: int = 300) -> str:
    """A one-line snippet: quoted lines dropped, whitespace collapsed."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(">")]
    flat = re.sub(r"\s+", " ", " ".join(lines)).strip()
    return flat[:limit]
