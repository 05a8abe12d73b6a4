"""verify(): per-folder comparison by identity multiset, flags and received dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.mailboxes import bulk, seed, tricky

pytestmark = pytest.mark.timeout(60)


async def test_verify_finds_missing_extra_and_changed(make_engine: Any, tmp_path: Path,
                                                      mailserver: Any, old_user: Any, new_user: Any) -> None:
    corpus = tricky()
    seed(mailserver, old_user, "INBOX", corpus)
    seed(mailserver, old_user, "报价/2024", bulk(10))
    eng = await make_engine(old_user, new_user)
    events: list[Any] = []
    eng.subscribe(events.append)
    s = await eng.migration.run()
    assert s.ok
    report = await eng.migration.verify()
    assert report.ok and report.missing == 0 and report.extra == 0
    by_dst = {f.destination: f for f in report.folders}
    assert by_dst["INBOX"].source_count == by_dst["INBOX"].dest_count == len(corpus)
    assert by_dst["报价/2024"].dest_count == 10

    # tamper with the destination: one message gone, one extra, one flag and one date changed
    c = mailserver.client(new_user)
    c.select_folder("报价/2024")
    uids = sorted(c.search("ALL"))
    c.delete_messages([uids[0]])
    c.expunge()
    c.add_flags([uids[1]], [b"\\Flagged"])
    c.logout()
    seed(mailserver, new_user, "INBOX", [(b"Message-ID: <stray@example.com>\r\nSubject: stray\r\n\r\nx\r\n",
                                          b"", b"01-Jan-2024 00:00:00 +0000")])
    c = mailserver.client(new_user)
    c.select_folder("报价/2024")
    c.delete_messages([uids[2]])
    c.expunge()
    c.logout()
    raw, flags, _ = bulk(10)[2]
    seed(mailserver, new_user, "报价/2024", [(raw, flags, b"01-Jan-2001 00:00:00 +0000")])

    report = await eng.migration.verify()
    assert not report.ok
    q = {f.destination: f for f in report.folders}["报价/2024"]
    assert len(q.missing) == 1 and q.missing[0].subject.startswith("b ")
    assert len(q.flags_changed) == 1 and "\\Flagged" in q.flags_changed[0].detail
    assert len(q.dates_changed) == 1 and "2001" in q.dates_changed[0].detail
    inbox = {f.destination: f for f in report.folders}["INBOX"]
    assert len(inbox.extra) == 1 and inbox.extra[0].subject == "stray" and inbox.missing == []

    path = report.write_text(tmp_path / "verify.txt")
    text = path.read_text(encoding="utf-8")
    assert "NOT OK" in text and "missing" in text and "报价/2024" in text
    assert any(getattr(e, "job", "") == "verify" for e in events)
