"""The checklist's "every arrival handled" proof comes from the arrivals' owner: it is
open while a person's mail waits, done once every one is handled; spam never blocks it."""

from __future__ import annotations

from tests.support.arrivals import add_arrival, message


async def test_the_arrivals_proof_follows_what_is_handled(make_engine, mailserver, old_user, new_user) -> None:
    eng = await make_engine(old_user, new_user)
    assert await eng.arrivals.tally("old") == (0, 0)
    first = await add_arrival(eng, mailserver, old_user, message(old_user.address))
    second = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="Order 18"))
    assert await eng.arrivals.tally("old") == (2, 2)

    proofs = {p.key: p for p in await eng.checklist.refresh_evidence()}
    assert proofs["arrivals"].ok is False
    assert proofs["arrivals"].evidence.startswith("2 of 2 arrivals not handled")
    assert (await eng.checklist.item("arrivals")).state == "open"

    await eng.arrivals.mark_handled(first)
    await eng.arrivals.mark_handled(second)
    proofs = {p.key: p for p in await eng.checklist.refresh_evidence()}
    assert proofs["arrivals"].ok is True
    item = await eng.checklist.item("arrivals")
    assert item.state == "done" and item.by == "engine"
    assert item.evidence.startswith("all 2 arrivals handled")
