"""What the scan's readers hand over: a piece of text with where it sits, and the
error a reader raises for a file it cannot read (with the reason a person can act on)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    where: str          # "line 12", "Sheet1!B7", "page 2", "section 1 footer, paragraph 1"
    text: str
    #: how the text holds an address when the reader knows better than the matcher:
    #: "mailto" (a link target), "cloudflare" (decoded e-mail protection), "link"
    form: str = ""
    #: a part inside the file could not be read (an encrypted attachment): the reason
    unread: str = ""


class Unreadable(Exception):
    """A file (or page) that cannot be searched, and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
