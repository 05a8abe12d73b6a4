"""Render every pane of the dashboard to screenshots/*.svg and *.png (``make screenshots``).

    python -m switchover.demo.screenshots [--config PATH] [--out screenshots]

It lives with the demo, not in tui/: the dashboard never imports the demo (a layering
contract in pyproject.toml); the demo drives the dashboard.

Without ``--config`` it starts the built-in demo (switchover.demo, real servers on
loopback, a generated five-year mailbox, live arrivals) in a throwaway directory, so the
pictures show the real code paths on realistic data. Each pane is saved at 120×40, the
feed also at 80×24. PNGs are converted with cairosvg when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from switchover.tui.app import SwitchoverApp

#: characters that need a CJK font; cairo picks one font per text run, no fallback
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_TEXT = re.compile(r"(<text\b)([^>]*>)([^<]*)(</text>)")
CJK_FONT = "WenQuanYi Micro Hei Mono"
MONO_FONT = "DejaVu Sans Mono"


def svg_to_png(svg: Path, png: Path) -> bool:
    """Convert with cairosvg; text runs holding Chinese get a CJK font. False if no cairosvg."""
    try:
        import cairosvg
    except Exception:
        return False
    text = svg.read_text(encoding="utf-8")

    def font(m: re.Match[str]) -> str:
        if _CJK.search(m.group(3)):
            return f'{m.group(1)} style="font-family: \'{CJK_FONT}\'"{m.group(2)}{m.group(3)}{m.group(4)}'
        return m.group(0)

    # Textual's SVG asks for Fira Code, which cairo cannot load from the web: name a
    # local monospace font that has the box-drawing and block glyphs, or fontconfig's
    # fallback for "Fira Code" (a proportional font without them) draws boxes
    text = text.replace('"Fira Code"', f"'{MONO_FONT}'").replace("Fira Code, monospace", f"'{MONO_FONT}', monospace")
    cairosvg.svg2png(bytestring=_TEXT.sub(font, text).encode("utf-8"), write_to=str(png))
    return True


async def _wait(pilot: Any, cond: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        await pilot.pause(0.2)
    return True


async def _prepare(config_path: Path) -> None:
    """Fill what a user would have after a while: history scanned, logins proved."""
    from switchover.core.config import load_config
    from switchover.core.engine import Engine

    engine = await Engine.open(load_config(config_path))
    try:
        for step in (engine.correspondents.scan_history, engine.checklist.check_logins,
                     engine.monitor.catch_up, engine.checklist.refresh_evidence):
            try:
                await step()
            except Exception as exc:  # a missing step makes a poorer picture, not a failure
                print(f"  ({step.__qualname__}: {exc})", file=sys.stderr)
    finally:
        await engine.close()


async def _shoot(config_path: Path, out: Path, size: tuple[int, int], tabs: list[str],
                 suffix: str, saved: list[Path]) -> None:
    app = SwitchoverApp(config=config_path)
    async with app.run_test(size=size) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        feed = app.pane("feed")
        await _wait(pilot, lambda: len(feed.order) >= 3, 30)
        for tab in (t for t in tabs if t != "campaign"):
            app.action_show_tab(tab)
            await pilot.pause(0.3)
            if tab == "migration":
                pane = app.pane("migration")
                await pilot.press("p")                # the dry run fills the log
                await _wait(pilot, lambda: not pane.busy and pane.rows, 30)
                await pilot.press("s")
                # a few seconds of copying: rows, bar and sparkline in motion
                await _wait(pilot, lambda: sum(r.done_messages for r in pane.rows.values()) > 300, 40)
                await pilot.pause(2.0)
            if tab == "feed":
                await pilot.press("down", "f")        # a forward inside its undo window
                await pilot.pause(0.6)
            if tab == "checklist":
                await pilot.press("down")
            await pilot.pause(0.5)
            svg = out / f"{tab}{suffix}.svg"
            app.save_screenshot(filename=svg.name, path=str(out))
            saved.append(svg)
            if tab == "feed":
                await pilot.press("u")
        if "campaign" in tabs:
            # the change notice going out: the demo's people bounce and switch as it goes
            app.action_campaign()
            await pilot.pause(3.0)
            await pilot.press("s")
            await pilot.pause(1.0)
            await pilot.press("y")
            sent = app.engine.notices
            await _wait(pilot, lambda: sent.sending, 20)
            await pilot.pause(12.0)
            svg = out / f"campaign{suffix}.svg"
            app.save_screenshot(filename=svg.name, path=str(out))
            saved.append(svg)
            sent.cancel()
            await pilot.pause(1.0)
        mig = app.pane("migration")
        if mig.busy:
            app.engine.migration.cancel()
            await pilot.pause(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchover.demo.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="use this switchover.yaml instead of the demo")
    parser.add_argument("--out", default="screenshots", help="directory for the pictures")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo = None
    tmp = None
    if args.config:
        config_path = Path(args.config)
    else:
        from . import start_demo

        tmp = tempfile.TemporaryDirectory(prefix="switchover-shots-")
        print("starting the demo servers …")
        demo = start_demo(Path(tmp.name), reset=True, live=True, arrival_every=1.0)
        config_path = demo.config_path
    saved: list[Path] = []
    try:
        asyncio.run(_prepare(config_path))
        time.sleep(4)  # let a few live arrivals land
        asyncio.run(_shoot(config_path, out, (120, 40),
                           ["checklist", "feed", "people", "migration", "campaign"], "", saved))
        asyncio.run(_shoot(config_path, out, (80, 24), ["feed"], "-80x24", saved))
    finally:
        if demo is not None:
            demo.stop()
        if tmp is not None:
            tmp.cleanup()
    pngs = 0
    for svg in saved:
        if svg_to_png(svg, svg.with_suffix(".png")):
            pngs += 1
    print(f"wrote {len(saved)} SVG and {pngs} PNG files to {out}/"
          + ("" if pngs else " (install cairosvg for PNGs)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
