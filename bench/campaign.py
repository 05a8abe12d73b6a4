"""`python -m bench.campaign` (part of `make bench`): the change-notice campaign at size.

N notices (1,000 by default) to N people, pacing lifted, through aiosmtpd on loopback and
the bench Dovecot (the copy of each notice in the new Sent folder), three ways on the same
servers, alternating:

- ``switchover``: ``engine.notices.send("notice")`` as the CLI and the dashboard run it —
  each notice recorded with its Message-ID before its SMTP conversation and settled after,
  a copy in Sent placed once, one SMTP and one IMAP connection kept through the run;
- ``per-notice``: the same engine with the kept connections turned off (what the campaign
  did before: a login per notice on SMTP and one or two on IMAP) — the A/B of that change;
- ``smtplib loop``: the peer — what a mail-merge script does: one SMTP connection,
  ``sendmail`` per person, nothing recorded, no copy in Sent. The floor, not a rival:
  it cannot tell after a crash who got the message.

Per run: seconds, notices/s, SMTP logins, IMAP connections (a counting proxy in front of
Dovecot), peak RSS of this process, and the check that every person got exactly one
message. Results go to bench/out/campaign.json and a Markdown table on stdout.

    .venv/bin/python -m bench.campaign                 # 1,000 notices, 3 rounds
    .venv/bin/python -m bench.campaign --notices 300 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import smtplib
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, AsyncIterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import start_bench_dovecot  # noqa: E402
from switchover.core.config import load_config  # noqa: E402
from switchover.core.engine import Engine  # noqa: E402
from switchover.core.people.audience import Recipient  # noqa: E402
from tests.notify.campaign_support import SimClock, StandIn  # noqa: E402
from tests.support.proxy import Proxy  # noqa: E402
from tests.support.servers import SmtpServer, write_config  # noqa: E402

TOOLS = ("switchover", "per-notice", "smtplib loop")


@dataclass
class Run:
    tool: str
    notices: int
    seconds: float
    per_second: float
    smtp_logins: int
    imap_connections: int
    copies_in_sent: int
    peak_rss_mb: float
    exact: bool


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def people(n: int, round_no: int, tool: str) -> list[Recipient]:
    langs = ("en", "zh", "es", "pt", "ru", "ar", "fr")
    tag = tool.split()[0].replace("-", "")
    return [Recipient(f"p{i}.{tag}{round_no}@customer{i % 97}.example", f"Person {i}", "customer",
                      langs[i % len(langs)], "") for i in range(n)]


@contextlib.asynccontextmanager
async def engine(workdir: Path, server: Any, smtp: SmtpServer, imap: Proxy, name: str) -> AsyncIterator[Engine]:
    old, new = server.add_user("bco"), server.add_user("bcn")
    path = write_config(workdir / f"{name}.yaml", old_user=old, new_user=new, server=server, smtp=smtp,
                        transition={"start": "2026-01-01", "close_date": "2099-12-31"},
                        notices={"per_hour": 100_000, "per_day": 100_000},
                        new={"imap": {"host": imap.host, "port": imap.port, "security": "none"}},
                        state=str(workdir / f"{name}.sqlite"))
    eng = await Engine.open(load_config(path))
    try:
        yield eng
    finally:
        await eng.close()


async def run_switchover(workdir: Path, server: Any, smtp: SmtpServer, n: int, round_no: int,
                         kept: bool) -> Run:
    tool = "switchover" if kept else "per-notice"
    who = people(n, round_no, tool)
    with Proxy(server.host, server.imap_port) as imap:
        async with engine(workdir, server, smtp, imap, f"{tool}-{round_no}") as eng:
            eng.notices.people = StandIn(notice=who)
            clock = SimClock()          # pacing lifted: its waits pass at once
            eng.notices.clock, eng.notices.sleep = clock.time, clock.sleep
            if not kept:        # the campaign as it was: no kept connections
                @contextlib.asynccontextmanager
                async def none() -> AsyncIterator[Any]:
                    yield eng.notices.postman
                eng.notices.postman.connection = none       # type: ignore[method-assign]
            logins, conns = len(smtp.logins), imap.connections_total
            taken = smtp.taken
            started = time.perf_counter()
            result = await eng.notices.send("notice")
            seconds = time.perf_counter() - started
            rows = await eng.notices.ledger.rows("notice")
            copies = sum(1 for r in rows if r.sent_copy == "placed")
            exact = (result.tally.sent == n and smtp.taken - taken == n and copies == n
                     and _each_once(smtp, [p.address for p in who]))
            return Run(tool, n, round(seconds, 2), round(n / seconds, 1), len(smtp.logins) - logins,
                       imap.connections_total - conns, copies, round(peak_rss_mb(), 1), exact)


def run_smtplib(smtp: SmtpServer, n: int, round_no: int) -> Run:
    who = people(n, round_no, "smtplib loop")
    logins, taken = len(smtp.logins), smtp.taken
    started = time.perf_counter()
    conn = smtplib.SMTP(smtp.host, smtp.port, timeout=60)
    conn.login("merge@example.com", "x")
    for p in who:
        body = (f"From: Wu Jun <merge@example.com>\r\nTo: {p.name} <{p.address}>\r\n"
                f"Subject: Important Notice: Update of Email Address\r\n\r\n"
                f"Dear {p.name},\r\n\r\nmy email address has changed.\r\n").encode()
        conn.sendmail("merge@example.com", [p.address], body)
    conn.quit()
    seconds = time.perf_counter() - started
    exact = smtp.taken - taken == n and _each_once(smtp, [p.address for p in who])
    return Run("smtplib loop", n, round(seconds, 2), round(n / seconds, 1), len(smtp.logins) - logins, 0, 0,
               round(peak_rss_mb(), 1), exact)


def _each_once(smtp: SmtpServer, addresses: list[str]) -> bool:
    got: dict[str, int] = {}
    for _, rcpts, _ in smtp.messages:
        for r in rcpts:
            got[r.lower()] = got.get(r.lower(), 0) + 1
    return all(got.get(a.lower()) == 1 for a in addresses)


def table(runs: list[Run]) -> str:
    lines = ["| tool | notices | seconds | notices/s | SMTP logins | IMAP connections | copies in Sent "
             "| peak RSS MB | check |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for tool in TOOLS:
        mine = [r for r in runs if r.tool == tool]
        if not mine:
            continue
        med = sorted(mine, key=lambda r: r.seconds)[len(mine) // 2]
        lines.append(f"| {tool} | {med.notices:,} | {med.seconds:.2f} | {med.per_second:,.0f} | "
                     f"{med.smtp_logins:,} | {med.imap_connections:,} | {med.copies_in_sent:,} | "
                     f"{max(r.peak_rss_mb for r in mine):.0f} | "
                     f"{'exact' if all(r.exact for r in mine) else 'NOT EXACT'} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="switchover-bench-campaign-") as tmp:
        workdir = Path(tmp)
        server, _settings = start_bench_dovecot(workdir / "dovecot")
        smtp = SmtpServer(server, deliver=False).start()
        try:
            for round_no in range(args.rounds):
                order = TOOLS if round_no % 2 == 0 else tuple(reversed(TOOLS))
                for tool in order:
                    if tool == "smtplib loop":
                        run = await asyncio.to_thread(run_smtplib, smtp, args.notices, round_no)
                    else:
                        run = await run_switchover(workdir, server, smtp, args.notices, round_no,
                                                   kept=tool == "switchover")
                    runs.append(run)
                    print(f"  round {round_no + 1} {tool}: {run.seconds:.2f} s, {run.per_second:,.0f}/s, "
                          f"{run.smtp_logins} SMTP logins, {run.imap_connections} IMAP connections, "
                          f"{'exact' if run.exact else 'NOT EXACT'}", flush=True)
        finally:
            smtp.stop()
            server.stop()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "campaign.json").write_text(json.dumps({
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_before": list(__import__("os").getloadavg()),
        "runs": [asdict(r) for r in runs]}, indent=2))
    print()
    print(table(runs))
    rates = {t: statistics.median(r.per_second for r in runs if r.tool == t) for t in TOOLS}
    print(f"\nswitchover / per-notice: {rates['switchover'] / rates['per-notice']:.1f}× the notices per second")
    return 0 if all(r.exact for r in runs) else 1


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__.split("\n")[0])
    ap.add_argument("--notices", type=int, default=1000, help="people in each run (default 1,000)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each tool, alternating (default 3)")
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
