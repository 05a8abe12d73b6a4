"""The `switchover` command line end to end: every command of the README's table run as
``python -m switchover --config CFG ...`` in a subprocess against the real test servers.

What a person sees is what is checked: exit codes, the summary lines, one sentence (and
never a traceback or a password) on failure, and what actually landed on the servers.
Mailboxes are small (tens of messages) so the whole file stays quick; the migration
world (one old mailbox copied once) is shared by the tests of this module.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.proxy import Proxy
from tests.support.servers import MailServer, MailUser, free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


# -- helpers ---------------------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(cfg: Path, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one switchover command to the end; stdout / stderr as text."""
    return subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def start(cfg: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(cfg), *argv],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def clean(r: Any) -> str:
    """All output, asserting there is no traceback in it."""
    out = (r.stdout or "") + (r.stderr or "")
    assert "Traceback" not in out, out
    return out


def one_sentence(r: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command: exactly one 'switchover: ...' line on stderr."""
    clean(r)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("switchover: "), r.stderr
    return lines[0]


def count(text: str, label: str) -> int:
    """The number of a summary line such as 'transferred   12'."""
    m = re.search(rf"^{re.escape(label)}\s+([\d,]+)\s*$", text, re.M)
    assert m, f"no '{label}' line in:\n{text}"
    return int(m.group(1).replace(",", ""))


def message(n: int, subject: str, *, sender: str = "alice@customer.example", to: str = "",
            mid: str | None = None, body: str = "") -> bytes:
    mid = mid or f"<cli-{n}-{time.time_ns()}@customer.example>"
    return (f"From: Alice Customer <{sender}>\r\nTo: {to or 'someone@example.com'}\r\n"
            f"Subject: {subject}\r\nMessage-ID: {mid}\r\nDate: Mon, 03 Jun 2024 10:{n % 60:02d}:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body or f'Message number {n}.'}\r\n").encode()


def message_ids(server: MailServer, user: MailUser, folder: str = "INBOX") -> list[str]:
    out = []
    for raw in server.messages(user, folder):
        m = re.search(rb"(?im)^Message-ID:\s*(\S+)", raw)
        out.append(m.group(1).decode() if m else "")
    return out


class Lines:
    """Reads a running command's stdout in a thread so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str:
        rx = re.compile(pattern)
        with self._cond:
            ok = self._cond.wait_for(lambda: any(rx.search(ln) for ln in self.lines), timeout)
            assert ok, f"no line matching {pattern!r} within {timeout}s; got {self.lines}"
            return next(ln for ln in self.lines if rx.search(ln))


# -- the migration world: one old mailbox, copied once, shared by this module ------------------

FOLDERS = {"INBOX": 10, "Archive/2023": 6, "客户/重要": 4}     # 20 messages in all


@pytest.fixture(scope="module")
def world(mailserver: MailServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    old, new = mailserver.add_user("cliold"), mailserver.add_user("clinew")
    n = 0
    for folder, k in FOLDERS.items():
        msgs = []
        for _ in range(k):
            n += 1
            msgs.append((message(n, f"history {n}"), ["\\Seen"] if n % 2 else [], None))
        mailserver.append_many(old, folder, msgs)
    d = tmp_path_factory.mktemp("cli-world")
    cfg = write_config(d / "switchover.yaml", old_user=old, new_user=new, server=mailserver)
    return {"old": old, "new": new, "cfg": cfg, "dir": d, "total": n}


@pytest.fixture(scope="module")
def migrated(world: dict[str, Any], mailserver: MailServer) -> dict[str, Any]:
    """dry run, migrate, migrate again — run once, looked at by several tests."""
    cfg, new = world["cfg"], world["new"]
    before = {name: len(mailserver.messages(new, name)) for _f, _d, name in mailserver.folders(new)}
    dry = cli(cfg, "migrate", "--dry-run")
    after_dry = {name: len(mailserver.messages(new, name)) for _f, _d, name in mailserver.folders(new)}
    first = cli(cfg, "migrate")
    second = cli(cfg, "migrate")
    return {"before": before, "dry": dry, "after_dry": after_dry, "first": first, "second": second}


def test_migrate_dry_run_prints_the_plan_and_writes_nothing(migrated):
    r = migrated["dry"]
    out = clean(r)
    assert r.returncode == 0, out
    assert re.search(r"^INBOX\s+→\s+INBOX\s+\(10 messages", r.stdout, re.M), out
    assert re.search(r"^Archive/2023\s+→\s+Archive/2023\s+\(6 messages", r.stdout, re.M), out
    assert re.search(r"^客户/重要\s+→\s+客户/重要\s+\(4 messages", r.stdout, re.M), out
    assert "total: 20 messages" in r.stdout and "nothing was written" in r.stdout
    assert migrated["after_dry"] == migrated["before"]
    assert sum(migrated["after_dry"].values()) == 0


def test_migrate_copies_everything_and_prints_the_summary(migrated, world, mailserver):
    r = migrated["first"]
    out = clean(r)
    assert r.returncode == 0, out
    assert count(r.stdout, "transferred") == 20
    assert count(r.stdout, "already there") == 0
    assert count(r.stdout, "refused") == 0
    assert count(r.stdout, "errors") == 0
    assert re.search(r"^speed\s+[\d,]+ msg/s, [\d.,]+ MB/s$", r.stdout, re.M), out
    assert re.search(r"^elapsed\s+[\d.,]+ s$", r.stdout, re.M), out
    for folder, k in FOLDERS.items():
        assert mailserver.messages(world["new"], folder) == mailserver.messages(world["old"], folder)
        assert len(mailserver.messages(world["new"], folder)) == k


def test_second_migrate_transfers_nothing(migrated):
    r = migrated["second"]
    out = clean(r)
    assert r.returncode == 0, out
    assert count(r.stdout, "transferred") == 0
    assert count(r.stdout, "already there") == 20


def test_verify_writes_a_report_and_names_the_folder_with_a_missing_message(migrated, world, mailserver):
    cfg = world["cfg"]
    report = world["dir"] / "verify.txt"
    r = cli(cfg, "verify", "--report", str(report))
    out = clean(r)
    assert r.returncode == 0, out
    assert report.exists() and "nothing is missing" in report.read_text(encoding="utf-8")
    assert f"report: {report}" in r.stdout
    # the engine's proof reached the checklist
    checklist = cli(cfg, "checklist")
    assert re.search(r"^\s+\[x\] verify\b", checklist.stdout, re.M), checklist.stdout
    assert re.search(r"^\s+\[x\] migrate\b", checklist.stdout, re.M), checklist.stdout

    c = mailserver.client(world["new"])
    try:
        c.select_folder("Archive/2023")
        c.delete_messages(c.search("ALL")[:1])
        c.expunge()
    finally:
        c.logout()
    r = cli(cfg, "verify", "--report", str(report))
    out = clean(r)
    assert r.returncode == 1, out
    assert re.search(r"^MISSING\s+Archive/2023 → Archive/2023: 6 / 5, 1 missing", r.stdout, re.M), out
    assert "[MISSING] Archive/2023" in report.read_text(encoding="utf-8")


def test_backup_resumes_and_verify_catches_a_corrupt_file(world, tmp_path):
    cfg = world["cfg"]
    bdir = tmp_path / "backup"
    r = cli(cfg, "backup", str(bdir))
    out = clean(r)
    assert r.returncode == 0, out
    # the backup's own summary (BackupSummary.describe), as the dashboard logs it
    assert re.search(r"^backup: 20 messages written, 0 already there, .* → .*backup$", r.stdout, re.M), out
    r = cli(cfg, "backup", str(bdir))
    assert r.returncode == 0 and re.search(r"\b0 messages written, 20 already there", r.stdout), clean(r)

    r = cli(cfg, "backup", "--verify", str(bdir))
    out = clean(r)
    assert r.returncode == 0, out
    assert re.search(r"^backup .*: verified\W+20 messages", r.stdout, re.M), r.stdout
    checklist = cli(cfg, "checklist")
    assert re.search(r"^\s+\[x\] backup\b", checklist.stdout, re.M), checklist.stdout

    emls = sorted((bdir / "eml").rglob("*.eml"))
    assert len(emls) == 20
    data = emls[0].read_bytes()
    emls[0].write_bytes(data.replace(b"Message number", b"Message NUMBER"))
    r = cli(cfg, "backup", "--verify", str(bdir))
    out = clean(r)
    assert r.returncode == 1, out
    assert "NOT complete" in r.stdout and "problem:" in r.stdout


# -- failures: one sentence, the right exit code ---------------------------------------------------

@pytest.mark.parametrize("trouble", ["wrong password", "closed port"])
def test_login_and_connection_failures_are_one_sentence_exit_3(trouble, mailserver, tmp_path):
    old, new = mailserver.add_user("clibad"), mailserver.add_user("clibadnew")
    secret = "Wr0ng-Secret-" + old.username.split("@")[0]
    if trouble == "wrong password":
        cfg = write_config(tmp_path / "switchover.yaml", server=mailserver, new_user=new,
                           old_user=dataclasses.replace(old, password=secret))
    else:
        cfg = write_config(tmp_path / "switchover.yaml", server=mailserver, new_user=new, old_user=old,
                           old={"imap": {"host": "127.0.0.1", "port": free_port(), "security": "none"}})
    r = cli(cfg, "check")
    out = clean(r)
    assert r.returncode == 3, out
    assert secret not in out
    failed = [ln for ln in r.stdout.splitlines() if "FAILED" in ln]
    assert len(failed) == 1 and failed[0].lstrip().startswith("old: FAILED"), out
    assert re.search(r"^\s*new: ok", r.stdout, re.M), out
    r = cli(cfg, "migrate")
    line = one_sentence(r)
    assert r.returncode == 3, r.stderr
    assert secret not in r.stdout + r.stderr
    assert ("refused the login" in line) if trouble == "wrong password" else ("refused the connection" in line)


def test_check_ticks_the_login_items(config_path):
    r = cli(config_path, "check")
    out = clean(r)
    assert r.returncode == 0, out
    assert re.search(r"^\s*old: ok — logged in as", r.stdout, re.M), out
    assert re.search(r"^\s*new: ok — logged in as", r.stdout, re.M), out
    r = cli(config_path, "checklist")
    assert re.search(r"^\s+\[x\] login_old\b", r.stdout, re.M), r.stdout
    assert re.search(r"^\s+\[x\] login_new\b", r.stdout, re.M), r.stdout


def test_checklist_tick_by_hand_and_provable_items_refused(config_path):
    r = cli(config_path, "checklist", "tick", "request")
    out = clean(r)
    assert r.returncode == 0, out
    assert re.search(r"^\s+\[x\] request\b", r.stdout, re.M), out
    assert re.search(r"^Phase 1: .*\[1/9\]", r.stdout, re.M), out
    r = cli(config_path, "checklist", "tick", "backup")
    line = one_sentence(r)
    assert r.returncode != 0
    assert "cannot be ticked by hand" in line


def test_migrate_lists_a_refused_message_with_the_servers_words(mailserver, tmp_path):
    old = mailserver.add_user("clirefold")
    new = mailserver.add_user("clirefnew", max_message_kb=4)     # skipped where unsupported
    for i in range(4):
        body = ("x" * 70 + "\r\n") * (120 if i == 2 else 1)
        mailserver.append(old, "INBOX", message(i, f"refuse {i}", body=body))
    cfg = write_config(tmp_path / "switchover.yaml", old_user=old, new_user=new, server=mailserver)
    r = cli(cfg, "migrate")
    out = clean(r)
    assert r.returncode == 1, out
    assert count(r.stdout, "transferred") == 3
    assert count(r.stdout, "refused") == 1
    refused = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("refused:")]
    assert len(refused) == 1 and "'refuse 2'" in refused[0], out
    assert re.search(r"(?i)size|limit|too (big|large)", refused[0].split(":", 2)[2]), refused[0]
    assert len(mailserver.messages(new, "INBOX")) == 3


def test_ctrl_c_during_migrate_saves_progress_and_a_rerun_completes(mailserver, tmp_path):
    old, new = mailserver.add_user("clisigold"), mailserver.add_user("clisignew")
    mailserver.append_many(old, "INBOX", [message(i, f"slow {i}") for i in range(24)])
    # latency on the old side and one message per batch: slow enough to interrupt midway
    with Proxy(mailserver.host, mailserver.imap_port, delay=0.03) as proxy:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old, new_user=new, server=mailserver,
                           old={"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}},
                           migration={"batch_messages": 1, "connections": 1})
        proc = start(cfg, "migrate")
        try:
            deadline = time.monotonic() + 30
            while len(mailserver.messages(new, "INBOX")) < 2:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the migration did not start copying"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert "Traceback" not in out + err, out + err
        assert proc.returncode == 130, out + err
        assert "progress is saved" in err
        there = len(mailserver.messages(new, "INBOX"))
        assert 2 <= there < 24, f"{there} copied before the interrupt took effect"
        r = cli(cfg, "migrate")
    out = clean(r)
    assert r.returncode == 0, out
    assert count(r.stdout, "transferred") == 24 - there
    assert count(r.stdout, "already there") == there
    ids = message_ids(mailserver, new)
    assert len(ids) == 24 and len(set(ids)) == 24


def test_import_mbox_and_eml_folder_reruns_upload_nothing(config_path, new_user, mailserver, tmp_path):
    mbox = tmp_path / "export.mbox"
    with open(mbox, "wb") as f:
        for i in range(5):
            raw = message(i, f"mbox {i}", mid=f"<mbox-{i}@export.example>",
                          body="From the archive\r\nline two").replace(b"\r\n", b"\n")
            f.write(b"From alice@customer.example Mon Jun  3 10:00:00 2024\n" + raw + b"\n")
    emls = tmp_path / "Foxmail export"
    emls.mkdir()
    for i in range(3):
        (emls / f"{i}.eml").write_bytes(message(i, f"eml {i}", mid=f"<eml-{i}@export.example>"))

    r = cli(config_path, "import", str(mbox), "--to", "Imported")
    out = clean(r)
    assert r.returncode == 0, out
    assert "5 uploaded, 0 already there" in r.stdout, out
    r = cli(config_path, "import", str(mbox), "--to", "Imported")
    assert r.returncode == 0 and "0 uploaded, 5 already there" in r.stdout, clean(r)
    r = cli(config_path, "import", str(emls), "--to", "Old PC")
    out = clean(r)
    assert r.returncode == 0 and "3 uploaded, 0 already there" in r.stdout, out
    r = cli(config_path, "import", str(emls), "--to", "Old PC")
    assert r.returncode == 0 and "0 uploaded, 3 already there" in r.stdout, clean(r)
    assert sorted(message_ids(mailserver, new_user, "Imported")) == sorted(f"<mbox-{i}@export.example>" for i in range(5))
    assert len(mailserver.messages(new_user, "Old PC")) == 3


# -- the transition watch -----------------------------------------------------------------------

def _arrive(mailserver: MailServer, old: MailUser, n: int, subject: str) -> str:
    mid = f"<arrival-{n}-{time.time_ns()}@customer.example>"
    mailserver.deliver(old, message(n, subject, sender="bob@customer.example", to=old.address, mid=mid),
                       sender="bob@customer.example")
    return mid


def test_watch_once_arrivals_forward_remind_handled(config_path, old_user, new_user, mailserver, smtp_server):
    r = cli(config_path, "watch", "--once")            # the first look sets the starting point
    assert r.returncode == 0 and "0 new arrival(s)" in r.stdout, clean(r)
    mid = _arrive(mailserver, old_user, 1, "Order 4711 please")
    r = cli(config_path, "watch", "--once")
    out = clean(r)
    assert r.returncode == 0 and "1 new arrival(s)" in r.stdout, out
    m = re.search(r"arrival #(\d+) \[[^\]]+\] bob@customer\.example: Order 4711 please", r.stdout)
    assert m, out
    aid = m.group(1)

    r = cli(config_path, "arrivals")
    assert r.returncode == 0 and re.search(rf"^#{aid}\s.*bob@customer\.example\s+'Order 4711 please'\s+new",
                                           r.stdout, re.M), clean(r)

    r = cli(config_path, "forward", aid)
    out = clean(r)
    assert r.returncode == 0 and f"Arrival #{aid} forwarded" in r.stdout, out
    assert message_ids(mailserver, new_user).count(mid) == 1
    r = cli(config_path, "forward", aid)
    out = clean(r)
    assert r.returncode == 0 and "already forwarded" in r.stdout and "nothing was sent again" in r.stdout, out
    assert message_ids(mailserver, new_user).count(mid) == 1

    r = cli(config_path, "remind", aid)
    out = clean(r)
    assert r.returncode == 0 and f"Arrival #{aid} reminded" in r.stdout, out
    sent = smtp_server.wait_for(1)
    mail_from, rcpts, raw = sent[0]
    assert rcpts == ["bob@customer.example"] and mail_from == old_user.address
    assert re.search(rb"(?m)^Subject: Re: Order 4711 please", raw), raw[:500]
    assert re.search(rb"(?mi)^In-Reply-To: " + re.escape(mid.encode()), raw), raw[:500]
    assert new_user.address.encode() in raw
    r = cli(config_path, "remind", aid)
    assert r.returncode == 0 and "already reminded" in r.stdout, clean(r)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1

    r = cli(config_path, "handled", aid)
    assert r.returncode == 0 and f"Arrival #{aid} marked handled" in r.stdout, clean(r)
    r = cli(config_path, "arrivals")
    assert re.search(rf"^#{aid}\s.*\shandled\s+forward:done remind:done handled:done", r.stdout, re.M), clean(r)

    r = cli(config_path, "forward", "99999")
    line = one_sentence(r)
    assert r.returncode == 1 and "There is no arrival" in line and "99999" in line, line


def test_a_send_in_doubt_is_settled_from_the_cli(config_path, old_user, mailserver, smtp_server):
    """The server takes a reminder and drops the line before answering: `remind` says it is
    in doubt and names the settle command; `settle --resend` sends it again at once,
    `settle` of a settled action is refused in one sentence."""
    assert cli(config_path, "watch", "--once").returncode == 0
    _arrive(mailserver, old_user, 2, "Muestras, por favor")
    r = cli(config_path, "watch", "--once")
    aid = re.search(r"arrival #(\d+) ", r.stdout).group(1)

    smtp_server.drop_after_data = True
    r = cli(config_path, "remind", aid)
    line = one_sentence(r)
    assert r.returncode == 1 and f"Arrival #{aid} may or may not have been reminded" in line, line
    action = re.search(r"switchover settle (\d+) --delivered", line).group(1)
    assert smtp_server.taken == 1                   # it did go out: only the answer was lost

    smtp_server.drop_after_data = False
    r = cli(config_path, "settle", action, "--resend")
    out = clean(r)
    assert r.returncode == 0 and re.search(rf"^Action #\d+ \(remind of arrival #{aid}\): done", r.stdout,
                                           re.M), out
    assert smtp_server.taken == 2
    r = cli(config_path, "settle", action, "--delivered")
    assert r.returncode == 1 and "not in doubt" in one_sentence(r)
    r = cli(config_path, "arrivals")
    assert re.search(rf"^#{aid}\s.*remind:done", r.stdout, re.M), clean(r)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_watch_prints_arrivals_and_stops_cleanly(signum, config_path, old_user, mailserver):
    assert cli(config_path, "watch", "--once").returncode == 0      # starting point
    proc = start(config_path, "watch")
    lines = Lines(proc)
    try:
        lines.wait_for(r"old mailbox: connected", 15)
        time.sleep(0.3)      # the watcher selects INBOX right after connecting
        t0 = time.monotonic()
        _arrive(mailserver, old_user, 2, "Quote for 200 units")
        line = lines.wait_for(r"arrival #\d+ .*Quote for 200 units", 10)
        assert time.monotonic() - t0 < 5, line
        proc.send_signal(signum)
        proc.wait(timeout=20)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        print("stdout:", *lines.lines, "stderr:", proc.stderr.read() if proc.stderr else "", sep="\n")
        raise
    err = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in "\n".join(lines.lines) + err, err
    assert proc.returncode == 0, err
    assert "watch stopped" in err


def test_autoreply_on_status_off(mailserver, old_user, new_user, smtp_server, tmp_path):
    mailserver.require("sieve")
    cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                       server=mailserver, smtp=smtp_server,
                       old={"sieve": {"host": mailserver.host, "port": mailserver.sieve_port,
                                      "security": "none"}})
    r = cli(cfg, "autoreply", "status")
    assert r.returncode == 0 and r.stdout.startswith("auto-reply: off"), clean(r)
    r = cli(cfg, "autoreply", "on", "--days", "3")
    out = clean(r)
    assert r.returncode == 0 and r.stdout.startswith("auto-reply: active"), out
    active = getattr(mailserver, "active_sieve", None)
    if active is not None:
        assert active(old_user) == "switchover"
    r = cli(cfg, "autoreply", "status")
    assert r.returncode == 0 and r.stdout.startswith("auto-reply: active"), clean(r)
    r = cli(cfg, "checklist")
    assert re.search(r"^\s+\[x\] autoreply\b", r.stdout, re.M), r.stdout
    r = cli(cfg, "autoreply", "off")
    assert r.returncode == 0 and r.stdout.startswith("auto-reply: off"), clean(r)
    if active is not None:
        assert active(old_user) is None
