"""`switchover init`: a few questions, then a commented switchover.yaml written from
config.example.yaml with the answers filled in (no secret is ever written to it).

- Addresses are checked with email-validator (syntax only: ``check_deliverability=False``)
  and the config's own rule; whether the domain receives mail is our own MX look-up
  (core/prepare/dns.py's resolver), which also recognises the provider from the MX hosts
  (core/providers.py ``MX_PATTERNS``): a company domain on Microsoft 365 or Exmail gets
  the right hosts without the person knowing them. A domain that does not exist is asked
  again; a look-up that cannot run (offline) only says so.
- A custom server gets its host, security (ssl | starttls | none) and port (1–65535),
  each checked before the next question.
- Sign-in: Microsoft 365 / Google Workspace get OAuth2 (an ``oauth2:`` block with the app's
  client_id; Microsoft's tenant defaults to the address's domain; Google adds the client's
  client_secret) and no password key (core/auth/settings.py refuses both). A personal
  Gmail address gets core/auth/advice.py's advice and an (app) password by default. A
  password goes to the OS keyring when there is one (``password_keyring: true``); without
  one, one sentence says so, then an environment variable or a command.
- Once the file loads: "Sign in now?" (OAuth2) or the password prompt (keyring), through
  switchover/cmd_auth.py, both proved with an IMAP login; a refusal is one sentence, the
  file stays and ``switchover login SIDE`` does it later.
- Where it writes: ``--config`` / ``$SWITCHOVER_CONFIG`` when given, else
  ./switchover.yaml in the folder the person is in (the first place every command looks);
  the sentence at the end names the absolute path. The state and log default to the
  platform's state folder (core/config.py ``default_state``).

Questions go through ``ask`` (``input`` by default), so tests script the answers; when
the answers run out, the rest take their defaults (none valid: one sentence). The
password itself is read by cmd_auth (getpass, or a line from a pipe), never by ``ask``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from email_validator import EmailNotValidError, validate_email

from switchover import cmd_auth
from switchover.core.auth import tokens
from switchover.core.auth.advice import GMAIL_APP_PASSWORD, is_personal_gmail
from switchover.core.auth.oauth2 import has_sign_in
from switchover.core.config import Account, Config, DnsSettings, address_problem, config_places, load_config
from switchover.core.errors import ConfigError, SwitchoverError
from switchover.core.prepare.dns import NoDomain, Resolver, Trouble, reserved
from switchover.core.providers import PROVIDERS, provider_from_mx
from switchover.core.store import make_private_dirs

#: consumer domains whose provider is known without asking DNS
DOMAIN_PROVIDERS = {
    "gmail.com": "gmail", "googlemail.com": "gmail", "outlook.com": "outlook", "hotmail.com": "outlook",
    "live.com": "outlook", "qq.com": "qq", "foxmail.com": "qq", "163.com": "163", "126.com": "163",
    "yeah.net": "163", "yandex.com": "yandex", "yandex.ru": "yandex", "zoho.com": "zoho",
    "aliyun.com": "aliyun",
}
SECURITY = ("ssl", "starttls", "none")
DEFAULT_PORTS = {("imap", "ssl"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
                 ("smtp", "ssl"): 465, ("smtp", "starttls"): 587, ("smtp", "none"): 25}
#: providers whose accounts switchover signs in with OAuth2 (core/auth/settings.py PROVIDERS)
OAUTH2_PROVIDERS = {"outlook": "microsoft", "gmail": "google"}
#: Microsoft's personal-account domains: their tenant is "consumers", not the domain
MICROSOFT_CONSUMER = ("outlook.com", "hotmail.com", "live.com", "msn.com")
YES, NO = ("y", "yes"), ("n", "no")
Ask = Callable[[str], str]
#: an answer: a value for the example's key, or lines that replace the key's whole line
Answer = str | list[str]


@dataclass
class Wizard:
    """The questions of one ``init``: where answers come from, where DNS is asked."""
    ask: Ask = input
    nameservers: tuple[str, ...] = ()          # () = the system resolver
    timeout: float = 3.0
    #: MX hosts found per domain (None: the look-up could not run)
    mx: dict[str, list[str] | None] = field(default_factory=dict)
    #: an address refused because DNS does not know its domain: typed again, it is kept
    insisted: str = ""

    def question(self, prompt: str, default: str = "", check: Callable[[str], str | None] | None = None) -> str:
        while True:
            suffix = f" [{default}]" if default else ""
            try:
                answer = self.ask(f"{prompt}{suffix}: ").strip()
            except EOFError:
                # the answers ran out (a pipe): the rest take their defaults, where valid
                if check is None or not check(default):
                    return default
                raise ConfigError("switchover init needs answers on standard input; "
                                  "or copy config.example.yaml to switchover.yaml and edit it.") from None
            answer = answer or default
            problem = check(answer) if check else None
            if not problem:
                return answer
            print(f"  {problem}")

    # -- DNS ---------------------------------------------------------------------------
    def mx_hosts(self, domain: str) -> list[str] | None:
        """The domain's MX hosts, most preferred first ([] when it has none); None when
        the look-up could not run. Raises NoDomain when the domain does not exist."""
        if domain not in self.mx:
            resolver = Resolver(DnsSettings(nameservers=self.nameservers, timeout=self.timeout))
            try:
                records = resolver.query(domain, "MX")
            except Trouble as e:
                print(f"  (could not look up {domain} in DNS: {e}; the address is taken as written)")
                self.mx[domain] = None
            else:
                ranked = sorted((int(pref), host) for pref, _, host in (r.partition(" ") for r in records))
                self.mx[domain] = [host for _, host in ranked if host]
        return self.mx[domain]

    def address_check(self, value: str) -> str | None:
        """Syntax (email-validator, then the config's rule), then: does the domain exist
        and receive mail (our MX look-up; reserved test domains are not asked)."""
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as e:
            return f"{e}"
        problem = address_problem(value)
        if problem:
            return f"{problem[0].upper()}{problem[1:]}."
        domain = value.rpartition("@")[2].lower()
        if domain in DOMAIN_PROVIDERS or reserved(domain):
            return None
        try:
            hosts = self.mx_hosts(domain)
        except NoDomain:
            if self.insisted == value:        # typed twice: a resolver may be wrong, the person decides
                return None
            self.insisted = value
            return (f"The domain {domain} does not exist in DNS; check the spelling "
                    f"(or type the same address again to keep it).")
        if hosts == []:
            print(f"  note: {domain} has no MX record; mail to it goes to its A record, if any.")
        return None

    def guess_provider(self, address: str) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain in DOMAIN_PROVIDERS:
            return DOMAIN_PROVIDERS[domain]
        hosts = self.mx.get(domain)
        found = provider_from_mx(hosts or [])
        if found:
            print(f"  {domain} receives its mail at {hosts[0] if hosts else '?'}: {PROVIDERS[found].label}.")
        return found or "custom"


def example_text() -> str:
    here = Path(__file__).resolve().parent.parent / "config.example.yaml"
    if here.exists():
        return here.read_text(encoding="utf-8")
    return resources.files("switchover").joinpath("config.example.yaml").read_text(encoding="utf-8")


def guess_provider(address: str) -> str:
    """The provider of a consumer address, without DNS (``Wizard.guess_provider`` asks MX)."""
    return DOMAIN_PROVIDERS.get(address.rpartition("@")[2].lower(), "custom")


def _provider(value: str) -> str | None:
    return None if value in PROVIDERS else f"Choose one of: {', '.join(PROVIDERS)}."


def host_problem(value: str) -> str | None:
    if not value or not re.fullmatch(r"[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:.]+\]?", value) or "://" in value:
        return "Give a host name like imap.example.com (no scheme, no port)."
    return None


def port_problem(value: str) -> str | None:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        return "Give a port number from 1 to 65535."
    return None


def security_problem(value: str) -> str | None:
    return None if value in SECURITY else "Choose ssl, starttls or none."


def _server(w: Wizard, side: str, proto: str, domain: str) -> dict[str, str]:
    """Host, security and port of one custom server, each checked."""
    host = w.question(f"{side} {proto.upper()} server", f"{proto}.{domain}", host_problem)
    security = w.question(f"{side} {proto.upper()} security (ssl | starttls | none)", "ssl", security_problem)
    port = w.question(f"{side} {proto.upper()} port", str(DEFAULT_PORTS[(proto, security)]), port_problem)
    return {f"{side}.{proto}.host": host, f"{side}.{proto}.security": security, f"{side}.{proto}.port": port}


def _sign_in(w: Wizard, side: str, provider: str, address: str, answers: dict[str, Answer]) -> None:
    """How this account signs in: the example's ``password_env`` line, or the lines that
    replace it."""
    p = PROVIDERS[provider]
    if provider != "custom":
        print(f"  {p.label}: use {p.auth_hint}.")
    kind = OAUTH2_PROVIDERS.get(provider)
    how = "password"
    if kind:
        personal = is_personal_gmail(address)
        if personal:
            print(textwrap.fill(GMAIL_APP_PASSWORD, 92, initial_indent="  ", subsequent_indent="  "))
        how = _choose(w, f"{side} mailbox signs in with", ("oauth2", "password"),
                      "password" if personal else "oauth2")
    lines = _oauth2_lines(w, side, kind, address) if kind and how == "oauth2" else _password_lines(w, side)
    answers[f"{side}.password_env"] = lines


def _oauth2_lines(w: Wizard, side: str, kind: str, address: str) -> list[str]:
    """``auth: oauth2`` and the app registration (README: "Signing in to Microsoft 365 and
    Google Workspace" says what the admin provides)."""
    if not tokens.keyring_available():
        # a sign-in is kept in the OS keyring only; a token command of the person's own needs none
        print(f"  {tokens.no_keyring_sentence(side)}")
        command = w.question(f"{side} OAuth2 token command (a tool printing an access token; "
                             f"empty: write the sign-in settings anyway)", "")
        if command:
            return ["auth: oauth2", f"oauth2_token_command: {_quoted(command)}"]
    block = [f"  provider: {kind}"]
    if kind == "microsoft":
        client_id = w.question(f"{side} Microsoft app (client) ID your admin registered or allowed",
                               check=_token("an application (client) ID"))
        tenant = w.question(f"{side} Microsoft tenant", default_tenant(address), tenant_problem)
        block += [f"  client_id: {_quoted(client_id)}", f"  tenant: {_quoted(tenant)}"]
    else:
        client_id = w.question(f"{side} Google OAuth client ID (a Desktop app client)",
                               check=_token("a client ID like 1234-abc.apps.googleusercontent.com"))
        secret = w.question(f"{side} Google client_secret of that client (not your password)",
                            check=_token("the client's client_secret (GOCSPX-...)"))
        block += [f"  client_id: {_quoted(client_id)}", f"  client_secret: {_quoted(secret)}"]
    return ["auth: oauth2", "oauth2:", *block]


def _password_lines(w: Wizard, side: str) -> Answer:
    if tokens.keyring_available():
        if _yes(w, f"Keep the {side} password in the OS keyring (asked once the file is written)?"):
            return ["password_keyring: true"]
    else:
        print(f"  {tokens.no_keyring_sentence(side)}")
    source = _choose(w, f"{side} password from", ("env", "command"), "env")
    if source == "command":
        command = w.question(f"{side} password command (prints the password, e.g. pass show mail/{side})",
                             check=_token("a command", spaces=True))
        return [f"password_command: {_quoted(command)}"]
    return f"{side.upper()}_MAIL_PASSWORD"          # the example's line, its comment kept


def default_tenant(address: str) -> str:
    domain = address.rpartition("@")[2].lower()
    return "consumers" if domain in MICROSOFT_CONSUMER else domain


def tenant_problem(value: str) -> str | None:
    if not value or "/" in value or " " in value:
        return "Give a tenant: the company's domain, its tenant ID, or organizations."
    return None


def _choose(w: Wizard, prompt: str, choices: tuple[str, ...], default: str) -> str:
    check = (lambda v: None if v.lower() in choices else f"Choose {' or '.join(choices)}.")
    return w.question(f"{prompt} ({' | '.join(choices)})", default, check).lower()


def _yes(w: Wizard, prompt: str) -> bool:
    check = (lambda v: None if v.lower() in YES + NO else "Answer yes or no.")
    return w.question(f"{prompt} (yes | no)", "yes", check).lower() in YES


def _token(what: str, spaces: bool = False) -> Callable[[str], str | None]:
    """A value given (without spaces: an ID, a client secret)."""
    return lambda v: None if v and (spaces or not any(c.isspace() for c in v)) else f"Give {what}."


def fill(text: str, answers: dict[str, Answer]) -> str:
    """Replace the example's values by dotted key path, keeping every comment; a list of
    lines replaces the key's whole line (at its indent)."""
    section = sub_section = ""
    out: list[str] = []
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
            answer = answers.get(path)
            if isinstance(answer, list):
                out.extend(f"{indent}{ln}\n" for ln in answer)
                continue
            if answer is not None:
                tail = f"{sp2 or ' '}{comment}" if comment else ""
                line = f"{indent}{key}:{sp or ' '}{answer}{tail}\n"
        out.append(line)
    return "".join(out)


def ask_answers(w: Wizard) -> dict[str, Answer]:
    """Every question of init; the answers by the example's dotted key paths."""
    name = w.question("Your name", "")
    company = w.question("Company", "")
    old = w.question("Old address (being retired)", check=w.address_check)
    new = w.question("New address", check=lambda v: w.address_check(v) or (
        "That is the old address; give the new one." if v.casefold() == old.casefold() else None))
    old_p = w.question(f"Old provider ({' | '.join(PROVIDERS)})", w.guess_provider(old), _provider)
    new_p = w.question("New provider", w.guess_provider(new), _provider)
    answers: dict[str, Answer] = {
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
            answers.update(_server(w, side, "imap", domain))
            answers.update(_server(w, side, "smtp", domain))
        else:
            answers[f"{side}.imap.host"] = p.imap_host or ""
            answers[f"{side}.imap.port"] = str(p.imap_port)
            answers[f"{side}.imap.security"] = "ssl"
            answers[f"{side}.smtp.host"] = p.smtp_host or ""
            answers[f"{side}.smtp.port"] = str(p.smtp_port)
            answers[f"{side}.smtp.security"] = p.smtp_security
        _sign_in(w, side, prov, addr, answers)
    return answers


def init_target(explicit: str | None) -> Path:
    """``--config`` or ``$SWITCHOVER_CONFIG`` when given, else ./switchover.yaml."""
    return config_places(explicit)[0]


def run_init(path: Path, *, force: bool = False, wizard: Wizard | None = None) -> int:
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; edit it, or run 'switchover init --force' to start over.")
    w = wizard or Wizard()
    print("switchover init — a few questions; no password or token is ever written to the file.")
    text = fill(example_text(), ask_answers(w))
    path = path.expanduser().absolute()
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        cfg = load_config(path)
    except ConfigError as e:
        print(f"note: the written config needs an edit: {e.message}", file=sys.stderr)
        print(f"Wrote {path}.")
        return 0
    print(f"Wrote {path}. State and log: {cfg.state.parent}.")
    accounts = (cfg.old, cfg.new)
    # every question first: a Google sign-in may leave cmd_auth's reader of a pasted
    # address waiting on standard input; then the passwords, the sign-ins last
    sign_in = [a for a in accounts if a.signs_in and tokens.keyring_available()
               and _yes(w, f"Sign in to the {a.side} mailbox now?")]
    ready = {a.side for a in accounts if a.password_keyring and _secret_now(a, cmd_auth.keep_password)}
    ready |= {a.side for a in sign_in if _secret_now(a, cmd_auth.sign_in)}
    print(f"Next: {_next_steps(cfg, ready)}")
    return 0


def _secret_now(account: Account, how: Callable[[Account], object]) -> bool:
    """Keep the password in the keyring (``cmd_auth.keep_password``) or sign in
    (``cmd_auth.sign_in``), proved with an IMAP login; True when done. A refusal is one
    sentence: the file is written, ``switchover login`` does it later."""
    side = account.side
    if how is cmd_auth.keep_password:
        print(f"The {side} password is checked with a login to {account.imap.host}, then kept "
              f"in the OS keyring.")
    try:
        who = how(account)
    except SwitchoverError as e:
        later = f"switchover login {side}{' --password' if account.password_keyring else ''}"
        print(f"  {e.message} The file is written; run '{later}' when ready.")
        return False
    if account.password_keyring:
        print(f"The {side} mailbox took the password; it is kept in the OS keyring.")
    else:
        print(f"Signed in{f' as {who}' if who else ''}; the IMAP login of the {side} mailbox works.")
    return True


def _next_steps(cfg: Config, ready: set[str]) -> str:
    steps = []
    for account in (cfg.old, cfg.new):
        side = account.side
        if side in ready:
            continue
        if account.signs_in and not has_sign_in(account):
            steps.append(f"run 'switchover login {side}'")
        elif account.password_keyring:
            steps.append(f"run 'switchover login {side} --password'")
        elif account.password_env:
            steps.append(f"export {account.password_env}")
    first = f"{', '.join(steps)}; then " if steps else ""
    return f"{first}run 'switchover check', and 'switchover' for the dashboard."


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _yaml(value: str) -> str:
    if value == "" or re.search(r"[:#\[\]{},&*!|>'\"%@`]", value) or value != value.strip():
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value
