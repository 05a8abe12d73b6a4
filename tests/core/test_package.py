"""A fresh-machine start: build the package from this tree, install it into a new virtual
environment, and run `switchover demo --headless` long enough to prove the servers start,
the history loads and an arrival shows in the feed. Also `switchover init` from the wheel."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


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
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, timeout=600)
    return env_dir, tmp


def test_demo_headless_from_a_fresh_install(installed):
    env_dir, tmp = installed
    r = subprocess.run([str(env_dir / "bin" / "switchover"), "demo", "--headless", "--seconds", "25",
                        "--dir", str(tmp / "demo"), "--reset"],
                       capture_output=True, text=True, timeout=240, cwd=tmp)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "history:" in r.stdout
    assert "arrival" in r.stdout


def test_init_from_a_fresh_install(installed):
    env_dir, tmp = installed
    answers = "Wu Jun\nExample Trading Co.\nold123@qq.com\njohn.wu@gmail.com\n\n\n"
    target = tmp / "cfg" / "switchover.yaml"
    r = subprocess.run([str(env_dir / "bin" / "switchover"), "--config", str(target), "init"],
                       input=answers, capture_output=True, text=True, timeout=60, cwd=tmp)
    assert r.returncode == 0, r.stderr
    text = target.read_text()
    assert "provider: qq" in text and "imap.gmail.com" in text and "#" in text
