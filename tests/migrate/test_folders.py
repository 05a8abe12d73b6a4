"""core/folders.py: the folder plan (pure unit tests on listed layouts) and listing /
creating folders on the real loopback server (normal and Courier-style users)."""

from __future__ import annotations

import imapclient
import pytest

from switchover.core.config import MigrationSettings
from switchover.core.errors import FolderError
from switchover.core.migrate.folders import FolderMapping, copy_order, plan_folders
from switchover.core.net.mailboxes import (FolderInfo, ensure_folder, folder_info, list_folders,
                                           name_special, namespace_of)

RAW = (b"From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n"
       b"Message-ID: <folders-1@example.org>\r\n\r\nbody\r\n")


def fi(name: str, delim: str | None = "/", *flags: str) -> FolderInfo:
    return folder_info(name, delim, flags)


def plan(src: list[FolderInfo], dst: list[FolderInfo], *, src_provider: str = "custom",
         dst_provider: str = "custom", dst_prefix: str = "", dst_delimiter: str = "/",
         **settings) -> list[FolderMapping]:
    result = plan_folders(src, dst, settings=MigrationSettings(**settings), src_provider=src_provider,
                          dst_provider=dst_provider, dst_prefix=dst_prefix, dst_delimiter=dst_delimiter)
    check_invariants(src, result, settings.get("folder_map") or {})
    return result


def check_invariants(src: list[FolderInfo], result: list[FolderMapping], fmap: dict) -> None:
    # every source folder appears exactly once
    assert sorted(m.source for m in result) == sorted({f.name for f in src})
    # no two copied folders share a destination unless folder_map said so
    seen: dict[str, str] = {}
    for m in copy_order(result):
        assert m.destination, m
        k = m.destination.casefold()
        if k in seen:
            assert "folder_map" in m.reason, (m, seen[k])
        seen[k] = m.source
    for m in result:
        assert m.role in ("normal", "all_mail", "skip")
        if m.role == "skip":
            assert m.reason
    # All Mail is last
    roles = [m.role for m in result if m.role != "skip"]
    if "all_mail" in roles:
        assert roles[-1] == "all_mail"


def dest(result: list[FolderMapping]) -> dict[str, str]:
    return {m.source: m.destination for m in result}


def by_source(result: list[FolderMapping]) -> dict[str, FolderMapping]:
    return {m.source: m for m in result}


DOVECOT_DST = [fi("INBOX"), fi("Sent", "/", "\\Sent"), fi("Drafts", "/", "\\Drafts"),
               fi("Trash", "/", "\\Trash"), fi("Junk", "/", "\\Junk"), fi("Archive", "/", "\\Archive")]
COURIER_DST = [fi("INBOX", "."), fi("INBOX.Sent", ".", "\\Sent"), fi("INBOX.Drafts", ".", "\\Drafts"),
               fi("INBOX.Trash", ".", "\\Trash"), fi("INBOX.Junk", ".", "\\Junk")]
GMAIL = [fi("INBOX", "/", "\\HasNoChildren"),
         fi("[Gmail]", "/", "\\Noselect", "\\HasChildren"),
         fi("[Gmail]/All Mail", "/", "\\All", "\\HasNoChildren"),
         fi("[Gmail]/Drafts", "/", "\\Drafts"), fi("[Gmail]/Important", "/", "\\Important"),
         fi("[Gmail]/Sent Mail", "/", "\\Sent"), fi("[Gmail]/Spam", "/", "\\Junk"),
         fi("[Gmail]/Starred", "/", "\\Flagged"), fi("[Gmail]/Trash", "/", "\\Trash"),
         fi("Clients", "/", "\\HasChildren"), fi("Clients/Mexico"), fi("报价单")]


# ---------------------------------------------------------------------------------------
# recognising special folders

