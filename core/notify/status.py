"""What ``switchover notify --status`` and the campaign screen show: counts per state per
campaign, who bounced and why, the sends in doubt, and who has switched — plus the
checklist evidence of a finished campaign. Records only; the facet fills them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from .ledger import STATES

#: campaigns the status lists first, in this order (test sends come after)
CAMPAIGNS = ("notice", "internal", "final")


@dataclass(frozen=True)
class CampaignCounts:
    campaign: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        parts = [f"{s} {self.counts[s]}" for s in STATES if self.counts.get(s)]
        return f"{self.campaign:<9} {self.total:>5}  " + (", ".join(parts) or "nothing yet")


@dataclass(frozen=True)
class PersonNote:
    address: str
    campaign: str
    words: str


@dataclass(frozen=True)
class Status:
    campaigns: list[CampaignCounts]
    bounced: list[PersonNote] = field(default_factory=list)
    doubts: list[PersonNote] = field(default_factory=list)
    notified: int = 0                 # people sent the notice or the internal notice
    switched: int = 0                 # of them, who write to the new address
    still_old: list[str] = field(default_factory=list)   # notified, still writing to the old one
    scan_problem: str = ""            # the bounce scan could not run (said, not hidden)

    @property
    def share(self) -> float:
        return self.switched / self.notified if self.notified else 0.0

    def counts(self, campaign: str) -> dict[str, int]:
        return next((c.counts for c in self.campaigns if c.campaign == campaign), {})

    def lines(self) -> list[str]:
        out = [c.line() for c in self.campaigns] or ["No notice has been queued or sent yet."]
        out.append(f"switched: {self.switched} of {self.notified} notified ({self.share:.0%}); "
                   f"still writing to the old address: {len(self.still_old)}")
        for b in self.bounced:
            out.append(f"bounced  {b.address} ({b.campaign}): {b.words}")
        for d in self.doubts:
            out.append(f"in doubt {d.address} ({d.campaign}): settle with 'switchover notify --settle "
                       f"{d.address} --delivered' or '--resend'")
        for a in self.still_old[:20]:
            out.append(f"old      {a} still writes to the old address")
        if self.scan_problem:
            out.append(f"warning: bounces could not be checked: {self.scan_problem}")
        return out

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["campaigns"] = {c.campaign: dict(c.counts, total=c.total) for c in self.campaigns}
        d["share_switched"] = round(self.share, 4)
        return d


def ordered(counts: dict[str, dict[str, int]]) -> list[CampaignCounts]:
    names = [c for c in CAMPAIGNS if c in counts] + sorted(c for c in counts if c not in CAMPAIGNS)
    return [CampaignCounts(c, counts[c]) for c in names]


def evidence(counts: dict[str, int], total: int, when: float, what: str = "") -> str:
    """'sent 212, bounced 4 of 216 (2026-12-03)'."""
    day = dt.date.fromtimestamp(when).isoformat()
    return (f"{what}sent {counts.get('sent', 0)}, bounced {counts.get('bounced', 0)} of {total} ({day})")
