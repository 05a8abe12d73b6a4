"""The built-in demo: real pymap/aiosmtpd servers, generated history, live arrivals,
restarts that keep UIDs, reset, and the headless run the CLI and CI use."""

from __future__ import annotations

import email
import email.policy
import io
import smtplib
import stat
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import imapclient
import pytest

from switchover.core.config import load_config
from switchover.core.net.imap import connect
from switchover.demo import DemoError, start_demo
from switchover.demo.history import FOLDERS, folder_counts, generate_messages
from switchover.demo.live import make_arrival
from switchover.demo.people import NEW_ADDRESS, OLD_ADDRESS

SIZE = 300
CHINESE = ["客户/墨西哥", "客户/巴西", "客户/俄罗斯", "报价单", "合同", "物流"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    handle = start_demo(tmp_path_factory.mktemp("demo"), history_size=SIZE, arrival_every=0.5)
    try:
        yield handle
    finally:
        handle.stop()


def _client(handle, side: str) -> imapclient.IMAPClient:
    cfg = load_config(handle.config_path)
    client = connect(cfg.account(side), timeout=10)
    client.normalise_times = False
    return client


def _uids(client: imapclient.IMAPClient, folder: str) -> tuple[int, list[int]]:
    info = client.select_folder(folder, readonly=True)
    return info[b"UIDVALIDITY"], sorted(client.search(["ALL"]))


def test_config_loads_and_is_private(demo) -> None:
    cfg = load_config(demo.config_path)
    assert cfg.identity.old_address == OLD_ADDRESS and cfg.identity.new_address == NEW_ADDRESS
    assert cfg.old.imap.port == demo.old_port and cfg.new.imap.port == demo.new_port
    assert cfg.old.smtp.port == demo.smtp_port and cfg.old.imap.security == "none"
    assert cfg.state == demo.state_dir / "switchover.sqlite"
    assert cfg.transition.start < cfg.transition.close_date
    assert (cfg.transition.close_date - cfg.transition.start).days == 90
    assert stat.S_IMODE(demo.config_path.stat().st_mode) == 0o600
    assert not cfg.warnings


def test_both_servers_accept_the_config_logins(demo) -> None:
    for side in ("old", "new"):
        c = _client(demo, side)
        caps = set(c.capabilities())
        # what the engine relies on (see the report): pymap has these, not SPECIAL-USE
        assert {b"IDLE", b"UIDPLUS", b"MULTIAPPEND", b"MOVE"} <= caps
        assert b"SPECIAL-USE" not in caps
        # keywords stick (stock pymap drops them in STORE; the demo's mailboxes take them)
        if not c.folder_exists("Keywords"):
            c.create_folder("Keywords")
        c.append("Keywords", b"From: a@b.example\r\nSubject: keyword\r\n\r\nx\r\n")
        info = c.select_folder("Keywords")
        assert b"\\*" in info[b"PERMANENTFLAGS"]
        uid = c.search(["ALL"])[-1]
        c.add_flags([uid], [b"$Forwarded"])
        assert b"$Forwarded" in c.get_flags([uid])[uid]
        c.delete_messages([uid])
        c.expunge()
        c.logout()
    cfg = load_config(demo.config_path)
    bad = cfg.old.with_secret("wrong")
    with pytest.raises(Exception):
        connect(bad, timeout=10)


def test_old_mailbox_has_the_history(demo) -> None:
    expected = folder_counts(list(generate_messages(7, SIZE)))
    c = _client(demo, "old")
    names = {name for _, _, name in c.list_folders()}
    assert set(FOLDERS) <= names and set(CHINESE) <= names
    for folder in FOLDERS:
        if folder == "INBOX":
            continue  # live arrivals keep landing there
        assert c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"] == expected[folder], folder
    assert c.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"] >= expected["INBOX"]
    assert sum(expected.values()) == SIZE
    c.logout()


def test_history_is_realistic_mime() -> None:
    msgs = list(generate_messages(7, 1200))
    raws = [r for _, r, _, _ in msgs]
    joined = b"\n".join(raws)
    for needle in (b"charset=\"gb18030\"", b"quoted-printable", b"base64", b"=?utf-8?",
                   b"multipart/report", b"message/delivery-status", b"List-Unsubscribe:",
                   b"Precedence: bulk", b"In-Reply-To:", b"References:", b"application/pdf",
                   b"image/png", b"image/jpeg", b"X-Spam-Flag: YES"):
        assert needle in joined, needle
    flags = [f for _, _, fl, _ in msgs for f in fl]
    for flag in ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "$Label1"):
        assert flag in flags
    langs = {"es": "Estimado", "pt": "Prezado", "ru": "Здравствуйте", "zh": "您好", "en": "Dear"}
    texts = []
    pdfs = 0
    for folder, raw, _, when in msgs:
        assert folder in FOLDERS
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsedate_to_datetime(msg["Date"]) == when  # INTERNALDATE matches Date
        for part in msg.walk():
            if part.get_content_type() == "text/plain":
                texts.append(part.get_content())
            elif part.get_content_type() == "application/pdf":
                data = part.get_payload(decode=True)
                assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
                pdfs += 1
    body = "\n".join(texts)
    for lang, word in langs.items():
        assert word in body, lang
    assert pdfs > 10
    dates = [when for *_, when in msgs]
    assert dates == sorted(dates) and (dates[-1] - dates[0]).days > 4 * 365
    senders = {email.message_from_bytes(r)["From"] for r in raws}
    assert len(senders) > 150