@pytest.mark.parametrize("name, special", [
    ("Sent", "\\Sent"), ("Sent Items", "\\Sent"), ("sent messages", "\\Sent"), ("Sent Mail", "\\Sent"),
    ("已发送", "\\Sent"), ("已发送邮件", "\\Sent"), ("寄件備份", "\\Sent"), ("Gesendet", "\\Sent"),
    ("Enviados", "\\Sent"), ("Отправленные", "\\Sent"), ("Envoyés", "\\Sent"), ("Itens Enviados", "\\Sent"),
    ("Drafts", "\\Drafts"), ("草稿箱", "\\Drafts"), ("草稿", "\\Drafts"), ("Entwürfe", "\\Drafts"),
    ("Borradores", "\\Drafts"), ("Черновики", "\\Drafts"),
    ("Trash", "\\Trash"), ("Deleted Items", "\\Trash"), ("Deleted Messages", "\\Trash"), ("Bin", "\\Trash"),
    ("已删除", "\\Trash"), ("废件箱", "\\Trash"), ("Papierkorb", "\\Trash"), ("Papelera", "\\Trash"),
    ("Корзина", "\\Trash"), ("Lixeira", "\\Trash"),
    ("Junk", "\\Junk"), ("Spam", "\\Junk"), ("Junk E-mail", "\\Junk"), ("Junk Email", "\\Junk"),
    ("Bulk Mail", "\\Junk"), ("垃圾邮件", "\\Junk"), ("垃圾箱", "\\Junk"), ("Спам", "\\Junk"),
    ("Archive", "\\Archive"), ("Archives", "\\Archive"), ("归档", "\\Archive"), ("存档", "\\Archive"),
    ("[Gmail]/Sent Mail", "\\Sent"), ("[Google Mail]/Bin", "\\Trash"), ("[Gmail]/已发邮件", "\\Sent"),
    ("[Gmail]/All Mail", "\\All"), ("[Gmail]/Starred", "\\Flagged"), ("[Gmail]/重要郵件", "\\Important"),
    # not special: outbox is unsent mail, nested names are user folders, Gmail names elsewhere
    ("发件箱", None), ("Outbox", None), ("Clients/Sent", None), ("Important", None),
    ("Starred", None), ("INBOX", None), ("病毒文件夹", None),
])
def test_name_table(name: str, special: str | None) -> None:
    assert name_special(name, "/") == special


def test_name_table_after_courier_prefix_and_flags_win() -> None:
    assert name_special("INBOX.Sent Messages", ".") == "\\Sent"
    assert name_special("INBOX.Clients.Sent", ".") is None
    # the flag wins over the name; XLIST spellings are normalised
    assert fi("Sent", "/", "\\Drafts").special == "\\Drafts"
    assert fi("[Gmail]/x", "/", "\\AllMail").special == "\\All"
    assert fi("[Gmail]/y", "/", "\\Spam").special == "\\Junk"
    assert fi("[Gmail]/z", "/", "\\Starred").special == "\\Flagged"
    assert not fi("[Gmail]", "/", "\\NoSelect").selectable
    assert not fi("gone", "/", "\\NonExistent").selectable


# ---------------------------------------------------------------------------------------
# hierarchy separators and namespace prefixes

def test_courier_to_slash() -> None:
    src = [fi("INBOX", "."), fi("INBOX.Sent", "."), fi("INBOX.Drafts", "."), fi("INBOX.Trash", "."),
           fi("INBOX.客户", "."), fi("INBOX.客户.墨西哥", "."), fi("INBOX.Quotes 2024/2025", ".")]
    r = plan(src, DOVECOT_DST)
    assert dest(r) == {"INBOX": "INBOX", "INBOX.Sent": "Sent", "INBOX.Drafts": "Drafts",
                       "INBOX.Trash": "Trash", "INBOX.客户": "客户", "INBOX.客户.墨西哥": "客户/墨西哥",
                       "INBOX.Quotes 2024/2025": "Quotes 2024-2025"}
    assert "'/' in a name became '-'" in by_source(r)["INBOX.Quotes 2024/2025"].reason
    assert by_source(r)["INBOX.Sent"].reason.startswith("name table: Sent")
    assert [m.source for m in r][:4] == ["INBOX", "INBOX.Sent", "INBOX.Drafts", "INBOX.Trash"]


def test_slash_to_courier() -> None:
    src = [fi("INBOX"), fi("INBOX/Todo"), fi("Sent", "/", "\\Sent"), fi("Junk", "/", "\\Junk"),
           fi("客户"), fi("客户/墨西哥"), fi("A.B Corp"), fi("Sent/2019")]
    r = plan(src, COURIER_DST, dst_prefix="INBOX.", dst_delimiter=".")
    assert dest(r) == {"INBOX": "INBOX", "INBOX/Todo": "INBOX.Todo", "Sent": "INBOX.Sent",
                       "Junk": "INBOX.Junk", "客户": "INBOX.客户", "客户/墨西哥": "INBOX.客户.墨西哥",
                       "A.B Corp": "INBOX.A_B Corp", "Sent/2019": "INBOX.Sent.2019"}
    assert by_source(r)["Sent"].reason.startswith("special-use \\Sent")
    # the prefix may be given without its delimiter
    r2 = plan(src, COURIER_DST, dst_prefix="INBOX", dst_delimiter=".")
    assert dest(r2) == dest(r)


