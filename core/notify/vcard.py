"""The new contact as a vCard 3.0 (RFC 2426), attached to the change notice so a
correspondent can replace the old address in one click.

Hand-written: none of the project's dependencies writes vCards, and the few lines needed
(N, FN, ORG, EMAIL, TEL, NOTE) are simple; what matters is done here carefully: text
values escaped (backslash, comma, semicolon, newline; RFC 2426 §4), lines folded at 75
octets without splitting a UTF-8 sequence, CRLF line ends. Version 3.0 rather than 4.0
because Outlook, Apple Contacts and Google Contacts all import it.
"""

from __future__ import annotations

from dataclasses import dataclass

LIMIT = 75      # octets per line before folding (RFC 2425 §5.8.1)


@dataclass(frozen=True)
class Contact:
    name: str
    address: str
    company: str = ""
    phone: str = ""
    note: str = ""


def escape(value: str) -> str:
    """A text value with its special characters escaped (RFC 2426 §4)."""
    return (value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
            .replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n"))


def fold(line: str) -> str:
    """One content line folded into lines of at most 75 octets (continuations start with
    a space), never inside a UTF-8 sequence."""
    out: list[str] = []
    current = ""
    size = 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > LIMIT:
            out.append(current)
            current, size = " ", 1
        current += ch
        size += n
    out.append(current)
    return "\r\n".join(out)


def _name_parts(name: str) -> tuple[str, str]:
    """(family, given) for the N property: 'Ana Silva' → ('Silva', 'Ana'); a name without
    spaces (王伟) stays whole in the family part, which every client shows as written."""
    words = name.split()
    if len(words) < 2:
        return name.strip(), ""
    return words[-1], " ".join(words[:-1])


def vcard(contact: Contact) -> str:
    """The vCard text, CRLF line ends, ending with a CRLF."""
    family, given = _name_parts(contact.name)
    lines = ["BEGIN:VCARD", "VERSION:3.0",
             f"N:{escape(family)};{escape(given)};;;",
             f"FN:{escape(contact.name or contact.address)}"]
    if contact.company:
        lines.append(f"ORG:{escape(contact.company)}")
    lines.append(f"EMAIL;TYPE=INTERNET,PREF:{contact.address}")
    if contact.phone:
        lines.append(f"TEL;TYPE=WORK,VOICE:{escape(contact.phone)}")
    if contact.note:
        lines.append(f"NOTE:{escape(contact.note)}")
    lines.append("END:VCARD")
    return "".join(fold(line) + "\r\n" for line in lines)
