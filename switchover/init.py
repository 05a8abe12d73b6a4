"""`switchover init`: a few questions, then a commented switchover.yaml written from
config.example.yaml with the answers filled in (secrets are never asked for here)."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from importlib import resources
from pathlib import Path

from switchover.core.config import address_problem, load_config
from switchover.core.errors import ConfigError
from switchover.core.providers import PROVIDERS
from switchover.core.store import make_private_dirs

DOMAIN_PROVIDERS = {
    "gmail.com": "gmail", "googlemail.com": "gmail", "outlook.com": "outlook", "hotmail.com": "outlook",
    "live.com": "outlook", "qq.com": "qq", "foxmail.com": "qq", "163.com": "163", "126.com": "163",
    "yeah.net": "163", "yandex.com": "yandex", "yandex.ru": "yandex", "zoho.com": "zoho",
    "aliyun.com": "aliyun",
}


def example_text() -> str:
    here = Path(__file__).resolve().parent.parent / "config.example.yaml"
    if here.exists():
        return here.read_text(encoding="utf-8")
    return resources.files("switchover").joinpath("config.example.yaml").read_text(encoding="utf-8")


def guess_provider(address: str) -> str:
    return DOMAIN_PROVIDERS.get(address.rpartition("@")[2].lower(), "custom")


def _ask(prompt: str, default: str = "", check=None) -> str:
    while True:
        suffix = f" [{default}]" if default else ""
        try:
            answer = input(f"{prompt}{suffix}: ").strip()
        except EOFError:
            raise ConfigError("switchover init needs answers on standard input; "
                              "or copy config.example.yaml to switchover.yaml and edit it.") from None
        answer = answer or default
        problem = check(answer) if check else None
        if not problem:
            return answer
        print(f"  {problem}")


def _address(value: str) -> str | None:
    """The config's own check, so init never writes an address the config refuses."""
    problem = address_problem(value)
    return f"{problem[0].upper()}{problem[1:]}." if problem else None


def _provider(value: str) -> str | None:
    return None if value in PROVIDERS else f"Choose one of: {', '.join(PROVIDERS)}."


def fill(text: str, answers: dict[str, str]) -> str:
    """Replace the example's values by dotted key path, keeping every comment."""
    section = sub_section = ""
    out = []
    for line in text.splitlines(keepends=True):
        top = re.match(r"^(\w+):", line)
        if top:
            section, sub_section = top.group(1), ""
        m = re.match(r"^( +)(\w+):( *)([^#\n]*?)( *)(#.*)?$", line.rstrip("\n"))
        if m:
            indent, key, sp, value, sp2, comment = m.groups()
            nested = len(indent) > 2
            path = f"{section}.{sub_section}.{key}" if nested else f"{section}.{key}"
            if not nested:
                sub_section = key if not value else ""
            if path in answers:
                tail = f"{sp2 or ' '}{comment}" if comment else ""
                line = f"{indent}{key}:{sp or ' '}{answers[path]}{tail}\n"
        out.append(line)
    return "".join(out)


def run_init(path: Path, *, force: bool = False) -> int:
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; edit it, or run 'switchover init --force' to start over.")
    print("switchover init — a few questions; secrets are not asked here (set them as environment "
          "variables or a password command later).")
    name = _ask("Your name", "")
    company = _ask("Company", "")
    old = _ask("Old address (being retired)", check=_address)
    new = _ask("New address", check=lambda v: _address(v) or (
        "That is the old address; give the new one." if v.casefold() == old.casefold() else None))
    old_p = _ask(f"Old provider ({' | '.join(PROVIDERS)})", guess_provider(old), _provider)
    new_p = _ask("New provider", guess_provider(new), _provider)
    answers = {
        "identity.name": _yaml(name or "Your Name"), "identity.company": _yaml(company),
        "identity.old_address": old, "identity.new_address": new,
        "old.provider": old_p, "new.provider": new_p,
        "old.username": old, "new.username": new,
        "transition.start": dt.date.today().isoformat(),
        "transition.close_date": (dt.date.today() + dt.timedelta(days=120)).isoformat(),
    }
    for side, prov, addr in (("old", old_p, old), ("new", new_p, new)):
        p = PROVIDERS[prov]
        if prov == "custom":
            domain = addr.rpartition("@")[2]
            answers[f"{side}.imap.host"] = _ask(f"{side} IMAP server", f"imap.{domain}")
            answers[f"{side}.smtp.host"] = _ask(f"{side} SMTP server", f"smtp.{domain}")
        else:
            answers[f"{side}.imap.host"] = p.imap_host or ""
            answers[f"{side}.smtp.host"] = p.smtp_host or ""
            answers[f"{side}.smtp.port"] = str(p.smtp_port)
            answers[f"{side}.smtp.security"] = p.smtp_security
            print(f"  {p.label}: use {p.auth_hint}.")
    text = fill(example_text(), answers)
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        load_config(path)
    except ConfigError as e:
        print(f"note: the written config needs an edit: {e.message}", file=sys.stderr)
    print(f"Wrote {path}. Next: export OLD_MAIL_PASSWORD and NEW_MAIL_PASSWORD (or set password_command), "
          f"then run 'switchover check' and 'switchover' for the dashboard.")
    return 0


def _yaml(value: str) -> str:
    if value == "" or re.search(r"[:#\[\]{},&*!|>'\"%@`]", value) or value != value.strip():
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value
