"""engine.backups.import_path against a real server (Dovecot, else pymap)."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from switchover.core.mail.identity import identity_of
from switchover.core.backup.sources import read_mbox, to_crlf
from tests.backup.test_backup import seed, server_state

ROOT = Path(__file__).resolve().parents[2]


def lf(n: int, subject: str = "Invoice", body: str = "Dear friend,\n") -> bytes:
    return (f"From: Buyer {n} <b{n}@example.net>\nTo: sales@example.com\nSubject: {subject}\n"
            f"Date: Tue, 03 Mar 2026 09:{n % 60:02d}:00 +0100\nMessage-ID: <imp{n}@example.net>\n\n"
            + body).encode()


def write_mbox(path: Path, messages: list[bytes]) -> None:
    """mboxo as Thunderbird writes it: body 'From ' lines escaped, blank line between."""
    out = b""
    for m in messages:
        body = b"\n".join(b">" + line if line.startswith(b"From ") else line for line in m.split(b"\n"))
        out += b"From - Tue Mar  3 09:00:00 2026\n" + body + (b"" if body.endswith(b"\n") else b"\n") + b"\n"
    path.write_bytes(out)


def folder_identities(server, user, folder: str) -> Counter:
    return Counter(identity_of(raw) for raw, _f, _d in server_state(server, user, folder).values())


async def test_import_mbox_and_rerun(engine, mailserver, new_user, tmp_path) -> None:
    msgs = [lf(1, body="Hello\nFrom the factory we ship.\nbye\n"), lf(2, "价格", "8-bit 中文\n"),
            lf(3), lf(3)]                                   # the same message twice in the file
    mbox = tmp_path / "Inbox.mbox"
    write_mbox(mbox, msgs)
    s = await engine.backups.import_path(mbox, "Imported/Thunderbird")
    assert s.ok, (s.refused, s.malformed)
    assert (s.messages, s.uploaded, s.already_there) == (4, 4, 0)
    state = server_state(mailserver, new_user, s.folder)
    bodies = sorted(raw for raw, _f, _d in state.values())
    assert bodies == sorted(to_crlf(m) for m in msgs)      # only LF -> CRLF, 'From ' unquoted
    for raw, flags, when in state.values():
        assert "\\Seen" in flags
        if b"imp2@" in raw:
            assert when == dt.datetime(2026, 3, 3, 9, 2, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    again = await engine.backups.import_path(mbox, "Imported/Thunderbird")
    assert again.ok and again.uploaded == 0 and again.already_there == 4
    rows = await engine.store.fetchall("SELECT state, count(*) FROM imports GROUP BY state")
    assert dict((r[0], r[1]) for r in rows) == {"uploaded": 4}


async def test_import_foxmail_directory(engine, mailserver, new_user, tmp_path) -> None:
    d = tmp_path / "Foxmail export"
    (d / "客户" / "墨西哥").mkdir(parents=True)
    (d / "客户" / "墨西哥" / "报价 1.eml").write_bytes(lf(10, body="quote\n"))
    (d / "客户" / "墨西哥" / "报价 2.EML").write_bytes(
        b"From: a@b.cn\r\nSubject: \xb1\xa8\xbc\xdb\r\nDate: bogus\r\n\r\nGBK 8-bit subject, no Message-ID\r\n")
    (d / "客户" / "already.eml").write_bytes(lf(11))
    (d / "empty.eml").write_bytes(b"")
    (d / "notes.eml").write_bytes(b"just some text, not a mail\n")
    (d / "old.msg").write_bytes(b"\xd0\xcf\x11\xe0 binary")
    (d / "desktop.ini").write_bytes(b"[.ShellClassInfo]\n")
    (d / "raw.eml").write_bytes(b"From b12@example.net Tue Mar  3 09:00:00 2026\n" + lf(12))
    (d / "Thunderbird").mkdir()
    (d / "Thunderbird" / "Inbox").write_bytes(b"From - Tue Mar  3 09:00:00 2026\n" + lf(13) + b"\n")
    (d / "Thunderbird" / "Inbox.msf").write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->\n")
    # one of them is already in the destination (e.g. an earlier upload)
    mailserver.append(new_user, "Foxmail", to_crlf(lf(11)))
    s = await engine.backups.import_path(d, "Foxmail")
    assert (s.messages, s.uploaded, s.already_there) == (5, 4, 1)
    assert not s.ok and not s.refused
    bad = dict(s.malformed)
    assert set(bad) == {"empty.eml", "notes.eml", "old.msg"}
    assert bad["empty.eml"] == "The file is empty."
    assert "not a mail message" in bad["notes.eml"] and ".msg" in bad["old.msg"]
    assert all(r.endswith(".") and "\n" not in r and "Traceback" not in r for r in bad.values())
    ids = folder_identities(mailserver, new_user, "Foxmail")
    assert sum(ids.values()) == 5 and max(ids.values()) == 1
    assert ids[identity_of(to_crlf(lf(12)))] == 1 and ids[identity_of(to_crlf(lf(13)))] == 1
    again = await engine.backups.import_path(d, "Foxmail")
    assert again.uploaded == 0 and again.already_there == 5


async def test_import_single_eml_and_missing(engine, mailserver, new_user, tmp_path) -> None:
    from switchover.core.errors import SwitchoverError
    p = tmp_path / "one.eml"
    p.write_bytes(lf(20))
    s = await engine.backups.import_path(p, "INBOX")
    assert s.ok and s.uploaded == 1 and s.folder == "INBOX"
    with pytest.raises(SwitchoverError, match="does not exist"):
        await engine.backups.import_path(tmp_path / "nope.mbox", "INBOX")
    junk = tmp_path / "junk.mbox"
    junk.write_bytes(b"hello\nworld\n")
    s = await engine.backups.import_path(junk, "INBOX")
    assert s.messages == 0 and s.malformed and "not an mbox" in s.malformed[0][1]


async def test_import_into_courier_destination(make_engine, mailserver, old_user, tmp_path) -> None:
    if "courier" not in mailserver.features:
        pytest.skip("no Courier-style namespace on this server")
    new = mailserver.add_user("newc", courier=True)
    mbox = tmp_path / "a.mbox"
    write_mbox(mbox, [lf(30), lf(31)])
    eng = await make_engine(old_user, new)
    s = await eng.backups.import_path(mbox, "历史邮件-2025年前/Foxmail")
    assert s.ok and s.uploaded == 2
    assert s.folder == "INBOX.历史邮件-2025年前.Foxmail"
    assert sum(folder_identities(mailserver, new, s.folder).values()) == 2


async def test_round_trip_backup_then_import(engine, mailserver, old_user, new_user, tmp_path) -> None:
    layout = seed(mailserver, old_user)
    sep = mailserver.delimiter(old_user)
    root = tmp_path / "bk"
    assert (await engine.backups.backup(root)).ok
    for folder in layout:
        rel = folder.replace(sep, "/")
        src = server_state(mailserver, old_user, folder)
        # from the eml tree into one folder, from the mbox into another
        a = await engine.backups.import_path(root / "eml" / rel, "FromEml/" + rel)
        b = await engine.backups.import_path(root / "mbox" / (rel + ".mbox"), "FromMbox/" + rel)
        assert a.ok and b.ok, (a.malformed, a.refused, b.malformed, b.refused)
        want = sorted((identity_of(r), tuple(sorted(f)), d) for r, f, d in src.values())
        for dest in (a.folder, b.folder):
            got = server_state(mailserver, new_user, dest)
            assert sorted((identity_of(r), tuple(sorted(f)), d) for r, f, d in got.values()) == want
            assert sorted(r for r, _f, _d in got.values()) == sorted(r for r, _f, _d in src.values())
    # the whole backup root into one folder: every message once, not once per format
    total = sum(len(v) for v in layout.values())
    s = await engine.backups.import_path(root, "Everything")
    assert s.ok and s.messages == total and s.uploaded == total


KILL_IMPORT = textwrap.dedent("""
    import asyncio, os, signal, sys
    sys.path.insert(0, {root!r})
    import switchover.core.backup.importer as imp
    from switchover.core.net.wire import Wire
    from switchover.core.config import load_config
    from switchover.core.engine import Engine
    imp.BATCH_MESSAGES = 4
    real = Wire.append_each
    calls = [0]
    def append_each(self, folder, messages):
        res = real(self, folder, messages)
        calls[0] += 1
        if calls[0] == 2:       # appended, not yet recorded as uploaded
            os.kill(os.getpid(), signal.SIGKILL)
        return res
    Wire.append_each = append_each
    async def main():
        eng = await Engine.open(load_config({config!r}))
        await eng.backups.import_path({path!r}, "Killed")
    asyncio.run(main())
