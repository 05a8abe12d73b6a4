"""A cheap guess of the language a text is written in, and of the language a sender
writes (their own words, not the quote of ours). Pure and synchronous; good enough to
pick which reminder text to send, never shown as a fact.
"""

from __future__ import annotations

import re

from .text import REPLY_SUBJECT, own_words

# the languages switchover has texts for (reminders, notices); the config is checked
# against this list
LANGUAGES = ("en", "zh", "es", "ru", "pt")

_ALIASES = {"chinese": "zh", "cn": "zh", "english": "en", "spanish": "es", "español": "es",
            "russian": "ru", "portuguese": "pt", "português": "pt", "中文": "zh"}


def normalize_language(code: str | None) -> str | None:
    """'zh-CN', 'zh_Hans', 'Chinese' → 'zh'; None when not one we write."""
    if not code:
        return None
    c = code.strip().lower()
    c = _ALIASES.get(c, c)
    c = re.split(r"[-_]", c)[0]
    return c if c in LANGUAGES else None


_STOP = {
    "en": "the and you for with this that have are your our will please thank thanks regards "
          "from would could order price we is of to in it be dear best",
    "es": "el la los las de que por para con una estimado estimada saludos gracias pedido "
          "precio nuestro su usted muy es en y del al hola cordiales",
    "pt": "o os de que para com uma não obrigado obrigada prezado prezada atenciosamente "
          "pedido preço nosso seu você muito é em e do da olá cumprimentos",
    "fr": "le la les des que pour avec une vous nous merci cordialement bonjour commande prix "
          "est et du au",
    "de": "der die das und mit für eine sie wir danke grüße freundlichen bestellung preis ist "
          "nicht zu den",
    "it": "il lo gli della che per con una grazie saluti cordiali ordine prezzo nostro è e di",
}
_STOPSETS = {k: set(v.split()) for k, v in _STOP.items()}
_WORD = re.compile(r"[a-zà-öø-ÿ]+", re.I)


def detect_language(text: str) -> str:
    """A cheap guess: "zh", "ja", "ko", "ru", "ar", "en", "es", "pt", "fr", "de", "it";
    "" when there is nothing to judge. Script ratios first, then stopword counts."""
    sample = (text or "")[:4000]
    letters = [c for c in sample if c.isalpha()]
    if not letters:
        return ""
    n = len(letters)
    kana = sum(1 for c in letters if "\u3040" <= c <= "\u30ff")
    hangul = sum(1 for c in letters if "\uac00" <= c <= "\ud7af")
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    cyr = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    arab = sum(1 for c in letters if "\u0600" <= c <= "\u06ff")
    if kana and kana / n > 0.05:
        return "ja"
    if hangul / n > 0.2:
        return "ko"
    # CJK characters carry a word each; a few among Latin signatures still mean Chinese
    if cjk / n > 0.1 or cjk >= 8:
        return "zh"
    if cyr / n > 0.3:
        return "ru"
    if arab / n > 0.3:
        return "ar"
    words = [w.lower() for w in _WORD.findall(sample)]
    scores = {lang: sum(1 for w in words if w in s) for lang, s in _STOPSETS.items()}
    # accents are decisive between Spanish and Portuguese
    low = sample.lower()
    if re.search(r"[ãõç]|ção|ções", low):
        scores["pt"] += 3
    if re.search(r"[ñ¿¡]|ción", low):
        scores["es"] += 3
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "en"


def sender_language_of(subject: str, text: str) -> str:
    """The language the sender writes in: their own words in the body, plus the subject
    when they wrote it (a reply's subject is usually ours, in our language); "" when
    there is nothing to judge."""
    own_subject = "" if REPLY_SUBJECT.match(subject or "") else (subject or "")
    lang = detect_language(f"{own_subject}\n{own_words(text)}")
    if lang:
        return lang
    return detect_language(REPLY_SUBJECT.sub("", subject or ""))


def subject_language(subject: str) -> str:
    """The language of a subject the sender wrote themselves ("" for a reply's, which is
    usually ours)."""
    return "" if REPLY_SUBJECT.match(subject or "") else detect_language(subject)
