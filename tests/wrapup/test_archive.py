"""``engine.archive`` (core/wrapup/archive.py, report.py) against Dovecot: one folder with
a verified backup of the old mailbox and the closing report in HTML and Markdown with
the right numbers; the verified backup proves the checklist's final_backup item."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.arrivals import add_arrival, message

pytestmark = pytest.mark.timeout(90)


async def test_archive_writes_a_verified_backup_and_both_reports(make_engine, mailserver, old_user, new_user,
                                                                 tmp_path) -> None:
    today = dt.date.today()
    eng = await make_engine(old_user, new_user, transition={"start": (today - dt.timedelta(days=100)).isoformat()})
    eng.monitor.learn_history = False
    for i in range(3):
        mailserver.append(old_user, "Projects", message(old_user.address, subject=f"History {i}"))
    first = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="Order 17"))
    await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="Order 18 & <more>",
                                                         sender="Bo | Chen <bo@example.net>"))
    await eng.arrivals.mark_handled(first)
    await eng.correspondents.mark_notified("li.lei@example.com")
    await eng.correspondents.mark_notified("ann@example.org")
    await eng.correspondents.mark_switched("li.lei@example.com")
    await eng.monitor.catch_up()

    result = await eng.archive.run(tmp_path / "archive")
    assert result.ok and result.check.ok and result.check.live_checked
    assert result.backup_dir == (tmp_path / "archive" / "backup").resolve()
    assert sum(f.found for f in result.check.folders) == 5
    item = await eng.checklist.item("final_backup")
    assert item.state == "done" and item.by == "engine" and "after the last arrival" in item.evidence

    data = result.data
    assert [p.address for p in data.notified] == ["ann@example.org", "li.lei@example.com"]
    assert [p.address for p in data.switched] == ["li.lei@example.com"]
    assert {p.address: p.count for p in data.writers} == {"li.lei@example.com": 1, "bo@example.net": 1}
    assert dict(data.handled) == {"marked handled, nothing sent": 1, "NOT handled": 1}
    assert data.arrivals_total == 2

    html = result.html.read_text(encoding="utf-8")
    md = result.markdown.read_text(encoding="utf-8")
    assert result.html.stat().st_mode & 0o077 == 0
    for text in (html, md):
        assert "Who was told (2)" in text and "Who switched (1)" in text
        assert "Who still wrote to the old address (2)" in text and "Arrivals on the old address (2)" in text
        assert "Closing the old mailbox: not yet" in text
        assert "Final backup verified" in text or "verified" in text
    assert "<style" not in html and 'style="' in html          # CSS inlined for any mail reader
    assert "Bo | Chen" in html and "Bo \\| Chen" in md         # names shown literally; table cells escaped
    assert "| NOT handled | 1 |" in md and "| marked handled, nothing sent | 1 |" in md
    assert "- [x] Final backup verified" in md


async def test_archive_without_the_old_mailbox_is_not_verified(make_engine, old_user, new_user, tmp_path) -> None:
    eng = await make_engine(old_user, new_user)
    eng.set_secret("old", "wrong")
    with pytest.raises(Exception) as caught:
        await eng.archive.run(tmp_path / "archive")
    assert getattr(caught.value, "exit_code", None) == 3
    assert (await eng.checklist.item("final_backup")).state == "open"
