"""The only SQL on ``scans`` and ``scan_places``: what each `switchover scan` searched
and every place it found the old address, kept so a rescan can say what is still
there, what is new and what was fixed.

A rescan speaks only for the sources it covered (the files it read or could not read,
anything under a directory it walked, the pages it fetched): an open place there that
is not found again is fixed; places in sources it did not cover stay as they were.
Matching a found place to a kept one: same source, address and snippet first (a line
inserted above moves the line number, not the text), then same source, address and
location.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable

from ..store import Store


@dataclass(frozen=True)
class Place:
    source: str          # absolute path or URL
    kind: str            # file | url
    location: str        # "line 3", "Sheet1!B2", "page 2", "<a> mailto link"
    address: str         # the address found ("" for an unread source)
    form: str            # plain | url-encoded | obfuscated | mailto | cloudflare | unread
    snippet: str         # context; for an unread source: the reason
    state: str = "open"  # open | fixed | unread
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "location": self.location,
                "address": self.address, "form": self.form, "snippet": self.snippet,
                "state": self.state}


@dataclass(frozen=True)
class Coverage:
    """What one scan spoke for."""
    sources: frozenset[str]          # every file / page it read or tried to read
    dirs: tuple[str, ...]            # directories walked (a vanished file under one is fixed)
    files: tuple[str, ...]           # file targets named (a vanished one is fixed)

    def covers(self, source: str) -> bool:
        if source in self.sources or source in self.files:
            return True
        return any(source.startswith(d.rstrip(os.sep) + os.sep) for d in self.dirs)


@dataclass(frozen=True)
class Changes:
    new: tuple[Place, ...]
    still: tuple[Place, ...]
    fixed: tuple[Place, ...]
    unread: tuple[Place, ...]


def _place(r: Any) -> Place:
    return Place(source=r["source"], kind=r["kind"], location=r["location"], address=r["address"],
                 form=r["form"], snippet=r["snippet"], state=r["state"], id=r["id"])


class ScanLedger:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def begin(self, paths: list[str], urls: list[str], addresses: tuple[str, ...]) -> int:
        return await self.store.execute(
            "INSERT INTO scans(started, targets, addresses) VALUES(?, ?, ?)",
            (time.time(), json.dumps({"paths": paths, "urls": urls}), json.dumps(list(addresses))))

    async def finish(self, scan_id: int, summary: dict[str, Any]) -> None:
        await self.store.execute("UPDATE scans SET finished=?, summary=? WHERE id=?",
                                 (time.time(), json.dumps(summary), scan_id))

    async def record(self, scan_id: int, coverage: Coverage, found: Iterable[Place],
                     unread: Iterable[Place]) -> Changes:
        """Merge one scan's findings into the kept places (one transaction)."""
        new: list[Place] = []
        still: list[Place] = []
        fixed: list[Place] = []
        unread_now: list[Place] = []
        async with self.store.transaction() as db:
            cur = await db.execute("SELECT * FROM scan_places WHERE state IN ('open', 'unread')")
            kept = [_place(r) for r in await cur.fetchall()]
            kept = [p for p in kept if coverage.covers(p.source)]
            open_ = [p for p in kept if p.state == "open"]
            used: set[int] = set()
            for p in found:
                match = next((k for k in open_ if k.id not in used and k.source == p.source
                              and k.address == p.address and k.snippet == p.snippet), None) or \
                    next((k for k in open_ if k.id not in used and k.source == p.source
                          and k.address == p.address and k.location == p.location), None)
                if match:
                    used.add(match.id)
                    await db.execute("UPDATE scan_places SET location=?, snippet=?, form=?, last_scan=? "
                                     "WHERE id=?", (p.location, p.snippet, p.form, scan_id, match.id))
                    still.append(replace(p, id=match.id))
                else:
                    cur = await db.execute(
                        "INSERT INTO scan_places(source, kind, location, address, form, snippet, state, "
                        "first_scan, last_scan) VALUES(?, ?, ?, ?, ?, ?, 'open', ?, ?)",
                        (p.source, p.kind, p.location, p.address, p.form, p.snippet, scan_id, scan_id))
                    new.append(replace(p, id=cur.lastrowid or 0))
            for k in open_:
                if k.id not in used:
                    await db.execute("UPDATE scan_places SET state='fixed', fixed_scan=? WHERE id=?",
                                     (scan_id, k.id))
                    fixed.append(replace(k, state="fixed"))
            for k in kept:
                if k.state == "unread":
                    await db.execute("UPDATE scan_places SET state='resolved', fixed_scan=? WHERE id=?",
                                     (scan_id, k.id))
            for p in unread:
                cur = await db.execute(
                    "INSERT INTO scan_places(source, kind, location, address, form, snippet, state, "
                    "first_scan, last_scan) VALUES(?, ?, ?, '', 'unread', ?, 'unread', ?, ?)",
                    (p.source, p.kind, p.location, p.snippet, scan_id, scan_id))
                unread_now.append(replace(p, state="unread", id=cur.lastrowid or 0))
        return Changes(tuple(new), tuple(still), tuple(fixed), tuple(unread_now))

    async def left(self) -> list[Place]:
        """Every place still open and every source that could not be read, by source."""
        rows = await self.store.fetchall(
            "SELECT * FROM scan_places WHERE state IN ('open', 'unread') ORDER BY kind, source, id")
        return [_place(r) for r in rows]

    async def last_scan(self) -> dict[str, Any] | None:
        row = await self.store.fetchone("SELECT * FROM scans WHERE finished IS NOT NULL ORDER BY id DESC LIMIT 1")
        if row is None:
            return None
        return {"id": row["id"], "started": row["started"], "finished": row["finished"],
                "targets": json.loads(row["targets"]), "addresses": json.loads(row["addresses"]),
                "summary": json.loads(row["summary"] or "{}")}
