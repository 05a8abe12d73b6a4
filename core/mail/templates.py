"""Texts switchover writes for people: the reminder reply to a sender of the old address
and the old mailbox's auto-reply notice, in English, Chinese, Spanish, Russian and
Portuguese, with dates written the way each language writes them.

Pure functions of (language, identity, dates); nothing here talks to a server.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ..config import Identity
from .language import LANGUAGES, REMINDER_LANGUAGES, normalize_language

def pick_language(*candidates: str | None, default: str = "en") -> str:
    """The first candidate we have texts for (correspondent's setting, detected
    language of the message, the identity's language), else ``default``."""
    for c in candidates:
        n = normalize_language(c)
        if n:
            return n
    return normalize_language(default) or "en"


def sender_language(*detected: str | None) -> str:
    """The language to answer a sender in: the first language known of them (what they
    wrote in this message, then what the history says) when we have texts for it, else
    English. Never the user's own language: a French customer of a Chinese exporter
    reads English more likely than Chinese."""
    for code in detected:
        if code and code.strip():
            return normalize_language(code) or "en"
    return "en"


_MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"],
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre"],
    # genitive: "31 марта"
    "ru": ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
           "сентября", "октября", "ноября", "декабря"],
    "pt": ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto",
           "setembro", "outubro", "novembro", "dezembro"],
}


def format_date(d: dt.date, lang: str) -> str:
    lang = pick_language(lang)
    if lang == "zh":
        return f"{d.year}年{d.month}月{d.day}日"
    if lang == "ru":
        return f"{d.day} {_MONTHS['ru'][d.month - 1]} {d.year} г."
    if lang in ("es", "pt"):
        return f"{d.day} de {_MONTHS[lang][d.month - 1]} de {d.year}"
    return f"{d.day} {_MONTHS['en'][d.month - 1]} {d.year}"


_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|vs|antw|rif|odp|ha|回复|回覆|答复)\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*",
                           re.I)


def reply_subject(subject: str | None) -> str:
    """``Re: <subject>``, never ``Re: Re:`` (also knows AW:, SV:, 回复： ...)."""
    s = " ".join((subject or "").split())
    if _REPLY_PREFIX.match(s):
        return s
    return f"Re: {s}" if s else "Re:"


@dataclass(frozen=True)
class Text:
    subject: str
    body: str
    language: str


# Each reminder: greeting (with / without a name), body with {new} {old} and a closing
# sentence about the date; plain, warm, short.
_REMINDER: dict[str, dict[str, str]] = {
    "en": {
        "hello_name": "Dear {name},", "hello": "Hello,",
        "body": ("Thank you for your message. Please note that my email address has changed:\n\n"
                 "    New address: {new}\n"
                 "    {stops}\n\n"
                 "Please write to me at {new} from now on and update your address book. "
                 "Nothing else changes: your message has reached me, and I will answer it "
                 "from my new address."),
        "stops": "The old address {old} stops working on {date}.",
        "stops_soon": "The old address {old} will stop working soon.",
        "bye": "Best regards,",
    },
    "zh": {
        "hello_name": "{name}，您好！", "hello": "您好！",
        "body": ("感谢您的来信。我的邮箱地址已经更换：\n\n"
                 "    新邮箱：{new}\n"
                 "    {stops}\n\n"
                 "今后请发送邮件至 {new}，并更新您的通讯录。其他一切不变：您的这封邮件我已收到，"
                 "稍后会用新邮箱回复您。"),
        "stops": "旧邮箱 {old} 将于 {date} 停止使用。",
        "stops_soon": "旧邮箱 {old} 即将停止使用。",
        "bye": "祝好！",
    },
    "es": {
        "hello_name": "Hola, {name}:", "hello": "Hola:",
        "body": ("Gracias por su mensaje. Le informo de que mi dirección de correo electrónico "
                 "ha cambiado:\n\n"
                 "    Nueva dirección: {new}\n"
                 "    {stops}\n\n"
                 "Por favor, escríbame a partir de ahora a {new} y actualice su libreta de "
                 "direcciones. Todo lo demás sigue igual: he recibido su mensaje y le "
                 "responderé desde mi nueva dirección."),
        "stops": "La dirección anterior {old} dejará de funcionar el {date}.",
        "stops_soon": "La dirección anterior {old} dejará de funcionar pronto.",
        "bye": "Saludos cordiales,",
    },
    "ru": {
        "hello_name": "Здравствуйте, {name}!", "hello": "Здравствуйте!",
        "body": ("Спасибо за ваше письмо. Сообщаю, что мой адрес электронной почты "
                 "изменился:\n\n"
                 "    Новый адрес: {new}\n"
                 "    {stops}\n\n"
                 "Пожалуйста, пишите мне теперь на {new} и обновите адресную книгу. Всё "
                 "остальное остаётся без изменений: ваше письмо получено, я отвечу на него "
                 "с нового адреса."),
        "stops": "Старый адрес {old} перестанет работать {date}",  # the date ends in "г."
        "stops_soon": "Старый адрес {old} скоро перестанет работать.",
        "bye": "С уважением,",
    },
    "pt": {
        "hello_name": "Olá, {name},", "hello": "Olá,",
        "body": ("Agradeço a sua mensagem. Informo que o meu endereço de e-mail mudou:\n\n"
                 "    Novo endereço: {new}\n"
                 "    {stops}\n\n"
                 "Por favor, escreva-me a partir de agora para {new} e atualize a sua lista de "
                 "contatos. Todo o resto continua igual: recebi a sua mensagem e responderei "
                 "a partir do meu novo endereço."),
        "stops": "O endereço antigo {old} deixará de funcionar em {date}.",
        "stops_soon": "O endereço antigo {old} deixará de funcionar em breve.",
        "bye": "Atenciosamente,",
    },
}


