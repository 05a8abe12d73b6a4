"""core/transition/watch.py against a real IMAP server: IDLE latency, polling, catch-up after a
dropped connection and after a restart, UIDVALIDITY change, badges of real arrivals,
the new INBOX teaching who switched, body text decoding, and never setting \\Seen."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from switchover.core.config import load_config
from switchover.core.engine import Engine
from switchover.core.events import ConnectionState
from tests.support.arrivals import Events, make_mail
from tests.support.proxy import Proxy


async def start(engine: Engine, events: Events) -> tuple[asyncio.Task, asyncio.Event]:
    """Run the monitor and wait until both sides are connected and baselined."""
    stop = asyncio.Event()
    task = asyncio.create_task(engine.monitor.run(stop))

    async def ready() -> bool:
        return (await engine.store.get_setting("monitor.mark.old.INBOX") is not None
                and await engine.store.get_setting("monitor.mark.new.INBOX") is not None)
    end = time.monotonic() + 10
    while not await ready():
        assert time.monotonic() < end, "monitor never baselined"
        await asyncio.sleep(0.05)
    await events.wait(lambda: engine.connection_state.get("old") == "connected")
    await asyncio.sleep(0.3)   # let the watchers enter IDLE
    return task, stop


async def finish(task: asyncio.Task, stop: asyncio.Event) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)


def deliver(server: Any, user: Any, raw: bytes) -> None:
    server.deliver(user, raw)


async def test_idle_arrival_within_a_second(engine: Engine, mailserver: Any, old_user: Any) -> None:
    events = Events(engine)
    task, stop = await start(engine, events)
    try:
        for i in range(2):
            raw = make_mail(f"alice{i}@customer.com", old_user.address, f"Order {i}")
            await asyncio.to_thread(deliver, mailserver, old_user, raw)
            t0 = time.monotonic()
            await events.wait(lambda: len(events.arrivals()) == i + 1, timeout=5)
            latency = time.monotonic() - t0
            assert latency < 1.0, f"arrival took {latency:.2f} s"
        feed = await engine.monitor.arrivals()
        assert [a.subject for a in feed] == ["Order 1", "Order 0"]
        assert feed[0].sender == "alice1@customer.com" and feed[0].badge == "new sender"
        ev = events.arrivals()[0]
        assert (ev.sender, ev.subject, ev.badge) == ("alice0@customer.com", "Order 0", "new sender")
    finally:
        await finish(task, stop)
    # nothing was marked \Seen
    c = mailserver.client(old_user)
    try:
        c.select_folder("INBOX", readonly=True)
        flags = c.get_flags(c.search(["ALL"]))
        assert all(b"\\Seen" not in f for f in flags.values())
    finally:
        c.logout()


async def test_idle_survives_responses_arriving_in_pieces(make_engine: Any, mailserver: Any,
                                                          old_user: Any, new_user: Any) -> None:
    """Over a slow link (or from pymap) an untagged response arrives in pieces while the
    monitor idles; it must wait for the whole line instead of losing sync and reconnecting."""
    with Proxy(mailserver.host, mailserver.imap_port, fragment=3) as proxy:
        engine = await make_engine(old_user, new_user,
                                   old={"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}})
        events = Events(engine)
        task, stop = await start(engine, events)
        try:
            await events.wait(lambda: engine.connection_state["old"] == "connected")
            for i in range(3):
                await asyncio.to_thread(deliver, mailserver, old_user,
                                        make_mail(f"p{i}@customer.com", old_user.address, f"Piece {i}"))
                await events.wait(lambda: len(events.arrivals()) == i + 1, timeout=10)
            states = [e.state for _, e in events.items
                      if isinstance(e, ConnectionState) and e.side == "old"]
            assert "reconnecting" not in states, states
        finally:
            await finish(task, stop)



async def test_polling_mode(engine: Engine, mailserver: Any, old_user: Any) -> None:
    engine.monitor.use_idle = False
    engine.monitor.poll_seconds = 0.3
    events = Events(engine)
    task, stop = await start(engine, events)
    try:
        await asyncio.to_thread(deliver, mailserver, old_user,
                                make_mail("bob@customer.com", old_user.address, "Polled"))
        await events.wait(lambda: len(events.arrivals()) == 1, timeout=5)
        assert events.arrivals()[0].subject == "Polled"
    finally:
        await finish(task, stop)


async def test_catch_up_after_dropped_connection(make_engine: Any, mailserver: Any, old_user: Any,
                                                 new_user: Any) -> None:
    with Proxy(mailserver.host, mailserver.imap_port) as proxy:
        engine = await make_engine(old_user, new_user,
                                   old={"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}})
        engine.monitor.backoff_cap = 1.0
        events = Events(engine)
        task, stop = await start(engine, events)
        try:
            await asyncio.to_thread(deliver, mailserver, old_user,
                                    make_mail("a@c.com", old_user.address, "before"))
            await events.wait(lambda: len(events.arrivals()) == 1)
            proxy.refuse = True           # the network is gone for a moment
            assert proxy.drop_all() >= 1
            for s in ("during 1", "during 2"):
                await asyncio.to_thread(deliver, mailserver, old_user,
                                        make_mail("a@c.com", old_user.address, s))
            await events.wait(lambda: engine.connection_state["old"] == "reconnecting")
            await asyncio.sleep(0.5)
            proxy.refuse = False
            await events.wait(lambda: len(events.arrivals()) == 3, timeout=15)
            await events.wait(lambda: engine.connection_state["old"] == "connected")
            await asyncio.to_thread(deliver, mailserver, old_user,
                                    make_mail("a@c.com", old_user.address, "after"))
            await events.wait(lambda: len(events.arrivals()) == 4)
        finally:
            await finish(task, stop)
        subjects = [a.subject for a in await engine.monitor.arrivals()]
        assert sorted(subjects) == ["after", "before", "during 1", "during 2"]
        states = [e.state for _, e in events.items if isinstance(e, ConnectionState) and e.side == "old"]
        assert "reconnecting" in states and states[-1] == "offline"



async def test_catch_up_after_restart(config_path: Any, mailserver: Any, old_user: Any) -> None:
    engine = await Engine.open(load_config(config_path))
    try:
        # years of history do not flood the feed: the first start baselines
        await asyncio.to_thread(deliver, mailserver, old_user, make_mail("old@history.com", old_user.address, "ancient"))
        assert await engine.monitor.catch_up() == 0
        await asyncio.to_thread(deliver, mailserver, old_user, make_mail("a@c.com", old_user.address, "one"))
        assert await engine.monitor.catch_up() == 1
    finally:
        await engine.close()
    for i in range(3):
        await asyncio.to_thread(deliver, mailserver, old_user,
                                make_mail("a@c.com", old_user.address, f"while closed {i}"))
    engine = await Engine.open(load_config(config_path))
    try:
        assert await engine.monitor.catch_up() == 3
        assert await engine.monitor.catch_up() == 0
        feed = await engine.monitor.arrivals()
        assert [a.subject for a in feed] == ["while closed 2", "while closed 1", "while closed 0", "one"]
        counts = await engine.monitor.counts()
        assert counts["total"] == 4 and counts["unhandled"] == 4 and counts["today"] == 4
        await engine.monitor.mark_handled(feed[0].id)
        assert (await engine.monitor.arrival(feed[0].id)).state == "handled"
        assert (await engine.monitor.counts())["unhandled"] == 3
        assert len(await engine.monitor.arrivals(state="new")) == 3
        assert [a.subject for a in await engine.monitor.arrivals(offset=1, limit=2)] == \
            ["while closed 1", "while closed 0"]
    finally:
        await engine.close()


async def test_uidvalidity_change_rebaselines_without_repeats(engine: Engine, mailserver: Any,
                                                              old_user: Any) -> None:
    assert await engine.monitor.catch_up() == 0
    await asyncio.to_thread(deliver, mailserver, old_user, make_mail("a@c.com", old_user.address, "A"))
    assert await engine.monitor.catch_up() == 1
    mark = await engine.store.get_setting("monitor.mark.old.INBOX")
    await engine.store.set_setting("monitor.mark.old.INBOX", {**mark, "uidvalidity": 1, "checked": time.time() - 60})
    await asyncio.to_thread(deliver, mailserver, old_user, make_mail("a@c.com", old_user.address, "B"))
    assert await engine.monitor.catch_up() == 1
    assert [a.subject for a in await engine.monitor.arrivals()] == ["B", "A"]
    assert await engine.monitor.catch_up() == 0


async def test_badges_of_real_arrivals_and_switched(engine: Engine, mailserver: Any, old_user: Any,
                                                    new_user: Any) -> None:
    old, new = old_user.address, new_user.address
    assert await engine.monitor.catch_up() == 0
    await engine.store.execute("INSERT INTO correspondents(address, messages_from, messages_to, customer) "
                               "VALUES('known@customer.com', 5, 3, 1)")
    # moved@customer.com writes to the NEW address: learned from the new INBOX
    await asyncio.to_thread(deliver, mailserver, new_user, make_mail("Moved <moved@customer.com>", new, "hi new"))
    # an old mail migrated into the new INBOX does not count as switching
    mailserver.append(new_user, "INBOX", make_mail("stale@customer.com", old, "migrated"))
    cases = {
        "list": make_mail("news@shop.com", old, "list", extra="List-Id: <weekly.shop.com>\r\n"),
        "ooo": make_mail("bob@x.com", old, "away", extra="Auto-Submitted: auto-replied\r\n"),
        "dsn": make_mail("MAILER-DAEMON@mx.example.com", old, "Undelivered Mail Returned to Sender",
                         ctype="multipart/report; report-type=delivery-status; boundary=\"q\""),
        "noreply": make_mail("noreply@service.com", old, "receipt"),
        "spam": make_mail("win@lottery.biz", old, "you won", extra="X-Spam-Flag: YES\r\n"),
        "known": make_mail("Known Person <known@customer.com>", old, "known"),
        "new": make_mail("first@time.com", old, "new"),
        "moved": make_mail("moved@customer.com", old, "moved"),
        "stale": make_mail("stale@customer.com", old, "stale"),
    }
    for raw in cases.values():
        await asyncio.to_thread(deliver, mailserver, old_user, raw)
    assert await engine.monitor.catch_up() == len(cases)
    got = {a.subject: a.badge for a in await engine.monitor.arrivals()}
    assert got == {"list": "automated", "away": "automated", "Undelivered Mail Returned to Sender": "bounce",
                   "receipt": "automated", "you won": "spam", "known": "customer", "new": "new sender",
                   "moved": "switched", "stale": "new sender"}
    # new-side arrivals are stored, but not in the old feed
    assert [a.subject for a in await engine.monitor.arrivals(side="new")] == ["migrated", "hi new"]
    moved = await engine.correspondents.get("moved@customer.com")
    assert moved is not None and moved.switched is not None
    assert (await engine.correspondents.get("stale@customer.com")).switched is None
    assert (await engine.monitor.counts())["switched"] == 1


async def test_new_inbox_history_teaches_switched(engine: Engine, mailserver: Any, new_user: Any) -> None:
    # mail that reached the new address before switchover first looked at it
    mailserver.append(new_user, "INBOX", make_mail("early@customer.com", new_user.address, "early"))
    assert await engine.monitor.catch_up() == 0
    assert (await engine.correspondents.get("early@customer.com")).switched is not None
    assert await engine.monitor.arrivals(side="new") == []


async def test_body_text_chinese(engine: Engine, mailserver: Any, old_user: Any) -> None:
    assert await engine.monitor.catch_up() == 0
    subject = "=?GBK?B?" + base64.b64encode("关于报价单的问题".encode("gbk")).decode() + "?="
    body = "王经理您好：\n附件是新的报价单，请查收。\n谢谢！"
    await asyncio.to_thread(deliver, mailserver, old_user,
                            make_mail("=?GB2312?B?" + base64.b64encode("张三".encode("gb2312")).decode()
                                      + "?= <zhang@customer.cn>", old_user.address, subject, body, charset="GBK"))
    assert await engine.monitor.catch_up() == 1
    (a,) = await engine.monitor.arrivals()
    assert a.subject == "关于报价单的问题" and a.sender_name == "张三" and a.language == "zh"
    assert a.preview.startswith("王经理您好：")
    text = await engine.monitor.body_text(a.id)
    assert text == body
    assert await engine.monitor.body_text(a.id) == body   # cached
    c = mailserver.client(old_user)
    try:
        c.select_folder("INBOX", readonly=True)
        assert all(b"\\Seen" not in f for f in c.get_flags(c.search(["ALL"])).values())
    finally:
        c.logout()


async def test_watch_folders_and_message_id_dedupe(make_engine: Any, mailserver: Any, old_user: Any,
                                                   new_user: Any) -> None:
    mailserver.append(old_user, "Orders", make_mail("x@y.com", old_user.address, "seed"))
    engine = await make_engine(old_user, new_user, transition={"watch_folders": ["INBOX", "Orders"]})
    assert await engine.monitor.catch_up() == 0
    raw = make_mail("buyer@y.com", old_user.address, "PO 42")
    mailserver.append(old_user, "Orders", raw)
    mailserver.append(old_user, "INBOX", raw)    # the same message twice (a filter copy)
    assert await engine.monitor.catch_up() == 1
    (a,) = await engine.monitor.arrivals()
    assert a.subject == "PO 42"


async def test_idle_restarts_and_dead_connection_detected(make_engine: Any, mailserver: Any, old_user: Any,
                                                          new_user: Any) -> None:
    """IDLE is re-issued on schedule; a connection that goes silent (no FIN, no data) is
    noticed by the socket timeout when IDLE ends, and the watch reconnects and catches up."""
    with Proxy(mailserver.host, mailserver.imap_port) as proxy:
        engine = await make_engine(old_user, new_user,
                                   old={"imap": {"host": proxy.host, "port": proxy.port, "security": "none"}})
        m = engine.monitor
        m.idle_restart, m.socket_timeout, m.backoff_cap = 0.4, 2.0, 0.5
        events = Events(engine)
        task, stop = await start(engine, events)
        try:
            await asyncio.sleep(1.0)      # a few IDLE restarts
            await events.wait(lambda: engine.connection_state["old"] == "connected")
            proxy.delay = 30.0            # the line goes silent
            await asyncio.to_thread(deliver, mailserver, old_user, make_mail("a@c.com", old_user.address, "x"))
            await events.wait(lambda: engine.connection_state["old"] == "reconnecting", timeout=10)
            proxy.delay = 0.0
            proxy.drop_all()              # the stuck pipes hold delayed bytes; start clean
            await events.wait(lambda: len(events.arrivals()) == 1, timeout=15)
        finally:
            await finish(task, stop)



async def test_auth_failure_then_password_typed(make_engine: Any, mailserver: Any, old_user: Any,
                                                new_user: Any) -> None:
    engine = await make_engine(old_user, new_user, old={"password": "wrong"})
    events = Events(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.monitor.run(stop))
    try:
        await events.wait(lambda: engine.connection_state["old"] == "auth failed")
        details = [e.detail for _, e in events.items if isinstance(e, ConnectionState) and e.side == "old"]
        assert "wrong" not in " ".join(details)   # no secret in events
        engine.set_secret("old", old_user.password)
        engine.monitor.reconnect_now()
        await events.wait(lambda: engine.connection_state["old"] == "connected", timeout=5)
    finally:
        await finish(task, stop)
