"""A fresh-machine start: build the package from this tree, install it into a new virtual
environment, and run `switchover demo --headless` long enough to prove the servers start,
the history loads and an arrival shows in the feed. Also `switchover init` from the wheel.

Installed names that cannot clash: the wheel installs one top-level package,
``switchover`` (``switchover.core`` from core/, ``switchover.tui`` from tui/, the CLI and
the demo beside them) — no ``core`` or ``tui`` of its own beside other projects' — and
pyproject's package list names every package folder, so none is left out of the wheel."""

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the folders pyproject maps into the switchover namespace
MAPPED = {"switchover": "switchover", "switchover.core": "core", "switchover.tui": "tui"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    """setuptools cannot discover packages through the package-dir mapping: a folder with
    an __init__.py missing from the list would silently be left out of the wheel."""
    tool = _pyproject()["tool"]["setuptools"]
    assert tool["package-dir"] == MAPPED
    listed = set(tool["packages"])
    found = set()
    for name, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join((name, *rel.parts)))
    assert {"switchover.core.net", "switchover.core.migrate", "switchover.demo"} <= found
    assert found - listed == set(), f"package folders missing from pyproject's packages: {found - listed}"
    assert listed - found == set(), f"pyproject lists packages that do not exist: {listed - found}"
    assert all(name == "switchover" or name.startswith("switchover.") for name in listed)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pkg")
    # build from a clean copy of the tracked files, as a clean clone would
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        s = ROOT / name
        if not s.exists() or s.is_dir():
            continue
        d = src / name
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_symlink():
            d.symlink_to(os.readlink(s))
        else:
            d.write_bytes(s.read_bytes())
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
                   check=True, timeout=300)
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    wheel = next(wheels.glob("switchover-*.whl"))
    # with the demo extra (pymap, aiosmtpd): the demo test below runs its servers
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}[demo]"],
                   check=True, timeout=600)
    return env_dir, tmp, wheel


@pytest.mark.slow
def test_the_wheel_installs_only_the_switchover_namespace(installed) -> None:
    env_dir, tmp, wheel = installed
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        assert top_level == {"switchover"}, top_level
        assert "switchover/core/engine.py" in names and "switchover/tui/app.py" in names
        assert "switchover/tui/app.tcss" in names          # package data travels too
        record = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert whl.read(record).decode().split() == ["switchover"]
        # the licence travels in the metadata (PEP 639), the systemd unit as package data
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
        assert "switchover/packaging/switchover-watch.service" in names
        assert "Provides-Extra: demo" in meta
        assert not any(line.startswith("Requires-Dist: pymap") and "extra" not in line
                       for line in meta.splitlines())      # the demo's servers are an extra
    py = env_dir / "bin" / "python"
    code = ("import importlib.util as u, switchover.core.engine, switchover.tui.app, switchover.cli, "
            "switchover.demo\n"
            "assert u.find_spec('core') is None and u.find_spec('tui') is None, 'top-level core/tui installed'\n"
            "print(switchover.core.engine.__file__)\n")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert str(env_dir) in r.stdout                        # the installed copy, not the tree


@pytest.mark.slow
def test_version_and_service_unit_from_the_installed_wheel(installed, tmp_path):
    env_dir, tmp, _wheel = installed
    exe = env_dir / "bin" / "switchover"
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp)
    assert r.returncode == 0 and r.stdout.strip() == f"switchover {_pyproject()['project']['version']}"
    code = ("from pathlib import Path; from switchover.service import unit_text\n"
            "print(unit_text(Path('/srv/switchover.yaml')))")
    r = subprocess.run([str(env_dir / "bin" / "python"), "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert f"ExecStart={env_dir / 'bin' / 'python'} -m switchover --config /srv/switchover.yaml watch" in r.stdout


@pytest.mark.slow
def test_demo_headless_from_a_fresh_install(installed):
    env_dir, tmp, _wheel = installed
    r = subprocess.run([str(env_dir / "bin" / "switchover"), "demo", "--headless", "--seconds", "25",
                        "--dir", str(tmp / "demo"), "--reset"],
                       capture_output=True, text=True, timeout=240, cwd=tmp)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "history:" in r.stdout
    assert "arrival" in r.stdout


@pytest.mark.slow
def test_init_from_a_fresh_install(installed):
    env_dir, tmp, _wheel = installed
    answers = "Wu Jun\nExample Trading Co.\nold123@qq.com\njohn.wu@gmail.com\n\n\n"
    target = tmp / "cfg" / "switchover.yaml"
    r = subprocess.run([str(env_dir / "bin" / "switchover"), "--config", str(target), "init"],
                       input=answers, capture_output=True, text=True, timeout=60, cwd=tmp)
    assert r.returncode == 0, r.stderr
    text = target.read_text()
    assert "provider: qq" in text and "imap.gmail.com" in text and "#" in text
