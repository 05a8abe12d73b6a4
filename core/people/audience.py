"""Who a campaign speaks to: the record the people's owner hands the notice campaign.

The people helper (core/people/, core/transition/people.py) fills these from the
correspondents table and the user's choices; core/notify/ renders and sends to them and
never reads the correspondents table itself.
"""

from __future__ import annotations

from dataclasses import dataclass

#: groups a person can be in; the first five are notified by default, the rest never
NOTIFY_GROUPS = ("customer", "supplier", "logistics", "internal", "business")
SILENT_GROUPS = ("automated", "newsletter", "bounce", "cold", "own")
GROUPS = NOTIFY_GROUPS + SILENT_GROUPS


@dataclass(frozen=True)
class Recipient:
    """One person a notice goes to (each address of a person with aliases is one)."""
    address: str
    name: str                 # display name as they write it ("" when unknown)
    group: str                # one of GROUPS (the user's choice, else the guess)
    language: str             # a language code with a template ("en" when none fits)
    organisation: str = ""    # company name or domain, for the greeting and aliases

#: the languages the notices have texts for until the composer says (core/notify)
NOTICE_LANGUAGES = ("en", "zh", "es", "pt", "ru", "ar", "fr")
