"""``switchover schedule``, ``close --check`` and ``archive DIR`` in a subprocess against
Dovecot: what a person sees, the exit codes, one sentence for bad input."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def cli(cfg: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    r = subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=90)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def test_schedule_close_and_archive(tmp_path, mailserver, old_user, new_user) -> None:
    start = dt.date.today() - dt.timedelta(days=40)
    cfg = write_config(tmp_path, old_user=old_user, new_user=new_user, server=mailserver,
                       transition={"start": start.isoformat()})

    r = cli(cfg, "schedule")
    assert r.returncode == 1, r.stdout + r.stderr             # never checked: a check is due
    assert "days 29–60" in r.stdout and "Today is transition day 41: a check every 3 days." in r.stdout
    assert "The old inbox has never been checked; run 'switchover watch --once'" in r.stdout

    assert cli(cfg, "watch", "--once").returncode == 0
    r = cli(cfg, "close", "--check", "--json", "--as-of", "2099-01-01")
    data = json.loads(r.stdout)
    assert r.returncode == 1 and data["verdict"] == "not yet" and data["earliest"] == "2099-01-01"
    assert {x["key"]: x["verdict"] for x in data["reasons"]}["final_backup"] == "not yet"

    r = cli(cfg, "archive", str(tmp_path / "archive"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing on the server is missing from it" in r.stdout
    assert (tmp_path / "archive" / "report.html").is_file() and (tmp_path / "archive" / "report.md").is_file()
    r = cli(cfg, "close")                                      # no --check: it still only checks
    assert r.returncode == 1
    assert r.stdout.startswith("Closing the old mailbox: not yet — earliest safe closing date "
                               f"{start + dt.timedelta(days=90)}")
    assert "  NOT YET  The transition is 40 days old" in r.stdout
    assert "  ok       No arrival waits for a look." in r.stdout
    assert "  ok       Final backup " in r.stdout and "after the last arrival" in r.stdout


def test_help_and_bad_input(capsys) -> None:
    from switchover.cli import main
    for command in ("schedule", "close", "archive"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        tail = out.rstrip().splitlines()
        assert any(line.startswith("Example") for line in tail) and "Exit codes:" in out
        assert tail[-1].lstrip().startswith("130")
    with pytest.raises(SystemExit) as done:
        main(["close", "--as-of", "soon"])
    assert done.value.code == 2 and "'soon' is not a date like 2027-03-31" in capsys.readouterr().err
