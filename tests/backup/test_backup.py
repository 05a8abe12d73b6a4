"""engine.backups.backup / verify_backup against a real server (Dovecot, else pymap)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from switchover.core.backup.layout import safe_component
from switchover.core.backup.mbox import entry_message, mboxrd_quote, mboxrd_unquote
from switchover.core.events import FolderProgress, JobProgress
from switchover.core.mail.identity import identity_of
from switchover.core.backup.sources import read_mbox

ROOT = Path(__file__).resolve().parents[2]


def msg(n: int, subject: str = "Quote", body: bytes = b"Hello.\r\n", mid: bool = True,
        extra: bytes = b"") -> bytes:
    head = (b"From: Customer %d <c%d@example.org>\r\nTo: sales@example.com\r\n" % (n, n)
            + b"Subject: " + subject.encode() + b"\r\n"
            + b"Date: Mon, 02 Mar 2026 10:%02d:00 +0800\r\n" % (n % 60)
            + (b"Message-ID: <m%d@example.org>\r\n" % n if mid else b"") + extra)
    return head + b"\r\n" + body


def seed(server, user) -> dict[str, list[tuple[bytes, tuple, dt.datetime]]]:
    """A mailbox with Chinese nested folders, 8-bit, malformed, flags and keywords."""
    sep = server.delimiter(user)
    d = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    layout = {
        "INBOX": [
            (msg(1), ("\\Seen",), d),
            (msg(2, "=?utf-8?b?5oql5Lu3?=", body="价格表 8-bit\r\nFrom the factory\r\n>From x\r\n".encode()),
             ("\\Flagged", "$Label1", "customkw"), d),
            (msg(3, mid=False, body=b"no message id\r\n"), (), d),
            (b"this is not really a mail\r\nFrom nowhere\r\n", ("\\Answered",), d),   # malformed
            (msg(4, body=b"no final newline"), ("\\Draft",), d),
        ],
        f"客户{sep}墨西哥": [(msg(10 + i, f"Mexico {i}"), ("\\Seen", "\\Answered"), d) for i in range(3)],
        f"客户{sep}巴西": [(msg(20), (), d), (msg(20), (), d)],      # the same message twice
        "Sent": [(msg(30, "Re: a/b:c?"), ("\\Seen",), d)],
    }
    for folder, items in layout.items():
        for raw, flags, when in items:
            server.append(user, folder, raw, flags=flags, date=when)
    return layout


def server_state(server, user, folder: str) -> dict[int, tuple[bytes, frozenset, dt.datetime]]:
    c = server.client(user)
    try:
        c.normalise_times = False
        c.select_folder(folder, readonly=True)
        data = c.fetch(c.search("ALL"), ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
        return {u: (d[b"BODY[]"], frozenset(f.decode() for f in d[b"FLAGS"] if f != b"\\Recent"),
                    d[b"INTERNALDATE"]) for u, d in data.items()}
    finally:
        c.logout()


def index_rows(root: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(root / "index.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM messages ORDER BY folder, uid").fetchall()
    finally:
        db.close()


def test_mboxrd_quoting_round_trips() -> None:
    raw = b"a\r\nFrom x\r\n>From y\r\n>>From z\r\nFromage\r\n"
    q = mboxrd_quote(raw)
    assert q == b"a\r\n>From x\r\n>>From y\r\n>>>From z\r\nFromage\r\n"
    assert mboxrd_unquote(q) == raw
    assert safe_component('a/b:c?*"<>|') == "a_b_c______"
    assert safe_component("..") == "_" and safe_component("a.") == "a"
    assert safe_component("CON") == "_CON"


async def test_backup_then_verify(engine, mailserver, old_user, tmp_path) -> None:
    layout = seed(mailserver, old_user)
    sep = mailserver.delimiter(old_user)
    before = {f: server_state(mailserver, old_user, f) for f in layout}
    events: list = []
    engine.subscribe(events.append)
    root = tmp_path / "backup"
    s = await engine.backups.backup(root)
    total = sum(len(v) for v in layout.values())
    assert s.ok, s.errors
    assert s.messages_written == total and s.already_there == 0
    assert s.folders >= len(layout)
    # nothing was marked read, nothing changed on the server
    assert {f: server_state(mailserver, old_user, f) for f in layout} == before

    rows = index_rows(root)
    assert len(rows) == total
    for folder, state in before.items():
        frows = {r["uid"]: r for r in rows if r["folder"] == folder}
        assert set(frows) == set(state)
        mbox = root / "mbox" / (folder.replace(sep, "/") + ".mbox")
        assert mbox.is_file()
        parsed = [src.raw for src in read_mbox(mbox, "x")]
        for uid, (raw, flags, when) in state.items():
            r = frows[uid]
            assert frozenset(json.loads(r["flags"])) == flags
            assert dt.datetime.fromisoformat(r["internaldate"]) == when
            assert r["identity"] == identity_of(raw)
            assert (root / r["eml"]).read_bytes() == raw            # byte-exact eml
            with open(mbox, "rb") as f:
                f.seek(r["mbox_offset"])
                assert entry_message(f.read(r["mbox_length"]), r["size"]) == raw
        # the mbox parses back message by message, with our reader and with Python's
        assert len(parsed) == len(state)
        import mailbox
        assert len(mailbox.mbox(str(mbox), create=False)) == len(state)
    # Chinese names kept as UTF-8 path components, mirrored nesting, no illegal characters
    assert (root / "eml" / "客户" / "墨西哥").is_dir()
    assert (root / "mbox" / "客户" / "巴西.mbox").is_file()
    assert any("Re_a_b_c" in p.name for p in (root / "eml" / "Sent").iterdir())
    assert any(isinstance(e, FolderProgress) and e.job == "backup" and e.state == "done" for e in events)
    assert any(isinstance(e, JobProgress) and e.job == "backup" and e.state == "done" for e in events)
    # the engine's state mirrors the index
    n = await engine.store.fetchone("SELECT count(*) FROM backups WHERE root=?", (str(root.resolve()),))
    assert n[0] == total

    report = await engine.backups.verify_backup(root)
    assert report.ok, report.problems
    assert report.live_checked
    assert sum(f.found for f in report.folders) == total

    # rerun: nothing fetched again; new mail is picked up
    mailserver.append(old_user, "INBOX", msg(99))
    report = await engine.backups.verify_backup(root)
    assert not report.ok and any("not in the backup yet" in p for p in report.problems)
    s2 = await engine.backups.backup(root)
    assert s2.ok and s2.messages_written == 1 and s2.already_there == total
    assert (await engine.backups.verify_backup(root)).ok


async def test_verify_reports_damage(engine, mailserver, old_user, tmp_path) -> None:
    for i in range(4):
        mailserver.append(old_user, "INBOX", msg(i, body=b"body %d\r\n" % i))
    root = tmp_path / "b"
    assert (await engine.backups.backup(root)).ok
    rows = index_rows(root)
    eml = root / rows[1]["eml"]
    eml.write_bytes(eml.read_bytes().replace(b"body", b"BODY"))
    (root / rows[2]["eml"]).unlink()
    mbox = root / "mbox" / "INBOX.mbox"
    data = bytearray(mbox.read_bytes())
    off = rows[3]["mbox_offset"] + rows[3]["mbox_length"] - 5
    data[off] ^= 0x20
    mbox.write_bytes(bytes(data))
    report = await engine.backups.verify_backup(root)
    assert not report.ok
    inbox = next(f for f in report.folders if f.folder == "INBOX")
    assert (inbox.expected, inbox.found, inbox.missing, inbox.corrupt) == (4, 1, 1, 2)
    text = " ".join(report.problems)
    assert rows[1]["eml"] in text and rows[2]["eml"] in text and "missing" in text
    # a rerun repairs what it can fetch again (the deleted file); the edited ones stay reported
    s = await engine.backups.backup(root)
    assert s.ok and s.messages_written == 1
    # not a backup directory at all: one sentence
    from switchover.core.errors import SwitchoverError
    with pytest.raises(SwitchoverError, match="no backup index"):
        await engine.backups.verify_backup(tmp_path / "nothing")


KILL_SCRIPT = textwrap.dedent("""
    import asyncio, os, signal, sys
    sys.path.insert(0, {root!r})
    from switchover.core.config import load_config
    from switchover.core.engine import Engine
    calls = [0]
    real_fsync = os.fsync
    def fsync(fd):
        # die at the K-th fsync of an mbox: a batch written, a torn entry after it,
        # its eml files renamed, the index not yet committed
        path = os.readlink(f"/proc/self/fd/{{fd}}")
        calls[0] += path.endswith(".mbox")
        if path.endswith(".mbox") and calls[0] == {k}:
            with open(path, "ab") as f:
                f.write(b"From torn@tail Mon Jan  1 00:00:00 2024\\nSubject: half")
            os.kill(os.getpid(), signal.SIGKILL)
        return real_fsync(fd)
    os.fsync = fsync
    async def main():
        eng = await Engine.open(load_config({config!r}))
        await eng.backups.backup({dest!r}, formats=("mbox", "eml"))
        await eng.close()
    asyncio.run(main())
