"""The closing report of ``switchover archive``: what the change did, from the state file —
folders and counts moved, who was told, who switched, who still wrote to the old
address, how arrivals were handled, the checklist with its evidence, the dates, the
final backup and the closing verdict — rendered as HTML (CSS inlined with css-inline,
so it reads the same pasted into a mail or opened years later) and as Markdown.

``gather`` reads (no server is asked); ``render`` writes. The templates live in
core/wrapup/templates/ (jinja2; HTML autoescaped, Markdown cells escaped by the ``cell``
filter).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import css_inline
import jinja2

from ..backup.backups import Backups, BackupReport, BackupSummary
from ..checklist import PHASES, Checklist, ChecklistItem
from ..config import Config
from ..migrate.migration import Migration
from ..store import open_private
from ..transition.arrivals import Arrival, Arrivals
from ..transition.classify import HUMAN_BADGES
from ..transition.people import Correspondent, Correspondents
from .closing import Readiness

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Person:
    name: str
    address: str
    when: str                 # the date that matters in its list (notified, switched, last wrote)
    count: int = 0            # messages to the old address (writers only)
    switched: str = ""        # when they first wrote to the new address (writers only)


@dataclass(frozen=True)
class FolderLine:
    source: str
    destination: str
    messages: int
    copied: int
    already_there: int
    refused: int
    state: str


@dataclass(frozen=True)
class BackupBlock:
    root: str
    verified: bool
    verdict: str              # the check's sentence
    messages: int
    folders: int
    written: str              # what the backup run did, in words
    problems: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    generated: dt.datetime
    config: Config
    readiness: Readiness
    backup: BackupBlock
    folders: list[FolderLine]
    migration_run: str
    notified: list[Person]
    switched: list[Person]
    writers: list[Person]
    handled: list[tuple[str, int]]
    arrivals_total: int
    phases: list[tuple[str, list[ChecklistItem]]]

    @property
    def moved(self) -> tuple[int, int]:
        """(messages in the source folders, messages now in the new mailbox)."""
        return (sum(f.messages for f in self.folders),
                sum(f.copied + f.already_there for f in self.folders))


def _date(ts: float | None) -> str:
    return f"{dt.datetime.fromtimestamp(ts):%Y-%m-%d}" if ts else ""


def backup_block(root: Path, summary: BackupSummary | None, check: BackupReport | None) -> BackupBlock:
    verified = bool(check and check.ok and check.live_checked)
    return BackupBlock(
        root=str(root), verified=verified,
        verdict=check.describe() if check else "the backup was not checked",
        messages=sum(f.found for f in check.folders) if check else 0,
        folders=len(check.folders) if check else 0,
        written=summary.describe() if summary is not None else "no backup was written",
        problems=list(check.problems[:10]) if check else [])


async def _all_old_arrivals(arrivals: Arrivals) -> list[Arrival]:
    out: list[Arrival] = []
    while True:
        page = await arrivals.page(side="old", offset=len(out), limit=500)
        out += page
        if len(page) < 500:
            return out


def handled_counts(items: list[Arrival]) -> list[tuple[str, int]]:
    """How the arrivals on the old address ended, by what was done with them."""
    c: Counter[str] = Counter()
    for a in items:
        done = {k for k, v in a.actions.items() if v == "done"}
        if "forward" in done:
            c["forwarded to the new address"] += 1
        if "remind" in done:
            c["sender reminded of the new address"] += 1
        if any(v == "doubt" for v in a.actions.values()):
            c["a send in doubt (never confirmed)"] += 1
        if a.state == "handled" and not done & {"forward", "remind"}:
            c["marked handled, nothing sent"] += 1
        elif a.state != "handled":
            c["spam or automated (no look needed)" if a.badge in ("spam", "automated")
              else "NOT handled"] += 1
    order = ("forwarded to the new address", "sender reminded of the new address",
             "marked handled, nothing sent", "spam or automated (no look needed)",
             "a send in doubt (never confirmed)", "NOT handled")
    return [(k, c[k]) for k in order if c[k]]


async def _writers(items: list[Arrival], people: Correspondents) -> list[Person]:
    """People (not robots) who wrote to the old address during the transition, most first."""
    by: dict[str, list[Arrival]] = {}
    for a in items:
        if a.sender and a.badge in HUMAN_BADGES:
            by.setdefault(a.sender, []).append(a)
    out = []
    for address, mails in by.items():
        c = await people.get(address)
        name = next((m.sender_name for m in mails if m.sender_name), c.name if c else "")
        out.append(Person(name, address, _date(max(m.seen_at for m in mails)), len(mails),
                          _date(c.switched) if c else ""))
    return sorted(out, key=lambda p: (-p.count, p.address))


def _people(rows: list[Correspondent], when: str) -> list[Person]:
    return [Person(c.name, c.address, _date(getattr(c, when))) for c in rows if not c.automated]


async def gather(*, config: Config, readiness: Readiness, backup: BackupBlock, arrivals: Arrivals,
                 people: Correspondents, checklist: Checklist, migration: Migration,
                 now: dt.datetime | None = None) -> ReportData:
    """Everything the report says, read from the state file."""
    folders = [FolderLine(r.source, r.destination, r.total_messages, max(0, r.done_messages - r.already_there
                                                                         - r.refused),
                          r.already_there, r.refused, r.state) for r in await migration.folder_rows()]
    run = await migration.last_run()
    if run is None:
        run_text = "No migration run is recorded in the state file."
    else:
        s = run.summary or {}
        run_text = (f"Last migration run {_date(run.started)}: {run.outcome or 'did not end'} — "
                    f"{int(s.get('transferred', 0)):,} copied, {int(s.get('already_there', 0)):,} already there, "
                    f"{int(s.get('refused', 0)):,} refused")
    items = await _all_old_arrivals(arrivals)
    all_items = await checklist.items()
    return ReportData(
        generated=now or dt.datetime.now(), config=config, readiness=readiness, backup=backup,
        folders=folders, migration_run=run_text,
        notified=_people(await people.list(filter="notified", order="address", limit=1_000_000), "notified"),
        switched=_people(await people.list(filter="switched", order="address", limit=1_000_000), "switched"),
        writers=await _writers(items, people), handled=handled_counts(items), arrivals_total=len(items),
        phases=[(f"Phase {p}: {title}", [i for i in all_items if i.phase == p]) for p, title in PHASES.items()])


def _cell(value: object) -> str:
    """A Markdown table cell: one line, no stray column bars."""
    return " ".join(str(value or "").split()).replace("|", "\\|")


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES, encoding="utf-8"),
                             autoescape=autoescape, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["cell"] = _cell
    return env


def render_html(data: ReportData) -> str:
    html = _env(True).get_template("report.html.j2").render(r=data)
    return str(css_inline.inline(html))


def render_markdown(data: ReportData) -> str:
    return _env(False).get_template("report.md.j2").render(r=data)


def write_reports(data: ReportData, folder: Path) -> tuple[Path, Path]:
    """report.html and report.md in ``folder`` (readable by the user only: they name every
    correspondent)."""
    html, md = folder / "report.html", folder / "report.md"
    for path, text in ((html, render_html(data)), (md, render_markdown(data))):
        with open_private(path, "w") as f:
            f.write(text)
    return html, md

