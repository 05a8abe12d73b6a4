"""Backups and imports as processes (issue 9, items 3, 12 and 14), through the CLI against
a real server: one job of a kind per state file, a backup check that cannot be fooled, and
files private to the user.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from switchover.core.joblock import JobLock
from tests.support.proxy import Proxy
from tests.support.servers import MailServer, free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def message(n: int, subject: str = "Quote") -> bytes:
    return (f"From: Customer {n} <c{n}@example.org>\r\nTo: sales@example.com\r\nSubject: {subject} {n}\r\n"
            f"Message-ID: <proc-{n}-{time.time_ns()}@example.org>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
            f"\r\nHello {n}.\r\n").encode()


def cli(cfg: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start(cfg: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(cfg), *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def clean(r) -> str:
    out = (r.stdout or "") + (r.stderr or "")
    assert "Traceback" not in out, out
    return out


def _wait_for_lock(state: Path, kind: str, proc: subprocess.Popen[str]) -> dict:
    deadline = time.monotonic() + 30
    while True:
        holder = JobLock(state, kind).holder()
        if holder:
            return holder
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the first {kind} never took its lock"
        time.sleep(0.05)


# -- 9.3: one job of a kind per state file -------------------------------------------------------

@pytest.mark.parametrize("job", ["backup", "import"])
def test_a_second_job_of_the_same_kind_exits_4_naming_the_first(job, mailserver, old_user, new_user, tmp_path):
    """The second process says who holds the job and exits 4; the first finishes."""
    if job == "backup":
        mailserver.append_many(old_user, "INBOX", [message(i) for i in range(12)])
    source = tmp_path / "export.mbox"
    with open(source, "wb") as f:
        for i in range(12):
            f.write(b"From c@example.org Mon Jun  3 10:00:00 2024\n" + message(i).replace(b"\r\n", b"\n") + b"\n")
    # a slow link to the server the job talks to keeps the first one busy for a while
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.04) as proxy:
        side = "old" if job == "backup" else "new"
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver,
                           migration={"batch_messages": 1},
                           **{side: {"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}}})
        argv = ["backup", str(tmp_path / "one")] if job == "backup" else ["import", str(source), "--to", "Imported"]
        first = start(cfg, *argv)
        try:
            holder = _wait_for_lock(cfg.parent / "switchover.sqlite", job, first)
            assert holder["pid"] == first.pid
            second_argv = ["backup", str(tmp_path / "two")] if job == "backup" else argv
            r = cli(cfg, *second_argv)
            out = clean(r)
            assert r.returncode == 4, out
            line = r.stderr.strip()
            verb = "backing up" if job == "backup" else "importing"
            assert line.startswith(f"switchover: Another switchover is already {verb} with this state file: "
                                   f"process {first.pid}"), line
            assert first.poll() is None, "the first job was disturbed"
            out, err = first.communicate(timeout=90)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
    assert first.returncode == 0, out + err
    if job == "backup":
        assert "12 messages written" in out and not (tmp_path / "two").exists()
    else:
        assert "12 uploaded" in out
        assert len(mailserver.messages(new_user, "Imported")) == 12


# -- 9.12: backup --verify that cannot be fooled ----------------------------------------------

def test_backup_verify_that_cannot_reach_the_mailbox_is_not_a_pass(mailserver, old_user, new_user, tmp_path):
    mailserver.append_many(old_user, "INBOX", [message(i) for i in range(5)])
    cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver)
    bk = tmp_path / "bk"
    r = cli(cfg, "backup", str(bk))
    assert r.returncode == 0, clean(r)
    r = cli(cfg, "backup", "--verify", str(bk))
    assert r.returncode == 0 and "verified: 5 messages" in r.stdout, clean(r)

    # the same account, its server unreachable: the files are fine, the comparison did not run
    cfg2 = write_config(tmp_path / "other" / "switchover.yaml", old_user=old_user, new_user=new_user,
                        server=mailserver, old={"imap": {"host": mailserver.host, "port": free_port(),
                                                         "security": "none"}})
    r = cli(cfg2, "backup", "--verify", str(bk))
    out = clean(r)
    assert r.returncode == 1, out
    assert "verified: " not in r.stdout, out
    assert re.search(r"^problem: The old mailbox could not be compared with the backup", r.stdout, re.M), out
    assert re.search(r"NOT verified .*5 messages in \d+ folders are intact, but the old mailbox could not be "
                     r"compared", r.stdout), out


def test_backup_verify_reports_newer_mail_even_when_a_folder_cannot_be_selected(mailserver, old_user, new_user,
                                                                               tmp_path):
    if not hasattr(mailserver, "home"):
        pytest.skip("needs Dovecot's mail store on disk to break one folder")
    mailserver.append_many(old_user, "Projects", [message(100 + i) for i in range(3)])
    mailserver.append_many(old_user, "INBOX", [message(i) for i in range(5)])
    cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver)
    bk = tmp_path / "bk"
    assert cli(cfg, "backup", str(bk)).returncode == 0
    mailserver.append_many(old_user, "INBOX", [message(200 + i, "Newer") for i in range(11)])
    # the server lists Projects but fails to SELECT it ("[SERVERBUG] Internal error")
    broken = mailserver.home(old_user) / "mail" / "mailboxes" / "Projects" / "dbox-Mails"
    assert broken.is_dir()
    mode = broken.stat().st_mode
    broken.chmod(0)
    try:
        r = cli(cfg, "backup", "--verify", str(bk))
    finally:
        broken.chmod(stat.S_IMODE(mode))
    out = clean(r)
    assert r.returncode == 1, out                    # used to say "verified, 8 messages", exit 0
    assert "verified: " not in r.stdout, out
    assert re.search(r"^problem: INBOX: 11 messages on the server are not in the backup yet", r.stdout, re.M), out
    assert re.search(r"^problem: Projects: the folder could not be compared with the backup \(.*select", r.stdout,
                     re.M), out
    assert "NOT complete" in r.stdout


# -- 9.14: private files under umask 022 ----------------------------------------------------------

def _modes(top: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(top))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def test_backup_import_and_state_are_private_under_umask_022(mailserver, old_user, new_user, tmp_path):
    mailserver.append_many(old_user, "INBOX", [message(i) for i in range(3)])
    mailserver.append(old_user, "客户/墨西哥", message(50))
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    cfg = write_config(home / "cfg" / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver,
                       state="state/switchover.sqlite")
    (home / "cfg").chmod(0o755)
    source = home / "export.mbox"
    source.write_bytes(b"From c@example.org Mon Jun  3 10:00:00 2024\n" + message(7).replace(b"\r\n", b"\n"))
    old = os.umask(0o022)
    try:
        r = cli(cfg, "backup", str(home / "backups" / "mail" / "2026"))
        assert r.returncode == 0, clean(r)
        r = cli(cfg, "import", str(source), "--to", "Imported")
        assert r.returncode == 0, clean(r)
        r = cli(cfg, "backup", "--verify", str(home / "backups" / "mail" / "2026"))
        assert r.returncode == 0, clean(r)
    finally:
        os.umask(old)
    modes = _modes(home)
    ours = {k: v for k, v in modes.items() if k not in ("cfg", "cfg/switchover.yaml", "export.mbox")}
    assert any(k.endswith(".mbox") for k in ours) and any(k.endswith(".eml") for k in ours), ours
    assert any(k.endswith("index.sqlite") for k in ours) and any(k.endswith(".lock") for k in ours), ours
    for name, mode in ours.items():
        want = 0o700 if (home / name).is_dir() else 0o600
        assert mode == want, f"{name} is {oct(mode)}, not {oct(want)}"
