"""The language of a person's own words (core/mail/language.py on lingua), measured on a
small labelled sample of business mail as people write it: short replies under English
subjects ("RE: PI-2291") with our English quote below, signatures, mixed scripts. Also
the body prefix the scan reads (core/people/prefix.py) and the folder words of the
groups (core/people/groups.py)."""

from __future__ import annotations

import base64

from switchover.core.mail.language import detect_language, majority, sender_language_of
from switchover.core.mail.templates import reminder, written_language
from switchover.core.people.groups import alias_key, alias_keys, folder_group, valid_group
from switchover.core.people.prefix import prefix_text

QUOTE = ("\n\nOn Tue, 4 Mar 2025 at 10:02, Ada <ada@old.example> wrote:\n> Dear partner, please find "
         "the proforma invoice PI-2291 attached. Shipment next week.\n> Best regards, Ada")
SIG = "\n-- \nSales Department | ACME Trading Ltd | Tel +86 574 8888 0000 | www.acme.example"

#: (expected, subject, body): what people write back to a Chinese exporter
SAMPLE = [
    ("es", "RE: PI-2291", "Hola Ada, confirmamos el pedido. Enviaremos el anticipo mañana."),
    ("es", "RE: PI-2291", "Buenos días, ¿cuándo sale el contenedor? Necesitamos la fecha exacta."),
    ("es", "RE: Quotation", "Gracias por la cotización. El precio está un poco alto para nosotros."),
    ("es", "PI-2291", "Estimada Ada: adjunto el comprobante de pago. Saludos cordiales."),
    ("ru", "RE: PI-2291", "Добрый день! Оплату отправили сегодня, просим подтвердить получение."),
    ("ru", "RE: Order 77", "Здравствуйте, когда будет готов товар? Нам нужно до конца месяца."),
    ("ru", "RE: PI-2291", "Спасибо, документы получили. Ждём коносамент."),
    ("ru", "Invoice", "Прошу выставить счёт на вторую партию, 500 штук."),
    ("zh", "RE: PI-2291", "您好，货物已经开始生产，预计下周五完成。"),
    ("zh", "RE: Booking", "收到，谢谢！船期确认后我会通知您。"),
    ("zh", "Quotation", "王总好，附件是新的报价单，请查收。"),
    ("zh", "RE: PI-2291", "好的，没问题，明天安排验货。"),
    ("pt", "RE: PI-2291", "Olá Ada, obrigado pela fatura. O pagamento será feito amanhã."),
    ("pt", "RE: Order", "Bom dia, poderiam enviar o certificado de origem? Precisamos para a alfândega."),
    ("pt", "PI-2291", "Prezada, segue em anexo o comprovante de pagamento. Atenciosamente."),
    ("en", "RE: PI-2291", "Hi Ada, thanks for the invoice. We will pay by the end of the week."),
    ("en", "RE: Booking", "Please confirm the vessel and the closing date for the container."),
    ("en", "Order 88", "Dear Ada, we would like to order 300 more pieces of the blue model."),
    ("fr", "RE: PI-2291", "Bonjour Ada, merci pour la facture. Nous payons la semaine prochaine."),
    ("fr", "RE: Devis", "Pouvez-vous nous envoyer les échantillons avant la fin du mois ?"),
    ("de", "RE: PI-2291", "Guten Tag, vielen Dank für die Rechnung. Die Zahlung erfolgt morgen."),
    ("de", "Anfrage", "Bitte senden Sie uns den aktuellen Katalog und die Preisliste."),
    ("ar", "RE: PI-2291", "مرحبا، شكرا على الفاتورة. سنقوم بالدفع غدا إن شاء الله."),
    ("ar", "RE: Order", "نرجو إرسال شهادة المنشأ في أقرب وقت ممكن."),
    ("tr", "RE: PI-2291", "Merhaba, faturanız için teşekkürler. Ödemeyi yarın yapacağız."),
    ("tr", "Sipariş", "Lütfen numuneleri ay sonundan önce gönderin."),
    ("it", "RE: PI-2291", "Buongiorno, grazie per la fattura. Il pagamento sarà effettuato domani."),
    ("ja", "RE: PI-2291", "お世話になっております。請求書を受け取りました。明日お支払いします。"),
    ("ko", "RE: PI-2291", "안녕하세요, 송장 잘 받았습니다. 내일 결제하겠습니다."),
    ("es", "RE: PI-2291", "Perfecto, gracias."),             # short: Spanish or nothing, never English
]


