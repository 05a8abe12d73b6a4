"""The language a text is written in, and the language a sender writes (their own words,
not the quote of ours, not "RE: PI-2291" subjects). lingua-language-detector does the
judging (clearly better than stopword rules on short business mail); this module picks
our languages, the thresholds under which a text says nothing, and the majority of a
person's messages. Synchronous; safe to call from worker threads.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from .text import REPLY_SUBJECT, own_words

# the languages switchover recognises and may write in (reminders, notices); the config
# is checked against this list. A text may lack some of them: core/mail/templates.py and
# the notice composer fall back to English, never to the user's own language.
LANGUAGES = ("en", "zh", "es", "pt", "ru", "ar", "fr", "de", "tr", "it", "ja", "ko")
#: the languages the reminder texts (core/mail/templates.py) are written in: what
#: ``identity.language`` may name (a reminder in another language falls back to English)
REMINDER_LANGUAGES = ("en", "zh", "es", "ru", "pt")

_ALIASES = {"chinese": "zh", "cn": "zh", "english": "en", "spanish": "es", "español": "es",
            "russian": "ru", "русский": "ru", "portuguese": "pt", "português": "pt", "中文": "zh",
            "arabic": "ar", "العربية": "ar", "french": "fr", "français": "fr", "german": "de",
            "deutsch": "de", "turkish": "tr", "türkçe": "tr", "italian": "it", "italiano": "it",
            "japanese": "ja", "日本語": "ja", "korean": "ko", "한국어": "ko", "英文": "en",
            "英语": "en", "西班牙语": "es", "俄语": "ru", "葡萄牙语": "pt"}


def normalize_language(code: str | None) -> str | None:
    """'zh-CN', 'zh_Hans', 'Chinese' → 'zh'; None when not one we know."""
    if not code:
        return None
    c = code.strip().lower()
    c = _ALIASES.get(c, c)
    c = re.split(r"[-_]", c)[0]
    return c if c in LANGUAGES else None


#: fewer letters than this say too little to judge (a "Thanks!" or an order number)
MIN_LETTERS = 12
#: lingua's confidence the best guess must reach among our languages
MIN_CONFIDENCE = 0.6
#: what is judged of a longer text: lingua's time grows with length, its certainty stops
#: growing long before this
_SAMPLE = 400
_detector: Any = None
_lock = threading.Lock()


def _lingua() -> Any:
    """The detector, built once on first use and restricted to LANGUAGES. Low accuracy
    mode: it loads in a tenth of a second (high accuracy takes seconds) and a person's
    language is a majority over several messages of a few hundred letters, where the
    two modes agree; texts too short to judge give "" through the thresholds."""
    global _detector
    with _lock:
        if _detector is None:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
            langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in LANGUAGES]
            _detector = (LanguageDetectorBuilder.from_languages(*langs).with_low_accuracy_mode()
                         .with_minimum_relative_distance(0.1).build())
        return _detector


def detect_language(text: str) -> str:
    """The language a text is written in, one of LANGUAGES; "" when there is nothing to
    judge or the guess is not confident. Chinese characters among a Latin signature still
    mean Chinese (each carries a word); the rest is lingua's."""
    sample = (text or "")[:_SAMPLE]
    letters = [c for c in sample if c.isalpha()]
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    kana = sum(1 for c in letters if "\u3040" <= c <= "\u30ff")
    if cjk >= 8 and kana * 20 < cjk:
        return "zh"
    if len(letters) < MIN_LETTERS and not (cjk + kana >= 4):
        return ""
    values = _lingua().compute_language_confidence_values(sample)
    if not values or values[0].value < MIN_CONFIDENCE:
        return ""
    return str(values[0].language.iso_code_639_1.name).lower()


def majority(votes: dict[str, int]) -> str:
    """A person's language from the confident guesses of their messages: the most voted
    (ties: the alphabetically first, so a rescan never flips it); "" without votes."""
    counted = {k: n for k, n in votes.items() if k and n > 0}
    if not counted:
        return ""
    return min(counted, key=lambda k: (-counted[k], k))


_SIGNATURE = re.compile(r"^(--|__+|—+|sent from my \w+.*|发自我的.*|enviado desde mi .*|"
                        r"отправлено с .*)\s*$", re.I)


def person_words(text: str) -> str:
    """What a person wrote in a body: above the quoted reply (core/mail/text.py's
    ``own_words``) and above the signature delimiter."""
    out: list[str] = []
    for line in own_words(text).splitlines():
        if _SIGNATURE.match(line.strip()):
            break
        out.append(line)
    return "\n".join(out).strip()


def sender_language_of(subject: str, text: str) -> str:
    """The language the sender writes in: their own words in the body, plus the subject
    when they wrote it (a reply's subject is usually ours, in our language); "" when
    there is nothing to judge."""
    own_subject = "" if REPLY_SUBJECT.match(subject or "") else (subject or "")
    lang = detect_language(f"{own_subject}\n{person_words(text)}")
    if lang:
        return lang
    return detect_language(REPLY_SUBJECT.sub("", subject or ""))


def subject_language(subject: str) -> str:
    """The language of a subject the sender wrote themselves ("" for a reply's, which is
    usually ours)."""
    return "" if REPLY_SUBJECT.match(subject or "") else detect_language(subject)
