"""Mailboxes of one account: listing folders, recognising special folders, creating them.

Owns the one table of special-folder names (Sent, Drafts, Trash, Junk, Archive and
Gmail's virtual folders, in English, Chinese and ~20 other languages) and the listing
that reads special-use flags (``LIST ... RETURN (SPECIAL-USE)``, Gmail's old XLIST)
before falling back to that table. The migration's folder plan, the history scan and
the reminders' copy in Sent all find folders here.

imapclient has no LIST-EXTENDED call: ``_list_special_use`` sends it through
imapclient's private command API (imapclient 3.x) and parses the reply with its own
LIST parser, which decodes modified UTF-7.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable

import imapclient
from imapclient.exceptions import IMAPClientError

from ..errors import FolderError, sentence

SPECIALS = ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged", "\\Important")
#: specials copied to the destination's counterpart, in plan order
MAPPED_SPECIALS = ("\\Sent", "\\Drafts", "\\Archive", "\\Junk", "\\Trash")
NOT_SELECTABLE = ("\\noselect", "\\nonexistent")
GMAIL_CONTAINERS = ("[gmail]", "[google mail]")
QQ_CONTAINER = "其他文件夹"

# Special-use flags by their case-folded spelling, including Gmail's XLIST names.
_FLAG_TO_SPECIAL = {s.lower(): s for s in SPECIALS}
_FLAG_TO_SPECIAL.update({"\\spam": "\\Junk", "\\allmail": "\\All", "\\starred": "\\Flagged"})

# The name table. Only top-level names (after the namespace prefix) or names directly
# in a Gmail container are looked up. Deliberately absent: Outbox / 发件箱 (unsent mail,
# not Sent), 广告邮件 / 订阅邮件 / 病毒文件夹 (NetEase categories, copied as plain folders).
_NAMES: dict[str, str] = {
    "\\Sent": "Sent|Sent Items|Sent Messages|Sent Mail|Sent-Mail|Sent Email|已发送|已发送邮件|"
              "已发邮件|已傳送|已傳送郵件|寄件備份|寄件备份|Gesendet|Gesendete Elemente|"
              "Gesendete Objekte|Enviados|Elementos enviados|Mensajes enviados|Enviadas|"
              "Itens Enviados|Mensagens Enviadas|Envoyés|Éléments envoyés|Messages envoyés|"
              "Inviati|Posta inviata|Elementi inviati|Verzonden|Verzonden items|Отправленные|"
              "Надіслані|Wysłane|Elementy wysłane|Odeslané|Skickat|Skickade objekt|Sendt|"
              "Sendte elementer|Lähetetyt|送信済み|送信済みアイテム|보낸 편지함|Gönderilmiş Öğeler|"
              "Gönderilenler|Đã gửi|Terkirim|المرسلة",
    "\\Drafts": "Drafts|Draft|草稿|草稿箱|草稿夹|Entwürfe|Borradores|Rascunhos|Brouillons|Bozze|"
                "Concepten|Черновики|Чернетки|Kopie robocze|Koncepty|Utkast|Kladder|Luonnokset|"
                "下書き|임시 보관함|Taslaklar|Thư nháp|Nháp|Konsep",
    "\\Trash": "Trash|Deleted Items|Deleted Messages|Deleted|Bin|已删除|已删除邮件|已刪除|已刪除郵件|"
               "刪除的郵件|废件箱|垃圾桶|回收站|Papierkorb|Gelöschte Elemente|Gelöschte Objekte|"
               "Papelera|Elementos eliminados|Lixeira|Lixo|Itens Excluídos|Corbeille|"
               "Éléments supprimés|Cestino|Posta eliminata|Elementi eliminati|Prullenbak|"
               "Verwijderde items|Корзина|Удаленные|Удалённые|Кошик|Kosz|Elementy usunięte|Koš|"
               "Papperskorgen|Borttagna objekt|Papirkurv|Slettede elementer|Roskakori|ゴミ箱|"
               "ごみ箱|削除済みアイテム|휴지통|Çöp|Çöp Kutusu|Thùng rác|Sampah",
    "\\Junk": "Junk|Spam|Junk E-mail|Junk Email|Junk Mail|Junk-E-Mail|Bulk Mail|Bulk|垃圾邮件|"
              "垃圾郵件|垃圾箱|Spamverdacht|Correo no deseado|Lixo Eletrônico|Courrier indésirable|"
              "Indésirables|Posta indesiderata|Ongewenste e-mail|Спам|Нежелательная почта|"
              "Wiadomości-śmieci|Nevyžádaná pošta|Skräppost|Uønsket e-post|Roskaposti|迷惑メール|"
              "스팸|정크 메일|Istenmeyen|Thư rác",
    "\\Archive": "Archive|Archives|Archived|归档|存档|歸檔|封存|Archiv|Archivo|Archivos|Arquivo|"
                 "Arquivos|Archivio|Archief|Архив|Архів|Archiwum|Arkiv|Arkisto|アーカイブ|보관|Arşiv|"
                 "Lưu trữ|Arsip",
}
# Names of Gmail's virtual folders, recognised only inside a [Gmail] container (a folder
# called "Important" elsewhere is a user's own folder).
_GMAIL_NAMES: dict[str, str] = {
    "\\All": "All Mail|所有邮件|全部郵件|所有郵件|Alle Nachrichten|Todos|Tous les messages|"
             "Tutti i messaggi|Alle e-mail|Вся почта|Todos os e-mails",
    "\\Flagged": "Starred|已加星标|已加星號|Markiert|Destacados|Suivis|Speciali|Met ster|"
                 "Помеченные|Com estrela",
    "\\Important": "Important|重要|重要郵件|Wichtig|Importantes|Importants|Importanti|Belangrijk|"
                   "Важное|Importante",
}

def _key(name: str) -> str:
    """Comparison key for names: NFC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


