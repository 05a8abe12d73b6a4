"""``engine.scan``: finding the old address everywhere else — local files (templates,
catalogues, exported contacts) and web pages (contact and team pages, profiles) — and
keeping what was found, so a rescan says what is still there, what is new and what was
fixed (core/prepare/scanledger.py). A clean scan is the evidence for the checklist's
"website" (at least one page fetched) and "documents" (at least one office / PDF file
read) items, published as ``Proven`` events; places left take the proof back.

Directories are walked without hidden entries, ``.git`` or ``node_modules``; files of
other types are counted, not read. A file or page that cannot be read is listed with
its reason, never skipped in silence, and keeps the scan from being clean.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..context import Blocking
from ..errors import SwitchoverError
from ..events import EventBus, Proven
from ..store import Store
from .extract import Kind, chunks_of, kind_of
from .match import Matcher, snippet
from .piece import Unreadable
from .scanledger import Changes, Coverage, Place, ScanLedger
from .web import MAX_BYTES, fetch, url_problem
from .webtext import html_chunks

SKIP_DIRS = {".git", "node_modules", "__pycache__", ".svn", ".hg"}
DEFAULT_MAX_MB = 50.0


@dataclass
class Found:
    """What the blocking walk found (before the ledger)."""
    places: list[Place] = field(default_factory=list)
    unread: list[Place] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    files_read: int = 0
    office_read: int = 0
    pages_read: int = 0
    not_searched: int = 0          # files of other types under a walked directory
    redirects: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanReport:
    scan_id: int
    when: str
    paths: tuple[str, ...]
    urls: tuple[str, ...]
    addresses: tuple[str, ...]
    files_read: int
    office_read: int
    pages_read: int
    not_searched: int
    found: tuple[Place, ...]        # in this scan
    changes: Changes
    elsewhere: int                  # places still open in sources this scan did not cover
    first: bool                     # no earlier scan to compare with

    @property
    def clean(self) -> bool:
        return not self.found and not self.changes.unread

    def to_json(self) -> dict[str, Any]:
        return {"scan": self.scan_id, "when": self.when, "paths": list(self.paths),
                "urls": list(self.urls), "addresses": list(self.addresses),
                "files_read": self.files_read, "office_read": self.office_read,
                "pages_read": self.pages_read, "not_searched": self.not_searched,
                "clean": self.clean, "places": [p.to_json() for p in self.found],
                "unread": [p.to_json() for p in self.changes.unread],
                "new": [p.to_json() for p in self.changes.new],
                "fixed": [p.to_json() for p in self.changes.fixed],
                "still": len(self.changes.still), "elsewhere": self.elsewhere}


class Scanner:
    def __init__(self, store: Store, bus: EventBus, blocking: Blocking, config: Config) -> None:
        self.store = store
        self.bus = bus
        self.blocking = blocking
        self.config = config
        self.ledger = ScanLedger(store)

    def addresses(self, also: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
        return tuple(dict.fromkeys([self.config.identity.old_address.lower(), *(a.lower() for a in also)]))

    async def run(self, paths: list[str] | tuple[str, ...] = (), urls: list[str] | tuple[str, ...] = (),
                  *, also: list[str] | tuple[str, ...] = (), max_mb: float = DEFAULT_MAX_MB) -> ScanReport:
        """Scan ``paths`` and ``urls`` for the old address (and ``also``); bad input
        (nothing to scan, a path that does not exist, a URL that is not http(s)) is one
        sentence, exit code 2, before anything is read."""
        if not paths and not urls:
            raise SwitchoverError("Nothing to scan: give a file or folder, or --url URL.", exit_code=2)
        resolved = [str(Path(os.path.expanduser(p)).resolve()) for p in paths]
        for given, path in zip(paths, resolved):
            if not os.path.exists(path):
                raise SwitchoverError(f"{given} does not exist; give a file or a folder to scan.", exit_code=2)
        for u in urls:
            problem = url_problem(u)
            if problem:
                raise SwitchoverError(problem[:1].upper() + problem[1:] + ".", exit_code=2)
        for a in also:
            if "@" not in a:
                raise SwitchoverError(f"'{a}' is not an email address (--also).", exit_code=2)
        addresses = self.addresses(also)
        first = await self.ledger.last_scan() is None
        scan_id = await self.ledger.begin(resolved, list(urls), addresses)
        found = await self.blocking.run(collect, resolved, list(urls), Matcher(addresses),
                                        int(max_mb * 10**6))
        dirs = tuple(p for p in resolved if os.path.isdir(p))
        coverage = Coverage(frozenset(found.sources), dirs, tuple(p for p in resolved if p not in dirs))
        changes = await self.ledger.record(scan_id, coverage, found.places, found.unread)
        left = await self.ledger.left()
        elsewhere = sum(1 for p in left if p.state == "open" and not coverage.covers(p.source))
        report = ScanReport(
            scan_id=scan_id, when=f"{dt.datetime.now():%Y-%m-%d %H:%M}", paths=tuple(resolved),
            urls=tuple(urls), addresses=addresses, files_read=found.files_read,
            office_read=found.office_read, pages_read=found.pages_read,
            not_searched=found.not_searched, found=tuple(changes.new + changes.still),
            changes=changes, elsewhere=elsewhere, first=first)
        await self.ledger.finish(scan_id, {k: v for k, v in report.to_json().items()
                                           if isinstance(v, (int, bool))})
        self._prove(report, left)
        return report

    def _prove(self, report: ScanReport, left: list[Place]) -> None:
        """The checklist's website / documents items, from what is left in the ledger."""
        addr = report.addresses[0]
        for kind, item, read, what in (("url", "website", report.pages_read, "page"),
                                       ("file", "documents", report.office_read, "office / PDF file")):
            places = [p for p in left if p.kind == kind]
            if places:
                sources = len({p.source for p in places})
                open_ = sum(1 for p in places if p.state == "open")
                unread = len(places) - open_
                detail = ", ".join(x for x in (f"{open_} places still show {addr}" if open_ else "",
                                               f"{unread} could not be read" if unread else "") if x)
                self.bus.publish(Proven(item, False, f"scan {report.when}: {detail} "
                                                     f"({sources} {kind}s)"))
            elif read:
                self.bus.publish(Proven(item, True, f"scan {report.when}: no trace of {addr} in "
                                                    f"{read} {what}{'s' if read > 1 else ''}"))

    async def left(self) -> list[Place]:
        return await self.ledger.left()

    async def last(self) -> dict[str, Any] | None:
        """The last finished scan (targets, addresses, counts), or None."""
        return await self.ledger.last_scan()


