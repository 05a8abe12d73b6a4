"""`python -m bench.tui_memory` (or `make bench-tui`): the dashboard's memory over months
of arrivals (issue 10.3).

The real app runs headless (``App.run_test``) over a real state file; arrivals are
written into it the two ways a long transition writes them: by the dashboard's own
engine (the row, then an ``ArrivalSeen`` event, as the monitor does) and by another
connection with no event at all (as a headless ``switchover watch`` beside it does; the
dashboard finds them through SQLite's data_version). Some arrivals get a handled action,
the migration pane gets log lines and progress events, and the panes are switched now
and then so each one renders. RSS (VmRSS, after a garbage collection) is read before the
first arrival and after each checkpoint; the run fails when one is over the limit.

    .venv/bin/python -m bench.tui_memory                     # 10,000 and 50,000 arrivals
    .venv/bin/python -m bench.tui_memory --checkpoints 2000 --limit-mb 120
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchover.core.events import FolderProgress, JobProgress, LogLine  # noqa: E402
from switchover.core.store import Store  # noqa: E402
from tests.support.tui_fake import bare_config, record_arrivals  # noqa: E402
from switchover.tui.app import SwitchoverApp  # noqa: E402

TABS = ("feed", "people", "checklist", "migration")


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc/self/status."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


async def _settle(pilot, app: SwitchoverApp, total: int, timeout: float = 30) -> None:
    """Wait until the dashboard shows ``total`` arrivals (both writers' rows are in)."""
    end = time.monotonic() + timeout
    while app.counts.get("total") != total or app.pane("feed").total != total:
        if time.monotonic() > end:
            raise SystemExit(f"the dashboard did not catch up: shows {app.counts.get('total')} of {total}")
        await pilot.pause(0.1)
    await pilot.pause(0.5)


async def _handled(engine, ids: list[int]) -> None:
    """Mark some arrivals handled the way a person does: a ``handled`` action requested and
    carried out by the actions facet (no server involved), which publishes its changes."""
    for arrival_id in ids:
        await engine.actions.request(arrival_id, "handled", delay=0)
    await engine.actions.run_due()


def _migration_chatter(engine, n: int) -> None:
    for i in range(20):
        engine.publish(LogLine("warning", f"INBOX: the new server refused message {n + i} "
                                          f"('Quote {n + i}'): [LIMIT] message too big"))
    engine.publish(FolderProgress("migrate", "INBOX", "INBOX", "copying", 50_000, 10**9,
                                  done_messages=n % 50_000, done_bytes=n * 1000,
                                  msgs_per_s=40.0, bytes_per_s=4e6, eta_s=100.0))
    engine.publish(JobProgress("migrate", "running", 50_000, 10**9, n % 50_000, n * 1000,
                               40.0, 4e6, 100.0))


async def measure(checkpoints: list[int], batch: int, size: tuple[int, int]) -> list[dict]:
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="switchover-tui-mem-") as tmp:
        app = SwitchoverApp(config=bare_config(Path(tmp)), start_background=False,
                            initial_tab="feed")
        async with app.run_test(size=size) as pilot:
            await asyncio.wait_for(app.ready.wait(), 30)
            engine = app.engine
            watch = await Store.open(engine.config.state)    # the headless watch's connection
            try:
                await pilot.pause(1.0)
                gc.collect()
                rss, peak = rss_mb()
                results.append({"arrivals": 0, "rss_mb": round(rss, 1), "peak_mb": round(peak, 1),
                                "seconds": 0.0})
                print(f"{0:>8,} arrivals  RSS {rss:6.1f} MB  (peak {peak:6.1f} MB)", flush=True)
                done, uid, t0, n_batch = 0, 1, time.monotonic(), 0
                for target in checkpoints:
                    while done < target:
                        n = min(batch, target - done)
                        if n_batch % 2:
                            await record_arrivals(watch, uid, n)
                        else:
                            ids = await record_arrivals(engine.store, uid, n, publish=engine.publish)
                            await _handled(engine, ids[:: 25])
                        uid += n
                        done += n
                        n_batch += 1
                        if n_batch % 10 == 0:
                            _migration_chatter(engine, done)
                        if n_batch % 40 == 0:               # every pane renders now and then
                            app.action_show_tab(TABS[(n_batch // 40) % len(TABS)])
                        await pilot.pause(0.05)
                    app.action_show_tab("feed")
                    await _settle(pilot, app, done)
                    gc.collect()
                    rss, peak = rss_mb()
                    elapsed = time.monotonic() - t0
                    results.append({"arrivals": done, "rss_mb": round(rss, 1),
                                    "peak_mb": round(peak, 1), "seconds": round(elapsed, 1)})
                    print(f"{done:>8,} arrivals  RSS {rss:6.1f} MB  (peak {peak:6.1f} MB)  "
                          f"{elapsed:5.0f} s", flush=True)
            finally:
                await watch.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tui_memory",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", default="10000,50000",
                        help="arrival counts at which RSS is read (comma-separated)")
    parser.add_argument("--batch", type=int, default=250, help="arrivals written per step")
    parser.add_argument("--limit-mb", type=float, default=120.0, help="fail above this RSS")
    parser.add_argument("--size", default="120x40", help="terminal size of the headless app")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    checkpoints = sorted(int(c) for c in args.checkpoints.split(",") if c.strip())
    w, h = (int(v) for v in args.size.lower().split("x"))
    results = asyncio.run(measure(checkpoints, args.batch, (w, h)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    worst = max(r["rss_mb"] for r in results)
    growth = results[-1]["rss_mb"] - results[0]["rss_mb"]
    print(f"dashboard RSS: {results[0]['rss_mb']:.1f} MB at start, {results[-1]['rss_mb']:.1f} MB "
          f"after {results[-1]['arrivals']:,} arrivals (+{growth:.1f} MB); limit {args.limit_mb:.0f} MB")
    if worst > args.limit_mb:
        print(f"FAILED: RSS {worst:.1f} MB is over {args.limit_mb:.0f} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