def test_round_trip_slash_courier_slash() -> None:
    names = ["INBOX", "Sent", "Drafts", "客户", "客户/墨西哥", "Поставщики", "R&D", "R&D/2025"]
    src = [fi(n, "/", *(("\\Sent",) if n == "Sent" else ())) for n in names]
    there = plan(src, COURIER_DST, dst_prefix="INBOX.", dst_delimiter=".")
    back_src = [fi(m.destination, ".") for m in there]
    back = plan(back_src, DOVECOT_DST)
    assert sorted(m.destination for m in back) == sorted(names)


def test_subfolders_follow_their_special_parent() -> None:
    src = [fi("INBOX"), fi("Sent", "/", "\\Sent"), fi("Sent/2019"), fi("Sent/2019/Q1")]
    dst = [fi("INBOX"), fi("Sent Items"), fi("Deleted Items")]   # Outlook: no special-use flags
    r = plan(src, dst, dst_provider="outlook")
    assert dest(r) == {"INBOX": "INBOX", "Sent": "Sent Items", "Sent/2019": "Sent Items/2019",
                       "Sent/2019/Q1": "Sent Items/2019/Q1"}


def test_explicit_source_prefix_and_flat_source() -> None:
    src = [fi("INBOX", "."), fi("INBOX.Sent", "."), fi("Shared.x", ".")]   # not all under INBOX.
    r = plan_folders(src, DOVECOT_DST, settings=MigrationSettings(), src_provider="custom",
                     dst_provider="custom", dst_prefix="", dst_delimiter="/", src_prefix="INBOX.")
    assert dest(r)["INBOX.Sent"] == "Sent" and dest(r)["Shared.x"] == "Shared/x"
    flat = plan([fi("INBOX", None), fi("a/b", None)], DOVECOT_DST)
    assert dest(flat)["a/b"] == "a-b"


# ---------------------------------------------------------------------------------------
# provider layouts

def test_163_names_without_special_use() -> None:
    src = [fi("INBOX"), fi("已发送"), fi("草稿箱"), fi("已删除"), fi("垃圾邮件"), fi("病毒文件夹"),
           fi("广告邮件"), fi("订阅邮件"), fi("客户"), fi("客户/墨西哥")]
    r = plan(src, DOVECOT_DST, src_provider="163")
    assert dest(r) == {"INBOX": "INBOX", "已发送": "Sent", "草稿箱": "Drafts", "已删除": "Trash",
                       "垃圾邮件": "Junk", "病毒文件夹": "病毒文件夹", "广告邮件": "广告邮件",
                       "订阅邮件": "订阅邮件", "客户": "客户", "客户/墨西哥": "客户/墨西哥"}
    assert by_source(r)["已发送"].reason.startswith("name table: 已发送")
    assert by_source(r)["已发送"].special == "\\Sent"


def test_to_163_destination_found_by_name() -> None:
    src = [fi("INBOX"), fi("Sent", "/", "\\Sent"), fi("Trash", "/", "\\Trash"), fi("Archive", "/", "\\Archive")]
    dst = [fi("INBOX"), fi("已发送"), fi("草稿箱"), fi("已删除"), fi("垃圾邮件")]
    r = plan(src, dst, dst_provider="163")
    assert dest(r) == {"INBOX": "INBOX", "Sent": "已发送", "Trash": "已删除", "Archive": "Archive"}
    assert "new folder 'Archive'" in by_source(r)["Archive"].reason


def test_flagged_destination_wins_over_name() -> None:
    dst = [fi("INBOX"), fi("Sent"), fi("Sent Items", "/", "\\Sent")]
    r = plan([fi("INBOX"), fi("已发送")], dst)
    assert dest(r)["已发送"] == "Sent Items"


