"""``engine.letter``: the change request letter (申请书) — measured facts about the old
and new mailbox, worded in Chinese or English as Markdown ready to paste, written to a
file (which proves the checklist's "request" item through a ``Proven`` event).

The prose lives in Jinja templates beside this module (``letter.zh.md.j2``,
``letter.en.md.j2``); this module turns facts and plan (core/prepare/mailfacts.py,
letterplan.py) into the words and numbers they show. A fact that could not be measured
is shown as an honest placeholder ("(quota not reported by the server)") and listed in
``Draft.gaps`` so a face can warn; nothing is invented. The last measurement is kept in
the ``settings`` table (key ``letter:facts``) so a face can show the letter at once.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ..config import Account, Config
from ..context import Accounts, Blocking
from ..errors import SwitchoverError
from ..events import EventBus, Proven
from ..mail.templates import format_date
from ..progress import fmt_bytes
from ..providers import PROVIDERS
from ..store import Store
from . import letterplan as plan
from .mailfacts import MailboxFacts, measure, unmeasured

LANGS = ("zh", "en")
SETTING = "letter:facts"

#: placeholders for facts nobody could measure, by the reason's code (mailfacts.quota_gap)
QUOTA_GAPS = {
    "zh": {"nocap": "（服务器不支持容量查询，未能获取配额）", "unset": "（服务器未设置容量上限）",
           "refused": "（服务器拒绝报告配额）", "login": "（未能登录，配额未测得）"},
    "en": {"nocap": "(quota not reported by the server)", "unset": "(no quota set on the server)",
           "refused": "(the server refused to report its quota)", "login": "(quota not measured: no login)"},
}
#: why, in a warning on stderr
QUOTA_WHY = {"nocap": "the old server ({host}) does not offer the QUOTA extension",
             "unset": "no quota is set for this account on the old server ({host})",
             "refused": "the old server ({host}) refused to report its quota"}
WORDS = {
    "zh": {"unknown": "（未测得）", "no_date": "（未设定日期：{key}）", "after_approval": "获批后一周内",
           "to": "领导"},
    "en": {"unknown": "(not measured)", "no_date": "(date not set: {key})",
           "after_approval": "within a week of approval", "to": "Manager"},
}


@dataclass(frozen=True)
class LetterFacts:
    old: MailboxFacts
    new: MailboxFacts

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old.to_json(), "new": self.new.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LetterFacts":
        return cls(MailboxFacts.from_json(d["old"]), MailboxFacts.from_json(d["new"]))


@dataclass(frozen=True)
class Draft:
    lang: str
    markdown: str
    facts: LetterFacts
    #: one English sentence per fact shown as a placeholder (faces warn with them)
    gaps: tuple[str, ...] = field(default=())


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
                              autoescape=False, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


class Letter:
    """Measure, compose, write."""

    def __init__(self, store: Store, bus: EventBus, accounts: Accounts, blocking: Blocking,
                 config: Config) -> None:
        self.store = store
        self.bus = bus
        self.accounts = accounts
        self.blocking = blocking
        self.config = config

    # -- facts ----------------------------------------------------------------------------
    async def measure(self) -> LetterFacts:
        """Log in to the old mailbox (sizes, quota, yearly counts) and, when its secret is
        at hand, to the new one (its quota); a failed login becomes a gap, not an error."""
        old = await self._measure(self.accounts.account("old"), quota_only=False)
        if self.accounts.needs_secret("new"):
            new = unmeasured(self.config.new, "the new mailbox's password is not available")
        else:
            new = await self._measure(self.accounts.account("new"), quota_only=True)
        facts = LetterFacts(old, new)
        await self.store.set_setting(SETTING, facts.to_json())
        return facts

    async def _measure(self, account: Account, *, quota_only: bool) -> MailboxFacts:
        try:
            return await self.blocking.run(measure, account, timeout=30, quota_only=quota_only)
        except SwitchoverError as e:
            return unmeasured(account, e.message)

    async def last_facts(self) -> LetterFacts | None:
        data = await self.store.get_setting(SETTING)
        try:
            return LetterFacts.from_json(data) if data else None
        except (KeyError, TypeError, ValueError):
            return None

    # -- the letter -----------------------------------------------------------------------
    async def compose(self, lang: str = "zh", *, to: str = "", facts: LetterFacts | None = None,
                      today: dt.date | None = None) -> Draft:
        """The letter in ``lang`` from ``facts`` (else the last measurement, else a new one)."""
        if lang not in LANGS:
            raise SwitchoverError(f"There is no letter in '{lang}'; use zh or en.", exit_code=2)
        if facts is None:
            facts = await self.last_facts() or await self.measure()
        return render(self.config, facts, lang, to=to, today=today or dt.date.today())

    def default_path(self, lang: str) -> Path:
        return self.config.path.resolve().parent / f"change-request.{lang}.md"

    async def write(self, draft: Draft, path: Path | None = None) -> Path:
        """Write the letter (UTF-8 Markdown) and prove the checklist's "request" item."""
        target = Path(os.path.expanduser(str(path))) if path else self.default_path(draft.lang)
        try:
            await self.blocking.run(_write_text, target, draft.markdown)
        except OSError as e:
            raise SwitchoverError(f"Cannot write the letter to {target}: {e.strerror}.", exit_code=2) from None
        missing = f", {len(draft.gaps)} facts shown as placeholders" if draft.gaps else ""
        self.bus.publish(Proven("request", True, f"letter ({draft.lang}) written to {target} "
                                                 f"{dt.datetime.now():%Y-%m-%d %H:%M}{missing}"))
        return target


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- wording ----------------------------------------------------------------------------

