"""core/ never imports Textual or the dashboard: the CLI and the dashboard drive the same engine."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_core_has_no_ui_imports():
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("textual", "tui", "switchover", "rich"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not offenders, offenders


def test_importing_every_core_module_loads_no_textual():
    mods = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).replace(".__init__", "")
                  for p in (ROOT / "core").rglob("*.py"))
    code = ("import sys, importlib\n"
            f"for m in {mods!r}: importlib.import_module('switchover.' + m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual',) or m.startswith('switchover.tui')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