def test_default_destination_names() -> None:
    src = [fi("INBOX"), fi("Sent Messages"), fi("Drafts"), fi("Deleted Messages"), fi("Junk")]
    assert dest(plan(src, [fi("INBOX")], dst_provider="outlook")) == {
        "INBOX": "INBOX", "Sent Messages": "Sent Items", "Drafts": "Drafts",
        "Deleted Messages": "Deleted Items", "Junk": "Junk Email"}
    assert dest(plan(src, [fi("INBOX", ".")], dst_prefix="INBOX.", dst_delimiter=".")) == {
        "INBOX": "INBOX", "Sent Messages": "INBOX.Sent", "Drafts": "INBOX.Drafts",
        "Deleted Messages": "INBOX.Trash", "Junk": "INBOX.Junk"}


def test_gmail_source() -> None:
    r = plan(GMAIL, DOVECOT_DST, src_provider="gmail")
    m = by_source(r)
    assert [x.source for x in r] == [
        "INBOX", "[Gmail]/Sent Mail", "[Gmail]/Drafts", "[Gmail]/Spam", "[Gmail]/Trash",
        "[Gmail]", "Clients", "Clients/Mexico", "[Gmail]/Important", "[Gmail]/Starred", "报价单",
        "[Gmail]/All Mail"]
    assert m["[Gmail]/Sent Mail"].destination == "Sent"
    assert m["[Gmail]/Spam"].destination == "Junk" and m["[Gmail]/Spam"].special == "\\Junk"
    assert m["[Gmail]/Trash"].destination == "Trash"
    assert m["[Gmail]"].role == "skip" and "not selectable" in m["[Gmail]"].reason
    assert m["[Gmail]/Important"].role == "skip"
    assert m["[Gmail]/Important"].reason.startswith("Gmail Important is not copied")
    assert m["[Gmail]/Starred"].role == "skip" and "\\Flagged" in m["[Gmail]/Starred"].reason
    assert m["[Gmail]/All Mail"].role == "all_mail"
    # All Mail carries Gmail's archived mail: into the destination's Archive folder
    assert m["[Gmail]/All Mail"].destination == "Archive"
    assert m["Clients/Mexico"].destination == "Clients/Mexico"
    assert [x.source for x in copy_order(r)][-1] == "[Gmail]/All Mail"


def test_gmail_detected_without_provider_and_localized() -> None:
    src = [fi("INBOX"), fi("[Gmail]", "/", "\\Noselect"), fi("[Gmail]/全部郵件", "/", "\\AllMail"),
           fi("[Gmail]/寄件備份", "/", "\\Sent"), fi("[Gmail]/已加星號", "/", "\\Starred"),
           fi("[Gmail]/重要郵件", "/", "\\Important"), fi("[Gmail]/垃圾郵件", "/", "\\Spam"),
           fi("[Gmail]/Owncloud"), fi("Archive")]
    r = plan(src, DOVECOT_DST)   # src_provider "custom", recognised by \All under [Gmail]
    m = by_source(r)
    assert m["[Gmail]/寄件備份"].destination == "Sent"
    assert m["[Gmail]/垃圾郵件"].destination == "Junk"
    assert m["[Gmail]/已加星號"].reason.startswith("Gmail Starred is not copied")
    assert m["[Gmail]/重要郵件"].role == "skip"
    # a user label inside [Gmail] loses the container
    assert m["[Gmail]/Owncloud"].destination == "Owncloud"
    # the "Archive" label already goes to Archive, so All Mail keeps its own name
    assert m["Archive"].destination == "Archive"
    assert m["[Gmail]/全部郵件"].destination == "全部郵件" and m["[Gmail]/全部郵件"].role == "all_mail"


def test_gmail_to_gmail_all_mail() -> None:
    r = plan(GMAIL, GMAIL, src_provider="gmail", dst_provider="gmail")
    m = by_source(r)
    assert m["[Gmail]/All Mail"].destination == "[Gmail]/All Mail"
    assert m["[Gmail]/Sent Mail"].destination == "[Gmail]/Sent Mail"
    assert m["[Gmail]/Spam"].destination == "[Gmail]/Spam"


