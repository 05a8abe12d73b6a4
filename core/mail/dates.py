"""The one date parser: every date switchover reads from mail or from a server — a
``Date:`` header (RFC 5322, with the obsolete forms real mail carries), an IMAP
INTERNALDATE (``17-Jul-1996 02:44:25 -0700``), or an ISO 8601 text switchover stored —
becomes an aware datetime here, or None. And its inverse for APPEND: INTERNALDATE text.

Rules: a date without a zone (or with RFC 5322's "-0000", unknown zone) is UTC; a naive
``datetime`` handed in is local time (imapclient gives naive local times unless told
not to normalise). Pure; never raises for bad input.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from email.message import Message

from .headers import header_text

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_INTERNALDATE = re.compile(r"^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\s*$")
#: "Sat, 8 May 2010 16.03.09 +0200": dots for colons, written by some old mailers
_DOTTED_TIME = re.compile(r"(\d{1,2})\.(\d\d)\.(\d\d)")


def _aware(d: dt.datetime, *, naive_is_local: bool) -> dt.datetime:
    if d.tzinfo is not None:
        return d
    return d.astimezone() if naive_is_local else d.replace(tzinfo=dt.timezone.utc)


def _internaldate(text: str) -> dt.datetime | None:
    m = _INTERNALDATE.match(text)
    if not m:
        return None
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    try:
        month = _MONTHS.index(mon.capitalize()) + 1
        offset = dt.timedelta(hours=int(zh), minutes=int(zm))
        tz = dt.timezone(-offset if sign == "-" else offset)
        return dt.datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    except ValueError:
        return None


def parse_date(value: object) -> dt.datetime | None:
    """An aware datetime from a Date header, an INTERNALDATE or an ISO 8601 text (str or
    bytes), or a datetime made aware; None for anything without a date in it."""
    if isinstance(value, dt.datetime):
        return _aware(value, naive_is_local=True)
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("latin-1")
    elif isinstance(value, str):
        text = value
    else:
        return None
    text = " ".join(text.split())
    if not text:
        return None
    found = _internaldate(text)
    if found is not None:
        return found
    try:
        return _aware(dt.datetime.fromisoformat(text), naive_is_local=False)
    except ValueError:
        pass
    for candidate in (text, _DOTTED_TIME.sub(r"\1:\2:\3", text)):
        try:
            return _aware(email.utils.parsedate_to_datetime(candidate), naive_is_local=False)
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
    return None


def date_of(msg: Message, fallback: object = None) -> dt.datetime | None:
    """When a message was written: its Date header, else ``fallback`` (INTERNALDATE)."""
    return parse_date(header_text(msg, "Date")) or parse_date(fallback)


def utc_iso(d: dt.datetime | None) -> str | None:
    """How switchover stores an instant: ISO 8601 in UTC, to the second."""
    if d is None:
        return None
    return _aware(d, naive_is_local=False).astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def internaldate(d: dt.datetime) -> bytes:
    """The INTERNALDATE text for APPEND (month names in English whatever the locale)."""
    d = _aware(d, naive_is_local=True)
    offset = d.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return (f"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year:04d} {d:%H:%M:%S} "
            f"{sign}{minutes // 60:02d}{minutes % 60:02d}").encode("ascii")
