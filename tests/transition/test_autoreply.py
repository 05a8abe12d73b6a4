"""core/autoreply.py: the ManageSieve round trip on Dovecot/Pigeonhole, a real vacation
reply after a real LMTP delivery, and the 'no ManageSieve' answer."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import replace

import pytest

from switchover.core.config import Config, Endpoint
from switchover.core.context import Accounts
from switchover.core.events import Proven
from switchover.core.net.sieve import ManageSieve
from switchover.core.transition.autoreply import SCRIPT_NAME, AutoReply, build_script
from tests.support.servers import free_port

USER_SCRIPT = ('require ["fileinto"];\n'
               'if header :contains "subject" "invoice" { fileinto "Archive"; }\n')


def sieve(mailserver, user) -> ManageSieve:
    c = ManageSieve(mailserver.host, mailserver.sieve_port, security="none")
    c.connect()
    c.authenticate(user.username, user.password)
    return c


@pytest.fixture
async def eng(make_engine, mailserver, old_user, new_user, smtp_server):
    mailserver.require("sieve", "lmtp")
    return await make_engine(old_user, new_user, smtp=smtp_server, identity={"language": "zh"},
                             transition={"close_date": "2099-12-31"},
                             old={"sieve": {"host": mailserver.host, "port": mailserver.sieve_port,
                                            "security": "none"}})


async def test_sieve_round_trip_keeps_user_script(eng, mailserver, old_user, new_user, smtp_server):
    c = sieve(mailserver, old_user)
    assert "vacation" in c.extensions
    c.putscript("mine", USER_SCRIPT)
    c.setactive("mine")
    c.logout()

    proofs: list[Proven] = []
    eng.subscribe(lambda ev: proofs.append(ev) if isinstance(ev, Proven) else None)
    st = await eng.autoreply.status()
    assert st.supported and not st.active and "mine" in st.detail
    st = await eng.autoreply.enable(days=1)
    assert st.supported and st.active and st.script_name == SCRIPT_NAME
    # what the server said is the checklist's evidence, as an event (no call to the checklist)
    assert [(p.item, p.ok) for p in proofs] == [("autoreply", False), ("autoreply", True)]
    assert f"Sieve script '{SCRIPT_NAME}' active" in proofs[-1].evidence
    st = await eng.autoreply.enable(days=2)          # again: still remembers "mine"
    assert st.active
    c = sieve(mailserver, old_user)
    assert dict(c.listscripts()) == {"mine": False, SCRIPT_NAME: True}
    ours = c.getscript(SCRIPT_NAME)
    assert 'include :personal "mine";' in ours and ":days 2" in ours and "2099-12-31" in ours
    assert c.getscript("mine") == USER_SCRIPT
    c.logout()

    # a real delivery: the user's rule still files it, and Pigeonhole sends the notice
    raw = (f"From: Customer <buyer@example.org>\r\nTo: {old_user.address}\r\n"
           f"Subject: invoice 42\r\nMessage-ID: <inv42@example.org>\r\n\r\nPlease pay.\r\n").encode()
    await eng.blocking.run(mailserver.deliver, old_user, raw, "buyer@example.org")
    replies = [m for m in smtp_server.wait_for(1, timeout=15) if "buyer@example.org" in m[1]]
    assert len(replies) == 1
    msg = email.message_from_bytes(replies[0][2], policy=email.policy.default)
    assert new_user.address in msg["Subject"] and "邮箱" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert new_user.address in body and "2099年12月31日" in body and "31 December 2099" in body
    assert msg["Auto-Submitted"].startswith("auto-replied")
    cl = mailserver.client(old_user)
    cl.select_folder("Archive", readonly=True)
    assert len(cl.search(["HEADER", "Message-ID", "<inv42@example.org>"])) == 1
    cl.logout()

    st = await eng.autoreply.disable()
    assert st.supported and not st.active
    c = sieve(mailserver, old_user)
    assert dict(c.listscripts()) == {"mine": True}
    c.logout()
    row = await eng.store.fetchone("SELECT * FROM autoreply ORDER BY id DESC LIMIT 1")
    assert row["previous_active"] == "mine" and row["removed"]


async def test_without_previous_script_and_wrapped_check(eng, mailserver, old_user):
    st = await eng.autoreply.enable(end=dt.date(2099, 1, 31))
    assert st.active
    c = sieve(mailserver, old_user)
    assert "include" not in c.getscript(SCRIPT_NAME)
    # the copy-in variant (servers without include) is valid Sieve for Pigeonhole too
    script, note = build_script(subject="New address", body=".hidden dot\nline", days=7,
                                addresses=[old_user.address], from_addr=old_user.address,
                                end=dt.date(2099, 1, 31), extensions=set(), wrapped=USER_SCRIPT)
    c.checkscript(script)
    assert "cannot stop the reply" in note and 'fileinto "Archive"' in script
    c.logout()
    st = await eng.autoreply.disable()
    assert not st.active
    c = sieve(mailserver, old_user)
    assert c.listscripts() == []
    c.logout()


async def test_unsupported_says_so_with_steps(eng):
    cfg = eng.config

    def facet(config: Config) -> AutoReply:
        # the facet is built from narrow parts: another config, the same state and bus
        return AutoReply(eng.store, eng.bus, Accounts(config), eng.blocking, config)

    gmail = facet(replace(cfg, old=replace(cfg.old, provider="gmail", sieve=None)))
    st = await gmail.status()
    assert not st.supported and "Vacation responder" in st.steps and "reminders" in st.detail
    assert not (await gmail.enable()).supported
    closed = facet(replace(cfg, old=replace(cfg.old, sieve=Endpoint("127.0.0.1", free_port(), "none"))))
    st = await closed.status()
    assert not st.supported and "does not offer ManageSieve" in st.detail and st.steps