def test_qq_layout() -> None:
    src = [fi("INBOX"), fi("Sent Messages"), fi("Drafts"), fi("Deleted Messages"), fi("Junk"),
           fi("其他文件夹", "/", "\\Noselect"), fi("其他文件夹/客户"), fi("其他文件夹/客户/巴西"),
           fi("其他文件夹/Junk")]
    r = plan(src, DOVECOT_DST, src_provider="qq")
    assert dest(r) == {"INBOX": "INBOX", "Sent Messages": "Sent", "Drafts": "Drafts",
                       "Deleted Messages": "Trash", "Junk": "Junk", "其他文件夹": "",
                       "其他文件夹/客户": "客户", "其他文件夹/客户/巴西": "客户/巴西",
                       "其他文件夹/Junk": "Junk (2)"}
    assert "renamed" in by_source(r)["其他文件夹/Junk"].reason
    # recognised without the provider key too
    assert dest(plan(src, DOVECOT_DST))["其他文件夹/客户"] == "客户"


# ---------------------------------------------------------------------------------------
# settings: include / exclude, folder_map, archive prefix

def test_exclude_patterns() -> None:
    src = GMAIL + [fi("Spam Reports"), fi("Clients/Mexico/Old")]
    r = plan(src, DOVECOT_DST, src_provider="gmail", exclude=("spam*", "Clients/Mexico"))
    m = by_source(r)
    assert m["Spam Reports"].role == "skip" and m["Spam Reports"].reason == "excluded by pattern 'spam*'"
    assert m["[Gmail]/Spam"].role == "skip"            # matched as "Spam" without the container
    assert m["Clients/Mexico"].role == "skip" and m["Clients/Mexico/Old"].role == "skip"
    assert m["Clients"].role == "normal"
    r2 = plan(GMAIL, DOVECOT_DST, src_provider="gmail", exclude=("[Gmail]/Trash",))
    assert by_source(r2)["[Gmail]/Trash"].role == "skip"


def test_include_patterns_on_courier_names() -> None:
    src = [fi("INBOX", "."), fi("INBOX.Sent", "."), fi("INBOX.客户", "."), fi("INBOX.客户.墨西哥", "."),
           fi("INBOX.Other", ".")]
    r = plan(src, DOVECOT_DST, include=("INBOX", "客户"))
    m = by_source(r)
    assert [x.source for x in copy_order(r)] == ["INBOX", "INBOX.客户", "INBOX.客户.墨西哥"]
    assert m["INBOX.Other"].reason == "not matched by any include pattern"
    # the full name with "/" works too
    r2 = plan(src, DOVECOT_DST, include=("INBOX/Sent",))
    assert [x.source for x in copy_order(r2)] == ["INBOX.Sent"]


def test_folder_map() -> None:
    src = [fi("INBOX", "."), fi("INBOX.Sent", "."), fi("INBOX.Old Clients", "."),
           fi("INBOX.Old Clients.Brazil", "."), fi("INBOX.Misc", "."), fi("INBOX.Misc2", "."),
           fi("INBOX.Junk", "."), fi("INBOX.Notes", ".")]
    fmap = {"INBOX.Old Clients": "客户/旧", "Misc": "杂项", "Misc2": "杂项", "INBOX.Junk": "",
            "Notes": "INBOX.keep.as.is"}
    r = plan(src, COURIER_DST, dst_prefix="INBOX.", dst_delimiter=".", folder_map=fmap)
    m = by_source(r)
    assert m["INBOX.Old Clients"].destination == "INBOX.客户.旧"
    assert m["INBOX.Old Clients.Brazil"].destination == "INBOX.客户.旧.Brazil"   # follows its parent
    assert m["INBOX.Misc"].destination == m["INBOX.Misc2"].destination == "INBOX.杂项"
    assert "merged on purpose" in m["INBOX.Misc2"].reason
    assert m["INBOX.Junk"].role == "skip"
    assert m["INBOX.Notes"].destination == "INBOX.keep.as.is"
    assert m["INBOX.Sent"].destination == "INBOX.Sent"


def test_folder_map_into_a_special_is_deliberate() -> None:
    src = [fi("INBOX"), fi("Sent", "/", "\\Sent"), fi("Sent by assistant")]
    r = plan(src, DOVECOT_DST, folder_map={"Sent by assistant": "Sent"})
    assert dest(r) == {"INBOX": "INBOX", "Sent": "Sent", "Sent by assistant": "Sent"}


