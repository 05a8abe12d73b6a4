"""`python -m bench` (or `make bench`): switchover and mbsync side by side.

For each corpus: start a throwaway Dovecot (bench/server.py), fill one "old" user, then
copy it into a fresh user with `switchover migrate` and into another with mbsync (same
server, same corpus; the WAN corpus goes through tests/proxy.py adding 25 ms each way,
for both tools). Each copy is checked by bench/check.py (every message once, bytes,
flags and received dates equal); each tool then runs again with nothing left to copy
(the rerun). Three timed runs per tool by default, alternating which tool goes first;
the median run is reported. Prints a Markdown table and writes bench/out/results.json.
Seconds are wall time of the tool's process; peak RSS is its ru_maxrss from wait4 and CPU
its user+sys (both via GNU time); Dovecot CPU is read from /proc. docs/BENCHMARKS.md has
the results and the method.

    .venv/bin/python -m bench                       # small attach attach15 wan mixed huge, ~15 min
    .venv/bin/python -m bench small --tools switchover --repeat 5
    .venv/bin/python -m bench small --count 2000    # a quicker, smaller run
    .venv/bin/python -m bench large --count 200000 --repeat 1   # memory on a big mailbox
    .venv/bin/python -m bench small attach --tools switchover,baseline --baseline ../old-checkout

``--baseline DIR`` adds the tool "baseline" (and ``--candidate DIR`` the tool "candidate"):
``switchover migrate`` of another checkout
(DIR holds its switchover/, core/ and tui/ folders), run alternately with this one on the
same server and corpus — an A/B comparison under the same load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.check import compare  # noqa: E402
from bench.corpus import SPECS, generate  # noqa: E402
from bench.server import DEFAULT_STORAGE, STORAGES, fill, server_cpu, start_bench_dovecot  # noqa: E402
from tests.support.proxy import Proxy  # noqa: E402
from tests.support.servers import Unsupported, write_config  # noqa: E402

WAN_DELAY = 0.025            # seconds each way: 50 ms round trip
DEFAULT_CORPORA = ["small", "attach", "attach15", "wan", "mixed", "huge"]


@dataclass
class Result:
    corpus: str
    tool: str
    messages: int
    bytes: int
    seconds: float
    peak_rss_mb: float
    cpu_s: float
    server_cpu_s: float            # Dovecot's CPU during the timed run (both users)
    exit_code: int
    check: str                     # "exact" | "altered: ..." | "FAILED: ..."
    ok: bool
    rerun_seconds: float | None = None
    rerun_exit: int | None = None
    runs: list[float] = field(default_factory=list)   # every timed run (--repeat)
    plan_seconds: float | None = None                  # switchover migrate --dry-run
    load: list[float] = field(default_factory=list)    # load average before each run
    error: str = ""

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    cpu_s: float
    code: int
    tail: str
    server_cpu_s: float = 0.0
    load: float = 0.0              # 1-minute load average just before the run


TIME = "/usr/bin/time"     # GNU time: fork + exec + wait4 from a 1 MB process


def run_measured(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 600) -> Measured:
    """Run a command; wall seconds, peak RSS (ru_maxrss from wait4), CPU, exit code, stderr tail.

    The command runs under GNU time, which does the wait4 for us: a child forked
    straight from this (large) Python process starts with this process's resident pages
    and the kernel folds them into the child's ru_maxrss at exec, so a direct wait4
    here reports at least the harness's own RSS (seen: /bin/true "using" 211 MB).
    """
    err = tempfile.TemporaryFile()
    usage_file = tempfile.NamedTemporaryFile(prefix="bench-rusage-", delete=False)
    usage_file.close()
    timed = os.access(TIME, os.X_OK)
    full = [TIME, "-q", "-o", usage_file.name, "-f", "%e %M %U %S %x", *argv] if timed else argv
    t0 = time.perf_counter()
    # its own process group: a timeout kills GNU time *and* the tool under it
    proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd,
                            start_new_session=True)

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    # wait4 blocks (no polling that would steal CPU from the tool); a timer kills a hang
    fired: list[bool] = []
    killer = threading.Timer(timeout, lambda: (fired.append(True), kill()))
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:   # Ctrl-C: stop the tool too
        kill()
        proc.wait()
        raise
    finally:
        killer.cancel()
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    tail = err.read().decode(errors="replace")[-1500:]
    err.close()
    if fired:
        tail += f"\n(killed after the {timeout:.0f} s timeout)"
    rss, cpu, code = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, proc.returncode
    try:
        if timed:
            fields = Path(usage_file.name).read_text().split()
            rss, cpu, code = int(fields[1]) / 1024, float(fields[2]) + float(fields[3]), int(fields[4])
    except (OSError, ValueError, IndexError):
        pass   # the command was killed: keep what wait4 said
    finally:
        os.unlink(usage_file.name)
    return Measured(seconds, rss, cpu, code, tail)


def mbsync_rc(path: Path, host: str, port: int, old: Any, new: Any, state_dir: Path) -> Path:
    """Both stores are IMAP on the same server; copy (Pull) every folder, keep arrival dates."""
    def account(name: str, user: Any) -> str:
        return (f"IMAPAccount {name}\nHost {host}\nPort {port}\nUser {user.username}\n"
                f"Pass {user.password}\nSSLType None\nAuthMechs LOGIN\nTimeout 300\n\n"
                f"IMAPStore {name}\nAccount {name}\n\n")
    path.write_text(account("old", old) + account("new", new) +
                    f"Channel copy\nFar :old:\nNear :new:\nPatterns *\nCreate Near\nSync Pull\n"
                    f"Expunge None\nCopyArrivalDate yes\nSyncState {state_dir}/\n")
    path.chmod(0o600)
    return path


def mbsync_version() -> str:
    try:
        return subprocess.run(["mbsync", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not installed"


def corpus_messages(corpus: str, count: int | None) -> Any:
    return generate(corpus, count=count)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.settings: dict[str, str] = {}

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def corpus(self, corpus: str) -> list[Result]:
        args = self.args
        results: list[Result] = []
        server, self.settings = start_bench_dovecot(None, storage=args.storage, fsync=args.fsync)
        proxy = None
        try:
            old = server.add_user("old")
            t0 = time.perf_counter()
            count, size = fill(server, old, corpus_messages(corpus, args.count))
            self.log(f"[{corpus}] filled {count:,} messages, {size / 1e6:,.1f} MB "
                     f"in {time.perf_counter() - t0:.1f} s")
            endpoint = SimpleNamespace(host=server.host, imap_port=server.imap_port)
            if corpus == "wan":
                proxy = Proxy(server.host, server.imap_port, delay=WAN_DELAY)
                endpoint.imap_port = proxy.port
            tools = [t for t in args.tools.split(",") if t]
            if "mbsync" in tools and not shutil.which("mbsync"):
                self.log("mbsync is not installed (Debian package isync); skipping it")
                tools.remove("mbsync")
            runs: dict[str, list[Measured]] = {t: [] for t in tools}
            last: dict[str, tuple[list[str], Path, Any]] = {}
            plan_s: dict[str, float] = {}
            spec = SPECS[corpus]
            repeat = min(args.repeat, spec.repeat) if spec.repeat else args.repeat
            for attempt in range(repeat):
                # alternate who goes first, so a drift in the machine's load hits both
                for tool in (tools if attempt % 2 == 0 else tools[::-1]):
                    argv, wd, new = self.prepare(corpus, tool, attempt, server, endpoint, old)
                    if tool in OURS and attempt == 0:
                        plan_s[tool] = run_measured(argv + ["--dry-run"], env=self.env(tool), cwd=wd,
                                                    timeout=args.timeout).seconds
                    runs[tool].append(self.measure(server, argv, wd, self.env(tool)))
                    last[tool] = (argv, wd, new)
                    self.log(f"[{corpus}] {tool} run {attempt + 1}: {runs[tool][-1].seconds:.2f} s, "
                             f"peak {runs[tool][-1].peak_rss_mb:,.0f} MB, exit {runs[tool][-1].code}")
            if args.profile and "switchover" in tools:
                self.profile(corpus, server, endpoint, old)
            for tool in tools:
                argv, wd, new = last[tool]
                rerun = run_measured(argv, env=self.env(tool), cwd=wd, timeout=args.timeout)
                results.append(self.result(corpus, tool, server, old, new, count, size,
                                           runs[tool], rerun, plan_s.get(tool)))
        finally:
            if proxy:
                proxy.close()
            server.stop()
        return results

    def profile(self, corpus: str, server: Any, endpoint: Any, old: Any) -> None:
        """One more (untimed) switchover copy under py-spy, sampling the thread that holds
        the GIL: collapsed stacks to bench/out/profile-CORPUS.txt, the top functions by
        inclusive samples to stderr."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not os.access(spy, os.X_OK):
            self.log("--profile needs py-spy (.venv/bin/pip install py-spy); skipped")
            return
        argv, wd, _ = self.prepare(corpus, "switchover", 99, server, endpoint, old)
        out = self.args.out.parent / f"profile-{corpus}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([spy, "record", "--gil", "-r", "100", "--format", "raw", "-o", str(out),
                        "--", *argv], cwd=wd, capture_output=True, timeout=self.args.timeout)
        self.log(f"[{corpus}] profile (GIL holder, 100 Hz) in {out}:")
        for line in top_functions(out, 15):
            self.log("    " + line)

    def env(self, tool: str) -> dict[str, str] | None:
        """The baseline runs another checkout's package (PYTHONPATH first); others inherit."""
        if tool not in ("baseline", "candidate"):
            return None
        root = getattr(self.args, tool)
        if not root:
            raise SystemExit(f"the tool '{tool}' needs --{tool} DIR")
        return {**os.environ, "PYTHONPATH": str(baseline_path(Path(root), self.workdir / tool))}

    def measure(self, server: Any, argv: list[str], wd: Path, env: dict[str, str] | None = None) -> Measured:
        os.sync()   # the previous run's dirty pages are not flushed during this one
        before = server_cpu(server)
        load = os.getloadavg()[0]
        m = run_measured(argv, env=env, cwd=wd, timeout=self.args.timeout)
        m.load = load
        time.sleep(0.2)   # let the master reap the imap processes of the connections
        m.server_cpu_s = server_cpu(server) - before
        return m

    def prepare(self, corpus: str, tool: str, attempt: int, server: Any, endpoint: Any,
                old: Any) -> tuple[list[str], Path, Any]:
        """A fresh destination user and the command that copies into it."""
        new = server.add_user(tool[:4])
        wd = self.workdir / f"{corpus}-{tool}-{attempt}"
        wd.mkdir(parents=True)
        if tool in OURS:
            cfg = write_config(wd / "switchover.yaml", old_user=old, new_user=new, server=endpoint)
            return [sys.executable, "-m", "switchover", "--config", str(cfg), "migrate"], wd, new
        if tool == "mbsync":
            (wd / "state").mkdir()
            rc = mbsync_rc(wd / "mbsyncrc", endpoint.host, endpoint.imap_port, old, new, wd / "state")
            return ["mbsync", "-q", "-c", str(rc), "-a"], wd, new
        raise SystemExit(f"unknown tool {tool} (switchover or mbsync)")

    def result(self, corpus: str, tool: str, server: Any, old: Any, new: Any, count: int,
               size: int, runs: list[Measured], rerun: Measured | None,
               plan_s: float | None) -> Result:
        # the check looks at the last copy (every run copies into a fresh user)
        src, dst = server.client(old, timeout=600), server.client(new, timeout=600)
        try:
            checked = compare(src, dst)
        finally:
            for c in (src, dst):
                try:
                    c.logout()
                except Exception:
                    pass
        ordered = sorted(runs, key=lambda m: m.seconds)
        # the reported run: the fastest with --best, else the median one (upper median)
        rep = ordered[0] if self.args.best else ordered[len(ordered) // 2]
        error = ""
        bad = [m for m in runs if m.code != 0] + ([rerun] if rerun and rerun.code != 0 else [])
        if bad:
            which = "rerun" if bad[0] is rerun else "run"
            error = f"{which} exit {bad[0].code}: {_last_words(bad[0].tail)}"
        ok = checked.ok and not bad
        check = checked.summary() if not bad else f"FAILED: {error[:200]} (copy: {checked.summary()[:200]})"
        r = Result(corpus, tool, count, size, rep.seconds,
                   max(m.peak_rss_mb for m in runs), rep.cpu_s, rep.server_cpu_s, rep.code,
                   check, ok,
                   rerun.seconds if rerun else None, rerun.code if rerun else None,
                   [round(m.seconds, 3) for m in runs], plan_s,
                   [round(m.load, 2) for m in runs], error)
        self.log(f"[{corpus}] {tool}: {r.seconds:.2f} s, {r.msgs_per_s:,.0f} msg/s, "
                 f"{r.mb_per_s:,.1f} MB/s, peak {r.peak_rss_mb:,.0f} MB, cpu {r.cpu_s:.1f} s "
                 f"(Dovecot {r.server_cpu_s:.1f} s), "
                 f"check {r.check}" + (f", rerun {r.rerun_seconds:.2f} s" if rerun else ""))
        return r


#: the tools that are a switchover (this tree, or another checkout)
OURS = ("switchover", "baseline", "candidate")


def baseline_path(root: Path, workdir: Path) -> Path:
    """A folder to put first on PYTHONPATH so that ``switchover`` (with ``.core`` and
    ``.tui``) is the checkout at ``root``: links, nothing copied."""
    if not (root / "switchover" / "core").exists() and \
            "from core." in (root / "switchover" / "cli.py").read_text(encoding="utf-8"):
        return root     # a checkout from before issue 11: core/ and tui/ were top-level packages
    out = workdir / "baseline"
    pkg = out / "switchover"
    if not pkg.exists():
        if not (root / "switchover").is_dir() or not (root / "core").is_dir():
            raise SystemExit(f"--baseline {root}: not a switchover checkout (no switchover/ and core/)")
        pkg.mkdir(parents=True)
        for entry in (root / "switchover").iterdir():
            (pkg / entry.name).symlink_to(entry.resolve())
        for name in ("core", "tui"):
            (pkg / name).symlink_to((root / name).resolve())
    return out


def top_functions(path: Path, n: int) -> list[str]:
    """Functions by inclusive share of the samples of a py-spy raw (collapsed) profile."""
    incl: Counter = Counter()
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ["(no profile written)"]
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        # "func (file:line)" -> "func (file)": one entry per function and file
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}:
            incl[frame] += int(count)
    skip = ("threading.py", "runpy", "asyncio/", "concurrent/futures", "switchover/__main__",
            "<frozen importlib")
    rows = [(k, v) for k, v in incl.most_common() if not any(x in k for x in skip)]
    return [f"{v / total:6.1%}  {k}" for k, v in rows[:n]] if total else ["(no samples)"]


