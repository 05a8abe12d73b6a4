"""`python -m bench` (or `make bench`): switchover and mbsync side by side.

For each corpus: start a throwaway Dovecot, fill one "old" user, then copy it into a fresh
user with `switchover migrate` and into another with mbsync (same server, same corpus; the
WAN corpus goes through a proxy adding 25 ms each way). Each copy is checked (every message
once, flags and received dates equal). Prints a Markdown table and writes
bench/out/results.json. Peak RSS is the child's ru_maxrss from wait4.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.check import compare  # noqa: E402
from bench.corpus import SPECS, generate  # noqa: E402
try:
    from tests.proxy import Proxy  # noqa: E402
except ImportError:  # pragma: no cover
    Proxy = None
from tests.servers import start_dovecot, write_config  # noqa: E402


@dataclass
class Result:
    corpus: str
    tool: str
    messages: int
    bytes: int
    seconds: float
    peak_rss_mb: float
    ok: bool
    problems: str = ""
    rerun_seconds: float | None = None

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0


def run_measured(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float, int, str]:
    """Run a command; return (seconds, peak RSS MB, exit code, stderr tail)."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    tail = err.read().decode(errors="replace")[-800:]
    return seconds, usage.ru_maxrss / 1024, proc.returncode, tail


def fill(server, user, corpus: str) -> tuple[int, int]:
    """Put the corpus into the old user's mailbox (MULTIAPPEND batches)."""
    client = server.client(user, timeout=300)
    made: set[str] = set()
    count = size = 0
    batch: list[dict] = []
    folder_of_batch = None

    def flush() -> None:
        if batch:
            client.multiappend(folder_of_batch, batch)
            batch.clear()

    for folder, raw, flags, when in generate(corpus):
        if folder not in made:
            flush()
            server.ensure_folder(client, user, folder)
            made.add(folder)
        if folder != folder_of_batch or len(batch) >= 100 or sum(len(m["msg"]) for m in batch) > 32 * 2**20:
            flush()
            folder_of_batch = folder
        batch.append({"msg": raw, "flags": flags, "date": when})
        count += 1
        size += len(raw)
    flush()
    client.logout()
    return count, size


def mbsync_rc(path: Path, host: str, port: int, old, new, state_dir: Path) -> Path:
    def account(name: str, user) -> str:
        return (f"IMAPAccount {name}\nHost {host}\nPort {port}\nUser {user.username}\n"
                f"Pass {user.password}\nSSLType None\nAuthMechs LOGIN\nTimeout 300\n\n"
                f"IMAPStore {name}\nAccount {name}\n\n")
    path.write_text(account("old", old) + account("new", new) +
                    f"Channel copy\nFar :old:\nNear :new:\nPatterns *\nCreate Near\nSync Pull\n"
                    f"Expunge None\nCopyArrivalDate yes\nSyncState {state_dir}/\n")
    return path


def bench_corpus(corpus: str, workdir: Path, tools: list[str]) -> list[Result]:
    results: list[Result] = []
    server = start_dovecot(workdir / "dovecot")
    proxy = None
    try:
        old = server.add_user("old")
        t0 = time.perf_counter()
        count, size = fill(server, old, corpus)
        print(f"[{corpus}] filled {count:,} messages, {size / 1e6:,.1f} MB in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        port = server.imap_port
        if corpus == "wan":
            proxy = Proxy("127.0.0.1", server.imap_port, delay=0.025)
            port = proxy.port
        for tool in tools:
            new = server.add_user(tool[:4])
            if tool == "switchover":
                cfg = write_config(workdir / f"{corpus}-switchover" / "switchover.yaml",
                                   old_user=old, new_user=new, server=server)
                if proxy:
                    text = cfg.read_text().replace(f"port: {server.imap_port}", f"port: {port}")
                    cfg.write_text(text)
                argv = [sys.executable, "-m", "switchover", "--config", str(cfg), "migrate"]
                secs, rss, code, tail = run_measured(argv, cwd=ROOT)
                rerun, _, code2, tail2 = run_measured(argv, cwd=ROOT)
                if code2 != 0:
                    tail += " | rerun: " + tail2
            elif tool == "mbsync":
                if not shutil.which("mbsync"):
                    print("mbsync is not installed (Debian package isync); skipping it", file=sys.stderr)
                    continue
                state = workdir / f"{corpus}-mbsync-state"
                state.mkdir(parents=True, exist_ok=True)
                rc = mbsync_rc(workdir / f"{corpus}.mbsyncrc", "127.0.0.1", port, old, new, state)
                secs, rss, code, tail = run_measured(["mbsync", "-q", "-c", str(rc), "-a"])
                rerun = None
            else:
                raise SystemExit(f"unknown tool {tool}")
            src, dst = server.client(old, timeout=300), server.client(new, timeout=300)
            problems = compare(src, dst)
            src.logout()
            dst.logout()
            if code != 0:
                problems.insert(0, f"exit {code}: {tail.strip()[-300:]}")
            results.append(Result(corpus, tool, count, size, secs, rss, not problems,
                                  "; ".join(problems)[:500], rerun))
            r = results[-1]
            print(f"[{corpus}] {tool}: {secs:.2f} s, {r.msgs_per_s:,.0f} msg/s, {r.mb_per_s:,.1f} MB/s, "
                  f"peak {rss:,.0f} MB, {'ok' if r.ok else 'PROBLEMS: ' + r.problems}"
                  + (f", rerun {rerun:.2f} s" if rerun is not None else ""), file=sys.stderr)
    finally:
        if proxy:
            proxy.close()
        server.stop()
    return results


def table(results: list[Result]) -> str:
    lines = ["| corpus | tool | messages | MB | seconds | msg/s | MB/s | peak RSS MB | vs mbsync | rerun s | check |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    base = {(r.corpus): r for r in results if r.tool == "mbsync"}
    for r in results:
        ref = base.get(r.corpus)
        ratio = f"{ref.seconds / r.seconds:.2f}× faster" if ref and r.tool != "mbsync" and r.seconds else ""
        if ref and r.tool != "mbsync" and r.seconds > ref.seconds:
            ratio = f"{r.seconds / ref.seconds:.2f}× slower"
        lines.append(f"| {r.corpus} | {r.tool} | {r.messages:,} | {r.bytes / 1e6:,.0f} | {r.seconds:.2f} | "
                     f"{r.msgs_per_s:,.0f} | {r.mb_per_s:,.1f} | {r.peak_rss_mb:,.0f} | {ratio} | "
                     f"{'' if r.rerun_seconds is None else f'{r.rerun_seconds:.2f}'} | "
                     f"{'ok' if r.ok else 'FAILED: ' + r.problems[:80]} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", nargs="*", default=["small", "attach", "wan"], choices=list(SPECS))
    ap.add_argument("--tools", default="switchover,mbsync")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="switchover-bench-"))
    results: list[Result] = []
    try:
        for corpus in args.corpora:
            results += bench_corpus(corpus, workdir, args.tools.split(","))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    print(f"{meta['date']} on {meta['machine']}, {meta['cpus']} CPUs, Python {meta['python']}\n")
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
