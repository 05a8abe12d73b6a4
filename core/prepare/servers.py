"""Verdicts on what core/prepare/probe.py saw: the logins (IMAP and SMTP, both sides),
the capabilities that matter for this change, each missing one said in plain words, and
the fit of the old mailbox into the new one (free quota, the largest messages against
the new provider's size limit) — before anything is copied.
"""

from __future__ import annotations

import datetime as dt

from ..config import Config
from ..progress import fmt_bytes
from ..providers import get_provider
from .probe import ImapProbe, SieveProbe, SmtpProbe
from .records import FAIL, NOT_RUN, OK, WARN, Finding

LOGINS, CAPS, FIT = "Logins", "Capabilities", "Fit"
#: "tight" when less than this share of the quota is left after the copy
TIGHT = 0.10


def login_findings(imap_probe: ImapProbe, smtp_probe: SmtpProbe, config: Config) -> list[Finding]:
    side = imap_probe.side
    acct = config.account(side)
    now = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
    out = []
    if imap_probe.error is not None:
        out.append(Finding(f"login.{side}.imap", LOGINS, side, FAIL, imap_probe.error.message,
                           f"switchover cannot read the {side} mailbox.",
                           f"Check the username, the secret ({get_provider(acct.provider).auth_hint}), "
                           f"the host and the port."))
    else:
        out.append(Finding(f"login.{side}.imap", LOGINS, side, OK, login_evidence(imap_probe, config, now)))
    label = f"{side} SMTP"
    if not smtp_probe.configured:
        out.append(Finding(f"login.{side}.smtp", LOGINS, label, WARN, "no SMTP server is configured",
                           f"switchover cannot send from the {side} address (test messages, "
                           f"{'reminders' if side == 'old' else 'notices and forwards'}).",
                           f"Add {side}.smtp (host, port, security) to the config.", blocks=False))
    elif smtp_probe.error is not None:
        out.append(Finding(f"login.{side}.smtp", LOGINS, label, FAIL, smtp_probe.error.message,
                           f"Mail cannot be sent from the {side} address through switchover.",
                           f"Check {side}.smtp (host, port, security) and that SMTP sending is "
                           f"switched on for the account (many providers need it enabled)."))
    else:
        proof = smtp_probe.proof
        assert proof is not None and acct.smtp is not None
        how = "logged in" if proof.authenticated else "connected (the server asks for no login)"
        tls = "encrypted" if proof.encrypted else "NOT encrypted"
        out.append(Finding(f"login.{side}.smtp", LOGINS, label, OK,
                           f"{how} as {acct.username} at {acct.smtp.host}:{acct.smtp.port}, {tls}; "
                           f"nothing sent"))
    return out


def login_evidence(probe: ImapProbe, config: Config, now: str) -> str:
    """The checklist's words for a proven login (as ``switchover check`` always wrote)."""
    acct = config.account(probe.side)
    return f"logged in as {acct.username} at {acct.imap.host} {now}; {len(probe.caps)} capabilities"


# -- capabilities -------------------------------------------------------------------------

def _imap_meanings(side: str, config: Config) -> dict[str, tuple[str, str]]:
    """capability → (what its absence means for this person, what to do)."""
    poll = f"{config.transition.poll_seconds:g} s"
    if side == "old":
        return {
            "IDLE": (f"no IDLE: the watch of the old inbox asks every {poll} instead of seeing "
                     f"mail at once, so forwards and reminders start a little later.",
                     "Nothing to do; lower transition.poll_seconds if a minute is too slow."),
            "SPECIAL-USE": ("no SPECIAL-USE: Sent, Drafts and Trash are recognised by their names, "
                            "not marked by the server.",
                            "Check the folder plan ('switchover migrate --dry-run') maps them right."),
        }
    return {
        "IDLE": ("no IDLE: your mail apps cannot have new mail pushed; they check every few minutes.",
                 "Ask the provider whether push (IDLE) can be enabled."),
        "UIDPLUS": ("no UIDPLUS: switchover cannot learn where each copied message landed; checking "
                    "a half-finished copy is slower and a doubtful copy cannot be removed alone.",
                    "Nothing to do; expect 'switchover verify' to take longer."),
        "MULTIAPPEND": ("no MULTIAPPEND: the copy uploads one message per command, slower on a "
                        "distant server.", "Nothing to do; allow more time for the migration."),
        "SPECIAL-USE": ("no SPECIAL-USE: the new Sent, Drafts and Trash folders are found by name.",
                        "Check the folder plan ('switchover migrate --dry-run')."),
        "QUOTA": ("no QUOTA: the free room of the new mailbox cannot be checked before the copy.",
                  "Ask the provider how much room the mailbox has."),
        "CONDSTORE": ("no CONDSTORE: mail apps re-read every flag to stay in step, slower on big "
                      "folders and phones.", "Nothing to do."),
        "MOVE": ("no MOVE: mail apps move a message by copy + delete; a cut connection can leave "
                 "a duplicate behind.", "Nothing to do."),
    }