def _last_words(tail: str) -> str:
    """The tool's last meaningful stderr lines (progress lines and warnings dropped)."""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith(("migrate ", "*** IMAP Warning"))]
    return " | ".join(keep[-3:])[-400:]


def ratio(r: Result, ref: Result | None) -> str:
    if not ref or r.tool == "mbsync" or not r.seconds or not ref.seconds:
        return ""
    if r.seconds <= ref.seconds:
        return f"{ref.seconds / r.seconds:.2f}× faster"
    return f"{r.seconds / ref.seconds:.2f}× slower"


def table(results: list[Result]) -> str:
    lines = ["| corpus | tool | messages | MB | seconds | msg/s | MB/s | peak RSS MB | CPU s "
             "| Dovecot CPU s | vs mbsync | rerun s | check |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    base = {r.corpus: r for r in results if r.tool == "mbsync"}
    for r in results:
        rerun = "" if r.rerun_seconds is None else f"{r.rerun_seconds:.2f}"
        lines.append(f"| {r.corpus} | {r.tool} | {r.messages:,} | {r.bytes / 1e6:,.0f} | "
                     f"{r.seconds:.2f} | {r.msgs_per_s:,.0f} | {r.mb_per_s:,.1f} | "
                     f"{r.peak_rss_mb:,.0f} | {r.cpu_s:.1f} | {r.server_cpu_s:.1f} | {ratio(r, base.get(r.corpus))} | "
                     f"{rerun} | {r.check[:160]} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", nargs="*", metavar="CORPUS",
                    help=f"some of {', '.join(SPECS)} (default: {' '.join(DEFAULT_CORPORA)})")
    ap.add_argument("--tools", default="switchover,mbsync", help="comma-separated (default: switchover,mbsync; "
                    "also baseline, see --baseline); odd runs go in this order, even runs reversed")
    ap.add_argument("--candidate", default=None, metavar="DIR",
                    help="a third switchover checkout, run as the tool 'candidate'")
    ap.add_argument("--baseline", default=None, metavar="DIR",
                    help="another switchover checkout, run as the tool 'baseline' (A/B comparison)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool (the median run is reported; peak RSS is the max)")
    ap.add_argument("--best", action="store_true", help="report the fastest run, not the median")
    ap.add_argument("--count", type=int, default=None, help="N messages instead of the corpus's usual number")
    ap.add_argument("--storage", default=DEFAULT_STORAGE, choices=list(STORAGES),
                    help="Dovecot mail storage (the fixture uses sdbox)")
    ap.add_argument("--fsync", action="store_true",
                    help="keep Dovecot's fsyncs (mail_fsync = optimized); the disk then dominates")
    ap.add_argument("--timeout", type=float, default=300, help="seconds before a hung run is killed")
    ap.add_argument("--profile", action="store_true",
                    help="also run switchover once under py-spy (GIL samples) per corpus")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "results.json")
    args = ap.parse_args()
    args.corpora = args.corpora or DEFAULT_CORPORA
    unknown = [c for c in args.corpora if c not in SPECS]
    if unknown:
        ap.error(f"unknown corpus {', '.join(unknown)} (choose from {', '.join(SPECS)})")
    workdir = Path(tempfile.mkdtemp(prefix="switchover-bench-"))
    workdir.chmod(0o755)
    bench = Bench(args, workdir)
    results: list[Result] = []
    started = time.perf_counter()
    try:
        for corpus in args.corpora:
            results += bench.corpus(corpus)
    except KeyboardInterrupt:
        print("interrupted; partial results follow", file=sys.stderr)
    except Unsupported as e:   # no Dovecot: the bench needs a real server (pymap is far slower)
        print(f"bench: {e}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.platform(), "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(), "python": platform.python_version(),
            "mbsync": mbsync_version(), "dovecot": _dovecot_version(),
            "dovecot_settings": bench.settings, "storage": args.storage, "fsync": args.fsync,
            "wan_delay_each_way_s": WAN_DELAY, "repeat": args.repeat,
            "count": args.count, "bench_seconds": round(time.perf_counter() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": [
        {**asdict(r), "msgs_per_s": round(r.msgs_per_s, 1), "mb_per_s": round(r.mb_per_s, 2)}
        for r in results]}, indent=2, ensure_ascii=False))
    print(f"{meta['date']} on {meta['machine']}, {meta['cpus']} CPUs ({meta['cpu_model']}), "
          f"Python {meta['python']}, {meta['mbsync']}, Dovecot {meta['dovecot']} "
          f"({args.storage}, mail_fsync {'optimized' if args.fsync else 'never'})\n")
    print(table(results))
    ok = all(r.ok for r in results) and all(r.check == "exact" for r in results
                                            if r.tool in OURS)
    return 0 if ok else 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _dovecot_version() -> str:
    try:
        return subprocess.run(["dovecot", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
