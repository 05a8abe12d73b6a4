"""``switchover check`` in a subprocess: the readable report grouped by section with a
verdict word on every line, ``--json`` for scripts, ``--no-send``, and the exit codes
(0 nothing blocks, 1 a failure or a check that could not run, 2 bad input, 3 a login
refused — the login lines keep the words ``check`` always printed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prepare.preflight_dns import Responder, good_zone
from tests.support.servers import DOMAIN, write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(90)


def cli(cfg: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def test_check_reports_every_section_and_ticks_the_checklist(tmp_path, mailserver, old_user, new_user,
                                                              smtp_server) -> None:
    with Responder(good_zone(DOMAIN)) as ns:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                           server=mailserver, smtp=smtp_server, dns={"nameservers": [ns.spec]})
        r = cli(cfg, "check", "--timeout", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for section in ("Logins", "Capabilities", "Fit", "Round trip", "DNS", "Address"):
        assert re.search(rf"^{section}$", out, re.M), out
    assert re.search(r"^\s*old: ok — logged in as", out, re.M), out
    assert re.search(r"^\s*new SMTP: ok — .*nothing sent", out, re.M), out
    assert re.search(r"^\s*new → old \(.*\): ok — arrived after", out, re.M), out
    assert re.search(r"^\s*SPF: ok", out, re.M), out
    # every check line carries its verdict word
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("      "):
            assert re.search(r": (ok|warn|FAILED|could not run) — ", line), line
    r = cli(cfg, "checklist")
    for key in ("login_old", "login_new", "setup", "sendtest"):
        assert re.search(rf"^\s+\[x\] {key}\b", r.stdout, re.M), r.stdout


def test_check_json_and_a_dns_failure_exit_1(tmp_path, mailserver, old_user, new_user) -> None:
    with Responder(good_zone(DOMAIN, spf="")) as ns:
        cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                           server=mailserver, dns={"nameservers": [ns.spec]})
        r = cli(cfg, "check", "--no-send", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert set(checks["dns.spf"]) >= {"name", "verdict", "found", "meaning", "advice"}
    assert checks["dns.spf"]["verdict"] == "fail" and "v=spf1" in checks["dns.spf"]["advice"]
    assert checks["roundtrip"]["verdict"] == "warn" and "not tested" in checks["roundtrip"]["found"]
    assert checks["login.old.smtp"]["verdict"] == "warn"                # no SMTP configured


def test_bad_timeout_is_exit_2(tmp_path, mailserver, old_user, new_user) -> None:
    cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver)
    r = cli(cfg, "check", "--timeout", "0")
    assert r.returncode == 2 and "--timeout" in r.stderr
