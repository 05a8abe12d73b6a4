"""The change request letter (core/prepare/letter.py) from a real mailbox: Dovecot with a
quota on the old user, mail seeded across three years, in Chinese and English with the
measured numbers in it; honest placeholders where the server has no quota (an account
without one on Dovecot, pymap without the QUOTA extension) or the login fails; the
written letter proves the checklist's "request" item; the CLI's exit codes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from switchover.core.config import load_config
from switchover.core.engine import Engine
from tests.support.mailboxes import msg, seed
from tests.support.servers import write_config

pytestmark = pytest.mark.timeout(90)

TODAY = dt.date.today()
DATES = {"start": (TODAY + dt.timedelta(days=30)).isoformat(),
         "close_date": (TODAY + dt.timedelta(days=150)).isoformat()}


def _year(year: int, n: int, tag: str) -> list[tuple[bytes, bytes, bytes]]:
    return [(msg(i, subject=f"{tag}{year}", body=b"x" * 1500 + b"\r\n"), b"\\Seen",
             f"07-Aug-{year} 08:00:00 +0200".encode()) for i in range(n)]


def _history(server: Any, user: Any) -> None:
    y = TODAY.year
    seed(server, user, "INBOX", _year(y - 3, 20, "a") + _year(y - 2, 30, "b") + _year(y - 1, 45, "c"))
    seed(server, user, "Sent", _year(y - 1, 10, "s"))


async def test_letter_in_both_languages_carries_the_measured_numbers(mailserver: Any, make_engine: Any) -> None:
    mailserver.require("quota")
    old, new = mailserver.add_user("old", quota_kb=300), mailserver.add_user("new", quota_kb=5000)
    _history(mailserver, old)
    eng = await make_engine(old, new, transition=DATES)
    facts = await eng.letter.measure()
    assert facts.old.messages == 105 and facts.old.quota is not None
    assert facts.old.quota.limit == 300 * 1024
    y = TODAY.year
    assert dict(facts.old.per_year)[y - 1] == 55 and dict(facts.old.per_year)[y - 3] == 20

    zh = await eng.letter.compose("zh", facts=facts)
    assert zh.gaps == ()
    text = zh.markdown
    for words in ("# 关于更换工作邮箱的申请", "尊敬的领导：", "105 封", "307.2 kB",
                  f"已使用 {facts.old.quota.share * 100:.0f}%", f"| {y - 1} | 55 |",
                  f"{y - 1} 年的邮件量比上一年增长 83%", "个月后旧邮箱将存满", old.address,
                  f"**{new.address}**", "二次验证", "恳请领导审批", "此致", "敬礼！",
                  "申请人：Ada Lovelace", "新邮箱目前可用空间为 5.1 MB"):
        assert words in text, words
    assert text.index("此致") < text.index("敬礼") < text.index("申请人")

    en = await eng.letter.compose("en", to="Ms Chen", facts=facts)
    assert en.gaps == ()
    for words in ("# Request to change my work email address", "Dear Ms Chen,", "105 messages",
                  "of its 307.2 kB", f"| {y - 1} | 55 |", "83% more messages", "two-factor",
                  "I would be grateful for your approval", "Kind regards,"):
        assert words in en.markdown, words

    path = await eng.letter.write(zh, eng.config.path.parent / "申请书.md")
    assert path.read_text(encoding="utf-8") == text
    await eng.bus.drain()
    request = await eng.checklist.item("request")
    assert request.state == "done" and request.by == "engine" and "申请书.md" in request.evidence
    # the last measurement is kept: the dashboard shows the letter without logging in
    assert (await eng.letter.last_facts()) == facts


async def test_no_quota_and_no_login_say_so_instead_of_inventing(mailserver: Any, make_engine: Any,
                                                                  pymap_server: Any, tmp_path: Path) -> None:
    old, new = mailserver.add_user("old"), mailserver.add_user("new")      # no quota set
    _history(mailserver, old)
    eng = await make_engine(old, new)                                       # no dates either
    draft = await eng.letter.compose("en", facts=await eng.letter.measure())
    assert "(no quota set on the server)" in draft.markdown and "105 messages" in draft.markdown
    assert "(date not set: transition.start)" in draft.markdown
    assert any("no quota" in g for g in draft.gaps) and any("transition.start" in g for g in draft.gaps)
    assert "% full" not in draft.markdown

    p_old, p_new = pymap_server.add_user("old"), pymap_server.add_user("new")
    _history(pymap_server, p_old)      # no STATUS=SIZE either: sizes are summed message by message
    path = write_config(tmp_path / "pymap.yaml", old_user=p_old, new_user=p_new, server=pymap_server,
                        transition=DATES, state="pymap.sqlite")
    async with await Engine.open(load_config(path)) as peng:
        pfacts = await peng.letter.measure()
        assert pfacts.old.messages == 105 and pfacts.old.size and pfacts.old.size > 105 * 1500
        assert not pfacts.old.gaps       # every folder counted and sized, nothing left out
        zh = await peng.letter.compose("zh", facts=pfacts)
        assert "（服务器不支持容量查询，未能获取配额）" in zh.markdown
        assert any("does not offer the QUOTA extension" in g for g in zh.gaps)

        peng.set_secret("old", "wrong")
        facts = await peng.letter.measure()
        en = await peng.letter.compose("en", facts=facts)
        assert "(quota not measured: no login)" in en.markdown and "(not measured) messages" in en.markdown
        assert any("refused the login" in g for g in en.gaps)


def test_cli_writes_the_letter_and_says_what_is_missing(config_path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SWITCHOVER_CONFIG": str(config_path)}
    out = tmp_path / "letter.md"
    run = subprocess.run([sys.executable, "-m", "switchover", "letter", "--lang", "en", "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=60)
    # the test config has no transition dates and Dovecot no quota for this user: placeholders
    assert run.returncode == 1, run.stderr
    assert run.stderr.splitlines() == [
        "warning: the letter says '(no quota set on the server)': no quota is set for this account "
        "on the old server (127.0.0.1)",
        "warning: the letter says '(date not set: transition.start)': set transition.start in the "
        "config for the timeline's dates",
        "warning: the letter says '(date not set: transition.close_date)': set transition.close_date "
        "in the config for the timeline's dates"]
    assert out.read_text(encoding="utf-8").startswith("# Request to change my work email address")
    assert "'request' item is ticked" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "switchover", "letter", "--lang", "fr"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
