"""The layering holds: the contracts of pyproject.toml (``[tool.importlinter]``) — the
same ones `make lint` and CI run — are kept on the installed names.

core/ never imports Textual, rich, the dashboard, the CLI or the demo, and no facet
imports the engine (the composition root); the dashboard never imports a protocol
library, sqlite, the CLI or the demo. tests/support/layering.py says why the check runs
on a tree laid out as installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.layering import ROOT, installed_tree, lint_imports


def test_every_layering_contract_is_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout, result.stdout


def test_the_contracts_see_the_installed_packages(tmp_path: Path) -> None:
    """A contract on a package the graph does not hold would pass for nothing: the tree
    lint-imports reads holds core and tui under switchover, module for module."""
    tree = installed_tree(tmp_path)
    core = {p.relative_to(ROOT / "core") for p in (ROOT / "core").rglob("*.py")}
    seen = {p.relative_to(tree / "switchover" / "core")
            for p in (tree / "switchover" / "core").rglob("*.py")}
    assert core and core == seen
    assert (tree / "switchover" / "tui" / "app.py").is_file()
    assert (tree / "switchover" / "cli.py").is_file()


def test_importing_every_core_module_loads_no_ui() -> None:
    """What the contracts read statically, checked at run time too: importing the whole
    engine loads no Textual, rich or dashboard module (e.g. through a plugin hook)."""
    mods = sorted("switchover." + ".".join(p.relative_to(ROOT).with_suffix("").parts)
                  .replace(".__init__", "") for p in (ROOT / "core").rglob("*.py"))
    code = ("import sys, importlib\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')\n"
            "             or m.startswith(('switchover.tui', 'switchover.cli', 'switchover.demo')))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
