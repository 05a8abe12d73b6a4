"""A realistic little old mailbox for the people tests: a Chinese exporter's folders
(客户/…, Suppliers, 货代), buyers writing Spanish and Russian under English subjects
("RE: PI-2291"), a Chinese supplier writing HTML, a colleague, robots of each kind, a
cold pitch nobody answered, and one buyer with two addresses."""

from __future__ import annotations

import base64
import datetime as dt
from email.utils import format_datetime, make_msgid
from typing import Any

_N = [0]


def mail(sender: str, to: str, subject: str, body: str, *, extra: str = "",
         html: bool = False, days_ago: int = 30) -> bytes:
    """A message as a mail client writes it: text (base64), or text + HTML alternative."""
    _N[0] += 1
    when = dt.datetime.now().astimezone() - dt.timedelta(days=days_ago, minutes=_N[0])
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {format_datetime(when)}\r\n"
            f"Message-ID: {make_msgid(domain='people.test')}\r\nMIME-Version: 1.0\r\n{extra}")
    text = base64.encodebytes(body.encode("utf-8")).replace(b"\n", b"\r\n")
    if not html:
        return (head + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                ).encode() + text
    markup = base64.encodebytes(f"<html><body><p>{body}</p></body></html>".encode("utf-8")).replace(b"\n", b"\r\n")
    return (head + 'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            ).encode() + text + (b"\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
                                 b"Content-Transfer-Encoding: base64\r\n\r\n") + markup + b"\r\n--b1--\r\n"


OUR_QUOTE = ("\n\nOn Mon, 3 Mar 2025, Ada Lovelace <{old}> wrote:\n> Dear customer, please find PI-2291 "
             "attached. The goods will be ready for shipment next week.\n> Best regards")
CARLOS = "Carlos Méndez <carlos@distribuidora-mx.com>"
CARLOS_GMAIL = "Carlos Méndez <carlos.mendez1975@gmail.com>"
IVAN = "Иван Петров <ivan@torgservis.ru>"
WANG = "王伟 <wangwei@jinhua-factory.cn>"
LISA = "Lisa Chan <lisa@hk-lines.com>"
LINA = "Li Na <li.na@example.com>"          # the company's domain (the new address's)
COLD = "SEO Expert <growth@rank-top.biz>"
ANNA = "Anna Schmidt <anna@kunden-beispiel.de>"


def fill(mailserver: Any, user: Any) -> None:
    """The mailbox: 20 messages in INBOX, 客户/Mexico, 客户/Russia, Suppliers, 货代, Sent."""
    old = user.address
    q = OUR_QUOTE.format(old=old)
    box = {
        "客户/Mexico": [
            mail(CARLOS, old, "RE: PI-2291", "Hola Ada, gracias por la proforma. Confirmamos el pedido y "
                 "enviaremos el anticipo esta semana. Saludos cordiales, Carlos" + q),
            mail(CARLOS, old, "RE: PI-2291", "Buenos días, ¿podrían adelantar el embarque al día 15? "
                 "Nuestro cliente necesita la mercancía antes de fin de mes." + q),
        ],
        "客户/Russia": [
            mail(IVAN, old, "RE: PI-2291", "Добрый день! Спасибо за счёт. Оплату отправим в понедельник, "
                 "просим подтвердить дату отгрузки." + q),
            mail(IVAN, old, "RE: PI-2291", "Здравствуйте, Ада! Получили документы, всё в порядке. "
                 "Ждём коносамент." + q),
        ],
        "Suppliers": [
            mail(WANG, old, "RE: PI-2291 生产进度", "您好！PI-2291 的货物已经开始生产，预计下周五完成，"
                 "届时会安排验货，请确认包装要求。", html=True),
        ],
        "货代": [
            mail(LISA, old, "Booking confirmation SO-5531", "Hi Ada, the booking is confirmed for vessel "
                 "MSC Anna, closing on Friday. Please send the packing list by Wednesday."),
        ],
        "INBOX": [
            mail(CARLOS_GMAIL, old, "PI-2291", "Ada, te escribo desde mi correo personal porque el de la "
                 "empresa no funciona hoy. ¿Recibiste el pago?"),
            mail(LINA, old, "Invoice approval", "Hi Ada, finance approved the invoice for PI-2291; the "
                 "payment goes out tomorrow morning."),
            mail(COLD, old, "Grow your business with SEO", "Hello, we can bring your website to the first "
                 "page of Google within a month. Reply for a free audit."),
            mail("Trade Show <news@tradeshow-news.com>", old, "This month's fair", "Our newsletter for "
                 "exhibitors and buyers this month.",
                 extra="List-Id: <fair.tradeshow-news.com>\r\nList-Unsubscribe: <mailto:u@tradeshow-news.com>\r\n"),
            mail("Alibaba <noreply@service.alibaba.com>", old, "Your order status", "Your order has shipped. "
                 "This is an automatic message, please do not reply.",
                 extra="Auto-Submitted: auto-generated\r\n"),
            mail("Mail Delivery System <MAILER-DAEMON@mx.relay.net>", old, "Undelivered Mail Returned to "
                 "Sender", "This is the mail system. Your message could not be delivered.",
                 extra="Auto-Submitted: auto-replied\r\n"),
            mail(ANNA, old, "Anfrage Katalog", "Guten Tag, bitte senden Sie uns Ihren aktuellen Katalog "
                 "und die Preisliste für Keramikwaren. Mit freundlichen Grüßen"),
        ],
        "Sent": [
            mail(f"Ada Lovelace <{old}>", CARLOS, "PI-2291", "Dear Carlos, please find PI-2291 attached. "
                 "The goods will be ready for shipment next week. Best regards, Ada"),
            mail(f"Ada Lovelace <{old}>", IVAN, "PI-2291", "Dear Ivan, please find PI-2291 attached. The "
                 "goods will be ready next week. Best regards, Ada"),
            mail(f"Ada Lovelace <{old}>", WANG, "PI-2291 生产", "王总您好，PI-2291 请安排生产，谢谢！"),
            mail(f"Ada Lovelace <{old}>", LINA, "Invoice PI-2291", "Li Na, could you approve the invoice? "
                 "Thanks, Ada"),
            mail(f"Ada Lovelace <{old}>", LISA, "Booking", "Hi Lisa, please book 1x40HQ for PI-2291."),
            mail(f"Ada Lovelace <{old}>", ANNA, "Katalog", "Dear Anna, our catalogue is attached."),
        ],
    }
    for folder, messages in box.items():
        for raw in messages:
            mailserver.append(user, folder, raw)
    # a bounce as a real MTA writes it
    dsn = (f"From: MAILER-DAEMON@mx.relay.net\r\nTo: {old}\r\nSubject: Delivery Status Notification\r\n"
           f"Date: {format_datetime(dt.datetime.now().astimezone())}\r\nMessage-ID: {make_msgid()}\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
           "boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--r\r\n"
           "Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; x@y.com\r\n"
           "Action: failed\r\nStatus: 5.1.1\r\n--r--\r\n").encode()
    mailserver.append(user, "INBOX", dsn)