def test_archive_prefix() -> None:
    src = [fi("INBOX"), fi("已发送"), fi("草稿箱"), fi("客户"), fi("客户/墨西哥")]
    r = plan(src, DOVECOT_DST, src_provider="163", archive_prefix="历史邮件-2025年前")
    assert dest(r) == {"INBOX": "历史邮件-2025年前/INBOX", "已发送": "历史邮件-2025年前/已发送",
                       "草稿箱": "历史邮件-2025年前/草稿箱", "客户": "历史邮件-2025年前/客户",
                       "客户/墨西哥": "历史邮件-2025年前/客户/墨西哥"}
    assert by_source(r)["已发送"].special == "\\Sent"
    assert "archive prefix" in by_source(r)["已发送"].reason
    assert [m.source for m in r][0] == "INBOX"
    # on a Courier destination, with levels in the prefix
    r2 = plan([fi("INBOX"), fi("Sent", "/", "\\Sent")], COURIER_DST, dst_prefix="INBOX.",
              dst_delimiter=".", archive_prefix="Archive/old.mail")
    assert dest(r2) == {"INBOX": "INBOX.Archive.old_mail.INBOX", "Sent": "INBOX.Archive.old_mail.Sent"}


def test_archive_prefix_gmail() -> None:
    r = plan(GMAIL, DOVECOT_DST, src_provider="gmail", archive_prefix="Old Gmail")
    m = by_source(r)
    assert m["[Gmail]/Sent Mail"].destination == "Old Gmail/Sent Mail"
    assert m["[Gmail]/All Mail"].destination == "Old Gmail/All Mail"
    assert m["[Gmail]/All Mail"].role == "all_mail" and m["[Gmail]/Starred"].role == "skip"


# ---------------------------------------------------------------------------------------
# collisions

def test_two_sent_folders_keep_both() -> None:
    src = [fi("INBOX"), fi("已发送"), fi("Sent", "/", "\\Sent")]
    r = plan(src, DOVECOT_DST)
    m = by_source(r)
    assert m["Sent"].destination == "Sent" and m["Sent"].reason.startswith("special-use \\Sent")
    assert m["已发送"].destination == "已发送"
    assert "looks like Sent" in m["已发送"].reason and "'Sent'" in m["已发送"].reason
    assert [x.source for x in r] == ["INBOX", "Sent", "已发送"]


def test_collision_with_destination_special_name_is_renamed() -> None:
    # both look like Sent by name; Outlook's Sent folder is "Sent Items"
    src = [fi("INBOX"), fi("Sent"), fi("Sent Items")]
    r = plan(src, [fi("INBOX"), fi("Sent Items")], dst_provider="outlook")
    assert dest(r) == {"INBOX": "INBOX", "Sent": "Sent Items", "Sent Items": "Sent Items (2)"}
    assert "renamed" in by_source(r)["Sent Items"].reason


def test_case_and_sanitising_collisions() -> None:
    src = [fi("INBOX", "."), fi("INBOX.a/b", "."), fi("INBOX.a-b", "."), fi("INBOX.Kunden", "."),
           fi("INBOX.kunden", "."), fi("INBOX.kunden.x", ".")]
    r = plan(src, DOVECOT_DST)
    d = dest(r)
    assert sorted([d["INBOX.a/b"], d["INBOX.a-b"]]) == ["a-b", "a-b (2)"]
    assert d["INBOX.Kunden"] == "Kunden" and d["INBOX.kunden"] == "kunden (2)"
    assert d["INBOX.kunden.x"] == "kunden (2)/x"   # children follow their renamed parent


def test_noselect_parent_children_planned() -> None:
    src = [fi("INBOX"), fi("Projects", "/", "\\Noselect", "\\HasChildren"), fi("Projects/A"),
           fi("Gone", "/", "\\NonExistent"), fi("Gone/B")]
    r = plan(src, DOVECOT_DST)
    m = by_source(r)
    assert m["Projects"].role == "skip" and m["Gone"].role == "skip"
    assert m["Projects/A"].destination == "Projects/A" and m["Gone/B"].destination == "Gone/B"


# ---------------------------------------------------------------------------------------
# live: list_folders, namespace_of, ensure_folder on the loopback server

NAMES_SLASH = ["客户/墨西哥", "Поставщики/Москва", "R&D & Co/2025 & later", "已发送"]


def _names(client: imapclient.IMAPClient) -> dict[str, FolderInfo]:
    return {f.name: f for f in list_folders(client)}


