"""`switchover service install|uninstall|status`: ``switchover watch`` as a systemd user
service, so the months-long watch survives logouts, reboots and crashes.

The unit is switchover/packaging/switchover-watch.service (package data) with ExecStart
filled in: this interpreter running ``-m switchover --config <absolute config> watch``, so
the service uses the same installation (virtual environment included) as the command that
installed it. It goes to ``$XDG_CONFIG_HOME/systemd/user`` (~/.config/systemd/user).
``install --now`` also runs ``systemctl --user daemon-reload`` and ``enable --now``; otherwise
the commands are printed. ``uninstall`` stops and disables the service, then removes the file. Where systemd is not running (macOS, Windows, a container) the
command says so in one sentence and writes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from switchover.core.config import load_config
from switchover.core.errors import SwitchoverError

from .output import say, warn

UNIT = "switchover-watch.service"
ENABLE = "systemctl --user daemon-reload && systemctl --user enable --now switchover-watch"
LINGER = "loginctl enable-linger $USER"


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def has_systemd() -> bool:
    """systemd's own test (sd_booted): it runs as the init system when this folder exists."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _systemd_arg(value: str) -> str:
    """One ExecStart argument: ``%`` doubled (systemd's specifiers), quoted when it has
    spaces or quotes."""
    value = value.replace("%", "%%")
    if any(c in value for c in ' \t"\'\\'):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def unit_text(config: Path, python: str | None = None) -> str:
    template = resources.files("switchover").joinpath("packaging", UNIT).read_text(encoding="utf-8")
    exec_ = " ".join(_systemd_arg(a) for a in (python or sys.executable, "-m", "switchover"))
    return (template.replace("@EXEC@", exec_)
            .replace("@CONFIG@", _systemd_arg(str(config.resolve()))))


def install(config: Path, target_dir: Path | None = None) -> Path:
    """Write the unit for ``config`` (which must load: a service that fails at every
    restart helps nobody). Returns the unit's path."""
    cfg = load_config(config)
    for side in ("old", "new"):
        acct = cfg.account(side)
        if acct.password_env and not acct.password_command:
            warn(f"the {side} mailbox's password comes from ${acct.password_env}, which a service "
                f"does not see: put {acct.password_env}=... in ~/.config/switchover/watch.env (chmod 600), "
                f"or use password_command or the keyring.")
    folder = target_dir or unit_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / UNIT
    path.write_text(unit_text(cfg.path), encoding="utf-8")
    return path


def uninstall(target_dir: Path | None = None) -> Path | None:
    path = (target_dir or unit_dir()) / UNIT
    if not path.exists():
        return None
    path.unlink()
    return path


def _systemctl(*args: str) -> int:
    try:
        return subprocess.run(["systemctl", "--user", *args], timeout=60).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SwitchoverError(f"systemctl --user {' '.join(args)} did not run ({e}).", exit_code=1) from None


def run_service(action: str, config: Path, *, now: bool = False) -> int:
    if not has_systemd():
        raise SwitchoverError("systemd is not running on this machine, so there is no user service to "
                              "manage; run 'switchover watch' under your own supervisor (or tmux) instead.",
                              exit_code=1)
    if action == "install":
        path = install(config)
        say(f"Wrote {path} (runs: switchover --config {config.resolve()} watch).")
        if now:
            code = _systemctl("daemon-reload") or _systemctl("enable", "--now", "switchover-watch")
            if code:
                raise SwitchoverError("systemctl --user could not start the service; "
                                      "see 'systemctl --user status switchover-watch'.", exit_code=1)
            say("Started; it starts again at every login.")
        else:
            say(f"Start it now and at every login:\n  {ENABLE}")
        say(f"Keep it running after you log out:\n  {LINGER}")
        return 0
    if action == "uninstall":
        if not (unit_dir() / UNIT).exists():
            say("The service is not installed.")
            return 0
        # stopped and disabled first: systemctl cannot disable a unit whose file is gone
        _systemctl("disable", "--now", "switchover-watch")
        removed = uninstall()
        _systemctl("daemon-reload")
        say(f"Stopped, disabled and removed {removed}.")
        return 0
    path = unit_dir() / UNIT
    if not path.exists():
        say("The service is not installed: switchover service install.")
        return 1
    say(f"Installed: {path}")
    _systemctl("status", "--no-pager", "switchover-watch")    # inactive is still installed
    return 0
