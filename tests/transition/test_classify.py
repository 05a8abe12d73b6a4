"""core/mail (headers, text, language) and core/transition/classify.py: header decoding,
RFC 3834 rules, bounce / automated / spam, language, readable text, and the badge (which
reads what the correspondents facet knows of the sender, on a real engine)."""

from __future__ import annotations

import base64
import time

from switchover.core.mail.headers import decode_bytes, header_text, parse_headers, parse_message, sender_of
from switchover.core.mail.language import detect_language
from switchover.core.mail.text import html_to_text, message_text, preview_of
from switchover.core.transition.classify import BADGES, is_automated, is_bounce, is_spam, rfc3834_allows_reply

OLD = "old@example.com"
OWN = {OLD, "new@example.net"}


def h(text: str, charset: str = "utf-8") -> object:
    return parse_headers(text.replace("\n", "\r\n").encode(charset))


def test_plain_person_mail_may_be_answered() -> None:
    msg = h(f"From: Alice <alice@customer.com>\nTo: {OLD}\nSubject: order\n")
    assert is_automated(msg) == (False, "")
    assert not is_bounce(msg) and not is_spam(msg)
    assert rfc3834_allows_reply(msg, OWN) == (True, "")


def test_list_mail_is_automated() -> None:
    msg = h(f"From: news@shop.com\nTo: {OLD}\nList-Id: <weekly.shop.com>\nSubject: deals\n")
    auto, why = is_automated(msg)
    assert auto and "List-Id" in why
    assert rfc3834_allows_reply(msg, OWN)[0] is False
    assert is_automated(h(f"From: a@b.com\nTo: {OLD}\nList-Unsubscribe: <mailto:x@b.com>\n"))[0]
    assert is_automated(h(f"From: a@b.com\nTo: {OLD}\nPrecedence: bulk\n"))[0]
    assert is_automated(h(f"From: a@b.com\nTo: {OLD}\nPrecedence: junk\n"))[0]


def test_auto_submitted() -> None:
    assert is_automated(h(f"From: bob@x.com\nTo: {OLD}\nAuto-Submitted: auto-replied\n"))[0]
    assert is_automated(h(f"From: bob@x.com\nTo: {OLD}\nAuto-Submitted: auto-generated\n"))[0]
    assert not is_automated(h(f"From: bob@x.com\nTo: {OLD}\nAuto-Submitted: no\n"))[0]


def test_senders_that_are_never_answered() -> None:
    for sender in ("noreply@x.com", "no-reply@x.com", "donotreply@x.com", "do-not-reply@x.com",
                   "MAILER-DAEMON@x.com", "owner-list@x.com", "list-request@x.com"):
        msg = h(f"From: {sender}\nTo: {OLD}\n")
        assert is_automated(msg)[0], sender
        assert not rfc3834_allows_reply(msg, OWN)[0], sender
    assert is_automated(h(f"From: a@x.com\nTo: {OLD}\nReturn-Path: <>\n")) == (True, "empty return path")
    assert not is_automated(h(f"From: replyhere@x.com\nTo: {OLD}\n"))[0]


def test_bounces() -> None:
    dsn = h("From: Mail Delivery System <MAILER-DAEMON@mx.x.com>\nTo: old@example.com\n"
            "Subject: Undelivered Mail Returned to Sender\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n")
    assert is_bounce(dsn)
    assert is_bounce(h("From: postmaster@x.com\nSubject: hello\n"))
    assert is_bounce(h("From: system@163.com\nReturn-Path: <>\nSubject: 系统退信\n"))
    assert is_bounce(h("From: x@y.com\nReturn-Path: <>\nSubject: Delivery Status Notification (Failure)\n"))
    assert not is_bounce(h("From: alice@x.com\nSubject: about the undelivered goods\n"))


def test_not_addressed_to_the_old_address() -> None:
    msg = h("From: alice@customer.com\nTo: someone-else@customer.com\nSubject: fyi\n")
    ok, why = rfc3834_allows_reply(msg, OWN)
    assert not ok and "not in To" in why
    # Cc and Resent-To count, and case does not matter
    assert rfc3834_allows_reply(h("From: a@c.com\nTo: x@c.com\nCc: OLD@Example.com\n"), OWN)[0]
    assert rfc3834_allows_reply(h("From: a@c.com\nTo: x@c.com\nResent-To: old@example.com\n"), OWN)[0]
    # our own mail is never answered (loops)
    assert not rfc3834_allows_reply(h(f"From: {OLD}\nTo: {OLD}\n"), OWN)[0]


