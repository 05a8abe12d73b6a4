"""Checking a backup (``Backups.verify_backup``): every indexed file against its
checksum, and the backup against the live mailbox it was made of. Mail on the server
the backup lacks is a problem, and so is any comparison that could not be made: a
check that did not run is not a pass. Reads only; runs in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, NamedTuple

from ..config import Account
from ..errors import SwitchoverError, sentence
from ..net.imap import close, connect
from ..net.mailboxes import list_folders
from ..net.retry import is_connection_error
from .index import BackupIndex, IndexedMessage
from .layout import sha256
from .mbox import entry_message

_MAX_DETAILS = 10


class FolderCheck(NamedTuple):
    folder: str
    expected: int
    found: int
    missing: int
    corrupt: int


@dataclass
class BackupReport:
    ok: bool
    folders: list[FolderCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    live_checked: bool = False      # True when the source server was reached and compared
    #: what could not be compared with the live mailbox (folders, or the whole mailbox)
    unchecked: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The verdict in one sentence (the problems themselves are in ``problems``)."""
        found = sum(f.found for f in self.folders)
        where = f"{found:,} messages in {len(self.folders)} folders"
        if self.ok:
            return f"verified: {where}, nothing on the server is missing from it"
        if self.unchecked and len(self.problems) == len(self.unchecked):
            # the files are intact but the comparison with the mailbox did not run
            shown = ", ".join(self.unchecked[:5]) + (
                f" and {len(self.unchecked) - 5} more" if len(self.unchecked) > 5 else "")
            return (f"NOT verified — {where} are intact, but {shown} could not be compared with it, "
                    f"so mail newer than the backup may be missing from it")
        return f"NOT complete: {len(self.problems)} problems" + (f" — {self.problems[0]}" if self.problems else "")