def _signature(identity: Identity) -> str:
    lines = [identity.name]
    if identity.company:
        lines.append(identity.company)
    lines.append(identity.new_address)
    if identity.signature:
        lines = [identity.signature.strip()]
    return "\n".join(lines)


def _stops(t: dict[str, str], identity: Identity, close_date: dt.date | None, lang: str) -> str:
    if close_date is None:
        return t["stops_soon"].format(old=identity.old_address)
    return t["stops"].format(old=identity.old_address, date=format_date(close_date, lang))


assert tuple(_REMINDER) == REMINDER_LANGUAGES, "core/mail/language.py lists the reminder languages"


def written_language(lang: str | None) -> str:
    """The language of the reminder texts to write for ``lang``: itself when there is a
    text for it, else English (LANGUAGES knows more languages than these texts)."""
    code = pick_language(lang)
    return code if code in _REMINDER else "en"


def reminder(lang: str, identity: Identity, *, close_date: dt.date | None,
             sender_name: str | None, original_subject: str | None) -> Text:
    """The reply to someone who wrote to the old address."""
    lang = written_language(lang)
    t = _REMINDER[lang]
    name = (sender_name or "").strip().strip('"')
    hello = t["hello_name"].format(name=name) if name and "@" not in name else t["hello"]
    body = t["body"].format(new=identity.new_address, stops=_stops(t, identity, close_date, lang))
    text = f"{hello}\n\n{body}\n\n{t['bye']}\n{_signature(identity)}\n"
    return Text(subject=reply_subject(original_subject), body=text, language=lang)


_NOTICE_SUBJECT = {
    "en": "My email address has changed: {new}",
    "zh": "邮箱地址变更：{new}",
    "es": "Mi dirección de correo ha cambiado: {new}",
    "ru": "Мой адрес электронной почты изменился: {new}",
    "pt": "O meu endereço de e-mail mudou: {new}",
}
_NOTICE_BODY = {
    "en": "Thank you for your message. My email address has changed to {new}. {stops} "
          "Please write to {new} from now on; this mailbox is still read until then.",
    "zh": "感谢您的来信。我的邮箱已更换为 {new}。{stops}今后请发送至 {new}；在此之前本邮箱仍会查看。",
    "es": "Gracias por su mensaje. Mi dirección de correo ha cambiado a {new}. {stops} "
          "Por favor, escriba a {new} a partir de ahora; mientras tanto, este buzón se sigue leyendo.",
    "ru": "Спасибо за ваше письмо. Мой адрес электронной почты изменился на {new}. {stops} "
          "Пожалуйста, пишите теперь на {new}; до этого срока этот ящик ещё читается.",
    "pt": "Agradeço a sua mensagem. O meu endereço de e-mail mudou para {new}. {stops} "
          "Por favor, escreva para {new} a partir de agora; até lá esta caixa continua a ser lida.",
}


def autoreply_notice(identity: Identity, close_date: dt.date | None) -> Text:
    """The old mailbox's auto-reply: the identity's language, then English."""
    langs = [written_language(identity.language)]
    if langs[0] != "en":
        langs.append("en")
    subjects, bodies = [], []
    for lang in langs:
        t = _REMINDER[lang]
        subjects.append(_NOTICE_SUBJECT[lang].format(new=identity.new_address))
        stops = _stops(t, identity, close_date, lang)
        bodies.append(_NOTICE_BODY[lang].format(new=identity.new_address, stops=stops))
    body = "\n\n".join(bodies) + "\n\n" + _signature(identity) + "\n"
    return Text(subject=" / ".join(subjects), body=body, language=langs[0])
