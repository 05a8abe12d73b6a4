"""The checklist's login proofs (core/checklist.py) against Dovecot: a login the person
did not ask for (the dashboard's, with a mistyped password) never takes back a proof an
explicit check recorded; an explicit check that fails does; ``recheck`` says what it
found, item by item."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)


async def test_an_unasked_failed_login_keeps_the_proof_an_explicit_one_takes_it(engine: Any) -> None:
    checklist = engine.checklist
    await checklist.check_logins()
    proved = await checklist.item("login_old")
    assert proved.state == "done" and proved.by == "engine"

    engine.set_secret("old", "a typo")
    await checklist.check_logins(explicit=False)
    kept = await checklist.item("login_old")
    assert kept.state == "done" and kept.by == "engine"
    assert kept.evidence.startswith(proved.evidence.split(" · ")[0])
    assert "last attempt" in kept.evidence and "failed" in kept.evidence
    await checklist.check_logins(explicit=False)                # noted once, not piled up
    assert (await checklist.item("login_old")).evidence.count("last attempt") == 1
    with pytest.raises(Exception):
        await checklist.tick("login_old", False)                # still not untickable by hand

    found = {p.key: p for p in await checklist.recheck()}       # the person asks: it fails
    assert found["login_old"].ok is False and found["login_new"].ok is True
    lost = await checklist.item("login_old")
    assert lost.state == "open" and lost.by is None
    assert "last attempt" not in lost.evidence

    engine.set_secret("old", engine.config.account("old").secret())
    found = {p.key: p for p in await checklist.recheck()}
    assert found["login_old"].ok and (await checklist.item("login_old")).state == "done"
