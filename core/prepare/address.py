"""The new address itself, as a customer reads it: valid syntax (email-validator, no
deliverability look-ups), and a warning when the local part looks unprofessional or
throw-away — long digit runs (``company12345``), random strings, a free-mail domain for
a business — with a suggestion such as ``name.surname@`` or ``sales@`` (the seed: a
company address like sales@company.com is trusted more than company12345@service.com).

The "looks random" test is a heuristic written here because no library judges how an
address reads to a person: long runs without vowels, many digit/letter switches.
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from ..config import Config
from .records import FAIL, OK, WARN, Finding

SECTION = "Address"
FREE_MAIL = {
    "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com",
    "139.com", "aliyun.com", "gmail.com", "googlemail.com", "outlook.com", "hotmail.com",
    "live.com", "msn.com", "yahoo.com", "yahoo.com.cn", "icloud.com", "me.com", "aol.com",
    "mail.ru", "yandex.ru", "yandex.com", "gmx.com", "gmx.net", "zoho.com", "proton.me",
    "protonmail.com",
}
THROWAWAY = {"test", "temp", "tmp", "demo", "asdf", "qwerty", "abc", "xxx", "noreply", "no-reply"}
_VOWELS = set("aeiouy")


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def suggestions(config: Config, domain: str) -> list[str]:
    """name.surname@ from the identity's name (when it is written in Latin letters), sales@."""
    parts = [p for p in re.split(r"[^a-z]+", _ascii(config.identity.name)) if p]
    out = []
    if len(parts) >= 2:
        out.append(f"{parts[0]}.{parts[-1]}@{domain}")
    elif parts:
        out.append(f"{parts[0]}@{domain}")
    out.append(f"sales@{domain}")
    return out


def looks_random(local: str) -> bool:
    letters = re.sub(r"[^a-z0-9]", "", local.lower())
    if len(letters) < 6:
        return False
    switches = len(re.findall(r"(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", letters))
    consonant_run = max((len(m) for m in re.findall(r"[b-df-hj-np-tv-xz]+", letters)), default=0)
    no_vowels = not any(c in _VOWELS for c in letters if c.isalpha()) and any(c.isalpha() for c in letters)
    return switches >= 3 or consonant_run >= 5 or no_vowels


def problems(local: str, domain: str) -> list[str]:
    """What a customer may think of the address, in plain words (empty: it reads well)."""
    out = []
    low = local.lower()
    digits = max((len(m) for m in re.findall(r"\d+", low)), default=0)
    if low.isdigit():
        out.append("the name is only digits (like a QQ number)")
    elif digits >= 4:
        out.append(f"a run of {digits} digits, like company12345, reads as a throw-away account")
    if looks_random(low) and not low.isdigit():
        out.append("it looks like a random string")
    if re.sub(r"[^a-z]", "", low) in THROWAWAY:
        out.append(f"'{local}' reads as a test or throw-away address")
    if len(local) > 30:
        out.append(f"it is long ({len(local)} characters) and easy to mistype")
    if domain in FREE_MAIL:
        out.append(f"{domain} is a free-mail domain; customers trust a company domain more")
    return out


def check_address(config: Config) -> list[Finding]:
    address = config.identity.new_address
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as e:
        return [Finding("address.syntax", SECTION, "new address", FAIL, f"{address}: {e}",
                        "Nobody can write to an address that is not valid.",
                        "Correct identity.new_address in the config.")]
    local, domain = valid.local_part, valid.domain.lower()
    found = problems(local, domain)
    if not found:
        return [Finding("address.form", SECTION, "new address", OK, f"{address} reads as a business address")]
    better = " or ".join(suggestions(config, domain if domain not in FREE_MAIL else "yourcompany.com"))
    return [Finding("address.form", SECTION, "new address", WARN, f"{address}: " + "; ".join(found),
                    "Customers judge the sender by the address; this one may look unprofessional "
                    "or land in spam.",
                    f"If it can still change, prefer something like {better}.", blocks=False)]