""")


async def test_kill_during_import_then_rerun(engine, mailserver, new_user, tmp_path, config_path) -> None:
    mbox = tmp_path / "k.mbox"
    msgs = [lf(40 + i) for i in range(14)] + [b"Subject: no id\n\nsame\n"] * 2
    write_mbox(mbox, msgs)
    script = KILL_IMPORT.format(root=str(ROOT), config=str(config_path), path=str(mbox))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert sum(folder_identities(mailserver, new_user, "Killed").values()) == 8
    pending = await engine.store.fetchone("SELECT count(*) FROM imports WHERE state='pending'")
    assert pending[0] == 4
    s = await engine.backups.import_path(mbox, "Killed")
    assert s.ok and s.uploaded == 8 and s.already_there == 8
    ids = folder_identities(mailserver, new_user, "Killed")
    assert ids == Counter(identity_of(to_crlf(m)) for m in msgs)


def test_read_mbox_boundaries(tmp_path) -> None:
    p = tmp_path / "x.mbox"
    p.write_bytes(b"From a@b Tue Mar  3 09:00:00 2026\r\nSubject: 1\r\n\r\nFrom me, no blank before\r\n\r\n"
                  b"From a@b Tue Mar  3 09:00:00 2026\r\nSubject: 2\r\n\r\n>From quoted\r\n\r\n")
    got = list(read_mbox(p, "x"))
    assert [g.raw for g in got] == [b"Subject: 1\r\n\r\nFrom me, no blank before\r\n",
                                    b"Subject: 2\r\n\r\nFrom quoted\r\n"]
    assert got[0].from_date == dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.timezone.utc)


async def test_refused_message_is_reported(make_engine, mailserver, old_user, tmp_path) -> None:
    if "quota" not in mailserver.features:
        pytest.skip("the test server cannot limit message size")
    new = mailserver.add_user("small", max_message_kb=4)
    mbox = tmp_path / "big.mbox"
    write_mbox(mbox, [lf(50), lf(51, body="x" * 10000 + "\n"), lf(52)])
    eng = await make_engine(old_user, new)
    s = await eng.backups.import_path(mbox, "Big")
    assert not s.ok and s.uploaded == 2 and len(s.refused) == 1
    ref, reason = s.refused[0]
    assert ref == "big.mbox#2" and reason           # the server's own words
    row = await eng.store.fetchone("SELECT state, reason FROM imports WHERE source_ref='big.mbox#2'")
    assert row[0] == "refused" and row[1] == reason
    # recorded before it was sent, settled after: no placement is left 'sending'
    assert await eng.store.scalar("SELECT count(*) FROM placements WHERE owner='import' AND state='sending'") == 0
    assert await eng.store.scalar("SELECT count(*) FROM placements WHERE owner='import' AND state='placed'") == 2
