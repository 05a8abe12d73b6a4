"""The conventions of a well-made command-line tool (issue 14): where the config is found,
--version and the IMAP ID, --json for scripts, shell completion, a rotating log file
that never holds a secret, the systemd user service, the demo extra, and every command's
--help ending with an example and its exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from switchover import cli, logfile, service
from switchover.core.config import find_config, load_config
from switchover.core.errors import ConfigError
from switchover.core.net.imap import CLIENT_ID
from tests.support.mailboxes import bulk, seed
from tests.support.servers import write_config

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Hunter2-pa55-sEcReT"
pytestmark = pytest.mark.timeout(120)


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "switchover", *argv], cwd=cwd, env=e, input=input,
                          capture_output=True, text=True, timeout=90,
                          stdin=None if input is not None else subprocess.DEVNULL)


def _config(tmp_path: Path, **extra: str) -> Path:
    p = tmp_path / "switchover.yaml"
    p.write_text(
        "identity: {name: Wu Jun, old_address: sales@old.example, new_address: jun@new.example}\n"
        "old: {provider: custom, imap: {host: 127.0.0.1, port: 9, security: none}, "
        "username: sales@old.example, password_env: CONV_OLD_PASSWORD}\n"
        "new: {provider: custom, imap: {host: 127.0.0.1, port: 9, security: none}, "
        "username: jun@new.example, password_env: CONV_OLD_PASSWORD}\n"
        + "".join(f"{k}: {v}\n" for k, v in extra.items()), encoding="utf-8")
    p.chmod(0o600)
    return p


# -- help -------------------------------------------------------------------------------

def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subparsers(cli._parser())))
def test_every_help_ends_with_an_example_and_exit_codes(name):
    text = _subparsers(cli._parser())[name].format_help()
    at = text.lower().rfind("example")
    tail = text[at:]
    assert at >= 0 and "switchover" in tail.splitlines()[1], f"{name}: no example\n{text}"
    assert "Exit codes:" in tail and tail.rstrip().splitlines()[-1].strip()[0].isdigit(), \
        f"{name}: help does not end with its exit codes\n{text}"
    assert "\n  0 " in tail or "\n  0  " in tail, f"{name}: exit code 0 not explained"


def test_main_help_lists_the_exit_codes():
    r = run("--help")
    assert r.returncode == 0 and "Exit codes:" in r.stdout and "SWITCHOVER_CONFIG" in r.stdout


# -- version ----------------------------------------------------------------------------

def test_version_is_the_distributions_and_the_imap_id_carries_it():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"switchover {metadata.version('switchover')}"
    assert CLIENT_ID["version"] == metadata.version("switchover")


# -- config location --------------------------------------------------------------------

def test_config_is_looked_for_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWITCHOVER_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    platform = tmp_path / "xdg" / "switchover" / "switchover.yaml"
    with pytest.raises(ConfigError) as e:
        load_config(None)
    assert str(platform) in e.value.message and "switchover.yaml" in e.value.message
    assert "switchover init" in e.value.message
    platform.parent.mkdir(parents=True)
    platform.write_text("x: 1\n")
    assert find_config(None) == platform                       # the platform folder
    (tmp_path / "switchover.yaml").write_text("x: 1\n")
    assert find_config(None) == Path("switchover.yaml")        # ./switchover.yaml before it
    monkeypatch.setenv("SWITCHOVER_CONFIG", str(tmp_path / "env.yaml"))
    assert find_config(None) == tmp_path / "env.yaml"          # the environment before both
    assert find_config(tmp_path / "flag.yaml") == tmp_path / "flag.yaml"   # --config first


def test_state_and_log_default_to_the_platform_state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    cfg = load_config(_config(tmp_path))
    assert cfg.state == tmp_path / "st" / "switchover" / "sales@old.example" / "switchover.sqlite"
    assert cfg.log == cfg.state.with_name("switchover.log")
    explicit = load_config(_config(tmp_path, state="here/s.sqlite", log="logs/sw.log"))
    assert explicit.state == tmp_path / "here" / "s.sqlite"    # relative to the config, as before
    assert explicit.log == tmp_path / "logs" / "sw.log"


# -- --json -----------------------------------------------------------------------------

def test_checklist_and_arrivals_json(tmp_path):
    cfg = _config(tmp_path, state="s.sqlite")
    r = run("--config", str(cfg), "checklist", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)                  # one document, nothing else on stdout
    phase = doc["phases"][0]
    assert {"phase", "title", "done", "total", "items"} <= phase.keys()
    assert {"key", "title", "state", "by", "evidence", "note", "due", "provable"} <= phase["items"][0].keys()
    r = run("--config", str(cfg), "arrivals", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"arrivals": []}


def test_verify_json(mailserver, old_user, new_user, tmp_path):
    seed(mailserver, old_user, "INBOX", bulk(2))
    seed(mailserver, new_user, "INBOX", bulk(1))     
    cfg = write_config(tmp_path, old_user=old_user, new_user=new_user, server=mailserver)
    r = run("--config", str(cfg), "verify", "--json")
    assert r.returncode == 1, r.stderr           # one message missing: not verified
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["missing"] >= 1 and Path(doc["report"]).exists()
    inbox = next(f for f in doc["folders"] if f["source"] == "INBOX")
    assert (inbox["source_count"], inbox["dest_count"], inbox["verdict"]) == (2, 1, "MISSING")


# -- completion -------------------------------------------------------------------------

def test_completion_scripts():
    bash = run("completion", "bash")
    assert bash.returncode == 0
    assert "_shtab_switchover" in bash.stdout and "complete " in bash.stdout
    for sub in ("migrate", "verify", "checklist", "service", "completion"):
        assert sub in bash.stdout
    subprocess.run(["bash", "-n"], input=bash.stdout, text=True, check=True)
    zsh, fish = run("completion", "zsh"), run("completion", "fish")
    assert "#compdef switchover" in zsh.stdout
    assert "complete -c switchover -n __fish_use_subcommand -a migrate" in fish.stdout
    assert "-a 'on off status'" in fish.stdout
    for shell, text in (("zsh", zsh.stdout), ("fish", fish.stdout)):
        if shutil.which(shell):
            subprocess.run([shell, "-n"], input=text, text=True, check=True)


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed (.ci/run installs it)")
def test_fish_completes_commands_choices_and_options(tmp_path):
    (tmp_path / "switchover.fish").write_text(run("completion", "fish").stdout)
    asked = {"switchover mi": "migrate\t", "switchover autoreply ": "status",
             "switchover migrate --": "--dry-run\t"}
    script = "; ".join([f"source {tmp_path / 'switchover.fish'}"]
                       + [f"complete -C '{line}'; echo ==" for line in asked])
    out = subprocess.run(["fish", "--no-config", "-c", script], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split("==\n")
    for (line, want), got in zip(asked.items(), out):
        assert want in got, (line, got)
    assert set(out[1].split()) == {"on", "off", "status"}


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed (.ci/run installs it)")
def test_zsh_compinit_takes_the_script(tmp_path):
    (tmp_path / "_switchover").write_text(run("completion", "zsh").stdout)
    out = subprocess.run(["zsh", "-f", "-c", f"fpath=({tmp_path} $fpath); autoload -U compinit; "
                          f"compinit -u -d {tmp_path / 'zcompdump'}; print -- $_comps[switchover]"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "_switchover", out.stdout + out.stderr


# -- log file ---------------------------------------------------------------------------

def test_the_log_says_what_ran_and_never_the_password(tmp_path):
    cfg = _config(tmp_path, state="s.sqlite")
    env = {"CONV_OLD_PASSWORD": SECRET}
    ok = run("--config", str(cfg), "checklist", "note", "request", f"my password is {SECRET}", env=env)
    assert ok.returncode == 0, ok.stderr
    failed = run("--config", str(cfg), "check", env=env)
    assert failed.returncode == 3
    log = (tmp_path / "switchover.log").read_text()
    assert SECRET not in log
    assert "start: switchover --config" in log and "checklist note request" in log
    assert "end: switchover checklist, exit code 0" in log
    assert "end: switchover check, exit code 3" in log
    assert (tmp_path / "switchover.log").stat().st_mode & 0o777 == 0o600


def test_masking_and_rotation(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "MAX_BYTES", 2000)
    monkeypatch.setenv("CONV_OLD_PASSWORD", SECRET)
    logfile.masking.add_config(load_config(_config(tmp_path, state="s.sqlite")))
    path = logfile.open_log(tmp_path / "logs" / "switchover.log")
    assert path is not None
    log = logging.getLogger("switchover.core.test")
    try:
        for i in range(100):                   # enough to rotate past the five kept files
            log.info("line %d %s", i, "x" * 50)
        log.warning("login failed with %s", SECRET)
        log.warning("password=opensesame1 token: abc.def.ghi Authorization: Bearer eyJxyz")
        try:
            raise RuntimeError(f"server said no to {SECRET}")
        except RuntimeError:
            log.exception("boom")
    finally:
        logfile.close_log()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files[:2] == ["switchover.log", "switchover.log.1"] and len(files) == 1 + logfile.BACKUPS
    text = "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert "login failed with ***" in text and "server said no to ***" in text and "Traceback" in text
    for secret in (SECRET, "opensesame1", "abc.def.ghi", "eyJxyz"):
        assert secret not in text
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "logs").iterdir())


# -- systemd user service ---------------------------------------------------------------

def test_service_unit_in_a_temp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (tmp_path / "my config").mkdir()          # a space: ExecStart quotes it
    cfg = _config(tmp_path / "my config", state="s.sqlite")
    path = service.install(cfg)
    assert path == tmp_path / ".config" / "systemd" / "user" / "switchover-watch.service"
    text = path.read_text()
    assert f'ExecStart={sys.executable} -m switchover --config "{cfg.resolve()}" watch' in text
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert service.uninstall() == path and not path.exists()


def test_service_without_systemd_says_so(tmp_path):
    if service.has_systemd():
        pytest.skip("systemd runs here")
    r = run("--config", str(_config(tmp_path)), "service", "install", env={"HOME": str(tmp_path)})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().startswith("switchover: systemd is not running on this machine")
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".config" / "systemd").exists()


# -- the demo extra ---------------------------------------------------------------------

def test_demo_names_the_missing_extra():
    code = ("import sys; sys.modules['pymap'] = None\n"
            "from switchover.cli import main; sys.exit(main(['demo', '--headless']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("switchover: The demo needs its mail servers (pymap): "
                                "pip install 'switchover[demo]'.")
