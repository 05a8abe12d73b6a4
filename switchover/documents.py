"""What ``--json`` prints: one document per command, built from what the facets return.

The keys are a contract with people's scripts: add keys, never rename or drop one.
Times are ISO 8601 (local time with its offset); counts are numbers; text is as shown.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switchover.core.checklist import PHASES

if TYPE_CHECKING:
    from switchover.core.checklist import ChecklistItem
    from switchover.core.migrate.verify import VerifyReport
    from switchover.core.transition.arrivals import Arrival


def _when(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts else None


def verify_doc(report: "VerifyReport", path: Path) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "result": report.result(),
        "summary": report.describe(),
        "missing": report.missing,
        "duplicates": report.duplicates,
        "extra": report.extra,
        "unreadable": report.unreadable,
        "report": str(path),
        "started": _when(report.started),
        "elapsed_seconds": round(report.elapsed, 3),
        "folders": [{
            "source": f.source,
            "destination": f.destination,
            "verdict": f.verdict,
            "ok": f.ok,
            "source_count": f.source_count,
            "dest_count": f.dest_count,
            "missing": len(f.missing),
            "duplicates": len(f.duplicates),
            "extra": len(f.extra),
            "flags_changed": len(f.flags_changed),
            "dates_changed": len(f.dates_changed),
            "details": f.details,
        } for f in report.folders],
    }


def arrivals_doc(arrivals: "list[Arrival]") -> dict[str, Any]:
    return {"arrivals": [{
        "id": a.id,
        "seen_at": _when(a.seen_at),
        "date": a.date.isoformat() if a.date else None,
        "side": a.side,
        "folder": a.folder,
        "sender": a.sender,
        "sender_name": a.sender_name,
        "recipients": list(a.recipients),
        "subject": a.subject,
        "message_id": a.message_id,
        "badge": a.badge,
        "state": a.state,
        "language": a.language,
        "actions": dict(a.actions),
    } for a in arrivals]}


def checklist_doc(progress: dict[int, tuple[int, int]], items: "list[ChecklistItem]") -> dict[str, Any]:
    phases = []
    for phase, title in PHASES.items():
        done, total = progress.get(phase, (0, 0))
        phases.append({
            "phase": phase, "title": title, "done": done, "total": total,
            "items": [{
                "key": i.key, "title": i.title, "state": i.state, "by": i.by,
                "evidence": i.evidence or None, "note": i.note or None, "due": i.due,
                "provable": i.provable,
            } for i in items if i.phase == phase],
        })
    return {"phases": phases}