""")


async def test_kill_during_backup_then_resume(make_engine, mailserver, old_user, new_user, tmp_path) -> None:
    eng = await make_engine(old_user, new_user, migration={"batch_messages": 3})
    for i in range(20):
        mailserver.append(old_user, "INBOX", msg(i, f"n{i}", body=b"From me\r\n" + b"x" * 2000 + b"\r\n"))
    for i in range(5):
        mailserver.append(old_user, "Archive/2023", msg(100 + i, mid=i % 2 == 0))
    root = tmp_path / "bk"
    script = KILL_SCRIPT.format(root=str(ROOT), config=str(eng.config.path), dest=str(root), k=3)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    done_before = len(index_rows(root))
    assert done_before in (5, 6)                 # two batches committed (3+2 or 3+3)
    assert [p for p in (root / "mbox").rglob("*.mbox") if p.read_bytes().endswith(b"Subject: half")]
    s = await eng.backups.backup(root)
    assert s.ok, s.errors
    assert s.already_there == done_before and s.messages_written == 25 - done_before
    rows = index_rows(root)
    assert len(rows) == 25
    assert len({(r["folder"], r["uid"]) for r in rows}) == 25
    inbox = [src.raw for src in read_mbox(root / "mbox" / "INBOX.mbox", "x")]
    assert len(inbox) == 20 and len(set(inbox)) == 20       # tail cut, no duplicates
    emls = [p for p in (root / "eml").rglob("*") if p.is_file()]
    assert len(emls) == 25 and not [p for p in emls if p.name.startswith(".tmp")]
    assert (await eng.backups.verify_backup(root)).ok


async def test_uidvalidity_change_rebinds(engine, mailserver, old_user, tmp_path) -> None:
    raws = [msg(1), msg(2, mid=False, body=b"no id\r\n"), msg(3)]
    for r in raws:
        mailserver.append(old_user, "Projects", r)
    root = tmp_path / "uv"
    assert (await engine.backups.backup(root, formats=("eml",))).messages_written == 3
    old_uv = index_rows(root)[0]["uidvalidity"]
    # delete and recreate the folder: same mail, new UIDVALIDITY
    c = mailserver.client(old_user)
    c.delete_folder("Projects")
    c.logout()
    time.sleep(1.1)
    for r in raws + [msg(4)]:
        mailserver.append(old_user, "Projects", r)
    s = await engine.backups.backup(root, formats=("eml",))
    assert s.ok, s.errors
    assert s.messages_written == 1 and s.already_there == 3
    rows = [r for r in index_rows(root) if r["folder"] == "Projects"]
    assert len(rows) == 4 and old_uv not in {r["uidvalidity"] for r in rows}
    assert len(list((root / "eml" / "Projects").iterdir())) == 4
    assert (await engine.backups.verify_backup(root)).ok


async def test_backup_courier_layout_and_folder_choice(make_engine, mailserver, tmp_path) -> None:
    if "courier" not in mailserver.features:
        pytest.skip("no Courier-style namespace on this server")
    old = mailserver.add_user("oldc", courier=True)
    new = mailserver.add_user("newc")
    mailserver.append(old, "INBOX.客户.墨西哥", msg(1))
    mailserver.append(old, "INBOX", msg(2))
    eng = await make_engine(old, new)
    root = tmp_path / "c"
    s = await eng.backups.backup(root, formats=("mbox",), folders=["INBOX.客户.墨西哥", "Nope"])
    assert not s.ok and s.messages_written == 1 and any("Nope" in e for e in s.errors)
    assert (root / "mbox" / "INBOX" / "客户" / "墨西哥.mbox").is_file()
    assert not (root / "eml").exists()
    report = await eng.backups.verify_backup(root)
    assert report.ok, report.problems        # only chosen folders: no "not in backup"


async def test_backup_dir_of_another_account_is_refused(engine, mailserver, old_user, tmp_path) -> None:
    from switchover.core.errors import SwitchoverError
    root = tmp_path / "shared"
    assert (await engine.backups.backup(root, formats=("eml",))).ok
    db = sqlite3.connect(root / "index.sqlite")
    with db:
        db.execute("UPDATE meta SET value='someone@else' WHERE key='username'")
    db.close()
    with pytest.raises(SwitchoverError, match="someone@else"):
        await engine.backups.backup(root)


async def test_wrong_password_is_one_sentence(engine, tmp_path) -> None:
    from switchover.core.errors import AuthError
    engine.set_secret("old", "wrong-password")
    with pytest.raises(AuthError) as e:
        await engine.backups.backup(tmp_path / "x")
    assert e.value.exit_code == 3 and "\n" not in e.value.message


async def test_a_verified_backup_proves_the_checklist_item(engine, mailserver, old_user, tmp_path) -> None:
    """The proof travels as a Proven event (the backup facet never calls the checklist);
    a failed check takes back only a proof the very same backup gave."""
    mailserver.append(old_user, "INBOX", msg(1))
    first, second = tmp_path / "first", tmp_path / "second"
    assert (await engine.backups.backup(first)).ok and (await engine.backups.backup(second)).ok
    assert (await engine.backups.verify_backup(first)).ok
    await engine.bus.drain()
    item = await engine.checklist.item("backup")
    assert item.state == "done" and item.by == "engine" and str(first.resolve()) in item.evidence

    for root in (second, first):                  # damage: one eml file gone
        (root / index_rows(root)[0]["eml"]).unlink()
    assert not (await engine.backups.verify_backup(second)).ok
    await engine.bus.drain()
    assert (await engine.checklist.item("backup")).state == "done"      # another backup: no news

    assert not (await engine.backups.verify_backup(first)).ok
    await engine.bus.drain()
    lost = await engine.checklist.item("backup")
    assert lost.state == "open" and "failed its check" in lost.evidence