def test_live_normal_user(mailserver, old_user) -> None:
    for n in NAMES_SLASH:
        mailserver.append(old_user, n, RAW)
    c = mailserver.client(old_user)
    try:
        assert namespace_of(c) == ("", "/")
        got = _names(c)
        for n in NAMES_SLASH + ["客户", "Поставщики", "R&D & Co", "INBOX"]:
            assert n in got and got[n].delimiter == "/" and got[n].selectable, n
        assert got["已发送"].special == "\\Sent"          # by name
        if "special-use" in mailserver.features:
            assert got["Sent"].special == "\\Sent" and got["Sent"].special_by_flag
            assert got["Archive"].special == "\\Archive"
        # modified UTF-7 on the wire: "&" travels as "&-", Chinese as &...-
        c.folder_encode = False
        raw = [name for _f, _d, name in c.list_folders()]
        assert any(b"&-" in (r if isinstance(r, bytes) else r.encode()) for r in raw)
    finally:
        c.logout()


def test_live_courier_user_and_round_trip(mailserver) -> None:
    old = mailserver.add_user("cour", courier=True)     # skipped on pymap
    new = mailserver.add_user("slash")
    for n in ["INBOX.客户.墨西哥", "INBOX.Поставщики", "INBOX.R&D", "INBOX.已发送"]:
        mailserver.append(old, n, RAW)
    src_c, dst_c = mailserver.client(old), mailserver.client(new)
    try:
        assert namespace_of(src_c) == ("INBOX.", ".")
        src = list_folders(src_c)
        got = {f.name: f for f in src}
        assert got["INBOX.客户.墨西哥"].delimiter == "."
        assert got["INBOX.Sent"].special == "\\Sent"
        prefix, delim = namespace_of(dst_c)
        r = plan_folders(src, list_folders(dst_c), settings=MigrationSettings(), src_provider="custom",
                         dst_provider="custom", dst_prefix=prefix, dst_delimiter=delim)
        d = dest(r)
        assert d["INBOX.客户.墨西哥"] == "客户/墨西哥" and d["INBOX.Sent"] == "Sent"
        assert d["INBOX.已发送"] == "已发送"     # a second Sent stays its own folder
        for m in copy_order(r):
            ensure_folder(dst_c, m.destination, delim)
        after = _names(dst_c)
        for m in copy_order(r):
            assert m.destination in after
        # and back: the slash names plan to the original Courier names
        back = plan_folders(list(after.values()), src, settings=MigrationSettings(),
                            src_provider="custom", dst_provider="custom", dst_prefix="INBOX.",
                            dst_delimiter=".")
        back_dest = {m.destination for m in copy_order(back)}
        assert {"INBOX.客户.墨西哥", "INBOX.Поставщики", "INBOX.R&D", "INBOX.Sent"} <= back_dest
    finally:
        src_c.logout()
        dst_c.logout()


def test_live_ensure_folder_nested_chinese_slash(mailserver, new_user) -> None:
    c = mailserver.client(new_user)
    try:
        name = "历史邮件-2025年前/客户/墨西哥 & Co/Москва"
        ensure_folder(c, name, "/")
        ensure_folder(c, name, "/")   # idempotent
        got = _names(c)
        assert {"历史邮件-2025年前", "历史邮件-2025年前/客户", "历史邮件-2025年前/客户/墨西哥 & Co", name} <= set(got)
        subs = {n for _f, _d, n in c.list_sub_folders()}
        assert name in subs
        c.select_folder(name)
        c.append(name, RAW)
        assert len(c.search("ALL")) == 1
    finally:
        c.logout()


def test_live_ensure_folder_nested_chinese_courier(mailserver) -> None:
    user = mailserver.add_user("courmk", courier=True)
    c = mailserver.client(user)
    try:
        name = "INBOX.历史邮件-2025年前.客户.墨西哥"
        ensure_folder(c, name, ".")
        got = _names(c)
        assert {"INBOX.历史邮件-2025年前", "INBOX.历史邮件-2025年前.客户", name} <= set(got)
        assert got[name].delimiter == "."
    finally:
        c.logout()


def test_live_refused_create(mailserver, new_user) -> None:
    if mailserver.kind != "dovecot":
        pytest.skip("pymap accepts every folder name; only Dovecot refuses one")
    c = mailserver.client(new_user)
    try:
        with pytest.raises(FolderError) as e:
            ensure_folder(c, "客户/" + "x" * 400, "/")
        msg = e.value.message
        assert msg.startswith("The server refused to create the folder")
        assert "too long" in msg and "secs" not in msg and "Traceback" not in msg
        assert "客户" in _names(c)      # the parent was created before the refusal
    finally:
        c.logout()