_TABLE = {_key(n): special for special, names in _NAMES.items() for n in names.split("|")}
_GMAIL_TABLE = {_key(n): special for special, names in _GMAIL_NAMES.items() for n in names.split("|")}
_TABLE_NAMES = {_key(n): n for names in _NAMES.values() for n in names.split("|")}


@dataclass(frozen=True)
class FolderInfo:
    name: str                 # decoded (modified UTF-7 handled by imapclient's folder_encode)
    delimiter: str | None
    flags: tuple[str, ...]    # e.g. ("\\HasNoChildren", "\\Sent")
    special: str | None       # \Sent \Drafts \Trash \Junk \Archive \All \Flagged \Important or None
    selectable: bool

    @property
    def special_by_flag(self) -> bool:
        return self.special is not None and self.special in flag_specials(self.flags)


# ---------------------------------------------------------------------------------------
# recognising special folders

def flag_specials(flags: Iterable[str]) -> list[str]:
    """The special-use attributes among LIST flags (XLIST spellings normalised)."""
    out = []
    for f in flags:
        s = _FLAG_TO_SPECIAL.get(f.lower())
        if s and s not in out:
            out.append(s)
    return out


def name_special(name: str, delimiter: str | None) -> str | None:
    """The special a folder's *name* suggests (name table), or None.

    Only top-level names count (after an ``INBOX<delim>`` prefix), plus names directly
    inside Gmail's ``[Gmail]`` / ``[Google Mail]`` container.
    """
    parts = name.split(delimiter) if delimiter else [name]
    if len(parts) == 2 and parts[0].casefold() == "inbox":
        parts = parts[1:]
    if len(parts) == 2 and _key(parts[0]) in GMAIL_CONTAINERS:
        leaf = _key(parts[1])
        return _GMAIL_TABLE.get(leaf) or _TABLE.get(leaf)
    if len(parts) == 1 and parts[0].casefold() != "inbox":
        return _TABLE.get(_key(parts[0]))
    return None


def folder_info(name: str, delimiter: str | None = "/", flags: Iterable[str] = ()) -> FolderInfo:
    """Build a FolderInfo from one LIST row (special from flags, else from the name)."""
    flags = tuple(f.decode("ascii", "replace") if isinstance(f, bytes) else str(f) for f in flags)
    by_flag = flag_specials(flags)
    special = by_flag[0] if by_flag else name_special(name, delimiter)
    selectable = not any(f.lower() in NOT_SELECTABLE for f in flags)
    return FolderInfo(name=name, delimiter=delimiter, flags=flags, special=special, selectable=selectable)


# ---------------------------------------------------------------------------------------
# talking to a server

