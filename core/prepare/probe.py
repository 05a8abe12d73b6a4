"""The preflight's look at the servers (blocking; run in worker threads): log in over
IMAP and read the capabilities — on the old side also every folder's message sizes, on
the new side its quota (GETQUOTAROOT INBOX) and APPENDLIMIT — log in over SMTP without
sending (core/net/smtp.py ``login_only``), and reach ManageSieve on the old side.

Each probe returns what it saw or the one-sentence error it met; turning that into
verdicts is core/prepare/servers.py's job.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

import imapclient
from imapclient.exceptions import IMAPClientError

from ..config import Account
from ..errors import AuthError, ConnectError, SwitchoverError, sentence
from ..net import imap, sieve, smtp
from ..net.mailboxes import list_folders


@dataclass(frozen=True)
class Message:
    folder: str
    uid: int
    size: int


@dataclass
class ImapProbe:
    side: str
    caps: set[str] = field(default_factory=set)
    error: SwitchoverError | None = None
    #: old side: total bytes / messages over every selectable folder, the largest messages
    total_bytes: int | None = None
    messages: int = 0
    folders: int = 0
    largest: list[Message] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)      # every message's size (counts over a limit)
    size_error: str = ""
    #: new side: STORAGE usage and limit in bytes (None = no limit / not told)
    quota_usage: int | None = None
    quota_limit: int | None = None
    quota_error: str = ""
    quota_told: bool = False

    @property
    def logged_in(self) -> bool:
        return self.error is None

    @property
    def append_limit(self) -> int | None:
        for cap in self.caps:
            if cap.startswith("APPENDLIMIT="):
                value = cap.split("=", 1)[1]
                return int(value) if value.isdigit() else None
        return None


def _caps(client: imapclient.IMAPClient) -> set[str]:
    return {c.decode() if isinstance(c, bytes) else str(c) for c in client.capabilities()}


def imap_probe(account: Account, *, sizes: bool, quota: bool, keep: int = 5,
               timeout: float = 30.0) -> ImapProbe:
    """Log in, read the capabilities, and measure what is asked; never raises."""
    probe = ImapProbe(account.side)
    try:
        client = imap.connect(account, timeout=timeout)
    except SwitchoverError as e:
        probe.error = e
        return probe
    try:
        probe.caps = {c.upper() for c in _caps(client)}
        if sizes:
            _measure(client, probe, keep)
        if quota:
            _quota(client, probe)
    finally:
        imap.close(client)
    return probe


def _measure(client: imapclient.IMAPClient, probe: ImapProbe, keep: int) -> None:
    """Every message's RFC822.SIZE, folder by folder (read-only; nothing marked \\Seen)."""
    total = count = folders = 0
    sized: list[Message] = []
    try:
        for info in list_folders(client):
            if not info.selectable:
                continue
            exists = client.select_folder(info.name, readonly=True).get(b"EXISTS", 0)
            folders += 1
            if not exists:
                continue
            here = []
            for uid, item in imap.fetch_chunked(client, client.search(["ALL"]), [b"RFC822.SIZE"]):
                size = int(item.get(b"RFC822.SIZE", 0))
                total += size
                probe.sizes.append(size)
                here.append(Message(info.name, uid, size))
            count += len(here)
            sized = heapq.nlargest(keep, sized + here, key=lambda m: m.size)
    except (IMAPClientError, OSError, SwitchoverError) as e:
        probe.size_error = sentence(e)
        return
    probe.total_bytes, probe.messages, probe.folders = total, count, folders
    probe.largest = sized


_STORAGE = re.compile(r"\bSTORAGE\s+(\d+)\s+(\d+)", re.I)


def _quota(client: imapclient.IMAPClient, probe: ImapProbe) -> None:
    if "QUOTA" not in probe.caps:
        probe.quota_error = "the new server does not offer the IMAP QUOTA extension"
        return
    # raw GETQUOTAROOT: imapclient's parser fails on a root with no resource ("()"),
    # which is what Dovecot says for an unlimited mailbox
    imap_ = client._imap
    try:
        typ, dat = imap_._simple_command("GETQUOTAROOT", "INBOX")
        client._checkok("getquotaroot", typ, dat)
        _typ, quotas = imap_._untagged_response(typ, dat, "QUOTA")
    except (IMAPClientError, OSError) as e:
        probe.quota_error = f"the new server refused GETQUOTAROOT ({sentence(e, named=False)})"
        return
    probe.quota_told = True
    for line in quotas or []:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
        m = _STORAGE.search(text)
        if m:
            probe.quota_usage, probe.quota_limit = int(m[1]) * 1024, int(m[2]) * 1024


@dataclass
class SmtpProbe:
    side: str
    configured: bool
    proof: smtp.LoginProof | None = None
    error: SwitchoverError | None = None

    @property
    def refused(self) -> bool:
        return isinstance(self.error, (AuthError, ConnectError))

    @property
    def size_limit(self) -> int | None:
        if self.proof is None:
            return None
        value = self.proof.features.get("size", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None


def smtp_probe(account: Account, *, timeout: float = 30.0) -> SmtpProbe:
    if account.smtp is None:
        return SmtpProbe(account.side, configured=False)
    try:
        return SmtpProbe(account.side, True, proof=smtp.login_only(account, timeout=timeout))
    except SwitchoverError as e:
        return SmtpProbe(account.side, True, error=e)


@dataclass
class SieveProbe:
    where: str                  # "host:port", "" when none is known
    extensions: set[str] = field(default_factory=set)
    error: str = ""


def sieve_probe(account: Account) -> SieveProbe:
    endpoint = sieve.sieve_endpoint(account)
    if endpoint is None:
        return SieveProbe("")
    probe = SieveProbe(f"{endpoint.host}:{endpoint.port}")
    try:
        client = sieve.login(account, endpoint)
    except (SwitchoverError, OSError) as e:
        probe.error = sentence(e)
        return probe
    try:
        probe.extensions = set(client.extensions)
    finally:
        try:
            client.logout()
        except Exception:
            client.close()
    return probe
