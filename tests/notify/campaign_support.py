"""Shared pieces of the campaign tests (tests/notify/test_campaign*.py, test_bounces.py,
test_pacing.py): a stand-in for the people's owner (``audience`` / ``get`` exactly as
core/notify/notices.People names them, fed by the test), a simulated clock, and the
helpers that read what the SMTP server took.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from email.message import EmailMessage
from typing import Any

from switchover.core.people.audience import Recipient

ROOT = Path(__file__).resolve().parents[2]
#: the transition dates the campaign tests use (the final reminder opens 14 days before)
TRANSITION = {"start": "2020-01-01", "close_date": "2099-12-31"}


@dataclass
class Person:
    """What the campaign reads of one person (core/transition/people.Correspondent)."""
    address: str
    switched: float | None = None
    last_old_arrival: float | None = None


class StandIn:
    """The people's owner as the campaign sees it: who each campaign speaks to."""

    def __init__(self, **campaigns: list[Recipient]) -> None:
        self.campaigns = campaigns
        self.people: dict[str, Person] = {}

    async def audience(self, campaign: str, *, group: str | None = None) -> list[Recipient]:
        return [p for p in self.campaigns.get(campaign, []) if group is None or p.group == group]

    async def get(self, address: str) -> Any:
        return self.people.get(address)


def person(address: str, language: str = "en", group: str = "customer", name: str = "") -> Recipient:
    return Recipient(address.lower(), name or address.split("@")[0].title(), group, language, "")


class SimClock:
    """Time that moves only when the campaign sleeps: a day of pacing in milliseconds."""

    def __init__(self, on_sleep: Any = None) -> None:
        self.now = time.time()
        self.slept: list[float] = []
        #: called with the seconds of each sleep (a test changes the server meanwhile)
        self.on_sleep = on_sleep

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        await asyncio.sleep(0)


def parsed(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def sent_to(smtp_server: Any, address: str) -> list[bytes]:
    return [raw for _f, rcpts, raw in list(smtp_server.messages) if rcpts == [address]]


async def engine_with(make_engine, old_user, new_user, smtp_server, people: StandIn, clock: SimClock | None = None,
                      transition: dict[str, Any] | None = None, **notices: Any) -> Any:
    """An engine whose campaign speaks to ``people`` on a simulated clock."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=transition or TRANSITION,
                            notices={"per_hour": 36000, "per_day": 100000, **notices})
    eng.notices.people = people
    clock = clock or SimClock()
    eng.notices.clock, eng.notices.sleep = clock.time, clock.sleep
    return eng


STAND_IN = """
import json, sys
from switchover.core.people.audience import Recipient
from switchover.core.transition import people
data = json.load(open(sys.argv[1]))
async def audience(self, campaign, *, group=None):
    return [Recipient(**d) for d in data.get(campaign, []) if group is None or d["group"] == group]
people.Correspondents.audience = audience
from switchover.cli import main
sys.exit(main(sys.argv[2:]))
"""


def notify_cli(tmp_path: Path, cfg: Path, people: StandIn, *argv: str) -> subprocess.Popen[str]:
    """``switchover notify ...`` in a real process whose people are the stand-in's."""
    data = tmp_path / "people.json"
    data.write_text(json.dumps({c: [asdict(p) for p in ps] for c, ps in people.campaigns.items()}))
    env = {k: v for k, v in os.environ.items() if k != "SWITCHOVER_CONFIG"}
    return subprocess.Popen([sys.executable, "-c", STAND_IN, str(data), "--config", str(cfg), "notify", *argv],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
