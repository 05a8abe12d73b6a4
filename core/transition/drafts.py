"""What an action sends, built the same way for a preview and for the send: the
reminder to an arrival's sender (in the sender's language, threaded under their
message) and the forward of an arrival to the new address (core/mail/compose.py).
"""

from __future__ import annotations

from ..config import Config
from ..mail.compose import About, forward_message, new_message_id, reminder_message
from ..mail.headers import addresses, header_text
from ..mail.templates import Text, reminder, sender_language
from .arrivals import Arrival
from .people import Correspondents


def reply_address(arrival: Arrival) -> tuple[str, str]:
    """(name, address) a reminder goes to: Reply-To, else the sender."""
    reply_to = addresses(arrival.parsed_headers(), "Reply-To")
    if reply_to:
        name, addr = reply_to[0]
        return name or arrival.sender_name, addr
    return arrival.sender_name, arrival.sender.lower()


class Drafts:
    def __init__(self, config: Config, people: Correspondents) -> None:
        self.config = config
        self.people = people

    async def reminder_language(self, arrival: Arrival, recipient: str | None = None) -> str:
        """The sender's language (what they wrote in this message, else what the history
        says they write) when a reminder text exists for it, else English — never the
        user's own language."""
        known = await self.people.get((recipient or arrival.sender).lower())
        return sender_language(arrival.language, known.language if known else None)

    async def reminder(self, arrival: Arrival, recipient: str, message_id: str | None,
                       auto: bool) -> tuple[Text, bytes]:
        """The reminder's text and its bytes (``auto``: marked Auto-Submitted)."""
        ident = self.config.identity
        lang = await self.reminder_language(arrival, recipient)
        name, _ = reply_address(arrival)
        text = reminder(lang, ident, close_date=self.config.transition.close_date, sender_name=name,
                        original_subject=arrival.subject)
        raw = reminder_message(ident, text, to=recipient, to_name=name,
                               message_id=message_id or new_message_id(ident.old_address),
                               in_reply_to=arrival.message_id,
                               references=header_text(arrival.parsed_headers(), "References"), auto=auto)
        return text, raw

    def forward(self, arrival: Arrival, original: bytes, message_id: str) -> bytes:
        """The forward by SMTP: the original attached to a short cover text."""
        about = About(arrival.id, arrival.sender, arrival.sender_name, arrival.date, arrival.subject,
                      arrival.message_id)
        return forward_message(self.config.identity, about, original, message_id)
