"""The layering contracts (pyproject.toml, ``[tool.importlinter]``) checked on the names
the wheel installs: ``switchover.core``, ``switchover.tui``, ``switchover.cli``,
``switchover.demo``.

import-linter (grimp) finds a package's modules by walking its folder, so it cannot
follow setuptools' package-dir mapping (``core/`` installs as ``switchover.core``). This
lays the folders out as installed — a temporary ``switchover/`` whose entries link to the
repository's files and whose ``core`` and ``tui`` link to the top-level folders — and
runs ``lint-imports`` with that tree first on the path. Links, not copies: a module
added a minute ago is checked too.

``make lint`` runs ``python -m tests.support.layering``; tests/core/test_layering.py
calls ``lint_imports()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: where each installed package's folder is in the repository (pyproject's package-dir)
MAPPED = {"core": ROOT / "core", "tui": ROOT / "tui"}


def installed_tree(into: Path) -> Path:
    """``into/switchover`` laid out as installed, made of links; returns ``into``."""
    pkg = into / "switchover"
    pkg.mkdir(parents=True)
    for entry in (ROOT / "switchover").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (pkg / name).symlink_to(folder, target_is_directory=True)
    return into


def lint_imports(verbose: bool = False) -> subprocess.CompletedProcess[str]:
    """Run every contract of pyproject.toml; returncode 0 when all are kept."""
    lint = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="switchover-layers-") as tmp:
        tree = installed_tree(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(tree)}
        # run from the tree: lint-imports puts the working directory first on the path,
        # and from the repository that would find the folder switchover/ without core
        args = [str(lint), str(ROOT / "pyproject.toml"), "--no-cache"]
        if verbose:
            args.append("--verbose")
        return subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True,
                              timeout=300)


def main() -> int:
    result = lint_imports()
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
