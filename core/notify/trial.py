"""The test notice: one per language in use, to the user's own old and new addresses,
sent exactly as a campaign sends (recorded first, campaign ``test-<stamp>-<lang>``), and
how long each took to show in that INBOX — "test first", before anyone else gets it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from dataclasses import dataclass, replace

from ..config import Config
from ..context import Accounts, Blocking
from ..mail.compose import new_message_id
from ..people.audience import Recipient
from . import sentbox
from .campaign import Composer, Postman, render
from .ledger import NoticeLedger


@dataclass(frozen=True)
class TestResult:
    language: str
    side: str                   # "old" | "new"
    address: str
    state: str                  # sent | doubt | failed | bounced | retry
    seconds: float | None       # until it showed in that INBOX; None = not within the timeout
    detail: str = ""

    @property
    def arrived(self) -> bool:
        return self.seconds is not None


async def run_tests(ledger: NoticeLedger, postman: Postman, composer: Composer, accounts: Accounts,
                    blocking: Blocking, config: Config, languages: list[str],
                    timeout: float) -> list[TestResult]:
    # one campaign name per run: two tests within one second must not meet in the ledger
    # (the second would find the first's rows already sent and send nothing)
    stamp = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
    sent: list[tuple[TestResult, float, str]] = []
    async with postman.connection():
        await _send_tests(ledger, postman, composer, config, languages, stamp, sent)
    return await _arrivals(accounts, blocking, sent, timeout)


async def _send_tests(ledger: NoticeLedger, postman: Postman, composer: Composer, config: Config,
                      languages: list[str], stamp: str, sent: list[tuple[TestResult, float, str]]) -> None:
    ident = config.identity
    for lang in languages:
        for side, address in (("old", ident.old_address), ("new", ident.new_address)):
            campaign = f"test-{stamp}-{lang}"
            me = Recipient(address.lower(), ident.name, "own", lang, ident.company)
            await ledger.enqueue(campaign, [me], [new_message_id(ident.new_address)])
            row = await ledger.find(campaign, address)
            if row is None:
                continue
            with postman.holding(row.id):
                claimed = await ledger.claim(row.id)
                if claimed is None:
                    continue
                raw = render(composer, claimed, dt.datetime.now().astimezone())
                state = await postman.deliver(claimed, raw, copy=False)
            reply = (await ledger.get(claimed.id)).reply
            sent.append((TestResult(lang, side, address, state, None, reply), time.monotonic(),
                         claimed.message_id))


async def _arrivals(accounts: Accounts, blocking: Blocking, sent: list[tuple[TestResult, float, str]],
                    timeout: float) -> list[TestResult]:
    """Poll both INBOXes for the test notices' Message-IDs until all show or time is up."""
    out: dict[int, TestResult] = {}
    end = time.monotonic() + timeout
    while True:
        for side in ("old", "new"):
            waiting = {i: s for i, s in enumerate(sent)
                       if i not in out and s[0].side == side and s[0].state == "sent"}
            if not waiting:
                continue
            found = await blocking.run(sentbox.in_inbox, accounts.account(side),
                                       [mid for _, _, mid in waiting.values()])
            for i, (res, t0, mid) in waiting.items():
                if mid in found:
                    out[i] = replace(res, seconds=round(time.monotonic() - t0, 1))
        pending = [i for i, s in enumerate(sent) if i not in out and s[0].state == "sent"]
        if not pending or time.monotonic() >= end:
            break
        await asyncio.sleep(0.5)
    return [out.get(i, res) for i, (res, _, _) in enumerate(sent)]
