"""The text of the files `switchover scan` reads, piece by piece, each piece with where
it sits ("line 12", "Sheet1!B7", "slide 3, TextBox 2", "page 2", "section 1 footer"):
plain text (txt, md, csv, vcf; the encoding detected, GB18030 and Big5 included), HTML,
e-mail (.eml, attachments included), Word (.docx: paragraphs, tables, text boxes,
headers and footers, links), Excel (.xlsx: every cell of every sheet, formulas such as
HYPERLINK included), PowerPoint (.pptx: every shape, tables, notes, masters and
layouts, links) and PDF (text per page, link annotations).

The libraries do the reading (python-docx, openpyxl, python-pptx, pypdf, bs4 for
encodings and HTML). What they cannot read — a password-protected file, the old binary
.doc / .xls / .ppt — raises ``Unreadable`` with the reason, so it is listed, never
silently skipped.
"""

from __future__ import annotations

import email
import email.policy
import io
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Callable, Iterator


from .webtext import html_chunks
from .piece import Chunk, Unreadable

__all__ = ["Chunk", "Unreadable", "OFFICE", "TEXT", "LEGACY", "kind_of", "chunks_of"]

TEXT = {".txt", ".text", ".md", ".markdown", ".csv", ".tsv", ".vcf", ".vcard"}
HTML = {".html", ".htm", ".xhtml", ".shtml"}
OFFICE = {".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx", ".pptx", ".pptm", ".potx", ".pdf"}
EMAIL = {".eml"}
LEGACY = {".doc": "Word 97-2003 (.doc)", ".xls": "Excel 97-2003 (.xls)",
          ".ppt": "PowerPoint 97-2003 (.ppt)", ".wps": "WPS (.wps)", ".et": "WPS (.et)",
          ".dps": "WPS (.dps)", ".rtf": "Rich Text (.rtf)"}
#: an OLE2 compound file: the old binary formats, and Office files encrypted with a password
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class Kind:
    name: str           # text | html | email | docx | xlsx | pptx | pdf | legacy
    office: bool        # counts as "office / PDF" for the checklist's documents item


def kind_of(name: str) -> Kind | None:
    """What reader a file name calls for, or None for a type the scan does not read."""
    ext = PurePath(name.lower()).suffix
    if ext in TEXT:
        return Kind("text", False)
    if ext in HTML:
        return Kind("html", False)
    if ext in EMAIL:
        return Kind("email", False)
    if ext in LEGACY:
        return Kind("legacy", True)
    if ext in OFFICE:
        return Kind({"d": "docx", "x": "xlsx", "p": "pptx"}.get(ext[1], "pdf") if ext != ".pdf" else "pdf", True)
    return None


def chunks_of(name: str, data: bytes, kind: Kind | None = None, *, charset: str | None = None) -> Iterator[Chunk]:
    """The pieces of text of one file (by its name's type, or ``kind``)."""
    kind = kind or kind_of(name) or Kind("text", False)
    if kind.name == "legacy":
        what = LEGACY.get(PurePath(name.lower()).suffix, "an old binary format")
        raise Unreadable(f"{what} is not read; save it as .docx / .xlsx / .pptx and scan again")
    if kind.name in ("docx", "xlsx", "pptx") and data[:8] == OLE:
        raise Unreadable("encrypted (password-protected); open it, remove the password or search it by hand")
    reader = READERS[kind.name]
    try:
        yield from reader(data, charset)
    except Unreadable:
        raise
    except Exception as e:  # a damaged file: the library's own words
        raise Unreadable(f"damaged or not a valid {kind.name} file ({e.__class__.__name__}: {str(e)[:120]})") from None


def decode_text(data: bytes, charset: str | None = None) -> str:
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable("binary, not text")
    guesses = ([charset] if charset else []) + ["utf-8", "gb18030", "big5", "windows-1252"]
    from bs4 import UnicodeDammit   # loaded when a scan reads text: bs4 costs ~0.1 s to import
    text = UnicodeDammit(data, guesses).unicode_markup
    if text is None:
        raise Unreadable("the text encoding could not be recognised")
    return str(text)


def _text(data: bytes, charset: str | None) -> Iterator[Chunk]:
    for n, line in enumerate(decode_text(data, charset).splitlines(), 1):
        yield Chunk(f"line {n}", line)


def _html(data: bytes, charset: str | None) -> Iterator[Chunk]:
    yield from html_chunks(data, charset)


def _email(data: bytes, charset: str | None) -> Iterator[Chunk]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    for field in ("From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Subject"):
        for value in msg.get_all(field, []):
            yield Chunk(f"header {field}", str(value))
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        ctype = part.get_content_type()
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        if filename:
            sub = kind_of(filename)
            if sub is None:
                continue
            try:
                for c in chunks_of(filename, payload, sub):
                    yield Chunk(f"attachment {filename}, {c.where}", c.text, c.form)
            except Unreadable as e:
                yield Chunk(f"attachment {filename}", "", unread=e.reason)
        elif ctype == "text/html":
            for c in html_chunks(payload, part.get_content_charset()):
                yield Chunk(f"body (HTML) {c.where}", c.text, c.form)
        elif ctype.startswith("text/"):
            for n, line in enumerate(decode_text(payload, part.get_content_charset()).splitlines(), 1):
                yield Chunk(f"body line {n}", line)