def _decode(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _list_special_use(client: imapclient.IMAPClient) -> list[tuple[Any, ...]]:
    # imapclient has no LIST-EXTENDED call; the response is an ordinary LIST reply, so
    # its own parser (which decodes modified UTF-7) reads it.
    imap = client._imap
    typ, dat = imap._simple_command("LIST", b'""', b'"*"', "RETURN", "(SPECIAL-USE)")
    client._checkok("list", typ, dat)
    typ, dat = imap._untagged_response(typ, dat, "LIST")
    return list(client._proc_folder_list(dat))


def list_folders(client: imapclient.IMAPClient) -> list[FolderInfo]:
    """Every folder of the logged-in account (``LIST "" "*"``), with special folders
    recognised by special-use flags (asked for explicitly where SPECIAL-USE is
    advertised, XLIST on old Gmail) and else by the name table."""
    caps = {c.upper() for c in (_decode(c) for c in client.capabilities())}
    rows: list[tuple[Any, ...]] | None = None
    inbox_flag = False
    try:
        if "SPECIAL-USE" in caps:
            try:
                rows = _list_special_use(client)
            except IMAPClientError:
                rows = None   # advertised but not for LIST-EXTENDED: plain LIST below
        if rows is None and "XLIST" in caps:
            try:
                rows = client.xlist_folders()
                inbox_flag = True
            except IMAPClientError:
                rows = None
        if rows is None:
            rows = client.list_folders()
    except IMAPClientError as e:
        raise FolderError(f"The server refused to list the folders: {_words(e)}.") from None
    out: list[FolderInfo] = []
    seen: set[str] = set()
    for flags, delim, name in rows:
        name = _decode(name)
        flags = tuple(_decode(f) for f in flags)
        if inbox_flag and any(f.lower() == "\\inbox" for f in flags):
            name = "INBOX"    # XLIST localises INBOX ("Inbox", "收件箱")
        if name.casefold() == "inbox":
            name = "INBOX"
        if name in seen:
            continue
        seen.add(name)
        out.append(folder_info(name, _decode(delim) if delim is not None else None, flags))
    return out


def namespace_of(client: imapclient.IMAPClient) -> tuple[str, str]:
    """(personal prefix, delimiter) from NAMESPACE, else ("", delimiter of LIST "" "").

    The prefix includes its trailing delimiter (``"INBOX."``) as servers announce it.
    A flat server without a delimiter gives ``"/"``, which then is just a character.
    """
    try:
        if client.has_capability("NAMESPACE"):
            personal = client.namespace().personal
            if personal:
                prefix, delim = personal[0]
                prefix = _decode(prefix)
                if delim:
                    return prefix, _decode(delim)
        rows = client.list_folders("", "")
        for _flags, delim, _name in rows:
            if delim:
                return "", _decode(delim)
        rows = client.list_folders("", "INBOX")
        for _flags, delim, _name in rows:
            if delim:
                return "", _decode(delim)
    except IMAPClientError as e:
        raise FolderError(f"The server refused to describe its folder namespace: {_words(e)}.") from None
    return "", "/"


def _words(e: BaseException) -> str:
    """The server's own words (errors.sentence) without imapclient's "create failed: "
    and Dovecot's timing suffix "(0.001 + 0.000 secs)"."""
    text = re.sub(r"^\w+ failed: ", "", sentence(e))
    if text[:2] in ("b'", 'b"') and text[-1:] == text[1]:
        text = text[2:-1]
    text = re.sub(r"\s*\([\d.]+ \+ [\d.]+(?: \+ [\d.]+)? secs\)\.?$", "", text)
    return text.strip().rstrip(".") or e.__class__.__name__


def _exists(client: imapclient.IMAPClient, name: str) -> bool:
    # LIST with the name as pattern; compare exactly, since %, * in a name are wildcards.
    return any(_decode(row[2]) == name for row in client.list_folders("", name))


def ensure_folder(client: imapclient.IMAPClient, name: str, delimiter: str) -> None:
    """Create ``name`` and any missing parents, then subscribe them.

    Raises FolderError with the server's words when a CREATE is refused (and the folder
    still does not exist, so a parallel worker creating it first is fine).
    """
    parts = name.split(delimiter) if delimiter else [name]
    for i in range(1, len(parts) + 1):
        path = delimiter.join(parts[:i]) if delimiter else name
        if path.casefold() == "inbox" or not parts[i - 1]:
            continue   # INBOX always exists; an empty level is a trailing delimiter
        try:
            if _exists(client, path):
                continue
            client.create_folder(path)
        except IMAPClientError as e:
            try:
                if _exists(client, path):
                    continue
            except IMAPClientError:
                pass
            raise FolderError(f"The server refused to create the folder '{path}': {_words(e)}.") from None
        try:
            client.subscribe_folder(path)
        except IMAPClientError:
            pass   # unsubscribed folders still hold the mail; some servers refuse SUBSCRIBE


def sent_folder(folders: Iterable[FolderInfo]) -> FolderInfo | None:
    """The account's Sent folder: the one flagged \\Sent, else the first whose name the
    table knows as Sent."""
    folders = list(folders)
    flagged = [f for f in folders if f.special == "\\Sent" and f.special_by_flag]
    named = [f for f in folders if f.special == "\\Sent" and f.selectable]
    found = flagged or named
    return found[0] if found else None
