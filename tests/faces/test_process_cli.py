"""The CLI's edges that need no mail server (issues 9 and 10): a state file that cannot be
used, config values checked with key and line, a secret that cannot be had, output to a
closed pipe. Every case: one sentence, the documented exit code, never a traceback, and
quickly (a process that hangs after its error is a failure too).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)

CONFIG = textwrap.dedent("""\
    identity:
      name: Wu Jun
      old_address: sales@old.example
      new_address: jun.wu@new.example
      language: en
    old:
      provider: custom
      imap: {host: 127.0.0.1, port: 9, security: none}
      username: sales@old.example
      password_env: OLD_MAIL_PASSWORD
    new:
      provider: custom
      imap: {host: 127.0.0.1, port: 9, security: none}
      username: jun.wu@new.example
      password: not-used
    state: state/switchover.sqlite
    transition:
      start: 2026-12-01
      close_date: 2099-03-31
    """)


def write(tmp_path: Path, text: str = CONFIG) -> Path:
    p = tmp_path / "switchover.yaml"
    p.write_text(text, encoding="utf-8")
    p.chmod(0o600)
    return p


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("SWITCHOVER_CONFIG", "OLD_MAIL_PASSWORD")}
    e["PYTHONUNBUFFERED"] = "1"
    e.update(extra)
    return e


def cli(cfg: Path, *argv: str, timeout: float = 20, **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", True)
    kw.setdefault("env", env())
    return subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv],
                          cwd=ROOT, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def sentence(r: subprocess.CompletedProcess[str]) -> str:
    """The one 'switchover: ...' line of a failed command (no traceback, nothing else)."""
    out = (r.stdout or "") + (r.stderr or "")
    assert "Traceback" not in out, out
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("switchover: "), r.stderr
    assert "unexpected error" not in lines[0], lines[0]
    return lines[0]


def _state(cfg: Path) -> Path:
    return cfg.parent / "state" / "switchover.sqlite"


def _made(cfg: Path) -> Path:
    """A state file written by a first, ordinary command."""
    r = cli(cfg, "arrivals")
    assert r.returncode == 0, r.stderr
    return _state(cfg)


# -- 9.11: a state file that cannot be used ----------------------------------------------

def test_state_file_of_a_newer_switchover_exits_2_at_once(tmp_path):
    cfg = write(tmp_path)
    state = _made(cfg)
    db = sqlite3.connect(state)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    t0 = time.monotonic()
    r = cli(cfg, "arrivals", timeout=15)          # used to hang forever (Ctrl-C ignored)
    assert time.monotonic() - t0 < 10
    line = sentence(r)
    assert r.returncode == 2
    assert "newer switchover" in line and "schema 99" in line


def test_damaged_state_file_is_one_sentence_exit_2(tmp_path):
    cfg = write(tmp_path)
    state = _state(cfg)
    state.parent.mkdir()
    state.write_bytes(b"this is not an SQLite database at all\n" * 200)
    r = cli(cfg, "arrivals")
    line = sentence(r)
    assert r.returncode == 2
    assert str(state) in line and "damaged" in line


def _without_root_powers() -> None:
    """In the child: give up the capabilities that let root write any file, so a
    read-only file is read-only for the test as it is for a user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):                  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:   # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _unprivileged() -> dict:
    if os.geteuid() != 0:
        return {}
    try:
        subprocess.run(["true"], preexec_fn=_without_root_powers, check=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE here")
    return {"preexec_fn": _without_root_powers}


@pytest.mark.parametrize("what", ["file", "file and folder"])
def test_read_only_state_file_is_one_sentence_exit_2(tmp_path, what):
    cfg = write(tmp_path)
    state = _made(cfg)
    for p in state.parent.iterdir():
        p.chmod(0o400)
    if what == "file and folder":
        state.parent.chmod(0o500)
    try:
        r = cli(cfg, "checklist", "tick", "request", **_unprivileged())
    finally:
        state.parent.chmod(0o700)
        for p in state.parent.iterdir():
            p.chmod(0o600)
    line = sentence(r)
    assert r.returncode == 2, r.stderr
    assert str(state) in line and "cannot be written" in line


def test_state_file_is_private_under_umask_022(tmp_path):
    cfg = write(tmp_path)
    old = os.umask(0o022)
    try:
        r = cli(cfg, "arrivals")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    state = _state(cfg)
    assert state.stat().st_mode & 0o777 == 0o600
    assert state.parent.stat().st_mode & 0o777 == 0o700


# -- 9.11 / 10.10: config values, with key and line ----------------------------------------

@pytest.mark.parametrize("old, new, expect", [
    ("close_date: 2099-03-31", "close_date: 2027-02-30", ("'transition.close_date' (line 19)", "2027-02-30")),
    ("close_date: 2099-03-31", "close_date: 2027-13-45", ("'transition.close_date' (line 19)", "2027-13-45")),
    ("start: 2026-12-01", "start: 2026-11-31", ("'transition.start' (line 18)", "2026-11-31")),
    ("language: en", "language: klingon", ("'identity.language' (line 5)", "'klingon'", "en, zh")),
    ("language: en", "language: de", ("'identity.language' (line 5)", "'de'")),
    ("new_address: jun.wu@new.example", 'new_address: "@"', ("'identity.new_address' (line 4)",)),
    ("new_address: jun.wu@new.example", 'new_address: "a b@c@d"', ("'identity.new_address' (line 4)",)),
    ("old_address: sales@old.example", "old_address: sales@old", ("'identity.old_address' (line 3)",)),
    ("  password: not-used\n", "  password: not-used\n  username: other@new.example\n",
     ("'new.username' is written twice (lines 14 and 16)",)),
], ids=["Feb-30", "month-13", "Nov-31", "klingon", "de", "at-sign", "two-ats", "no-tld", "duplicate"])
def test_bad_config_values_name_key_and_line_exit_2(tmp_path, old, new, expect):
    assert old in CONFIG
    cfg = write(tmp_path, CONFIG.replace(old, new))
    r = cli(cfg, "arrivals")
    line = sentence(r)          # used to be "unexpected error (ValueError ...)", exit 70, or nothing
    assert r.returncode == 2, r.stderr
    for part in expect:
        assert part in line, line


def test_close_date_in_the_past_warns_and_autoreply_refuses(tmp_path):
    today = dt.date.today()
    cfg = write(tmp_path, CONFIG.replace("start: 2026-12-01", f"start: {today - dt.timedelta(days=60)}")
                .replace("close_date: 2099-03-31", f"close_date: {today - dt.timedelta(days=2)}"))
    r = cli(cfg, "arrivals")
    assert r.returncode == 0, r.stderr
    assert f"transition.close_date (line 19) is {today - dt.timedelta(days=2)}, in the past" in r.stderr
    r = cli(cfg, "autoreply", "on", env=env(OLD_MAIL_PASSWORD="x"))
    line = sentence(r)
    assert r.returncode == 2 and "in the past" in line and "never answer" in line


def test_close_date_before_start_is_refused(tmp_path):
    cfg = write(tmp_path, CONFIG.replace("close_date: 2099-03-31", "close_date: 2026-11-30"))
    r = cli(cfg, "arrivals")
    line = sentence(r)
    assert r.returncode == 2 and "'transition.close_date' (line 19)" in line and "before" in line


# -- 10.6: a password variable that is not set ------------------------------------------------

def test_unset_password_env_names_the_variable(tmp_path):
    cfg = write(tmp_path)
    r = cli(cfg, "migrate")
    line = sentence(r)
    assert r.returncode == 2
    assert "$OLD_MAIL_PASSWORD" in line and "not set" in line and "old.password_env" in line


def test_missing_password_command_names_the_command(tmp_path):
    cfg = write(tmp_path, CONFIG.replace("password_env: OLD_MAIL_PASSWORD",
                                         "password_command: no-such-pass-tool show mail/old"))
    r = cli(cfg, "migrate")
    line = sentence(r)
    assert r.returncode == 2
    assert "'no-such-pass-tool' is not found" in line and "old.password_command" in line


# -- 10.11: output to a closed pipe -------------------------------------------------------

def _into_closed_pipe(cfg: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is already gone (what `| head -1` leaves)."""
    r_fd, w_fd = os.pipe()
    os.close(r_fd)
    try:
        return cli(cfg, *argv, stdout=w_fd, stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(w_fd)


def test_checklist_into_a_closed_pipe_ends_quietly(tmp_path):
    cfg = write(tmp_path)
    r = _into_closed_pipe(cfg, "checklist")
    assert r.returncode == 141, r.stderr
    assert r.stderr == "", r.stderr            # no BrokenPipeError, no "unexpected error"
