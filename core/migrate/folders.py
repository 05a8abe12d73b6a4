"""The folder plan: which source folder goes where.

This module owns :func:`plan_folders`, which the migration follows; listing folders and
recognising special folders (special-use flags, else the name table) is
core/net/mailboxes.py.

Naming rules of the plan (documented here because users see their effect):

* **Logical names.** A source name loses its namespace prefix (``INBOX.`` on Courier /
  Cyrus style servers, inferred when every folder sits under it) and is split at its
  delimiter into components; the destination name is the destination prefix plus the
  components joined with the destination delimiter. So ``INBOX.客户.墨西哥`` (``.``)
  becomes ``客户/墨西哥`` (``/``) and back.
* **Delimiter inside a name.** A component that contains the destination delimiter gets
  it replaced: ``/`` becomes ``-`` (``Quotes 2024/2025`` → ``Quotes 2024-2025``), ``.``
  becomes ``_`` (``A.B Corp`` → ``A_B Corp``), any other delimiter becomes ``_``. A ``/``
  is replaced on every destination (Maildir servers refuse it even with ``.``).
* **Containers.** Gmail's ``[Gmail]/`` (``[Google Mail]/``) and QQ / Exmail's
  ``其他文件夹/`` ("other folders", an IMAP-only container the web UI does not show) are
  dropped from the names of the folders inside them: ``其他文件夹/客户`` → ``客户``.
* **Special folders** (\\Sent \\Drafts \\Trash \\Junk \\Archive) map to the destination's
  folder with the same special-use flag, else its folder found by the name table, else a
  default name (``Sent``, ``Drafts``, ``Trash``, ``Junk``, ``Archive``; the provider's own
  name for outlook, qq, exmail, 163, qiye163, gmail). Their subfolders follow them. When
  two source folders claim the same special (``Sent`` flagged \\Sent and ``已发送``), the
  flagged one (else the first listed) is *the* special folder, the other is copied as a
  plain folder under its own name.
* **INBOX** (any case on the source) maps to ``INBOX``.
* **Archive prefix.** With ``migration.archive_prefix`` (levels separated by ``/``, e.g.
  ``历史邮件-2025年前``) *every* folder, INBOX and the special folders included, is copied
  as a plain folder under that prefix with its own name (``历史邮件-2025年前/INBOX``,
  ``历史邮件-2025年前/已发送``), so the new mailbox's live INBOX and Sent stay clean.
* **Gmail.** Labels arrive as folders. ``\\Important`` and ``\\Flagged`` (Starred) folders
  are not copied (starred mail keeps \\Flagged in its other folders); ``\\All`` (All
  Mail) has role ``all_mail``: it goes last and carries only the mail no other folder
  holds (Gmail's archived mail), into the destination's \\All folder if it has one, else
  its Archive folder (or ``All Mail`` when a source folder already goes to Archive).
* **include / exclude** patterns are shell patterns (``fnmatch``, case-insensitive)
  matched against the source name written with ``/`` between levels, with and without
  the namespace prefix and container (``Spam``, ``[Gmail]/Spam``, ``INBOX/Spam`` all
  work). A pattern also matches everything below what it matches (excluding ``Clients``
  excludes ``Clients/Mexico``). With include patterns, only matching folders are copied
  (INBOX too must match). Exclude wins over include and over ``folder_map``.
* **folder_map** maps an exact source name (as listed, or written with ``/``) to a
  destination name written with ``/`` between levels and without the destination prefix
  (a value already starting with the destination prefix is used as is); the archive
  prefix is not applied to it; an empty value skips the folder. Two sources mapped to
  the same name are merged deliberately; an automatic name never joins them.
* **Collisions.** Two source folders never land in the same destination folder by
  accident (compared case-insensitively): the later one gets `` (2)``, `` (3)``, ...
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from ..config import MigrationSettings
from ..net.mailboxes import (GMAIL_CONTAINERS, MAPPED_SPECIALS, QQ_CONTAINER, SPECIALS, FolderInfo,
                             _key, _TABLE, _TABLE_NAMES, flag_specials, folder_info, name_special)

DEFAULT_NAMES = {"\\Sent": "Sent", "\\Drafts": "Drafts", "\\Trash": "Trash", "\\Junk": "Junk",
                 "\\Archive": "Archive"}
PROVIDER_DEFAULT_NAMES: dict[str, dict[str, str]] = {
    "outlook": {"\\Sent": "Sent Items", "\\Trash": "Deleted Items", "\\Junk": "Junk Email"},
    "qq": {"\\Sent": "Sent Messages", "\\Trash": "Deleted Messages"},
    "exmail": {"\\Sent": "Sent Messages", "\\Trash": "Deleted Messages"},
    "163": {"\\Sent": "已发送", "\\Drafts": "草稿箱", "\\Trash": "已删除", "\\Junk": "垃圾邮件"},
    "qiye163": {"\\Sent": "已发送", "\\Drafts": "草稿箱", "\\Trash": "已删除", "\\Junk": "垃圾邮件"},
    "gmail": {"\\Sent": "[Gmail]/Sent Mail", "\\Drafts": "[Gmail]/Drafts", "\\Trash": "[Gmail]/Trash",
              "\\Junk": "[Gmail]/Spam"},
}

#: what replaces the destination delimiter inside a name component
DELIMITER_REPLACEMENT = {"/": "-", ".": "_"}



@dataclass(frozen=True)
class FolderMapping:
    source: str               # source folder name
    destination: str          # full destination name (prefix + delimiter + archive prefix applied)
    special: str | None
    role: str                 # "normal" | "all_mail" | "skip"
    reason: str = ""          # why skipped / how mapped


# ---------------------------------------------------------------------------------------
# the plan

def _common_delimiter(folders: list[FolderInfo]) -> str | None:
    counts = Counter(f.delimiter for f in folders if f.delimiter)
    return counts.most_common(1)[0][0] if counts else None


def _infer_prefix(folders: list[FolderInfo], delim: str | None) -> str:
    """``INBOX<delim>`` when every folder besides INBOX lives under it (Courier, Cyrus)."""
    if not delim:
        return ""
    prefix = "INBOX" + delim
    others = [f.name for f in folders if f.name.casefold() != "inbox"]
    if others and all(n[: len(prefix)].casefold() == prefix.casefold() for n in others):
        return prefix
    return ""


def _with_delim(prefix: str, delim: str) -> str:
    if prefix and delim and not prefix.endswith(delim):
        return prefix + delim
    return prefix


def _matches(names: list[str], patterns: Iterable[str], full: Iterable[str] = ()) -> str | None:
    """The first pattern matching one of ``names`` or something above it; ``full`` names
    (with the namespace prefix) match only themselves, or "INBOX" would cover a whole
    Courier mailbox."""
    for p in patterns:
        pk = _key(p).rstrip("/")
        for n in names:
            nk = _key(n)
            # literal comparison too: "[Gmail]/Spam" is a character class to fnmatch
            if (nk == pk or nk.startswith(pk + "/") or fnmatch.fnmatchcase(nk, pk)
                    or fnmatch.fnmatchcase(nk, pk + "/*")):
                return p
        for n in full:
            nk = _key(n)
            if nk == pk or fnmatch.fnmatchcase(nk, pk):
                return p
    return None


@dataclass
class _Src:
    info: FolderInfo
    parts: list[str]          # source components after the namespace prefix
    logical: list[str]        # parts without a Gmail / QQ container
    names: list[str]          # spellings include / exclude / folder_map keys are matched on
    full: list[str]           # the same with the namespace prefix
    is_inbox: bool
    mapping: FolderMapping | None = None

    @property
    def sort_key(self) -> tuple[str, ...]:
        return tuple(_key(p) for p in self.logical)

    @property
    def path_key(self) -> tuple[str, ...]:
        # exact names (a source may hold "Kunden" and "kunden"); only INBOX ignores case
        parts = [unicodedata.normalize("NFC", p) for p in self.logical]
        if parts and parts[0].casefold() == "inbox":
            parts[0] = "INBOX"
        return tuple(parts)


class _Planner:
    def __init__(self, src: list[FolderInfo], dst: list[FolderInfo], settings: MigrationSettings,
                 src_provider: str, dst_provider: str, dst_prefix: str, dst_delimiter: str,
                 src_prefix: str | None, src_delimiter: str | None) -> None:
        self.settings = settings
        self.dd = dst_delimiter or "/"
        self.dprefix = _with_delim(dst_prefix or "", self.dd)
        self.dst_provider = dst_provider
        self.sd = src_delimiter or _common_delimiter(src)
        sprefix = _infer_prefix(src, self.sd) if src_prefix is None else src_prefix
        self.sprefix = _with_delim(sprefix, self.sd or "")
        names = {f.name for f in src}
        self.gmail = src_provider == "gmail" or any(
            "\\All" in flag_specials(f.flags) and _key(f.name.split(f.delimiter or "/")[0]) in GMAIL_CONTAINERS
            for f in src)
        self.qq = src_provider in ("qq", "exmail") or (
            QQ_CONTAINER in names and ("Sent Messages" in names or "Deleted Messages" in names))
        self.archive, _ = self._clean_all(
            [c for c in (settings.archive_prefix or "").split("/") if c.strip()])
        self.claims: dict[str, str] = {}           # destination key -> source name
        self.deliberate: set[str] = set()          # destination keys shared on purpose
        self.path_map: dict[tuple[str, ...], list[str]] = {}  # source logical path -> destination components
        self.dst_specials = self._dst_specials(dst)
        seen: set[str] = set()
        self.srcs: list[_Src] = []
        for f in src:
            if f.name in seen:
                continue
            seen.add(f.name)
            self.srcs.append(self._src(f))

    # -- names ------------------------------------------------------------------------
    def _src(self, f: FolderInfo) -> _Src:
        is_inbox = f.name.casefold() == "inbox"
        rest = f.name
        if self.sprefix and rest[: len(self.sprefix)].casefold() == self.sprefix.casefold():
            rest = rest[len(self.sprefix):]
        delim = f.delimiter or self.sd
        parts = [p for p in (rest.split(delim) if delim else [rest]) if p != ""] or [rest]
        logical = list(parts)
        if len(logical) > 1 and ((self.gmail and _key(logical[0]) in GMAIL_CONTAINERS)
                                 or (self.qq and logical[0] == QQ_CONTAINER)):
            logical = logical[1:]
        names = ["/".join(parts), "/".join(logical)]
        full = [f.name] + ([f.name.replace(delim, "/")] if delim and delim != "/" else [])
        return _Src(f, parts, logical, names, full, is_inbox)

    def _clean(self, comp: str) -> tuple[str, str]:
        # "/" is replaced on every destination: Maildir-based servers (Dovecot, Courier)
        # refuse it in a name even where the delimiter is ".".
        notes = []
        for ch in dict.fromkeys((self.dd, "/")):
            if ch and ch in comp:
                rep = DELIMITER_REPLACEMENT.get(ch, "_")
                comp = comp.replace(ch, rep)
                notes.append(f"'{ch}' in a name became '{rep}'")
        return comp, "; ".join(notes)

    def _clean_all(self, comps: list[str]) -> tuple[list[str], str]:
        out, notes = [], []
        for c in comps:
            c2, note = self._clean(c)
            out.append(c2)
            if note and note not in notes:
                notes.append(note)
        return out, "; ".join(notes)

    def _join(self, comps: list[str]) -> str:
        if len(comps) == 1 and comps[0].casefold() == "inbox":
            return "INBOX"
        if comps and comps[0].casefold() == "inbox" and self.dprefix.casefold() == ("inbox" + self.dd).casefold():
            return self.dprefix + self.dd.join(comps[1:])   # INBOX's children on INBOX. servers
        return self.dprefix + self.dd.join(comps)

    def _dest_comps(self, raw: str) -> list[str]:
        rest = raw
        if self.dprefix and rest[: len(self.dprefix)].casefold() == self.dprefix.casefold():
            rest = rest[len(self.dprefix):]
        return rest.split(self.dd)

    def _dst_specials(self, dst: list[FolderInfo]) -> dict[str, str]:
        found: dict[str, str] = {}
        for by_flag in (True, False):
            for f in dst:
                if not f.selectable or f.special not in MAPPED_SPECIALS + ("\\All",):
                    continue
                if f.special_by_flag == by_flag and f.special not in found:
                    found[f.special] = f.name
        return found

    def dest_special(self, special: str) -> tuple[list[str], str]:
        if special in self.dst_specials:
            raw = self.dst_specials[special]
            return self._dest_comps(raw), f"the destination's {special[1:]} folder"
        name = PROVIDER_DEFAULT_NAMES.get(self.dst_provider, {}).get(special, DEFAULT_NAMES[special])
        return name.split("/"), f"new folder '{name}' (the destination has no {special[1:]} folder)"

    # -- claims -------------------------------------------------------------------------
    def claim(self, s: _Src, comps: list[str], *, deliberate: bool = False) -> tuple[list[str], str]:
        """Reserve a destination for ``s``; renames with " (n)" on an accidental collision."""
        full = self._join(comps)
        k = _key(full)
        if deliberate:
            note = ""
            if k in self.claims and k in self.deliberate:
                note = f"merged on purpose with '{self.claims[k]}'"
            self.claims.setdefault(k, s.info.name)
            self.deliberate.add(k)
            return comps, note
        if k not in self.claims:
            self.claims[k] = s.info.name
            return comps, ""
        if k in self.deliberate:   # the user's folder_map chose to merge into this one
            return comps, f"shared on purpose with '{self.claims[k]}' (folder_map)"
        other = self.claims[k]
        n = 2
        while True:
            cand = comps[:-1] + [f"{comps[-1]} ({n})"]
            if _key(self._join(cand)) not in self.claims:
                self.claims[_key(self._join(cand))] = s.info.name
                return cand, f"renamed: '{full}' is already the destination of '{other}'"
            n += 1

    def follow(self, s: _Src) -> list[str] | None:
        """Destination components from the nearest mapped ancestor (children follow parents)."""
        key = s.path_key
        for i in range(len(key) - 1, 0, -1):
            if key[:i] in self.path_map:
                tail, _ = self._clean_all(s.logical[i:])
                return self.path_map[key[:i]] + tail
        return None

    def set(self, s: _Src, comps: list[str] | None, role: str, reason: str, special: str | None = None) -> None:
        dest = self._join(comps) if comps is not None else ""
        if comps is not None and role != "skip":
            self.path_map.setdefault(s.path_key, comps)
        s.mapping = FolderMapping(s.info.name, dest, special if special is not None else s.info.special,
                                  role, reason)

    # -- the plan -----------------------------------------------------------------------
    def plan(self) -> list[FolderMapping]:
        st = self.settings
        fmap = dict(st.folder_map or {})
        live: list[_Src] = []
        for s in self.srcs:
            sp = s.info.special
            if not s.info.selectable:
                self.set(s, None, "skip", "not selectable (holds no mail); its subfolders are planned")
                continue
            pat = _matches(s.names, st.exclude, s.full)
            if pat is not None:
                self.set(s, None, "skip", f"excluded by pattern '{pat}'")
                continue
            mapped_key = next((n for n in s.full + s.names if n in fmap), None)
            if st.include and mapped_key is None and _matches(s.names, st.include, s.full) is None:
                self.set(s, None, "skip", "not matched by any include pattern")
                continue
            if mapped_key is not None:
                value = fmap[mapped_key]
                if not value.strip():
                    self.set(s, None, "skip", f"folder_map maps '{mapped_key}' to nothing")
                    continue
                if self.dprefix and value[: len(self.dprefix)].casefold() == self.dprefix.casefold():
                    comps = self._dest_comps(value)
                else:
                    comps = [c for c in value.split("/") if c]
                comps, note = self.claim(s, comps, deliberate=True)
                self.set(s, comps, "normal" if sp != "\\All" else "all_mail",
                         "folder_map" + (f"; {note}" if note else ""))
                continue
            if sp in ("\\Important", "\\Flagged"):
                what = "Important" if sp == "\\Important" else "Starred"
                if self.gmail:
                    why = f"Gmail {what} is not copied" + (
                        "; starred mail keeps \\Flagged in its other folders" if sp == "\\Flagged" else
                        "; its mail is in its other folders")
                else:
                    why = f"virtual {what} folder ({sp}) is not copied; its mail is in its own folders"
                self.set(s, None, "skip", why)
                continue
            live.append(s)

        inbox = [s for s in live if s.is_inbox]
        all_mail = [s for s in live if s.info.special == "\\All"]
        rest = [s for s in live if not s.is_inbox and s.info.special != "\\All"]
        winners: dict[str, _Src] = {}
        if not self.archive:
            for sp in MAPPED_SPECIALS:
                cands = [s for s in rest if s.info.special == sp]
                cands.sort(key=lambda s: not s.info.special_by_flag)   # stable: listing order
                if cands:
                    winners[sp] = cands[0]

        for s in inbox:
            comps, note = self.claim(s, self.archive + ["INBOX"])
            self.set(s, comps, "normal", "INBOX" + (" under the archive prefix" if self.archive else "")
                     + (f"; {note}" if note else ""))
        for sp, s in winners.items():
            comps, where = self.dest_special(sp)
            comps, note = self.claim(s, comps)
            how = (f"special-use {sp}" if s.info.special_by_flag else f"name table: {s.logical[-1]}")
            self.set(s, comps, "normal", f"{how} → {where}" + (f"; {note}" if note else ""))
        for s in sorted(rest, key=lambda s: s.sort_key):
            if s.mapping is not None:
                continue
            followed = self.follow(s)
            if followed is None:
                comps, clean_note = self._clean_all(self.archive + s.logical)
            else:
                comps, clean_note = followed, ""
            notes = [clean_note] if clean_note else []
            sp = s.info.special
            if sp in MAPPED_SPECIALS:
                how = "special-use" if s.info.special_by_flag else "name table"
                if self.archive:
                    notes.insert(0, f"{how} {sp}: a plain folder under the archive prefix")
                elif sp in winners:
                    w = winners[sp]
                    notes.insert(0, f"looks like {sp[1:]} ({how}) but '{w.info.name}' is mapped to the "
                                    f"destination's {sp[1:]}; copied as its own folder")
            comps, note = self.claim(s, comps)
            if note:
                notes.append(note)
            self.set(s, comps, "normal", "; ".join(notes))
        for s in all_mail:
            if self.archive:
                comps, _ = self._clean_all(self.archive + s.logical)
                where = "under the archive prefix"
            elif "\\All" in self.dst_specials:
                comps, where = self.dest_special("\\All")
            else:
                comps, where = self.dest_special("\\Archive")
                if _key(self._join(comps)) in self.claims:
                    comps, _ = self._clean_all(s.logical)
                    where = "its own folder (the destination's Archive already has a source)"
            comps, note = self.claim(s, comps)
            label = "Gmail All Mail" if self.gmail else "All-mail folder (\\All)"
            self.set(s, comps, "all_mail", f"{label}: copied last, only mail no other folder holds → "
                     f"{where}" + (f"; {note}" if note else ""), special="\\All")

        order = {sp: i for i, sp in enumerate(MAPPED_SPECIALS)}
        specials = sorted(winners.values(), key=lambda s: order.get(s.info.special or "", len(order)))
        ids = {id(s) for s in inbox + specials}
        middle = sorted((s for s in self.srcs if id(s) not in ids), key=lambda s: (s.sort_key, s.info.name))
        out = [s.mapping for s in inbox + specials + middle if s.mapping is not None]
        # All Mail goes last: by then every labelled copy is known and can be left out.
        return [m for m in out if m.role != "all_mail"] + [m for m in out if m.role == "all_mail"]


def plan_folders(src: list[FolderInfo], dst: list[FolderInfo], *, settings: MigrationSettings,
                 src_provider: str, dst_provider: str, dst_prefix: str, dst_delimiter: str,
                 src_prefix: str | None = None, src_delimiter: str | None = None) -> list[FolderMapping]:
    """The folder plan: where each source folder goes (see the module docstring for the
    rules). Order: INBOX, the special folders, the rest sorted, All Mail last.

    ``dst_prefix`` / ``dst_delimiter`` come from :func:`namespace_of` on the destination
    (the prefix may be given with or without its trailing delimiter). The source prefix is
    inferred (``INBOX.`` when every folder lives under it) unless ``src_prefix`` is given.
    """
    return _Planner(src, dst, settings, src_provider, dst_provider, dst_prefix, dst_delimiter,
                    src_prefix, src_delimiter).plan()


def copy_order(plan: list[FolderMapping]) -> list[FolderMapping]:
    """The mappings that copy mail, in plan order (skips left out)."""
    return [m for m in plan if m.role != "skip"]
