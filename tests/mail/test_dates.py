"""core/mail/dates.py, the one date parser: Date headers as real mail writes them, IMAP
INTERNALDATEs, the ISO texts switchover stores, and its INTERNALDATE for APPEND. Pure."""

from __future__ import annotations

import datetime as dt
import locale

import pytest

from switchover.core.mail.dates import date_of, internaldate, parse_date, utc_iso
from switchover.core.mail.headers import parse_headers

UTC = dt.timezone.utc


@pytest.mark.parametrize("value, expected", [
    ("Thu, 26 Nov 2026 10:00:00 +0800", dt.datetime(2026, 11, 26, 2, 0, tzinfo=UTC)),
    ("26 Nov 2026 10:00:00 -0000", dt.datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),     # unknown zone
    ("Sat, 8 May 2010 16.03.09 +0200", dt.datetime(2010, 5, 8, 14, 3, 9, tzinfo=UTC)),  # dotted time
    ("17-Jul-1996 02:44:25 -0700", dt.datetime(1996, 7, 17, 9, 44, 25, tzinfo=UTC)),     # INTERNALDATE
    (b" 7-Jul-1996 02:44:25 +0000", dt.datetime(1996, 7, 7, 2, 44, 25, tzinfo=UTC)),     # space-padded day
    ("2026-11-26T02:00:00+00:00", dt.datetime(2026, 11, 26, 2, 0, tzinfo=UTC)),          # what we store
    ("2026-11-26T02:00:00", dt.datetime(2026, 11, 26, 2, 0, tzinfo=UTC)),                # naive text: UTC
])
def test_parse_date(value: object, expected: dt.datetime) -> None:
    got = parse_date(value)
    assert got is not None and got.tzinfo is not None and got == expected


@pytest.mark.parametrize("value", [None, "", "   ", "someday", b"\xff\xfe", 12345, "32-Foo-2020 99:99:99 +0000"])
def test_no_date_in_it(value: object) -> None:
    assert parse_date(value) is None


def test_a_naive_datetime_is_local_time() -> None:
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    assert parse_date(naive) == naive.astimezone()


def test_date_of_falls_back_to_internaldate() -> None:
    internal = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert date_of(parse_headers(b"Subject: x\r\nDate: garbage\r\n"), internal) == internal
    assert date_of(parse_headers(b"Date: Fri, 2 Jan 2026 10:00:00 +0100\r\n"), internal) == \
        dt.datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    assert date_of(parse_headers(b"Subject: x\r\n")) is None


def test_internaldate_round_trip_whatever_the_locale() -> None:
    when = dt.datetime(2026, 3, 9, 8, 7, 6, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30)))
    saved = locale.setlocale(locale.LC_TIME)
    try:
        for name in ("de_DE.UTF-8", "zh_CN.UTF-8"):
            try:
                locale.setlocale(locale.LC_TIME, name)
            except locale.Error:
                continue
            assert internaldate(when) == b"09-Mar-2026 08:07:06 -0530"
    finally:
        locale.setlocale(locale.LC_TIME, saved)
    assert internaldate(when) == b"09-Mar-2026 08:07:06 -0530"
    assert parse_date(internaldate(when)) == when
    assert utc_iso(when) == "2026-03-09T13:37:06+00:00" and utc_iso(None) is None