# -- the blocking walk -----------------------------------------------------------------

def collect(paths: list[str], urls: list[str], matcher: Matcher, max_bytes: int) -> Found:
    found = Found()
    for path in paths:
        if os.path.isdir(path):
            for file in _walk(path, found):
                _scan_file(file, matcher, max_bytes, found, named=False)
        else:
            _scan_file(path, matcher, max_bytes, found, named=True)
    for url in urls:
        _scan_url(url, matcher, found)
    return found


def _walk(root: str, found: Found) -> list[str]:
    out: list[str] = []
    for here, dirs, files in os.walk(root, onerror=lambda e: found.unread.append(
            Place(str(e.filename), "file", "folder", "", "unread", f"cannot list it ({e.strerror})"))):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if name.startswith(".") or name.startswith("~$"):    # hidden, Office lock files
                continue
            path = os.path.join(here, name)
            if kind_of(name) is None or os.path.islink(path) and not os.path.exists(path):
                found.not_searched += 1
                continue
            out.append(path)
    return out


def _scan_file(path: str, matcher: Matcher, max_bytes: int, found: Found, *, named: bool) -> None:
    found.sources.add(path)
    kind = kind_of(path)
    if kind is None and not named:
        found.not_searched += 1
        return
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise Unreadable(f"larger than the {max_bytes / 1e6:.0f} MB limit (--max-mb)")
        with open(path, "rb") as f:
            data = f.read()
        _search(path, "file", chunks_of(path, data, kind), matcher, found)
    except Unreadable as e:
        found.unread.append(Place(path, "file", "whole file", "", "unread", e.reason))
        return
    except OSError as e:
        found.unread.append(Place(path, "file", "whole file", "", "unread", f"cannot open it ({e.strerror})"))
        return
    found.files_read += 1
    found.office_read += bool(kind and kind.office)


def _scan_url(url: str, matcher: Matcher, found: Found) -> None:
    found.sources.add(url)
    try:
        page = fetch(url, max_bytes=MAX_BYTES)
        if page.final_url != url:
            found.redirects[url] = page.final_url
        ctype = page.content_type
        if ctype in ("text/html", "application/xhtml+xml"):
            chunks = html_chunks(page.data, page.charset)
        else:
            by_type = {"application/pdf": Kind("pdf", True), "text/plain": Kind("text", False)}
            chunks = chunks_of(page.final_url, page.data, by_type.get(ctype) or kind_of(page.final_url)
                               or Kind("html", False), charset=page.charset)
        _search(url, "url", chunks, matcher, found)
    except Unreadable as e:
        found.unread.append(Place(url, "url", "whole page", "", "unread", e.reason))
        return
    found.pages_read += 1


def _search(source: str, kind: str, chunks: Any, matcher: Matcher, found: Found) -> None:
    for chunk in chunks:
        if chunk.unread:
            found.unread.append(Place(source, kind, chunk.where, "", "unread", chunk.unread))
            continue
        for hit in matcher.find(chunk.text):
            form = chunk.form if chunk.form in ("mailto", "cloudflare") else hit.form
            found.places.append(Place(source, kind, chunk.where, hit.address, form,
                                      snippet(chunk.text, hit)))
