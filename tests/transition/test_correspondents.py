"""core/transition/people.py and history.py: the history scan of a small real mailbox with a Sent folder,
incremental re-scan, list / get / stats, switched and notified marks."""

from __future__ import annotations

import time
from typing import Any

from switchover.core.engine import Engine
from switchover.core.events import JobProgress
from tests.support.arrivals import make_mail


async def test_scan_history(engine: Engine, mailserver: Any, old_user: Any, new_user: Any) -> None:
    old = old_user.address
    for raw in (make_mail("Alice Buyer <Alice@Customer.com>", old, "Quote please"),
                make_mail("alice@customer.com", old, "Re: Quote please"),
                make_mail("Bob <bob@other.com>", old, "RE: PI-2291",
                          "Hola, gracias por su pedido. Le enviamos el pago mañana. Saludos"),
                make_mail("noreply@platform.com", old, "Your receipt"),
                make_mail("digest@list.org", old, "digest", extra="List-Id: <l.list.org>\r\n"),
                make_mail("junk@spam.biz", old, "win", extra="X-Spam-Flag: YES\r\n")):
        mailserver.append(old_user, "INBOX", raw)
    mailserver.append(old_user, "Clients/Mexico", make_mail("Juan <juan@mx.com>", old, "Pedido"))
    mailserver.append(old_user, "Junk", make_mail("spammer@bad.biz", old, "junk folder"))
    mailserver.append(old_user, "Drafts", make_mail(old, "draft@nowhere.com", "draft"))
    for raw in (make_mail(f"Ada <{old}>", "Alice <alice@customer.com>", "Quote attached"),
                make_mail(old, "carol@partner.com", "Quotation", "您好，报价单请查收，有问题请随时联系我。",
                          extra=f"Cc: {new_user.address}, Dave <dave@partner.com>\r\n")):
        mailserver.append(old_user, "Sent", raw)

    progress: list[JobProgress] = []
    engine.subscribe(lambda ev: progress.append(ev) if isinstance(ev, JobProgress) else None)
    c = engine.correspondents
    assert await c.scan_history() == 9   # INBOX 6, Clients/Mexico 1, Sent 2
    assert progress[-1].state == "done" and progress[-1].done_messages == 9 and progress[-1].job == "scan"

    alice = await c.get("ALICE@customer.com")
    assert alice is not None
    # answered both ways but filed nowhere: other business (no longer "customer")
    assert (alice.messages_from, alice.messages_to, alice.customer, alice.automated) == (2, 1, False, False)
    assert alice.group == "business"
    assert alice.name == "Alice Buyer" or alice.name == "Alice"
    assert alice.first_seen is not None and alice.last_seen is not None
    bob = await c.get("bob@other.com")
    assert (bob.messages_from, bob.messages_to, bob.customer, bob.language) == (1, 0, False, "es")
    carol = await c.get("carol@partner.com")
    assert (carol.messages_from, carol.messages_to, carol.language) == (0, 1, "zh")
    assert (await c.get("dave@partner.com")).name == "Dave"
    juan = await c.get("juan@mx.com")
    assert (juan.messages_from, juan.group, juan.customer) == (1, "customer", True)
    assert juan.evidence.startswith("in folder Clients/Mexico")
    assert (await c.get("noreply@platform.com")).automated
    assert (await c.get("digest@list.org")).automated
    # never: our own addresses, spam, the Junk folder, drafts
    for addr in (old, new_user.address, "junk@spam.biz", "spammer@bad.biz", "draft@nowhere.com"):
        assert await c.get(addr) is None, addr

    # incremental: only what is new is read, counts add up
    mailserver.append(old_user, "INBOX", make_mail("alice@customer.com", old, "third"))
    assert await c.scan_history() == 1
    assert (await c.get("alice@customer.com")).messages_from == 3
    assert await c.scan_history() == 0

    customers = await c.list(filter="customers")
    assert [x.address for x in customers] == ["juan@mx.com"]
    assert {x.address for x in await c.list(filter="automated")} == {"noreply@platform.com", "digest@list.org"}
    assert [x.address for x in await c.list(filter="partner", order="address")] == \
        ["carol@partner.com", "dave@partner.com"]
    assert len(await c.list(limit=2)) == 2
    assert [x.address for x in await c.list(order="messages", limit=1)] == ["alice@customer.com"]

    await c.mark_switched("Bob@Other.com", time.time() - 100)
    await c.mark_switched("bob@other.com", time.time())       # the earliest time is kept
    bob = await c.get("bob@other.com")
    assert bob.switched is not None and bob.switched < time.time() - 50
    await c.mark_notified("carol@partner.com")
    await c.mark_switched(old)                                  # own address: ignored
    assert await c.get(old) is None

    stats = await c.stats()
    assert stats["total"] == 5 and stats["customers"] == 1 and stats["automated"] == 2
    assert stats["switched"] == 1 and stats["notified"] == 1
    assert stats["days_since_business_mail"] == 0
    assert [x.address for x in await c.list(filter="switched")] == ["bob@other.com"]
