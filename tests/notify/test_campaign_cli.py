"""``switchover notify`` in real processes: --templates (no state file, no password),
--status --json, --preview, --send without a yes, --final before its day (exit 2),
--test (arrival seconds), and a second campaign on the same state file (exit 4 naming
the first).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from switchover.core.joblock import JobLock
from tests.notify.campaign_support import ROOT, StandIn, engine_with, notify_cli, person

pytestmark = pytest.mark.timeout(90)


def run(tmp_path, cfg, people, *argv: str) -> tuple[int, str]:
    proc = notify_cli(tmp_path, cfg, people, *argv)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_templates_need_no_state_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    argv = [sys.executable, "-m", "switchover", "--config", str(tmp_path / "none.yaml"), "notify",
            "--templates", str(tmp_path / "t")]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "template file(s)" in done.stdout, done.stderr
    assert any((tmp_path / "t").iterdir())
    again = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "Traceback" not in again.stderr


async def in_thread(capsys, monkeypatch, people: StandIn, cfg, *argv: str) -> tuple[int, str]:
    """``switchover notify ...`` through cli.main in a worker thread (a process costs
    seconds on a busy machine), with the stand-in's audience."""
    from switchover.cli import main
    from switchover.core.transition.people import Correspondents
    monkeypatch.setattr(Correspondents, "audience", lambda self, c, *, group=None: people.audience(c, group=group))
    code = await asyncio.to_thread(main, ["--config", str(cfg), "notify", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


async def test_status_preview_send_gates(make_engine, tmp_path, capsys, monkeypatch, mailserver, old_user,
                                         new_user, smtp_server):
    people = StandIn(notice=[person("li.lei@example.net", "zh", name="Li Lei")],
                     final=[person("li.lei@example.net", "zh")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people,
                            transition={"start": "2020-01-01", "close_date": "2099-12-31"})
    cfg = eng.config.path

    code, out = await in_thread(capsys, monkeypatch, people, cfg, "--preview", "li.lei@example.net")
    assert code == 0 and "Message-ID: <" in out and "To: Li Lei <li.lei@example.net>" in out
    assert "multipart/alternative" in out and "Content-Language: zh" in out

    code, out = await in_thread(capsys, monkeypatch, people, cfg, "--send")
    assert code == 2 and "add --yes" in out and smtp_server.taken == 0

    code, out = await in_thread(capsys, monkeypatch, people, cfg, "--send", "--yes", "--group", "friends")
    assert code == 2 and "'friends' is not a group" in out and out.count("\n") == 1

    code, out = await in_thread(capsys, monkeypatch, people, cfg, "--final")
    assert code == 2 and "can go from 2099-" in out and "--now" in out

    with JobLock(eng.config.state, "notify", command="switchover notify --send"):
        code, out = run(tmp_path, cfg, people, "--send", "--yes")
    assert code == 4 and f"process {os.getpid()}" in out and smtp_server.taken == 0

    code, out = run(tmp_path, cfg, people, "--send", "--yes")
    assert code == 0 and "notice: sent 1, bounced 0, failed 0, in doubt 0 of 1" in out, out

    code, out = await in_thread(capsys, monkeypatch, people, cfg, "--status", "--json")
    data = json.loads(out)
    assert code == 0 and data["campaigns"]["notice"] == {"sent": 1, "total": 1}


async def test_test_notice_reports_arrival_seconds(make_engine, tmp_path, mailserver, old_user, new_user,
                                                   smtp_server):
    people = StandIn(notice=[person("a@example.net", "fr")])
    eng = await engine_with(make_engine, old_user, new_user, smtp_server, people)
    code, out = run(tmp_path, eng.config.path, people, "--test", "--timeout", "15")
    assert code == 0, out
    assert out.count("arrived after") == 2 and "fr  old" in out and "fr  new" in out
    smtp_server.deliver = False                               # nothing reaches an INBOX now
    code, out = run(tmp_path, eng.config.path, people, "--test", "--timeout", "2")
    assert code == 1 and "not in the INBOX after 2 s" in out