def capability_findings(probe: ImapProbe, smtp_probe: SmtpProbe, sieve_probe: SieveProbe | None,
                        config: Config) -> list[Finding]:
    side = probe.side
    if not probe.logged_in:
        return [Finding(f"caps.{side}.imap", CAPS, f"{side} IMAP", NOT_RUN,
                        "the login failed, so the capabilities were not read", blocks=False)]
    acct = config.account(side)
    meanings = _imap_meanings(side, config)
    if get_provider(acct.provider).needs_imap_id:
        meanings["ID"] = ("no ID: this provider refuses to open folders ('Unsafe Login') for "
                          "clients that do not say who they are.",
                          "Ask the provider; without ID the copy and the watch cannot read folders.")
    missing = [c for c in meanings if c not in probe.caps]
    present = [c for c in meanings if c in probe.caps]
    out = [Finding(f"caps.{side}.imap", CAPS, f"{side} IMAP", OK if not missing else WARN,
                   (f"has {', '.join(present)}" if present else "none of the useful extensions")
                   + (f"; lacks {', '.join(missing)}" if missing else ""), blocks=False)]
    for cap in missing:
        meaning, advice = meanings[cap]
        out.append(Finding(f"caps.{side}.{cap.lower()}", CAPS, f"{side} {cap}", WARN,
                           f"the {side} IMAP server does not offer {cap}", meaning, advice, blocks=False))
    out += _smtp_caps(smtp_probe)
    if sieve_probe is not None:
        out.append(_sieve_finding(sieve_probe, config))
    return out


def _smtp_caps(probe: SmtpProbe) -> list[Finding]:
    if probe.proof is None:
        return []
    side, feats = probe.side, probe.proof.features
    out = []
    wanted = {
        "size": ("no SIZE: the server says no message size limit in advance; a too-big "
                 "message is refused only after it was uploaded.", "Nothing to do."),
        "8bitmime": ("no 8BITMIME: messages with Chinese or other non-Latin text must be re-encoded "
                     "before sending; a strict server may refuse them.",
                     "Ask the provider; switchover sends such text encoded when it can."),
        "smtputf8": ("no SMTPUTF8: addresses with non-Latin letters (e.g. 张伟@公司.中国) cannot be "
                     "written to from this account.", "Nothing to do unless you have such correspondents."),
    }
    have = [k.upper() for k in wanted if k in feats]
    lacks = [k for k in wanted if k not in feats]
    size = probe.size_limit
    found = (f"has {', '.join(have)}" if have else "none of SIZE, 8BITMIME, SMTPUTF8") + \
        (f"; messages up to {fmt_bytes(size)}" if size else "") + \
        (f"; lacks {', '.join(k.upper() for k in lacks)}" if lacks else "")
    out.append(Finding(f"caps.{side}.smtp", CAPS, f"{side} SMTP", WARN if lacks else OK, found, blocks=False))
    for k in lacks:
        meaning, advice = wanted[k]
        out.append(Finding(f"caps.{side}.smtp.{k}", CAPS, f"{side} SMTP {k.upper()}", WARN,
                           f"the {side} SMTP server does not offer {k.upper()}", meaning, advice,
                           blocks=False))
    return out


def _sieve_finding(probe: SieveProbe, config: Config) -> Finding:
    label, name = "old ManageSieve", "caps.old.managesieve"
    meaning = ("switchover cannot install the auto-reply on the old mailbox itself; it must be "
               "set by hand in the web mail.")
    if not probe.where:
        steps = get_provider(config.old.provider).autoreply_steps or "Set it in the old web mail."
        return Finding(name, CAPS, label, WARN, f"{get_provider(config.old.provider).label} offers no "
                       f"ManageSieve", meaning, steps, blocks=False)
    if probe.error:
        return Finding(name, CAPS, label, WARN, f"{probe.where}: {probe.error}", meaning,
                       "Set old.sieve (host, port, security) if the server offers ManageSieve "
                       "elsewhere, or set the auto-reply by hand.", blocks=False)
    vacation = "vacation" in probe.extensions
    return Finding(name, CAPS, label, OK if vacation else WARN,
                   f"reachable at {probe.where}" + ("" if vacation else " but without the vacation extension"),
                   "" if vacation else meaning, "" if vacation else "Set the auto-reply by hand.",
                   blocks=False)


