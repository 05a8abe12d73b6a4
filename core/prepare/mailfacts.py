"""Measured facts about one mailbox, for the change request letter: folder sizes and
counts (STATUS, with RFC 8438 ``SIZE`` where offered, else the sum of RFC822.SIZE),
the quota (GETQUOTAROOT, RFC 9208) and mail received per year (one SEARCH SINCE/BEFORE
per year and folder, walking back from this year until the folder's count is reached).

Everything here is blocking imapclient work, run in a worker thread by the letter facet.
A fact that cannot be measured stays ``None`` with a reason in ``gaps`` — the letter
says so instead of inventing a number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientError

from ..config import Account
from ..errors import SwitchoverError, sentence
from ..net import imap
from ..net.mailboxes import list_folders

#: Gmail's virtual folders repeat mail held elsewhere; Trash and Junk are not business mail
NOT_COUNTED = ("\\All", "\\Flagged", "\\Important", "\\Trash", "\\Junk")
#: the walk back through the years stops here even if a folder's count is not reached
MAX_YEARS = 30


@dataclass(frozen=True)
class FolderFacts:
    name: str
    messages: int
    size: int | None           # bytes; None when the server would not say
    counted: bool = True       # part of the per-year business mail (not Trash, Junk, All Mail)


@dataclass(frozen=True)
class QuotaFacts:
    used: int                  # bytes
    limit: int                 # bytes

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 0.0


@dataclass(frozen=True)
class MailboxFacts:
    """What one measurement of a mailbox found; ``gaps`` names what it could not."""
    side: str
    username: str
    host: str
    measured: str                                 # ISO timestamp of the measurement
    folders: tuple[FolderFacts, ...] = ()
    quota: QuotaFacts | None = None
    #: why there is no quota: "nocap" (no QUOTA extension), "unset" (no limit set),
    #: "refused" (the server said no), "login" (no login: nothing was measured); "" = known
    quota_gap: str = ""
    per_year: tuple[tuple[int, int], ...] = ()     # (year, messages dated in it), oldest first
    earlier: int = 0                               # messages before the first year listed
    capabilities: tuple[str, ...] = ()
    tls: bool = True
    gaps: tuple[str, ...] = field(default=())

    @property
    def messages(self) -> int:
        return sum(f.messages for f in self.folders)

    @property
    def size(self) -> int | None:
        if not self.folders or any(f.size is None for f in self.folders):
            return None
        return sum(f.size or 0 for f in self.folders)

    def to_json(self) -> dict[str, Any]:
        return {"side": self.side, "username": self.username, "host": self.host,
                "measured": self.measured,
                "folders": [[f.name, f.messages, f.size, f.counted] for f in self.folders],
                "quota": [self.quota.used, self.quota.limit] if self.quota else None,
                "quota_gap": self.quota_gap, "per_year": [list(p) for p in self.per_year],
                "earlier": self.earlier, "capabilities": list(self.capabilities),
                "tls": self.tls, "gaps": list(self.gaps)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "MailboxFacts":
        q = d.get("quota")
        return cls(side=d["side"], username=d["username"], host=d["host"], measured=d["measured"],
                   folders=tuple(FolderFacts(n, m, s, bool(c)) for n, m, s, c in d.get("folders", [])),
                   quota=QuotaFacts(int(q[0]), int(q[1])) if q else None,
                   quota_gap=d.get("quota_gap", ""),
                   per_year=tuple((int(y), int(n)) for y, n in d.get("per_year", [])),
                   earlier=int(d.get("earlier", 0)), capabilities=tuple(d.get("capabilities", [])),
                   tls=bool(d.get("tls", True)), gaps=tuple(d.get("gaps", [])))


def unmeasured(account: Account, why: str) -> MailboxFacts:
    """The facts of a mailbox nobody could log in to: everything a gap."""
    return MailboxFacts(side=account.side, username=account.username, host=account.imap.host,
                        measured=dt.datetime.now().isoformat(timespec="seconds"),
                        quota_gap="login", tls=account.imap.security != "none", gaps=(why,))


def measure(account: Account, *, today: dt.date | None = None, timeout: float = 60.0,
            quota_only: bool = False) -> MailboxFacts:
    """Log in and measure (blocking). ``quota_only`` skips folders and years (the new
    mailbox: only its room matters). Login failures raise; anything later becomes a gap."""
    client = imap.connect(account, timeout=timeout)
    gaps: list[str] = []
    try:
        caps = tuple(sorted(c.decode() if isinstance(c, bytes) else str(c) for c in client.capabilities()))
        quota, quota_gap = _quota(client, caps)
        folders: list[FolderFacts] = []
        per_year: list[tuple[int, int]] = []
        earlier = 0
        if not quota_only:
            folders = _folders(client, caps, gaps)
            per_year, earlier = _years(client, folders, today or dt.date.today(), gaps)
        return MailboxFacts(
            side=account.side, username=account.username, host=account.imap.host,
            measured=dt.datetime.now().isoformat(timespec="seconds"), folders=tuple(folders),
            quota=quota, quota_gap=quota_gap, per_year=tuple(per_year), earlier=earlier,
            capabilities=caps, tls=account.imap.security != "none", gaps=tuple(gaps))
    finally:
        imap.close(client)


def _quota(client: imapclient.IMAPClient, caps: tuple[str, ...]) -> tuple[QuotaFacts | None, str]:
    if "QUOTA" not in {c.upper() for c in caps}:
        return None, "nocap"
    try:
        _, quotas = client.get_quota_root("INBOX")
    except IndexError:
        # imapclient cannot parse an answer without a QUOTAROOT line ("No quota"): the
        # account has no limit set on this server
        return None, "unset"
    except (IMAPClientError, OSError):
        return None, "refused"
    for q in quotas:
        if str(q.resource).upper() == "STORAGE" and int(q.limit) > 0:
            return QuotaFacts(int(q.usage) * 1024, int(q.limit) * 1024), ""    # units of 1024 octets
    return None, "unset"


def _folders(client: imapclient.IMAPClient, caps: tuple[str, ...], gaps: list[str]) -> list[FolderFacts]:
    try:
        listed = [f for f in list_folders(client) if f.selectable]
    except SwitchoverError as e:
        gaps.append(e.message)
        return []
    status_size = "STATUS=SIZE" in {c.upper() for c in caps}
    out: list[FolderFacts] = []
    for f in listed:
        counted = f.special not in NOT_COUNTED
        try:
            st = client.folder_status(f.name, [b"MESSAGES", b"SIZE"] if status_size else [b"MESSAGES"])
            messages = int(st[b"MESSAGES"])
        except (IMAPClientError, OSError, KeyError, ValueError) as e:
            gaps.append(f"folder {f.name}: {sentence(e)}")
            continue
        size = int(st[b"SIZE"]) if status_size and b"SIZE" in st else _summed_size(client, f.name, messages)
        if size is None:     # counted, but its size unknown: the letter says so
            gaps.append(f"the size of folder {f.name} could not be read")
        out.append(FolderFacts(f.name, messages, size, counted))
    return out


def _summed_size(client: imapclient.IMAPClient, folder: str, messages: int) -> int | None:
    """A folder's size where STATUS has no SIZE: the sum of RFC822.SIZE of every message
    (UID FETCH of the UIDs a SEARCH ALL listed)."""
    if messages == 0:
        return 0
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        total = 0
        for i in range(0, len(uids), 5000):      # bounded command lines on big folders
            data = client.fetch(uids[i:i + 5000], [b"RFC822.SIZE"])
            total += sum(int(d.get(b"RFC822.SIZE", 0)) for d in data.values())
        return total
    except (IMAPClientError, OSError, ValueError):
        return None


def _years(client: imapclient.IMAPClient, folders: list[FolderFacts], today: dt.date,
           gaps: list[str]) -> tuple[list[tuple[int, int]], int]:
    """Messages per year (by INTERNALDATE, i.e. when they arrived), summed over the counted
    folders; years before the oldest one found are left out."""
    counts: dict[int, int] = {}
    earlier = 0
    for f in folders:
        if not f.counted or f.messages == 0:
            continue
        try:
            client.select_folder(f.name, readonly=True)
            seen = 0
            year = today.year
            while seen < f.messages and year > today.year - MAX_YEARS:
                n = len(client.search([b"SINCE", dt.date(year, 1, 1), b"BEFORE", dt.date(year + 1, 1, 1)]))
                counts[year] = counts.get(year, 0) + n
                seen += n
                year -= 1
            earlier += max(0, f.messages - seen)
        except (IMAPClientError, OSError) as e:
            gaps.append(f"yearly counts of {f.name}: {sentence(e)}")
    years = sorted(y for y, n in counts.items() if n)
    if not years:
        return [], earlier
    return [(y, counts.get(y, 0)) for y in range(years[0], today.year + 1)], earlier