def test_spam() -> None:
    assert is_spam(h("X-Spam-Flag: YES\n"))
    assert is_spam(h("X-Spam-Status: Yes, score=9.2 required=5.0\n"))
    assert is_spam(h("X-Spam-Status: No, score=7.1 required=5.0 tests=FOO\n"))
    assert not is_spam(h("X-Spam-Status: No, score=1.1 required=5.0\n"))
    assert is_spam(h("X-Spam-Score: 12.5\n"))
    assert is_spam(h("Subject: x\n"), [b"\\Seen", b"$Junk"])
    assert is_spam(h("Subject: x\n"), ["\\Junk"])
    assert is_spam(h("Subject: x\n"), [b"Junk"])
    assert not is_spam(h("Subject: x\n"), [b"$NotJunk", b"\\Seen"])


def test_decoding_rfc2047_and_raw_gbk() -> None:
    gbk_subject = "=?GBK?B?" + base64.b64encode("报价单 第二版".encode("gbk")).decode() + "?="
    msg = h(f"From: =?UTF-8?B?{base64.b64encode('张三'.encode()).decode()}?= <ZhangSan@Example.CN>\n"
            f"Subject: {gbk_subject}\n")
    assert header_text(msg, "Subject") == "报价单 第二版"
    assert sender_of(msg) == ("张三", "zhangsan@example.cn")
    # raw 8-bit GBK in a header (no RFC 2047), as some Chinese mailers send it
    raw = h("From: 李四 <li@x.cn>\nSubject: 关于订单的问题\n", charset="gbk")
    assert header_text(raw, "Subject") == "关于订单的问题"
    assert sender_of(raw)[0] == "李四"
    # GB2312 label on GBK-only characters still decodes (GB18030 superset)
    assert decode_bytes("镕".encode("gbk"), "gb2312") == "镕"


def test_language() -> None:
    assert detect_language("您好，附件是我们的最新报价单，请查收。") == "zh"
    assert detect_language("Здравствуйте! Спасибо за ваш заказ.") == "ru"
    assert detect_language("Hola, gracias por su pedido. Saludos cordiales") == "es"
    assert detect_language("Olá, obrigado pelo seu pedido. Atenciosamente") == "pt"
    assert detect_language("Hello, please find the price list attached. Best regards") == "en"
    assert detect_language("") == ""


def test_readable_text_and_preview() -> None:
    html = "<html><head><style>p{}</style></head><body><p>Dear John,</p><p>Price: 5&nbsp;USD</p></body></html>"
    assert html_to_text(html) == "Dear John,\n\nPrice: 5 USD"
    raw = ("From: a@b.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/alternative; boundary=\"z\"\r\n\r\n"
           "--z\r\nContent-Type: text/html; charset=gbk\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.b64encode("<p>您好</p><p>谢谢</p>".encode("gbk")).decode() + "\r\n--z--\r\n").encode()
    assert message_text(parse_message(raw)) == "您好\n\n谢谢"
    assert preview_of("Hi\n> quoted\nthere", 10) == "Hi there"


async def test_badges(engine) -> None:  # type: ignore[no-untyped-def]
    msg = h(f"From: x@y.com\nTo: {OLD}\n")
    store = engine.store
    assert await engine.correspondents.badge("stranger@y.com", msg, ()) == "new sender"
    await store.execute("INSERT INTO correspondents(address, messages_from, messages_to, customer) "
                        "VALUES('known@y.com', 3, 2, 1)")
    assert await engine.correspondents.badge("known@y.com", msg, ()) == "customer"
    await store.execute("UPDATE correspondents SET notified=? WHERE address='known@y.com'", (time.time(),))
    assert await engine.correspondents.badge("known@y.com", msg, ()) == "notified"
    await engine.correspondents.mark_switched("Known@Y.com", time.time())
    assert await engine.correspondents.badge("known@y.com", msg, ()) == "switched"
    # precedence: spam > bounce > automated > the rest
    assert await engine.correspondents.badge("known@y.com", h("From: known@y.com\nList-Id: <l>\n"), ()) == "automated"
    assert await engine.correspondents.badge("known@y.com", h("From: MAILER-DAEMON@y.com\n"), ()) == "bounce"
    assert await engine.correspondents.badge("known@y.com", h("From: MAILER-DAEMON@y.com\n"), [b"$Junk"]) == "spam"
    assert set(BADGES) >= {"customer", "notified", "switched", "new sender", "automated", "bounce", "spam"}