@dataclass
class _Live:
    """What the source mailbox holds now, as far as it could be read."""
    reached: bool = False
    folders: dict[str, tuple[int, set[int]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)   # what could not be compared


def check_backup(root: Path, account_of: Callable[[str], Account]) -> BackupReport:
    """The whole check (blocking): ``account_of(side)`` gives the account the backup was
    made of, with any secret a person typed."""
    index = BackupIndex.open(root, create=False)
    try:
        meta = index.meta()
        folders = index.folders()
        live = _live(account_of, meta)
        report = BackupReport(ok=False, live_checked=live.reached and not live.unchecked)
        report.problems.extend(live.problems)
        report.unchecked.extend(live.unchecked)
        for f in folders:
            report.folders.append(_check_folder(index.messages(f.name), root, f.name, f.relpath, f.uidvalidity,
                                                f.mbox_end, live.folders if live.reached else None,
                                                report.problems))
        if live.reached and meta.get("scope") == "all":
            for name in sorted(set(live.folders) - {f.name for f in folders}):
                n = len(live.folders[name][1])
                if n:
                    report.problems.append(f"{name}: the folder ({n} messages) is on the server but not in the backup.")
                    report.folders.append(FolderCheck(name, n, 0, n, 0))
        if not folders:
            report.problems.append(f"The backup in {root} is empty: it holds no folder.")
        report.ok = not report.problems
        return report
    finally:
        index.close()


def _check_file(msg: IndexedMessage, root: Path, mbox: IO[bytes] | None, mbox_rel: str,
                mbox_size: int, details: list[str]) -> int:
    """0 ok, 1 missing, 2 corrupt."""
    state = 0
    if msg.eml:
        p = root / msg.eml
        if not p.is_file():
            state = 1
            details.append(f"{msg.eml} is missing")
        elif sha256(p.read_bytes()) != msg.sha256:
            state = 2
            details.append(f"{msg.eml} does not match its checksum")
    if msg.mbox_offset is not None:
        where = f"{mbox_rel} at offset {msg.mbox_offset}"
        length = msg.mbox_length or 0
        if mbox is None or msg.mbox_offset + length > mbox_size:
            state = max(state, 1)
            details.append(f"{where} is missing")
        else:
            mbox.seek(msg.mbox_offset)
            raw = entry_message(mbox.read(length), msg.size)
            if raw is None:
                state = 2
                details.append(f"{where} does not start with a 'From ' line")
            elif sha256(raw) != msg.sha256:
                state = 2
                details.append(f"{where} does not match its checksum")
    return state


def _check_folder(rows: list[IndexedMessage], root: Path, name: str, rel: str, uv: int | None,
                  mbox_end: int, live: dict[str, tuple[int, set[int]]] | None,
                  problems: list[str]) -> FolderCheck:
    counts = [0, 0, 0]                                  # ok, missing, corrupt
    details: list[str] = []
    mbox_path = root / "mbox" / (rel + ".mbox")
    mbox_rel = mbox_path.relative_to(root).as_posix()
    mbox = open(mbox_path, "rb") if mbox_path.is_file() else None
    try:
        mbox_size = mbox_path.stat().st_size if mbox else 0
        if mbox and mbox_size > mbox_end:
            problems.append(f"{name}: {mbox_rel} has {mbox_size - mbox_end} bytes after the "
                            f"last indexed message (an interrupted run); run the backup again to finish it.")
        for msg in rows:
            counts[_check_file(msg, root, mbox, mbox_rel, mbox_size, details)] += 1
    finally:
        if mbox:
            mbox.close()
    found, missing, corrupt = counts
    expected = len(rows)
    if missing or corrupt:
        shown = "; ".join(details[:_MAX_DETAILS]) + (" ..." if len(details) > _MAX_DETAILS else "")
        problems.append(f"{name}: {missing} missing and {corrupt} damaged of {expected} messages ({shown}).")
    if live is not None and name in live:
        live_uv, uids = live[name]
        if live_uv == uv:
            new = len(uids - {r.uid for r in rows if r.uidvalidity == uv})
        else:
            new = max(0, len(uids) - expected)
        if new:
            problems.append(f"{name}: {new} messages on the server are not in the backup yet; "
                            f"run the backup again.")
            missing += new
            expected += new
    return FolderCheck(name, expected, found, missing, corrupt)


def _live(account_of: Callable[[str], Account], meta: dict[str, str]) -> _Live:
    """{folder: (uidvalidity, set(uids))} of the source server. A folder that cannot be
    selected is named and the others are still compared (one refused SELECT used to drop
    the whole comparison, and with it the news that newer mail was not backed up)."""
    side = meta.get("side", "old")
    out = _Live()
    what = f"The {side} mailbox could not be compared with the backup"
    account: Account | None = None
    try:
        account = account_of(side)
        problem = account.secret_problem()        # no password to be had: say so, not "verified"
    except Exception as e:
        problem = sentence(e)
    if account is None or problem:
        out.problems.append(f"{what} ({(problem or '').rstrip('.')}); mail newer than the backup was not "
                            f"looked for.")
        out.unchecked.append(f"the {side} mailbox")
        return out
    if meta.get("username") and (meta.get("username"), meta.get("host")) != (account.username, account.imap.host):
        out.problems.append(
            f"This is the backup of {meta.get('username')} on {meta.get('host')}, not of the {side} mailbox "
            f"in the config ({account.username} on {account.imap.host}): its files were checked, but not "
            f"whether it holds everything that mailbox holds.")
        out.unchecked.append(f"{meta.get('username')} on {meta.get('host')}")
        return out
    client: Any = None
    try:
        client = connect(account, timeout=30)
        _read_live(client, out)
        out.reached = True
    except SwitchoverError as e:
        detail = e.message.rstrip(".")
        detail = detail[len(f"The {side} mailbox: "):] if detail.startswith(f"The {side} mailbox: ") else detail
        out.problems.append(f"{what} ({detail}); mail newer than the backup was not looked for.")
        out.unchecked.append(f"the {side} mailbox")
    except Exception as e:
        out.problems.append(f"{what} ({sentence(e)}); mail newer than the backup was not looked for.")
        out.unchecked.append(f"the {side} mailbox")
    finally:
        close(client)
    return out


def _read_live(client: Any, out: _Live) -> None:
    for f in list_folders(client):
        if not f.selectable:
            continue
        try:
            sel = client.select_folder(f.name, readonly=True)
            uids = set(client.search("ALL")) if int(sel.get(b"EXISTS", 0)) else set()
        except Exception as e:
            if is_connection_error(e):
                raise
            out.problems.append(f"{f.name}: the folder could not be compared with the backup "
                                f"({sentence(e)}); mail newer than the backup may be missing.")
            out.unchecked.append(f.name)
            continue
        out.folders[f.name] = (int(sel[b"UIDVALIDITY"]), uids)