def _docx(data: bytes, charset: str | None) -> Iterator[Chunk]:
    import docx
    from docx.oxml.ns import qn
    doc = docx.Document(io.BytesIO(data))
    yield from _blocks(doc, "")
    yield from _textboxes(doc.element.body, "", qn)
    for s, section in enumerate(doc.sections, 1):
        for attr in ("header", "first_page_header", "even_page_header",
                     "footer", "first_page_footer", "even_page_footer"):
            part = getattr(section, attr)
            if part.is_linked_to_previous:
                continue
            where = f"section {s} {attr.replace('_', ' ')}, "
            yield from _blocks(part, where)
            yield from _textboxes(part._element, where, qn)
            yield from _links(part.part, where)
    yield from _links(doc.part, "")


def _blocks(container: Any, where: str) -> Iterator[Chunk]:
    p_no = t_no = 0
    for block in container.iter_inner_content():
        if hasattr(block, "rows"):
            t_no += 1
            seen: set[Any] = set()     # the elements themselves: holding them keeps lxml's proxies stable
            for r, row in enumerate(block.rows, 1):
                for c, cell in enumerate(row.cells, 1):
                    if cell._tc in seen:       # a merged cell repeats itself
                        continue
                    seen.add(cell._tc)
                    yield Chunk(f"{where}table {t_no}, row {r}, column {c}", cell.text)
        else:
            p_no += 1
            yield Chunk(f"{where}paragraph {p_no}", block.text)


def _textboxes(element: Any, where: str, qn: Callable[[str], str]) -> Iterator[Chunk]:
    for n, box in enumerate(element.iter(qn("w:txbxContent")), 1):
        text = "\n".join("".join(t.text or "" for t in p.iter(qn("w:t"))) for p in box.iter(qn("w:p")))
        yield Chunk(f"{where}text box {n}", text)


def _links(part: Any, where: str) -> Iterator[Chunk]:
    for rel in part.rels.values():
        if rel.reltype.endswith("/hyperlink") and rel.is_external:
            yield Chunk(f"{where}link", rel.target_ref, "mailto" if rel.target_ref.lower().startswith("mailto:") else "link")


def _xlsx(data: bytes, charset: str | None) -> Iterator[Chunk]:
    import openpyxl  # type: ignore[import-untyped]  # no stubs installed
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    try:
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    value = getattr(cell, "value", None)
                    if isinstance(value, str) and value:
                        yield Chunk(f"{ws.title}!{cell.coordinate}", value)
    finally:
        wb.close()


def _pptx(data: bytes, charset: str | None) -> Iterator[Chunk]:
    import pptx
    prs = pptx.Presentation(io.BytesIO(data))
    for n, slide in enumerate(prs.slides, 1):
        yield from _shapes(slide.shapes, f"slide {n}")
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            yield Chunk(f"slide {n} notes", slide.notes_slide.notes_text_frame.text)
    for m, master in enumerate(prs.slide_masters, 1):
        yield from _shapes(master.shapes, f"slide master {m}")
        for layout in master.slide_layouts:
            yield from _shapes(layout.shapes, f"layout '{layout.name}'")


def _shapes(shapes: Any, where: str) -> Iterator[Chunk]:
    for shape in shapes:
        here = f"{where}, {shape.name}"
        if shape.shape_type == 6 or hasattr(shape, "shapes"):      # a group: its members
            yield from _shapes(shape.shapes, where)
            continue
        if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield Chunk(here, shape.text_frame.text)
            for para in shape.text_frame.paragraphs:
                for run in para.runs:
                    address = run.hyperlink.address
                    if address:
                        yield Chunk(f"{here} (link)", address, "mailto" if address.lower().startswith("mailto:") else "link")
        if getattr(shape, "has_table", False) and shape.has_table:
            for r, row in enumerate(shape.table.rows, 1):
                for c, cell in enumerate(row.cells, 1):
                    yield Chunk(f"{here}, row {r}, column {c}", cell.text)


def _pdf(data: bytes, charset: str | None) -> Iterator[Chunk]:
    import pypdf
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = bool(reader.decrypt(""))   # many PDFs only restrict printing / copying
        except Exception:
            opened = False
        if not opened:
            raise Unreadable("encrypted (password-protected); open it and search it by hand")
    for n, page in enumerate(reader.pages, 1):
        for line in (page.extract_text() or "").splitlines():
            yield Chunk(f"page {n}", line)
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A") or {}
            uri = action.get("/URI") if hasattr(action, "get") else None
            if uri:
                uri = str(uri)
                yield Chunk(f"page {n} (link)", uri, "mailto" if uri.lower().startswith("mailto:") else "link")


READERS: dict[str, Callable[[bytes, str | None], Iterator[Chunk]]] = {
    "text": _text, "html": _html, "email": _email, "docx": _docx, "xlsx": _xlsx,
    "pptx": _pptx, "pdf": _pdf,
}
