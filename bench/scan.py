"""`python -m bench.scan` (part of `make bench`): the history scan that finds every
correspondent (core/transition/history.py) on a mailbox of the bench's *mixed* corpus
(the demo's export-trade history: several folders, languages, attachments, robots).

Measured: the first scan (headers and the first 3 KB of each body, every folder, then
everyone's group judged), a rescan with nothing new (it reads only past each folder's
mark), and the peak RSS of this process. No peer: no other tool builds this list.

    .venv/bin/python -m bench.scan                     # 10,000 messages
    .venv/bin/python -m bench.scan --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import generate  # noqa: E402
from bench.server import fill, start_bench_dovecot  # noqa: E402
from switchover.core.config import load_config  # noqa: E402
from switchover.core.engine import Engine  # noqa: E402
from tests.support.servers import write_config  # noqa: E402


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) of this process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="switchover-bench-scan-") as tmp:
        server, _settings = start_bench_dovecot(Path(tmp) / "dovecot")
        try:
            old, new = server.add_user("scanold"), server.add_user("scannew")
            # filled by a child process: the generator's memory is not this process's
            ctx = multiprocessing.get_context("fork")
            made = ctx.Queue()
            child = ctx.Process(target=lambda: made.put(fill(server, old, generate("mixed", count=args.messages))))
            child.start()
            count, size = made.get()
            child.join()
            path = write_config(Path(tmp) / "switchover.yaml", old_user=old, new_user=new, server=server,
                                state=str(Path(tmp) / "state.sqlite"))
            _reset_peak()
            eng = await Engine.open(load_config(path))
            try:
                started = time.perf_counter()
                read = await eng.correspondents.scan_history()
                first = time.perf_counter() - started
                started = time.perf_counter()
                again = await eng.correspondents.scan_history()
                rescan = time.perf_counter() - started
                people = len(await eng.store.fetchall("SELECT address FROM correspondents"))
            finally:
                await eng.close()
        finally:
            server.stop()
    rss = _peak_mb()
    result = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_before": os.getloadavg(),
              "messages_in_mailbox": count, "mb": round(size / 2**20, 1), "messages_read": read,
              "seconds": round(first, 2), "per_second": round(read / first), "people": people,
              "rescan_read": again, "rescan_seconds": round(rescan, 2), "peak_rss_mb": round(rss, 1)}
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scan.json").write_text(json.dumps(result, indent=2))
    print(f"history scan: {read:,} of {count:,} messages ({result['mb']} MB) in {first:.2f} s "
          f"({result['per_second']:,}/s), {people:,} people; rescan {again} in {rescan:.2f} s; "
          f"peak RSS {rss:.0f} MB during the scans")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scan", description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10_000, help="messages in the mailbox (default 10,000)")
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