def test_generation_is_deterministic() -> None:
    a = list(generate_messages(7, 200))
    b = list(generate_messages(7, 200))
    c = list(generate_messages(8, 200))
    assert a == b and a != c and len(a) == 200
    from datetime import datetime, timezone
    now = datetime(2026, 5, 1, tzinfo=timezone.utc)
    assert make_arrival(7, 3, now=now) == make_arrival(7, 3, now=now)
    assert make_arrival(7, 3, now=now) != make_arrival(7, 4, now=now)


def test_live_arrival_lands_in_old_inbox(demo) -> None:
    c = _client(demo, "old")
    c.select_folder("INBOX")
    before = len(c.search(["ALL"]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        c.noop()
        if len(c.search(["ALL"])) > before:
            break
        time.sleep(0.2)
    # one every 0.5 s, most of them to the old address: some landed within 10 s
    assert len(c.search(["ALL"])) > before
    c.logout()
    assert demo.arrivals_sent() > 0


def test_smtp_delivers_to_the_right_mailbox(demo) -> None:
    cfg = load_config(demo.config_path)
    raw = (f"From: Ana <ana@cliente.mx.example>\r\nTo: {NEW_ADDRESS}, buyer@far.example\r\n"
           f"Subject: routed\r\nMessage-ID: <routed.1@cliente.mx.example>\r\n\r\nhola\r\n").encode()
    with smtplib.SMTP(cfg.new.smtp.host, cfg.new.smtp.port, timeout=10) as s:
        s.login(cfg.new.username, cfg.new.secret())
        s.sendmail("ana@cliente.mx.example", [NEW_ADDRESS, "buyer@far.example"], raw)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        with smtplib.SMTP(cfg.new.smtp.host, cfg.new.smtp.port, timeout=10) as s:
            s.login(cfg.new.username, "wrong")
    c = _client(demo, "new")
    c.select_folder("INBOX")
    assert c.search(["HEADER", "Message-ID", "routed.1@cliente.mx.example"])
    c.logout()
    assert any(rcpts == ["buyer@far.example"] and b"routed" in data
               for _, rcpts, data in demo.outside_mail())


def test_reminded_sender_answers_to_the_new_address(demo) -> None:
    cfg = load_config(demo.config_path)
    customer = "sofia.ortega@distribuidora-bajio.mx.example"
    raw = (f"From: Wu Jun <{OLD_ADDRESS}>\r\nTo: {customer}\r\nSubject: Re: Seguimiento\r\n"
           f"Message-ID: <reminder.1@old-trading.example>\r\nAuto-Submitted: auto-replied\r\n\r\n"
           f"Please write to {NEW_ADDRESS}.\r\n").encode()
    with smtplib.SMTP(cfg.old.smtp.host, cfg.old.smtp.port, timeout=10) as s:
        s.login(cfg.old.username, cfg.old.secret())
        s.sendmail(OLD_ADDRESS, [customer], raw)
    c = _client(demo, "new")
    c.select_folder("INBOX")
    found = []
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        time.sleep(0.3)
        c.noop()
        found = c.search(["HEADER", "In-Reply-To", "reminder.1@old-trading.example"])
    assert found
    msg = email.message_from_bytes(c.fetch(found, ["RFC822"])[found[0]][b"RFC822"])
    assert customer in msg["From"] and NEW_ADDRESS in msg["To"]
    c.logout()


def test_restart_keeps_uids_and_changes(tmp_path: Path) -> None:
    h = start_demo(tmp_path, history_size=120, live=False)
    try:
        before = {}
        c = _client(h, "old")
        for folder in ("INBOX", "客户/墨西哥", "Sent"):
            before[folder] = _uids(c, folder)
        c.logout()
        # an arrival over SMTP, and what a migration would do to the new mailbox
        mail_from, rcpts, raw = make_arrival(7, 0)
        with smtplib.SMTP("127.0.0.1", h.smtp_port, timeout=10) as s:
            s.sendmail(mail_from, [OLD_ADDRESS], raw)
        n = _client(h, "new")
        n.create_folder("历史邮件/报价单")
        n.append("历史邮件/报价单", b"From: a@b.example\r\nSubject: kept\r\n\r\nx\r\n",
                 flags=(b"\\Seen", b"$Label1"))
        new_before = _uids(n, "历史邮件/报价单")
        n.logout()
        c = _client(h, "old")
        inbox_after_arrival = _uids(c, "INBOX")
        c.select_folder("Sent")
        sent_uids = before["Sent"][1]
        c.add_flags(sent_uids[:1], [b"\\Flagged"])
        c.delete_messages(sent_uids[-1:])
        c.expunge()
        c.logout()
        assert inbox_after_arrival[1][:-1] == before["INBOX"][1]
    finally:
        h.stop()
    h = start_demo(tmp_path, history_size=120, live=False)
    try:
        assert h.restored
        c = _client(h, "old")
        assert _uids(c, "客户/墨西哥") == before["客户/墨西哥"]
        validity, uids = before["Sent"]
        assert _uids(c, "Sent") == (validity, uids[:-1])  # the expunge was kept
        assert b"\\Flagged" in c.get_flags(uids[:1])[uids[0]]
        assert _uids(c, "INBOX") == inbox_after_arrival
        c.logout()
        n = _client(h, "new")
        assert _uids(n, "历史邮件/报价单") == new_before
        flags = n.get_flags(new_before[1])
        assert set(flags[new_before[1][0]]) >= {b"\\Seen", b"$Label1"}
        n.logout()
    finally:
        h.stop()


def test_regenerated_history_has_the_same_uids(tmp_path: Path) -> None:
    """Even without the saved mailboxes, the same seed gives the same UIDVALIDITY + UIDs."""
    views = []
    for i in range(2):
        h = start_demo(tmp_path / str(i), history_size=80, live=False)
        try:
            c = _client(h, "old")
            views.append([_uids(c, f) for f in ("INBOX", "客户/巴西", "Newsletters")])
            c.logout()
        finally:
            h.stop()
    assert all(uids for _validity, uids in views[0]), views[0]     # not two empty mailboxes
    assert views[0] == views[1]


def test_reset_wipes_state_and_refuses_foreign_dirs(tmp_path: Path) -> None:
    h = start_demo(tmp_path / "d", history_size=50, live=False)
    h.stop()
    (tmp_path / "d" / "switchover.sqlite").write_bytes(b"engine state")
    h1 = start_demo(tmp_path / "d", history_size=50, live=False)
    try:
        with pytest.raises(DemoError):  # one demo per directory at a time
            start_demo(tmp_path / "d", history_size=50, live=False)
    finally:
        h1.stop()
    h = start_demo(tmp_path / "d", reset=True, history_size=50, live=False)
    try:
        assert not h.restored
        assert not (tmp_path / "d" / "switchover.sqlite").exists()
    finally:
        h.stop()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "switchover.yaml").write_text("my real config\n")
    with pytest.raises(DemoError):
        start_demo(foreign, reset=True, history_size=50, live=False)
    assert (foreign / "switchover.yaml").read_text() == "my real config\n"


def test_run_headless_sees_an_arrival(tmp_path: Path) -> None:
    pytest.importorskip("core.monitor", reason="core.monitor is not written yet")
    from switchover.demo import run_headless
    h = start_demo(tmp_path, history_size=SIZE, arrival_every=0.5)
    try:
        out = io.StringIO()
        rc = run_headless(h, 4, out)
    finally:
        h.stop()
    text = out.getvalue()
    assert text.startswith(f"history: {SIZE} messages in ")
    assert rc == 0, text
    assert "arrival " in text