# -- fit ------------------------------------------------------------------------------------

def fit_findings(old: ImapProbe, new: ImapProbe, new_smtp: SmtpProbe, config: Config) -> list[Finding]:
    return [_room(old, new), _largest(old, new, new_smtp, config)]


def _room(old: ImapProbe, new: ImapProbe) -> Finding:
    name, label = "fit.quota", "room in the new mailbox"
    if not old.logged_in or not new.logged_in:
        return Finding(name, FIT, label, NOT_RUN, "a login failed, so nothing was measured")
    if old.total_bytes is None:
        return Finding(name, FIT, label, NOT_RUN, f"the old mailbox could not be measured: {old.size_error}")
    need = f"the old mailbox holds {fmt_bytes(old.total_bytes)} in {old.messages} messages ({old.folders} folders)"
    if not new.quota_told:
        return Finding(name, FIT, label, NOT_RUN, f"{need}; {new.quota_error}",
                       "Nothing proves the old mail fits into the new mailbox.",
                       f"Ask the provider for the new mailbox's free room; it needs at least "
                       f"{fmt_bytes(old.total_bytes)}.", blocks=False)
    if new.quota_limit is None or new.quota_limit <= 0:
        return Finding(name, FIT, label, OK, f"{need}; the new mailbox reports no storage limit")
    used = new.quota_usage or 0
    free = new.quota_limit - used
    after = free - old.total_bytes
    room = f"{need}; the new one has {fmt_bytes(free)} free of {fmt_bytes(new.quota_limit)}"
    if after < 0:
        return Finding(name, FIT, label, FAIL, f"{room}: does not fit, {fmt_bytes(-after)} short",
                       "The copy would stop part-way with the new mailbox full; new mail would bounce.",
                       f"Ask IT for at least {fmt_bytes(-after + new.quota_limit * TIGHT)} more room, "
                       f"or leave old folders out (migration.exclude).")
    if after < new.quota_limit * TIGHT:
        return Finding(name, FIT, label, WARN, f"{room}: fits, but tight ({fmt_bytes(after)} left after)",
                       "Soon after the switch the new mailbox is full and customers' mail bounces.",
                       "Ask IT for a bigger quota before you switch.", blocks=False)
    return Finding(name, FIT, label, OK, f"{room}: fits ({fmt_bytes(after)} left after)")


def size_limit(new: ImapProbe, new_smtp: SmtpProbe, config: Config) -> tuple[int | None, str]:
    """The most the new provider accepts in one message, and where that number comes from."""
    limits = []
    if config.new.max_message_bytes:
        limits.append((config.new.max_message_bytes, "the provider's limit (max_message_mb)"))
    if new.append_limit:
        limits.append((new.append_limit, "the new IMAP server's APPENDLIMIT"))
    if new_smtp.size_limit:
        limits.append((new_smtp.size_limit, "the new SMTP server's SIZE"))
    if not limits:
        return None, ""
    return min(limits)


def _largest(old: ImapProbe, new: ImapProbe, new_smtp: SmtpProbe, config: Config) -> Finding:
    name, label = "fit.largest", "largest messages"
    if old.total_bytes is None or not new.logged_in:
        return Finding(name, FIT, label, NOT_RUN, "the old mailbox could not be measured", blocks=False)
    if not old.largest:
        return Finding(name, FIT, label, OK, "the old mailbox is empty")
    biggest = old.largest[0]
    limit, source = size_limit(new, new_smtp, config)
    top = f"the largest is {fmt_bytes(biggest.size)} ({biggest.folder}, UID {biggest.uid})"
    if limit is None:
        return Finding(name, FIT, label, WARN, f"{top}; the new provider's size limit is unknown",
                       "A message larger than the new provider accepts is refused during the copy.",
                       "Set new.max_message_mb to the provider's limit to check this.", blocks=False)
    over = [s for s in old.sizes if s > limit]
    if not over:
        return Finding(name, FIT, label, OK, f"{top}; all within {fmt_bytes(limit)} ({source})")
    named = ", ".join(f"{m.folder} UID {m.uid} ({fmt_bytes(m.size)})" for m in old.largest if m.size > limit)
    return Finding(name, FIT, label, WARN,
                   f"{len(over)} message(s) larger than {fmt_bytes(limit)} ({source}): {named}"
                   + (" …" if len(over) > len(old.largest) else ""),
                   "The new mailbox refuses them: they are not copied (the migration lists them as refused).",
                   "Keep them in the local backup ('switchover backup'), or save their attachments "
                   "elsewhere before closing the old mailbox.", blocks=False)
