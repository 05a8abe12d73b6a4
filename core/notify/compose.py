"""The change notice as a message: what it says (the templates, core/notify/texts.py),
in the recipient's language, and how it is built — multipart/alternative with a text
part wrapped to 76 columns and an HTML part with its CSS inlined, the new contact as a
vCard, From and Reply-To the new address, To the one recipient.

Pure: nothing here talks to a server or the state file. The same inputs give the same
bytes (MIME boundaries come from the Message-ID), so a preview is what is sent.
It is a personal message, so neither Auto-Submitted nor List-Unsubscribe is set.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

import css_inline

from ..config import Config
from ..errors import ConfigError
from ..people.audience import Recipient
from .texts import BUILTIN, Texts, write_templates
from .vcard import Contact, vcard
from .wrap import wrap_text

__all__ = ["BUILTIN", "KINDS", "NoticeComposer", "Rendered", "clean_name", "write_templates"]

KINDS = ("notice", "internal", "final", "test")
_FONT = ("-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, Helvetica Neue, Arial, "
         "Noto Sans, sans-serif")
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class Rendered:
    """One notice's words, before they become a message (the dashboard previews these)."""
    kind: str
    language: str
    subject: str
    text: str
    html: str


class NoticeComposer:
    """Renders the notice kinds for a recipient from the config's identity, notices and
    transition settings; the user's ``notices.templates`` folder overrides built-in files."""

    def __init__(self, config: Config) -> None:
        self.identity = config.identity
        self.notices = config.notices
        self.close_date = config.transition.close_date
        self.texts = Texts(config.notices.templates)

    # -- what exists ------------------------------------------------------------------------
    def languages(self, kind: str = "notice") -> tuple[str, ...]:
        """The languages the kind has texts for (the test notice uses the notice's)."""
        return self.texts.kinds().get(_base(kind), ())

    def language_for(self, kind: str, language: str) -> str:
        """The recipient's language when the kind has texts in it, else English."""
        code = re.split(r"[-_]", (language or "").strip().lower())[0]
        return code if code in self.languages(kind) else "en"

    def subject(self, kind: str, language: str) -> str:
        lang = self.language_for(kind, language)
        return self._subject(kind, lang, self._context(kind, lang, None))

    # -- rendering ----------------------------------------------------------------------------
    def render(self, kind: str, recipient: Recipient) -> Rendered:
        """Subject, text part (wrapped) and HTML part (CSS inlined) for one recipient."""
        if kind not in KINDS:
            raise ValueError(f"unknown notice kind {kind!r}")
        lang = self.language_for(kind, recipient.language)
        ctx = self._context(kind, lang, recipient)
        ctx["subject"] = self._subject(kind, lang, ctx)
        name = f"{_base(kind)}.{lang}"
        text = self.texts.render("text", name + ".txt.j2", ctx)
        html = self.texts.render("html", name + ".html.j2", ctx)
        if kind == "test":     # the text part carries the mark too (base.html.j2 shows it in HTML)
            text = f"*** {ctx['test_banner']} ***\n\n{text}"
        return Rendered(kind, lang, ctx["subject"], _tidy(text), _INLINER.inline(html))

    def message(self, kind: str, recipient: Recipient, *, message_id: str,
                date: dt.datetime | None = None) -> EmailMessage:
        """The notice to one recipient, ready for SMTP (``msg.as_bytes(policy=SMTP)``)."""
        r = self.render(kind, recipient)
        msg = EmailMessage(policy=email.policy.SMTP)
        me = Address(display_name=self.identity.name, addr_spec=self.identity.new_address)
        msg["From"] = me
        msg["Reply-To"] = me
        msg["To"] = Address(display_name=clean_name(recipient.name), addr_spec=recipient.address)
        msg["Subject"] = r.subject
        msg["Date"] = email.utils.format_datetime(date or dt.datetime.now().astimezone())
        msg["Message-ID"] = message_id
        msg.set_content(r.text, charset="utf-8")
        msg.add_alternative(r.html, subtype="html", charset="utf-8")
        for part in msg.iter_parts():     # add_alternative repeats it on the parts
            del part["MIME-Version"]
        seed = hashlib.sha256(message_id.encode()).hexdigest()[:24]
        msg.set_boundary(f"=_notice_{seed}_alt")
        if self.notices.vcard:
            msg.make_mixed()
            msg.set_boundary(f"=_notice_{seed}_mix")
            card = vcard(Contact(self.identity.name, self.identity.new_address,
                                 self._company(), self.notices.phone))
            msg.add_attachment(card, subtype="vcard", charset="utf-8",
                               filename=_card_name(self.identity.new_address))
            for part in msg.iter_parts():
                del part["MIME-Version"]
                del part["Content-Language"]
        msg["Content-Language"] = r.language     # after make_mixed, which moves Content-*
        return msg

    def check(self) -> None:
        """Render every kind in every language once, so a broken template the user edited
        stops a command before anything is sent (ConfigError naming file and line)."""
        for kind in ("notice", "internal", "final"):
            for lang in self.languages(kind):
                self.render(kind, Recipient("check@example.invalid", "Check", "customer", lang))

    # -- the pieces ---------------------------------------------------------------------------
    def _company(self) -> str:
        return self.notices.company or self.identity.company

    def _context(self, kind: str, lang: str, recipient: Recipient | None) -> dict[str, Any]:
        if self.close_date is None:
            raise ConfigError("The notice names the day the old address stops: set "
                              "transition.close_date in the config first.")
        words = self.texts.words(lang)
        rtl = words.get("direction") == "rtl"
        ident = self.identity
        date = self.close_date
        months = words.get("months") or []
        signature = self._signature()
        ctx: dict[str, Any] = {
            "kind": kind, "lang": lang, "test": kind == "test",
            "dir": "rtl" if rtl else "ltr", "align": "right" if rtl else "left",
            "start": "right" if rtl else "left",
            "font": _safe_font(str(words.get("font") or _FONT)),
            "name": ident.name, "company": self._company(), "phone": self.notices.phone,
            "old_address": ident.old_address, "new_address": ident.new_address,
            "reason": self.notices.reason_for(lang),
            "signature": signature, "signature_lines": signature.split("\n"),
            "recipient": recipient,
            "recipient_name": clean_name(recipient.name) if recipient else "",
            "day": date.day, "year": date.year,
            "month": months[date.month - 1] if len(months) == 12 else date.month,
        }
        ctx["close_date"] = self.texts.say(lang, "date", ctx)
        group = "internal_" if kind == "internal" else ""
        which = "named" if ctx["recipient_name"] else "neutral"
        ctx["greeting"] = self.texts.say(lang, f"greeting.{group}{which}", ctx)
        ctx["test_banner"] = self.texts.say(lang, "test_banner", ctx)
        return ctx

    def _subject(self, kind: str, lang: str, ctx: dict[str, Any]) -> str:
        subject = self.texts.say(lang, f"subject.{_base(kind)}", ctx)
        if kind == "test":
            subject = self.texts.say(lang, "test_subject", {**ctx, "subject": subject})
        return subject

    def _signature(self) -> str:
        """notices.signature, else identity.signature, else name / company / address / phone."""
        given = self.notices.signature or self.identity.signature
        if given:
            return "\n".join(line.rstrip() for line in given.strip().splitlines())
        lines = [self.identity.name, self._company(), self.identity.new_address, self.notices.phone]
        return "\n".join(x for x in lines if x)


def _base(kind: str) -> str:
    return "notice" if kind == "test" else kind


def clean_name(name: str) -> str:
    """A display name safe to greet with and put in To: whitespace folded, quotes
    dropped; '' when it is an address or has no letter (then the greeting is neutral)."""
    n = " ".join((name or "").replace('"', " ").replace("'", " ").split()).strip(" ,;")
    if "@" in n or len(n) > 64 or not any(c.isalpha() for c in n):
        return ""
    return n


def _tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, wrapped to 76 columns."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return wrap_text(body) + "\n"


def _safe_font(stack: str) -> str:
    """A font-family list without the characters that would end a CSS rule."""
    return re.sub(r"[^\w\s,.-]", "", stack)


def _card_name(address: str) -> str:
    local = re.sub(r"[^A-Za-z0-9._-]", "", address.split("@")[0]) or "contact"
    return f"{local}.vcf"