def test_language_of_people_not_subjects() -> None:
    right = wrong = none = 0
    for expected, subject, body in SAMPLE:
        got = sender_language_of(subject, body + SIG + QUOTE)
        if got == expected:
            right += 1
        elif got:
            wrong += 1
            print(f"wrong: {expected} -> {got}: {body[:40]}")
        else:
            none += 1
    accuracy = right / len(SAMPLE)
    print(f"language accuracy {right}/{len(SAMPLE)} = {accuracy:.0%}, wrong {wrong}, no guess {none}")
    assert accuracy >= 0.9 and wrong <= 1


def test_short_texts_say_nothing() -> None:
    for text in ("OK", "Thanks!", "PI-2291", "RE: PI-2291", "ok thanks", "", "1x40HQ"):
        assert detect_language(text) == "", text
    assert detect_language("您好，报价单请查收") == "zh"          # a few characters carry words
    assert majority({"es": 3, "en": 1}) == "es" and majority({"en": 2, "es": 2}) == "en"
    assert majority({}) == ""


def test_reminder_texts_fall_back_to_english() -> None:
    assert written_language("fr") == "en" and written_language("zh") == "zh" and written_language(None) == "en"

    class Ident:
        name, company, new_address, old_address, signature, language = ("Ada", "ACME", "a@new.example",
                                                                         "a@old.example", "", "fr")
    text = reminder("ar", Ident(), close_date=None, sender_name="Omar", original_subject="PI")  # type: ignore[arg-type]
    assert text.language == "en" and text.body.startswith("Dear Omar,")


def test_body_prefix() -> None:
    text = "Здравствуйте! Спасибо за счёт, оплату отправим в понедельник. " * 80
    b64 = base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")
    head = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64"
    assert prefix_text(head, b64[:3072]).startswith("Здравствуйте! Спасибо")
    multipart = (b'--b\r\nContent-Type: text/plain; charset="gb2312"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
                 + "您好，货物已经开始生产。".encode("gb2312") * 300)
    assert prefix_text(b'Content-Type: multipart/alternative; boundary="b"', multipart[:3072]
                       ).startswith("您好，货物已经开始生产。")
    pdf_first = b'--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK'
    assert prefix_text(b'Content-Type: multipart/mixed; boundary="b"', pdf_first) == ""


def test_folder_words_and_aliases() -> None:
    cases = {"客户/Brazil": "customer", "Customers/2024": "customer", "Clientes": "customer", "Клиенты": "customer",
             "INBOX/Kunden": "customer", "供应商": "supplier", "Proveedores/China": "supplier",
             "Поставщики": "supplier", "Fournisseurs": "supplier", "货代": "logistics", "物流/海运": "logistics",
             "Forwarders": "logistics", "Spedition": "logistics", "Логистика": "logistics", "INBOX": "",
             "Archive/2023": "", "Clientele-news": ""}
    assert {f: folder_group(f) for f in cases} == cases
    assert valid_group("Customers") == "customer" and valid_group("客户") == "customer"
    assert valid_group("forwarder") == "logistics" and valid_group("friends") is None
    assert alias_key("Carlos Méndez", "c@a.mx") == alias_key("Méndez, Carlos", "carlos@gmail.com") != ""
    assert alias_key("Carlos", "c@gmail.com") == "" and alias_key("Carlos", "c@a.mx") == "carlos@a.mx"
    assert alias_key("王伟", "w@f.cn") == "王伟" and alias_key("a@b.c", "a@b.c") == ""
    # the same name at two factories is two people; a public mailbox joins the one company
    assert alias_keys([("zw@a-factory.cn", "张伟"), ("zw@b-factory.cn", "张伟"), ("zw@163.com", "张伟")]) == {}
    assert set(alias_keys([("cm@acme.mx", "Carlos Méndez"), ("cm75@gmail.com", "Carlos Méndez"),
                           ("x@acme.mx", "Ana Ruiz")])) == {"cm@acme.mx", "cm75@gmail.com"}
