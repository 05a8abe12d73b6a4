"""The CLI around the migration and the feed, against real servers (issues 9 and 10):
``--folder`` honoured or refused, the dry run's table aligned for CJK names and quiet into
a closed pipe, the verify report private and where it belongs, a reminder to a list sender
only with ``--yes``.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import MailServer, write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def message(n: int, subject: str, *, sender: str = "alice@customer.example", to: str = "sales@example.com",
            extra: str = "") -> bytes:
    return (f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <mcli-{n}-{time.time_ns()}@customer.example>\r\n"
            f"Date: Mon, 03 Jun 2024 10:00:00 +0000\r\n{extra}\r\nMessage {n}.\r\n").encode()


def cli(cfg: Path, *argv: str, cwd: Path = ROOT, **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", True)
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv], cwd=cwd, env=env,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, **kw)


def clean(r: Any) -> str:
    out = (r.stdout or "") + (r.stderr or "")
    assert "Traceback" not in out, out
    return out


def sentence(r: subprocess.CompletedProcess[str]) -> str:
    clean(r)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("switchover: "), r.stderr
    return lines[0]


def cells(text: str) -> int:
    """Terminal cells, independently of the code under test."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


@pytest.fixture(scope="module")
def world(mailserver: MailServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    old, new = mailserver.add_user("mcliold"), mailserver.add_user("mclinew")
    mailserver.append_many(old, "INBOX", [message(i, f"inbox {i}") for i in range(3)])
    mailserver.append_many(old, "客户/重要", [message(10 + i, f"vip {i}") for i in range(2)])
    mailserver.append(old, "Archive", message(20, "archived"))
    # a parent that is no mailbox of its own (\Noselect on Dovecot)
    c = mailserver.client(old)
    try:
        c.create_folder("Parent/Child")
    finally:
        c.logout()
    mailserver.append(old, "Parent/Child", message(30, "child"))
    d = tmp_path_factory.mktemp("mcli")
    cfg = write_config(d / "cfg" / "switchover.yaml", old_user=old, new_user=new, server=mailserver)
    return {"old": old, "new": new, "cfg": cfg, "dir": d}


def _new_total(mailserver: MailServer, user) -> int:
    return sum(len(mailserver.messages(user, name)) for _f, _d, name in mailserver.folders(user))


# -- 9.13: --folder ---------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["Nonexistent", "Parent"])
def test_migrate_of_an_unknown_or_unselectable_folder_is_refused(folder, world, mailserver):
    parent = [f for f, _d, name in mailserver.folders(world["old"]) if name == "Parent"]
    if folder == "Parent" and not (parent and b"\\Noselect" in parent[0]):
        pytest.skip("this server makes the parent a real folder")
    for argv in (["migrate", "--folder", folder], ["migrate", "--dry-run", "--folder", folder]):
        r = cli(world["cfg"], *argv)
        line = sentence(r)            # used to print "transferred 0 … errors 0", exit 0
        assert r.returncode == 2, r.stdout + r.stderr
        assert folder in line, line
        assert "transferred" not in r.stdout
    assert _new_total(mailserver, world["new"]) == 0


def test_dry_run_honours_folder(world, mailserver):
    r = cli(world["cfg"], "migrate", "--dry-run", "--folder", "客户/重要")
    out = clean(r)
    assert r.returncode == 0, out
    rows = [ln for ln in r.stdout.splitlines() if "→" in ln and not ln.startswith("source")]
    assert len(rows) == 1 and rows[0].startswith("客户/重要"), out        # used to list every folder
    assert "total: 2 messages" in r.stdout, out
    assert _new_total(mailserver, world["new"]) == 0


def test_dry_run_aligns_cjk_folder_names(world, mailserver):
    r = cli(world["cfg"], "migrate", "--dry-run")
    out = clean(r)
    assert r.returncode == 0, out
    rows = [ln for ln in r.stdout.splitlines() if "→" in ln]
    assert any(ln.startswith("客户/重要") for ln in rows) and any(ln.startswith("INBOX") for ln in rows), out
    columns = {cells(ln[:ln.index("→")]) for ln in rows}
    assert len(columns) == 1, "the arrows do not line up:\n" + "\n".join(rows)
    assert _new_total(mailserver, world["new"]) == 0


def test_dry_run_into_a_closed_pipe_ends_quietly(world):
    r_fd, w_fd = os.pipe()
    os.close(r_fd)
    try:
        r = cli(world["cfg"], "migrate", "--dry-run", stdout=w_fd, stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(w_fd)
    assert r.returncode == 141, r.stderr           # used to be exit 70 "unexpected error (BrokenPipeError …)"
    assert r.stderr == "", r.stderr


# -- 10.12 / 9.14: the verify report ---------------------------------------------------------

def test_verify_report_beside_the_state_file_unless_asked_and_private(world, mailserver, tmp_path):
    r = cli(world["cfg"], "migrate", "--folder", "INBOX")
    assert r.returncode == 0, clean(r)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    old = os.umask(0o022)
    try:
        r = cli(world["cfg"], "verify", cwd=elsewhere)
        asked = cli(world["cfg"], "verify", "--report", "reports/verify.txt", cwd=elsewhere)
    finally:
        os.umask(old)
    clean(r)
    clean(asked)
    assert list(elsewhere.iterdir()) == [elsewhere / "reports"]       # only what --report asked for
    m = re.search(r"^report: (.+)$", r.stdout, re.M)
    assert m, r.stdout
    report = Path(m.group(1))
    assert report.parent == world["cfg"].parent and report.name.startswith("verify-"), report
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    mine = elsewhere / "reports" / "verify.txt"
    assert f"report: {mine}" in asked.stdout or "report: reports/verify.txt" in asked.stdout, asked.stdout
    assert stat.S_IMODE(mine.stat().st_mode) == 0o600
    assert stat.S_IMODE(mine.parent.stat().st_mode) == 0o700
    assert "INBOX" in mine.read_text(encoding="utf-8")


# -- the reminder's confirmation ------------------------------------------------------------------

def test_remind_a_list_sender_needs_yes(mailserver, old_user, new_user, smtp_server, tmp_path):
    cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver,
                       smtp=smtp_server)
    assert cli(cfg, "watch", "--once").returncode == 0
    mailserver.deliver(old_user, message(1, "Weekly offers", sender="news@shop.example", to=old_user.address,
                                         extra="Precedence: bulk\r\nList-Unsubscribe: <mailto:u@shop.example>\r\n"),
                       sender="news@shop.example")
    r = cli(cfg, "watch", "--once")
    m = re.search(r"arrival #(\d+)", r.stdout)
    assert m, clean(r)
    aid = m.group(1)
    r = cli(cfg, "remind", aid)
    line = sentence(r)
    assert r.returncode == 1, r.stderr
    assert "run again with --yes to send it anyway" in line, line
    time.sleep(0.5)
    assert smtp_server.messages == []
    r = cli(cfg, "remind", aid, "--yes")
    out = clean(r)
    assert r.returncode == 0 and f"Arrival #{aid} reminded" in r.stdout, out
    assert len(smtp_server.wait_for(1)) == 1
