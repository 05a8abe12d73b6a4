"""Issue 10.7–10.9: a manual reminder to a list or a robot needs a confirm (and the
automatic rules never send one); a reminder speaks the sender's language (when we have
a text for it, else English — never the user's own) and can be previewed byte for byte;
forward or remind marks the arrival handled."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from typing import Any

import pytest

from switchover.core.errors import SwitchoverError
from switchover.core.transition.actions import NeedsConfirmation
from tests.support.arrivals import TRANSITION, add_arrival, make_mail, message


AUTOMATED = {
    "bulk": "Precedence: bulk\r\n",
    "list-unsubscribe": "List-Unsubscribe: <mailto:leave@news.example.com>\r\n",
    "auto-submitted": "Auto-Submitted: auto-generated\r\n",
    "empty return path": "Return-Path: <>\r\n",
}


async def test_manual_reminder_to_a_robot_needs_a_confirm(make_engine, mailserver, old_user, new_user,
                                                          smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    old = old_user.address
    # the envelope sender becomes Return-Path (empty for the bounce-like case)
    ids = {name: await add_arrival(eng, mailserver, old_user,
                                   message(old, sender=f"News <news{i}@news.example.com>", extra=extra),
                                   sender="" if "Return-Path" in extra else f"news{i}@news.example.com")
           for i, (name, extra) in enumerate(AUTOMATED.items())}
    ids["no-reply"] = await add_arrival(eng, mailserver, old_user,
                                        message(old, sender="no-reply@shop.example.com"))
    person = await add_arrival(eng, mailserver, old_user, message(old, sender="Li Lei <li@example.com>"))
    assert await eng.actions.remind_warning(person) is None
    for name, aid in ids.items():
        warning = await eng.actions.remind_warning(aid)
        assert warning and warning.endswith(".") and warning.count(". ") == 0, (name, warning)
        with pytest.raises(NeedsConfirmation) as e:
            await eng.actions.request(aid, "remind", delay=0)
        assert e.value.warning == warning and e.value.exit_code == 1
        assert isinstance(e.value, SwitchoverError)
        assert await eng.actions.for_arrival(aid) == []           # nothing recorded
    # confirmed: it goes, once
    bulk = ids["bulk"]
    action = await eng.actions.request(bulk, "remind", delay=0, confirmed=True)
    assert await eng.actions.run_due() == 1
    assert (await eng.actions.get(action)).state == "done"
    # a second press finds the done action, asks nothing
    assert await eng.actions.request(bulk, "remind", delay=0) == action
    assert len(smtp_server.wait_for(1)) == 1
    # the automatic rules never remind any of them
    for aid in ids.values():
        ok, why = await eng.actions.remind_allowed(aid)
        assert not ok and why


async def test_automatic_rules_never_remind_robots(make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "auto_remind": True})
    await eng.monitor.catch_up()
    for i, extra in enumerate(AUTOMATED.values()):
        envelope = "" if "Return-Path" in extra else f"robot{i}@example.net"
        await asyncio.to_thread(mailserver.deliver, old_user,
                                make_mail(f"robot{i}@example.net", old_user.address, f"robot {i}", extra=extra),
                                envelope)
    await asyncio.to_thread(mailserver.deliver, old_user,
                            make_mail("noreply@example.net", old_user.address, "receipt"))
    assert await eng.monitor.catch_up() == len(AUTOMATED) + 1
    assert await eng.store.scalar("SELECT COUNT(*) FROM actions") == 0


LANGS = {
    # sender: (subject, body, reminder language)
    "fr@example.fr": ("Commande 12", "Bonjour, merci pour votre offre. Nous voulons passer la commande "
                      "avec le prix indiqué. Cordialement", "en"),
    "de@example.de": ("Bestellung 7", "Sehr geehrte Damen und Herren, vielen Dank für die Bestellung. "
                      "Mit freundlichen Grüßen", "en"),
    "ja@example.jp": ("ご注文について", "いつもお世話になっております。ご注文の件でご連絡いたします。"
                      "よろしくお願いいたします。", "en"),
    "es@example.es": ("Pedido 3", "Hola, gracias por el precio. Por favor, envíe el pedido. Saludos cordiales", "es"),
    "zh@example.cn": ("询价", "您好，请把新的报价单发给我们。谢谢！", "zh"),
    # a French reply under our Chinese subject, quoting our Chinese text
    "fr2@example.fr": ("Re: 报价单", "Bonjour, merci pour le prix, nous passons la commande.\r\n\r\n"
                       "Le 2 déc. 2026, Ada a écrit :\r\n> 您好，附件是新的报价单，请查收。谢谢您的支持！", "en"),
}


async def test_reminder_speaks_the_senders_language_never_ours(make_engine, mailserver, old_user,
                                                               new_user, smtp_server):
    """The user writes Chinese (identity.language zh): French, German and Japanese senders
    get English, Spanish and Chinese senders their own."""
    eng = await make_engine(old_user, new_user, smtp=smtp_server, identity={"language": "zh"},
                            transition=TRANSITION)
    await eng.monitor.catch_up()
    for sender, (subject, body, _) in LANGS.items():
        await asyncio.to_thread(mailserver.deliver, old_user, make_mail(sender, old_user.address, subject, body))
    assert await eng.monitor.catch_up() == len(LANGS)
    got = {}
    for a in await eng.monitor.arrivals():
        p = await eng.actions.preview(a.id, "remind")
        got[a.sender] = p.language
    assert got == {s: lang for s, (_, _, lang) in LANGS.items()}


def _without_date(raw: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r\n]*", b"", raw)


async def test_preview_is_what_goes(make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server, transition=TRANSITION)
    aid = await add_arrival(eng, mailserver, old_user,
                            message(old_user.address, sender="Eve <eve@example.es>", subject="Pedido urgente",
                                    body="Hola, gracias por el precio. Por favor, envíe el pedido. Saludos"))
    p = await eng.actions.preview(aid, "remind")
    assert p.kind == "remind" and p.to == "eve@example.es" and p.language == "es"
    assert p.subject == "Re: Pedido urgente"
    assert new_user.address in p.text and "31 de marzo de 2027" in p.text
    again = await eng.actions.preview(aid, "remind")
    mid = email.message_from_bytes(p.raw)["Message-ID"]
    assert email.message_from_bytes(again.raw)["Message-ID"] == mid
    assert not smtp_server.messages and await eng.actions.for_arrival(aid) == []   # nothing sent
    await eng.actions.request(aid, "remind", delay=0)
    await eng.actions.run_due()
    sent = smtp_server.wait_for(1)[0][2]
    msg = email.message_from_bytes(sent, policy=email.policy.default)
    assert msg["Message-ID"] == mid
    assert msg.get_content().replace("\r\n", "\n") == p.text
    assert _without_date(sent).rstrip(b"\r\n") == _without_date(p.raw).rstrip(b"\r\n")
    # the forward's preview: the original itself (forward_method imap)
    f = await eng.actions.preview(aid, "forward")
    assert f.to == new_user.address and b"\r\nFrom: Eve" in f.raw and "gracias" in f.text
    with pytest.raises(SwitchoverError):
        await eng.actions.preview(aid, "handled")


async def test_forward_or_remind_marks_the_arrival_handled(make_engine, mailserver, old_user, new_user,
                                                           smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "auto_forward": True})
    state = "SELECT state FROM arrivals WHERE id=?"
    a1 = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="one"))
    await eng.actions.request(a1, "forward", delay=0)
    await eng.actions.run_due()
    assert (await eng.store.fetchone(state, (a1,)))["state"] == "handled"
    a2 = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="two",
                                                              sender="Kim <kim@example.kr>"))
    await eng.actions.request(a2, "remind", delay=0)
    await eng.actions.run_due()
    assert (await eng.store.fetchone(state, (a2,)))["state"] == "handled"
    # an automatic forward alone leaves the arrival for the person to look at
    a3 = await add_arrival(eng, mailserver, old_user, message(old_user.address, subject="three"))
    await eng.actions.on_arrival(a3)
    await eng.actions.run_due()
    assert (await eng.store.fetchone(state, (a3,)))["state"] == "new"


async def test_handled_on_action_can_be_turned_off(make_engine, mailserver, old_user, new_user, smtp_server):
    eng = await make_engine(old_user, new_user, smtp=smtp_server,
                            transition={**TRANSITION, "handled_on_action": False})
    assert eng.config.transition.handled_on_action is False
    a1 = await add_arrival(eng, mailserver, old_user, message(old_user.address))
    await eng.actions.request(a1, "forward", delay=0)
    await eng.actions.run_due()
    row: Any = await eng.store.fetchone("SELECT state FROM arrivals WHERE id=?", (a1,))
    assert row["state"] == "new"
