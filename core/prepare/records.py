"""What the preflight hands back: one ``Finding`` per check, and the ``Report`` that
groups them, decides the exit code and renders them for people (both faces print the
same words).

A verdict is one of ``ok``, ``warn``, ``fail``, ``could-not-run``. A check that could not
run is never a pass: it shows as "could not run" and, when the check matters for the
switch (``blocks``), it keeps the exit code from 0 just as a failure does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OK, WARN, FAIL, NOT_RUN = "ok", "warn", "fail", "could-not-run"
VERDICTS = (OK, WARN, FAIL, NOT_RUN)
#: the word a person reads (never colour only)
WORDS = {OK: "ok", WARN: "warn", FAIL: "FAILED", NOT_RUN: "could not run"}
SECTIONS = ("Logins", "Capabilities", "Fit", "Round trip", "DNS", "Address")


@dataclass(frozen=True)
class Finding:
    """One check: ``name`` is stable for scripts (``login.old.imap``, ``dns.spf``);
    ``label`` is what a person reads in front of the verdict."""
    name: str
    section: str
    label: str
    verdict: str
    found: str
    meaning: str = ""
    advice: str = ""
    #: a fail / could-not-run here keeps the switch from going ahead (exit 1)
    blocks: bool = True

    @property
    def word(self) -> str:
        return WORDS[self.verdict]

    @property
    def blocking(self) -> bool:
        return self.blocks and self.verdict in (FAIL, NOT_RUN)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    started: float                     # epoch seconds
    seconds: float
    #: an IMAP or SMTP login was refused or could not connect (exit 3, as ``check`` always did)
    login_failed: bool = False

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def exit_code(self) -> int:
        if self.login_failed:
            return 3
        return 1 if self.blocking else 0

    def section(self, name: str) -> list[Finding]:
        return [f for f in self.findings if f.section == name]

    def get(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)

    def summary(self) -> str:
        counts = {v: sum(f.verdict == v for f in self.findings) for v in VERDICTS}
        parts = [f"{counts[v]} {WORDS[v].lower()}" for v in VERDICTS if counts[v]]
        head = ("Nothing blocks the switch" if not self.blocking and not self.login_failed
                else f"{len(self.blocking) or 1} thing(s) block the switch")
        return f"{head} ({', '.join(parts)}; {self.seconds:.0f} s)."

    def lines(self, *, details: bool = True) -> list[str]:
        """The readable report: a heading per section, one line per check
        (``label: VERDICT — found``), then what it means and what to do."""
        out: list[str] = []
        for name in SECTIONS:
            found = self.section(name)
            if not found:
                continue
            out.append(name)
            for f in found:
                out.append(f"  {f.label}: {f.word} — {f.found}")
                if details and f.verdict != OK:
                    if f.meaning:
                        out.append(f"      means: {f.meaning}")
                    if f.advice:
                        out.append(f"      to do: {f.advice}")
        out.append(self.summary())
        return out

    def as_list(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.findings]

    def as_dict(self) -> dict[str, Any]:
        return {"started": self.started, "seconds": self.seconds, "login_failed": self.login_failed,
                "findings": self.as_list()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        return cls(findings=tuple(Finding.from_dict(d) for d in data.get("findings", [])),
                   started=float(data.get("started", 0.0)), seconds=float(data.get("seconds", 0.0)),
                   login_failed=bool(data.get("login_failed", False)))