def _n(value: int, lang: str) -> str:
    return f"{value:,}"


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _duration(seconds: float, lang: str) -> str:
    minutes = round(seconds / 60)
    if minutes < 2:
        return "不到 2 分钟" if lang == "zh" else "under two minutes"
    if minutes < 90:
        return f"约 {minutes} 分钟" if lang == "zh" else f"about {minutes} minutes"
    hours = minutes / 60
    return f"约 {hours:.1f} 小时" if lang == "zh" else f"about {hours:.1f} hours"


def _folder_names(facts: MailboxFacts, most: int = 5) -> list[str]:
    """The folders worth naming: INBOX first, then the fullest; empty ones left out."""
    held = sorted((f for f in facts.folders if f.messages),
                  key=lambda f: (f.name != "INBOX", -f.messages))
    return [f.name for f in held][:most]


def _label(provider: str) -> str:
    p = PROVIDERS.get(provider)
    return p.label if p and provider != "custom" else ""


def render(config: Config, facts: LetterFacts, lang: str, *, to: str = "",
           today: dt.date) -> Draft:
    """The letter's Markdown (pure: facts and config in, text out)."""
    w = WORDS[lang]
    gaps: list[str] = []
    old, new = facts.old, facts.new
    cap = plan.capacity(old, today)
    copy = plan.copy_plan(old, config.old, config.new)

    def gap(text: str, why: str) -> str:
        gaps.append(f"the letter says '{text}': {why}")
        return text

    if old.quota:
        used, limit, share = fmt_bytes(old.quota.used), fmt_bytes(old.quota.limit), _pct(old.quota.share)
    else:
        code = old.quota_gap or "login"
        limit = gap(QUOTA_GAPS[lang][code], old.gaps[0] if code == "login" and old.gaps
                    else QUOTA_WHY.get(code, code).format(host=old.host))
        used = fmt_bytes(old.size) if old.size is not None else gap(w["unknown"], "the old mailbox's size was not measured")
        share = ""
    if not old.folders:
        messages = gap(w["unknown"], "the old mailbox's messages were not counted"
                       + (f" ({old.gaps[0]})" if old.gaps else " (no login)"))
    else:
        messages = _n(old.messages, lang)
        for why in old.gaps:     # a folder that could not be read: its mail is not in the numbers
            gaps.append(f"the numbers leave something out: {why}")
    new_room = fmt_bytes(new.quota.limit - new.quota.used) if new.quota else ""
    # the current year only once something arrived in it (early January shows nothing)
    years = [(y, _n(n, lang)) for y, n in old.per_year if n or y < today.year][-4:]
    steps = [_step(s, lang) for s in plan.timeline(config, copy)]
    for key in dict.fromkeys(s.missing for s in plan.timeline(config, copy) if s.missing):
        gap(w["no_date"].format(key=key), f"set {key} in the config for the timeline's dates")
    ctx = {
        "to": to or w["to"], "name": config.identity.name, "company": config.identity.company,
        "old": config.identity.old_address, "new": config.identity.new_address,
        "old_provider": _label(config.old.provider) or old.host,
        "new_provider": _label(config.new.provider) or config.new.imap.host,
        "date": format_date(today, lang),
        "since": str(old.per_year[0][0]) if old.per_year else "",
        "used": used, "limit": limit, "share": share,
        "share_high": bool(old.quota and old.quota.share >= 0.8),
        "messages": messages, "folders": copy.folders,
        "folder_names": _folder_names(old),
        "years": years,
        "growth": f"{abs(cap.growth) * 100:.0f}%" if cap.growth is not None else "",
        "growth_up": cap.growth is None or cap.growth >= 0,
        "last_year": cap.last_year[0] if cap.last_year else "",
        "months_left": f"{cap.months_left:.0f}" if cap.months_left is not None and cap.months_left < 120 else "",
        "this_year": (cap.this_year[0], _n(cap.this_year[1], lang)) if cap.this_year else None,
        "new_room": new_room,
        "old_tls": old.tls, "new_tls": config.new.imap.security != "none",
        "old_oauth": config.old.uses_oauth2,
        "max_message": fmt_bytes(config.new.max_message_bytes) if config.new.max_message_bytes else "",
        "copy_time": _duration(copy.seconds, lang) if copy.seconds is not None else "",
        "cap": fmt_bytes(copy.cap_bytes) if copy.cap_bytes else "",
        "cap_kind": copy.cap_side, "cap_provider": _label(copy.cap_provider) or copy.cap_provider,
        "cap_days": copy.days or "",
        "watch_days": plan.watch_days(config), "min_watch": plan.MIN_WATCH_DAYS,
        "steps": steps, "prefix_better": _prefix_better(config),
    }
    text = re.sub(r"\n{3,}", "\n\n", _env().get_template(f"letter.{lang}.md.j2").render(**ctx))
    return Draft(lang=lang, markdown=text, facts=facts, gaps=tuple(gaps))


def _prefix_better(config: Config) -> bool:
    """The new address is on a company domain or a name-like local part, where the old
    one was digits on a free provider (the seed's "company12345@service.com")."""
    old_local = config.identity.old_address.split("@")[0]
    return sum(c.isdigit() for c in old_local) >= 3


def _step(step: plan.Step, lang: str) -> tuple[str, str]:
    w = WORDS[lang]
    if step.what == "setup":
        return w["after_approval"], step.what
    if step.when is None:
        return w["no_date"].format(key=step.missing), step.what
    when = format_date(step.when, lang)
    sep = " 至 " if lang == "zh" else " – "
    if step.until:
        when += sep + format_date(step.until, lang)
    elif step.missing:
        when += sep + w["no_date"].format(key=step.missing)
    return when, step.what
