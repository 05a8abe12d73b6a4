"""What an arrival is: the RFC 3834 never-answer rules, bounce / automated / spam
detection, and the badge the feed shows. Pure and synchronous: it judges a parsed
header block (core/mail/headers.py) and, for the badge, what switchover knows of the
sender (core/transition/people.py reads that for it).
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Iterable, Protocol

from ..config import Config
from ..mail.headers import addresses, header, header_text, sender_of

BADGES = ("customer", "notified", "switched", "new sender", "automated", "bounce", "spam")
#: badges of mail a person wrote (the feed's "unhandled" count and the people stats)
HUMAN_BADGES = ("customer", "notified", "switched", "new sender")


class Known(Protocol):
    """What the badge needs to know of a sender (a people.Correspondent)."""
    automated: bool
    customer: bool
    messages_from: int
    messages_to: int
    notified: float | None
    switched: float | None


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
    ctype = (header(msg, "Content-Type") or "").lower()
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
        rp = header(msg, "Return-Path")
        if (rp is not None and rp.strip() in ("<>", "")) or "postmaster" in sender:
            return True
        if header(msg, "X-Failed-Recipients") or "daemon" in sender:
            return True
    return bool(header(msg, "X-Failed-Recipients"))


def is_automated(msg: Message) -> tuple[bool, str]:
    """RFC 3834 section 2 signals that a message was not written by a person, with the
    reason; the same list PRODUCT.md gives for 'never answer'."""
    auto = (header(msg, "Auto-Submitted") or "").strip().lower()
    if auto and auto.split(";", 1)[0].strip() != "no":
        return True, f"Auto-Submitted: {auto.split(';', 1)[0].strip()}"
    prec = (header(msg, "Precedence") or "").strip().lower()
    if prec in ("bulk", "list", "junk", "auto_reply"):
        return True, f"Precedence: {prec}"
    for key in msg.keys():
        if key.lower().startswith("list-"):
            return True, f"mailing list ({key} header)"
    for key in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        v = (header(msg, key) or "").strip().lower()
        if v and (key != "X-Auto-Response-Suppress" or v in ("all", "oof")):
            return True, f"{key} header"
    rp = header(msg, "Return-Path")
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


def _flag_text(f: object) -> str:
    return (f.decode("utf-8", "replace") if isinstance(f, (bytes, bytearray)) else str(f)).lower()


def is_spam(msg: Message, flags: Iterable[object] = ()) -> bool:
    """The server or an upstream filter called it spam: junk keywords, SpamAssassin /
    rspamd headers, Microsoft's SCL."""
    if any(_flag_text(f) in _SPAM_FLAGS for f in flags or ()):
        return True
    if (header(msg, "X-Spam-Flag") or "").strip().upper().startswith("YES"):
        return True
    status = (header(msg, "X-Spam-Status") or "").strip()
    if status.lower().startswith("yes"):
        return True
    for h in ("X-Spam", "X-Spam-Verdict", "X-QQ-Spam", "X-Spam-Result"):
        v = (header(msg, h) or "").strip().lower()
        if v.startswith(("yes", "spam", "true")):
            return True
    score_hdr = header(msg, "X-Spam-Score") or header(msg, "X-Rspamd-Score") or ""
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
    if (header(msg, "X-Spam-Level") or "").count("*") >= 5:
        return True
    scl = (header(msg, "X-MS-Exchange-Organization-SCL") or "").strip()
    if scl.lstrip("-").isdigit() and int(scl) >= 5:
        return True
    report = header(msg, "X-Forefront-Antispam-Report") or ""
    return bool(re.search(r"SFV:SPM|SCL:[5-9]", str(report)))


def own_addresses(cfg: Config) -> set[str]:
    """The user's own addresses (old and new), lowercase; never correspondents."""
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


def badge(msg: Message, flags: Iterable[object] = (), known: Known | None = None) -> str:
    """The feed badge; precedence spam > bounce > automated > switched > notified >
    customer > new sender. ``known`` is what the history and the watch learned of the
    sender (None: never seen). 'customer' means mail went from or to them."""
    if is_spam(msg, flags):
        return "spam"
    if is_bounce(msg):
        return "bounce"
    if is_automated(msg)[0]:
        return "automated"
    if known is None:
        return "new sender"
    if known.switched is not None:
        return "switched"
    if known.notified is not None:
        return "notified"
    if known.automated and not known.messages_to:
        return "automated"
    if known.customer or known.messages_from or known.messages_to:
        return "customer"
    return "new sender"
