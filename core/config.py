"""The config: its records (accounts, identity, migration and transition settings) and
``load_config``, which reads and validates the YAML with key + line in every error
(the reading toolkit is core/configread.py; secrets come through core/credentials.py).

Credentials are resolved when needed and kept in memory only; the config dataclasses
hold the *recipe* (env var name, command), never the secret itself, except a plain
``password:`` the user chose to write (warned about when the file is readable by others).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from .configread import ConfigLoader, KeyLines, Keys, Reader, address_problem
from .auth.settings import OAuth2Settings, read_auth
from .credentials import (findable, keyring_password, keyring_problem, oauth2_access_token,
                          program_of, run_secret_command)
from .errors import ConfigError
from .mail.language import REMINDER_LANGUAGES, normalize_language
from .providers import PROVIDERS, get_provider

__all__ = ["Account", "Config", "DnsSettings", "Endpoint", "Identity", "MigrationSettings", "NoticeSettings",
           "TransitionSettings",
           "address_problem", "config_places", "default_state", "find_config", "load_config",
           "parse_config", "quote_command"]

SECURITY = ("ssl", "starttls", "none")
DEFAULT_CONFIG = "switchover.yaml"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    security: str  # ssl | starttls | none


@dataclass(frozen=True)
class Account:
    side: str                       # "old" | "new"
    provider: str
    imap: Endpoint
    smtp: Endpoint | None
    username: str
    password_env: str | None = None
    password_command: str | None = None
    oauth2_token_command: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_verify: bool = True
    max_connections: int = 4
    #: set by a face that asked the user (masked prompt); memory only
    runtime_secret: str | None = field(default=None, repr=False, compare=False)
    #: ManageSieve (RFC 5804) endpoint when set in the config; core/autoreply.py falls
    #: back to the IMAP host, port 4190
    sieve: Endpoint | None = None
    #: daily byte caps (rolling 24 h) and the largest message accepted; None = no limit.
    #: Default: the provider's values (core/providers.py); overridden per account by
    #: daily_download_mb / daily_upload_mb / max_message_mb (0 = no limit)
    daily_download_bytes: int | None = None
    daily_upload_bytes: int | None = None
    max_message_bytes: int | None = None
    #: "password" or "oauth2"; ``oauth2`` set = switchover signs in itself (core/auth/)
    auth: str = "password"
    oauth2: OAuth2Settings | None = None
    #: the password lives in the OS keyring (core/auth/tokens.py), not in the config
    password_keyring: bool = False

    @property
    def uses_oauth2(self) -> bool:
        return self.oauth2_token_command is not None or self.auth == "oauth2"

    @property
    def signs_in(self) -> bool:
        """Signed in by ``switchover login`` (a provider's OAuth2), not by a command."""
        return self.oauth2 is not None

    def has_secret_source(self) -> bool:
        # a sign-in is looked up when connecting: a missing one is one sentence then
        # ("switchover login ..."), never a password prompt
        return bool(self.runtime_secret or self.password or self.password_command
                    or self.oauth2_token_command or self.signs_in
                    or (self.password_keyring and keyring_problem(self) is None)
                    or (self.password_env and os.environ.get(self.password_env)))

    def secret_problem(self) -> str | None:
        """One sentence when the configured source cannot give a secret now (an unset
        environment variable, a command that is not installed, nothing configured),
        naming the variable or command; None when it can, or when a face holds one.
        Cheap: nothing is run."""
        if self.runtime_secret or self.password or self.signs_in:
            return None
        whose = f"The {self.side} mailbox's"
        if self.password_keyring:
            return keyring_problem(self)
        for key, command in (("oauth2_token_command", self.oauth2_token_command),
                             ("password_command", self.password_command)):
            if command:
                program = program_of(command)
                if program and not findable(program):
                    what = "OAuth2 token" if key.startswith("oauth2") else "password"
                    return (f"{whose} {what} comes from the command '{command}' "
                            f"({self.side}.{key}), but '{program}' is not found; install it or "
                            f"fix the command.")
                return None
        if self.password_env:
            if os.environ.get(self.password_env):
                return None
            return (f"{whose} password is read from ${self.password_env} "
                    f"({self.side}.password_env), which is not set; export it first "
                    f"(export {self.password_env}=...) or change {self.side}.password_env.")
        return (f"No password is configured for the {self.side} mailbox ({self.username}): set "
                f"{self.side}.password_env, password_command or oauth2_token_command.")

    def secret(self) -> str:
        """The password or OAuth2 token, resolved now (never cached on disk)."""
        if self.signs_in:
            return oauth2_access_token(self)    # refreshed when it is about to expire
        if self.runtime_secret:
            return self.runtime_secret
        where = f"{self.side}."
        if self.password_keyring:
            return keyring_password(self)
        if self.oauth2_token_command:
            return run_secret_command(self.oauth2_token_command, where + "oauth2_token_command")
        if self.password_command:
            return run_secret_command(self.password_command, where + "password_command")
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value:
                return value
            raise ConfigError(self.secret_problem() or f"${self.password_env} is not set.")
        if self.password is not None:
            return self.password
        raise ConfigError(f"{where}: no password_env, password_command, oauth2_token_command "
                          f"or password is set for {self.username}.")

    def with_secret(self, secret: str) -> "Account":
        return replace(self, runtime_secret=secret)


@dataclass(frozen=True)
class Identity:
    name: str
    company: str
    old_address: str
    new_address: str
    language: str = "en"
    signature: str = ""


@dataclass(frozen=True)
class MigrationSettings:
    archive_prefix: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    connections: int = 0            # 0 = provider default
    batch_messages: int = 200
    batch_bytes: int = 16 * 2**20
    folder_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TransitionSettings:
    start: dt.date | None = None
    close_date: dt.date | None = None
    watch_folders: tuple[str, ...] = ("INBOX",)
    forward_method: str = "imap"     # imap | smtp
    auto_forward: bool = False
    auto_remind: bool = False
    remind_every_days: int = 7
    undo_seconds: float = 5.0
    poll_seconds: float = 60.0
    #: forwarding or reminding an arrival also marks it handled (core/actions.py reads it)
    handled_on_action: bool = True


@dataclass(frozen=True)
class NoticeSettings:
    """The change notice (core/notify/, issue 12): texts, pacing, the final reminder."""
    reason: str = ""                          # optional one-line reason shown in the notice
    #: the reason per language ((code, line), ...) when notices.reason is a mapping
    reasons: tuple[tuple[str, str], ...] = ()
    internal_domains: tuple[str, ...] = ()    # colleagues' domains besides the new address's
    vcard: bool = True                        # attach the new contact as a vCard
    templates: Path | None = None             # the user's template directory (overrides built-ins)
    final_reminder_days: int = 14             # the final reminder goes this many days before close
    per_hour: int | None = None               # pacing; None = the provider's preset
    per_day: int | None = None
    signature: str = ""                       # "" = identity.signature, else one built from below
    company: str = ""                         # "" = identity.company
    phone: str = ""                           # shown in the built signature and the vCard

    def reason_for(self, lang: str) -> str:
        """The reason line of a notice in ``lang``: the line written for that language,
        else the English one, else the one line for all (a mapping without either: none —
        a line in a third language would puzzle more than it explains)."""
        if not self.reasons:
            return self.reason
        given = dict(self.reasons)
        return given[lang] if lang in given else given.get("en", "")


@dataclass(frozen=True)
class DnsSettings:
    """The preflight's DNS look-ups of the new address's domain (core/prepare/dns.py)."""
    dkim_selector: str = ""                   # "" = try the provider's usual selectors
    nameservers: tuple[str, ...] = ()         # "host" or "host:port"; () = the system resolver
    timeout: float = 5.0                      # seconds per look-up


@dataclass(frozen=True)
class Config:
    path: Path
    identity: Identity
    old: Account
    new: Account
    state: Path
    migration: MigrationSettings = MigrationSettings()
    transition: TransitionSettings = TransitionSettings()
    notices: NoticeSettings = NoticeSettings()
    dns: DnsSettings = DnsSettings()
    warnings: tuple[str, ...] = ()
    #: the rotating log file (switchover/cli.py): ``log:`` or switchover.log beside the state
    log: Path | None = None

    def account(self, side: str) -> Account:
        return self.old if side == "old" else self.new


def config_places(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where the config is looked for, in order: ``--config``, ``$SWITCHOVER_CONFIG``
    (either one alone when given), else ./switchover.yaml, then the platform's config
    folder (platformdirs: ~/.config/switchover on Linux, ~/Library/Application Support
    on macOS, %LOCALAPPDATA% on Windows)."""
    if explicit:
        return [Path(explicit)]
    env = os.environ.get("SWITCHOVER_CONFIG")
    if env:
        return [Path(env)]
    return [Path(DEFAULT_CONFIG), Path(platformdirs.user_config_dir("switchover")) / DEFAULT_CONFIG]


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """The first of ``config_places`` that exists, else the first place (where ``init``
    writes and where the "no config" sentence starts)."""
    places = config_places(explicit)
    return next((p for p in places if p.exists()), places[0])


def default_state(old_address: str) -> Path:
    """The state file when the config names none: one folder per address change in the
    platform's state folder (two configs never share a state file by accident)."""
    folder = re.sub(r"[^A-Za-z0-9._@+-]", "_", old_address.casefold())
    return Path(platformdirs.user_state_dir("switchover")) / folder / "switchover.sqlite"


ACCOUNT_KEYS = {"provider", "imap", "smtp", "username", "password_env", "password_command",
                "oauth2_token_command", "password", "tls_verify", "max_connections", "sieve",
                "daily_download_mb", "daily_upload_mb", "max_message_mb",
                "auth", "oauth2", "password_keyring"}
ENDPOINT_KEYS = {"host", "port", "security"}


def _endpoint(r: Reader, data: Any, key: str, host: str | None, port: int, security: str,
              required: bool) -> Endpoint | None:
    if data is None and not host:
        if required:
            raise r.fail(key, "is missing (give host, port and security, or a known provider).")
        return None
    d = r.mapping(data or {}, key, ENDPOINT_KEYS, required=False)
    h = r.string(d, key, "host", host)
    if not h:
        raise r.fail(f"{key}.host", "is missing.")
    p = r.integer(d, key, "port", port, 1, 65535)
    s = r.string(d, key, "security", security)
    if s not in SECURITY:
        raise r.fail(f"{key}.security", f"must be one of {', '.join(SECURITY)}, not '{s}'.")
    return Endpoint(h, p, s)


def _account(r: Reader, data: Any, side: str, warnings: list[str], file_mode: int) -> Account:
    d = r.mapping(data, side, ACCOUNT_KEYS)
    provider_key = r.string(d, side, "provider", "custom") or "custom"
    if provider_key not in PROVIDERS:
        raise r.fail(f"{side}.provider", f"'{provider_key}' is not known (use one of: {', '.join(PROVIDERS)}).")
    prov = get_provider(provider_key)
    imap = _endpoint(r, d.get("imap"), f"{side}.imap", prov.imap_host, prov.imap_port, "ssl", True)
    if imap is None:        # required: _endpoint raised; this tells the type checker
        raise r.fail(f"{side}.imap", "is missing.")
    smtp_default_port = prov.smtp_port
    smtp = _endpoint(r, d.get("smtp"), f"{side}.smtp", prov.smtp_host, smtp_default_port,
                     prov.smtp_security, False)
    username = r.text(d, side, "username")
    sources = [k for k in ("password_env", "password_command", "oauth2_token_command", "password",
                           "password_keyring") if d.get(k)]
    if len(sources) > 1:
        raise r.fail(f"{side}.{sources[1]}", f"conflicts with {side}.{sources[0]}; keep one way to get the secret.")
    auth, oauth2 = read_auth(r, d, side)
    password = d.get("password")
    if password is not None and not isinstance(password, str):
        password = str(password)
    if password and file_mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(f"{side}.password is written in the config, which other users can read; "
                        f"run 'chmod 600' on it or use password_env / password_command.")
    tls_verify = r.boolean(d, side, "tls_verify", True)
    if not tls_verify:
        warnings.append(f"{side}.tls_verify is false: the server's certificate is not checked.")
    for ep_name, ep in (("imap", imap), ("smtp", smtp)):
        if ep and ep.security == "none" and ep.host not in ("127.0.0.1", "localhost", "::1"):
            warnings.append(f"{side}.{ep_name}.security is none: the password crosses the network unencrypted.")
    sieve = None
    if d.get("sieve") is not None:
        sieve = _endpoint(r, d.get("sieve"), f"{side}.sieve", imap.host, 4190,
                          "none" if imap.security == "none" else "starttls", False)
    return Account(
        side=side, provider=provider_key, imap=imap, smtp=smtp, username=username, sieve=sieve,
        password_env=r.string(d, side, "password_env"),
        password_command=r.string(d, side, "password_command"),
        oauth2_token_command=r.string(d, side, "oauth2_token_command"),
        password=password, tls_verify=tls_verify,
        max_connections=r.integer(d, side, "max_connections", prov.max_connections, 1, 50),
        daily_download_bytes=_cap(r, d, side, "daily_download_mb", prov.daily_download_bytes),
        daily_upload_bytes=_cap(r, d, side, "daily_upload_mb", prov.daily_upload_bytes),
        max_message_bytes=_cap(r, d, side, "max_message_mb", prov.max_message_bytes),
        auth=auth, oauth2=oauth2, password_keyring=r.boolean(d, side, "password_keyring", False),
    )


def _cap(r: Reader, d: Keys, side: str, name: str, default: int | None) -> int | None:
    """A size limit in MB (10**6 bytes, fractions allowed) → bytes; 0 = no limit; unset =
    the provider's value."""
    if d.get(name) is None:
        return default
    mb = r.number(d, side, name, 0.0)
    return int(mb * 10**6) or None


TOP_KEYS = {"identity", "old", "new", "state", "log", "migration", "transition", "notices", "dns"}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config; every problem is one ConfigError sentence."""
    p = find_config(path)
    try:
        text = p.read_text(encoding="utf-8")
        mode = p.stat().st_mode
    except FileNotFoundError:
        places = config_places(path)
        where = (f"at {p}" if len(places) == 1
                 else "in " + " or ".join(str(q) for q in places))
        raise ConfigError(f"No config found {where}; run 'switchover init' to write one, "
                          f"or pass --config PATH.") from None
    except OSError as e:
        raise ConfigError(f"Cannot read the config {p}: {e.strerror}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"The config {p} is not UTF-8 text.") from None
    try:
        data = yaml.load(text, Loader=ConfigLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"The config {p} is not valid YAML{where}: {problem}.") from None
    return parse_config(data, p, text, mode)


def parse_config(data: Any, path: Path, text: str = "", mode: int = 0o600,
                 today: dt.date | None = None) -> Config:
    lines = KeyLines(text)
    r = Reader(lines)
    if data is None:
        raise ConfigError(f"The config {path} is empty.")
    if lines.duplicates:
        key, first, second = lines.duplicates[0]
        raise ConfigError(f"config key '{key}' is written twice (lines {first} and {second}); "
                          f"keep one.")
    top = r.mapping(data, "", TOP_KEYS)
    warnings: list[str] = []
    ident = r.mapping(top.get("identity"), "identity",
                      {"name", "company", "old_address", "new_address", "language", "signature"})
    identity = Identity(
        name=r.text(ident, "identity", "name"),
        company=r.string(ident, "identity", "company", "") or "",
        old_address=r.text(ident, "identity", "old_address"),
        new_address=r.text(ident, "identity", "new_address"),
        language=r.string(ident, "identity", "language", "en") or "en",
        signature=r.string(ident, "identity", "signature", "") or "",
    )
    for k in ("old_address", "new_address"):
        problem = address_problem(getattr(identity, k))
        if problem:
            raise r.fail(f"identity.{k}", problem + ".")
    if identity.old_address.casefold() == identity.new_address.casefold():
        raise r.fail("identity.new_address", "is the same as identity.old_address.")
    identity = replace(identity, language=_language(r, identity.language))
    old = _account(r, top.get("old"), "old", warnings, mode)
    new = _account(r, top.get("new"), "new", warnings, mode)
    # an explicit state: is relative to the config; without one, the platform's state folder
    state_name = r.string(top, "", "state", "") or ""
    state = Path(os.path.expanduser(state_name)) if state_name else default_state(identity.old_address)
    if not state.is_absolute():
        state = path.resolve().parent / state
    log_name = r.string(top, "", "log", "") or ""
    log = Path(os.path.expanduser(log_name)) if log_name else state.with_name("switchover.log")
    if not log.is_absolute():
        log = path.resolve().parent / log
    m = r.mapping(top.get("migration"), "migration",
                  {"archive_prefix", "include", "exclude", "connections", "batch_messages",
                   "batch_bytes", "folder_map"}, required=False)
    fmap = m.get("folder_map") or {}
    if not isinstance(fmap, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in fmap.items()):
        raise r.fail("migration.folder_map", "must map source folder names to destination names.")
    migration = MigrationSettings(
        archive_prefix=r.string(m, "migration", "archive_prefix", "") or "",
        include=r.strings(m, "migration", "include"),
        exclude=r.strings(m, "migration", "exclude"),
        connections=r.integer(m, "migration", "connections", 0, 0, 50),
        batch_messages=r.integer(m, "migration", "batch_messages", 200, 1, 5000),
        batch_bytes=r.integer(m, "migration", "batch_bytes", 16 * 2**20, 2**16, 2**31),
        folder_map=dict(fmap),
    )
    t = r.mapping(top.get("transition"), "transition",
                  {"start", "close_date", "watch_folders", "forward_method", "auto_forward",
                   "auto_remind", "remind_every_days", "undo_seconds", "poll_seconds",
                   "handled_on_action"}, required=False)
    fm = r.string(t, "transition", "forward_method", "imap")
    if fm not in ("imap", "smtp"):
        raise r.fail("transition.forward_method", f"must be imap or smtp, not '{fm}'.")
    transition = TransitionSettings(
        start=r.date(t, "transition", "start"),
        close_date=r.date(t, "transition", "close_date"),
        watch_folders=r.strings(t, "transition", "watch_folders") or ("INBOX",),
        forward_method=fm,
        auto_forward=r.boolean(t, "transition", "auto_forward", False),
        auto_remind=r.boolean(t, "transition", "auto_remind", False),
        remind_every_days=r.integer(t, "transition", "remind_every_days", 7, 1, 365),
        undo_seconds=r.number(t, "transition", "undo_seconds", 5.0),
        poll_seconds=r.number(t, "transition", "poll_seconds", 60.0, 1.0),
        handled_on_action=r.boolean(t, "transition", "handled_on_action", True),
    )
    _check_dates(r, transition, warnings, today or dt.date.today())
    notices = _notices(r, top.get("notices"), path, warnings)
    return Config(path=path, identity=identity, old=old, new=new, state=state, log=log,
                  migration=migration, transition=transition, notices=notices,
                  dns=_dns(r, top.get("dns")), warnings=tuple(warnings))


def _dns(r: Reader, data: Any) -> DnsSettings:
    d = r.mapping(data, "dns", {"dkim_selector", "nameservers", "timeout"}, required=False)
    servers = []
    for ns in r.strings(d, "dns", "nameservers"):
        host, _, port = ns.strip().rpartition(":") if ns.count(":") == 1 else (ns.strip(), "", "")
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise r.fail("dns.nameservers", f"'{ns}' is not host or host:port (like 192.0.2.53:5353).")
        servers.append(ns.strip())
    selector = (r.string(d, "dns", "dkim_selector", "") or "").strip().rstrip(".")
    if selector.endswith("._domainkey") or any(c.isspace() for c in selector):
        raise r.fail("dns.dkim_selector", f"'{selector}' is not a selector; give only its name, like selector1.")
    return DnsSettings(dkim_selector=selector, nameservers=tuple(servers),
                       timeout=r.number(d, "dns", "timeout", 5.0, 0.1))


NOTICE_KEYS = {"reason", "internal_domains", "vcard", "templates", "final_reminder_days",
               "per_hour", "per_day", "signature", "company", "phone"}


def _notices(r: Reader, data: Any, path: Path, warnings: list[str]) -> NoticeSettings:
    n = r.mapping(data, "notices", NOTICE_KEYS, required=False)
    domains = []
    for d in r.strings(n, "notices", "internal_domains"):
        domain = d.strip().lstrip("@").rstrip(".").lower()
        if address_problem(f"x@{domain}"):
            raise r.fail("notices.internal_domains", f"'{d}' is not a domain name "
                                                     f"(write it like company.example).")
        domains.append(domain)
    templates = None
    folder = r.string(n, "notices", "templates")
    if folder:
        templates = Path(os.path.expanduser(folder))
        if not templates.is_absolute():
            templates = path.resolve().parent / templates
        if templates.exists() and not templates.is_dir():
            raise r.fail("notices.templates", f"{templates} is a file, not a directory of templates.")
        if not templates.exists():
            warnings.append(f"notices.templates{r.lines.at('notices.templates')} names {templates}, "
                            f"which does not exist: the built-in texts are used (write them there "
                            f"with 'switchover notify --templates {folder}').")
    pacing = {k: None if n.get(k) is None else r.integer(n, "notices", k, 0, 1, 100_000)
              for k in ("per_hour", "per_day")}
    reason, reasons = "", []
    if isinstance(n.get("reason"), dict):
        for code, line in n["reason"].items():
            # YAML 1.1 reads an unquoted no: (Norwegian) as false
            lang = "no" if code is False else str(code).strip().lower()
            if not re.fullmatch(r"[a-z]{2,3}", lang):
                raise r.fail(f"notices.reason.{code}", "is not a language code (write it like en, zh, es).")
            if not isinstance(line, str):
                raise r.fail(f"notices.reason.{code}", "must be one line of text.")
            reasons.append((lang, " ".join(line.split())))
    else:
        reason = " ".join((r.string(n, "notices", "reason", "") or "").split())
    return NoticeSettings(
        reason=reason, reasons=tuple(reasons),
        internal_domains=tuple(domains),
        vcard=r.boolean(n, "notices", "vcard", True),
        templates=templates,
        final_reminder_days=r.integer(n, "notices", "final_reminder_days", 14, 1, 365),
        per_hour=pacing["per_hour"], per_day=pacing["per_day"],
        signature=r.string(n, "notices", "signature", "") or "",
        company=r.string(n, "notices", "company", "") or "",
        phone=r.string(n, "notices", "phone", "") or "",
    )


def _language(r: Reader, value: str) -> str:
    """The reply language as a code switchover has texts for ('zh-CN', 'Chinese' → 'zh')."""
    code = normalize_language(value)
    if code not in REMINDER_LANGUAGES:
        raise r.fail("identity.language", f"'{value}' is not a language switchover writes "
                                          f"reminders in (use one of: {', '.join(REMINDER_LANGUAGES)}).")
    return code


def _check_dates(r: Reader, t: TransitionSettings, warnings: list[str], today: dt.date) -> None:
    if t.start and t.close_date and t.start > t.close_date:
        raise r.fail("transition.close_date", f"{t.close_date} is before transition.start "
                                              f"({t.start}); the old address cannot close before "
                                              f"the transition starts.")
    if t.close_date and t.close_date < today:
        warnings.append(f"transition.close_date{r.lines.at('transition.close_date')} is "
                        f"{t.close_date}, in the past: the auto-reply no longer answers and "
                        f"reminders name a day gone by; set the real closing date.")


def quote_command(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
