"""Real files and a real web server for the scan's tests: Word, Excel, PowerPoint and PDF
files written with their libraries (the PDF by hand: pypdf does not write text), an
encrypted PDF, a password-protected Office file as it looks on disk (an OLE container),
and a loopback HTTP server with a contact page, a redirect and a missing page."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal PDF whose pages show ``pages`` (lines of ASCII text, Helvetica)."""
    n = len(pages)
    objs: list[str] = ["<< /Type /Catalog /Pages 2 0 R >>",
                       "<< /Type /Pages /Kids [" + " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
                       + f"] /Count {n} >>",
                       "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, lines in enumerate(pages):
        text = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
        content = f"BT /F1 12 Tf 72 720 Td {text} ET"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R "
                    f"/Resources << /Font << /F1 3 0 R >> >> >>")
        objs.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for k, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def encrypted_pdf(path: Path) -> None:
    import pypdf
    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    with open(path, "wb") as f:
        writer.write(f)


def docx_file(path: Path, *, body: str, cell: str, footer: str) -> None:
    import docx
    doc = docx.Document()
    doc.add_paragraph("Quotation No. 2026-001")
    doc.add_paragraph(body)
    table = doc.add_table(rows=2, cols=2)
    table.cell(1, 1).text = cell
    doc.sections[0].footer.paragraphs[0].text = footer
    doc.save(str(path))


def xlsx_file(path: Path, *, cell: str, formula: str) -> None:
    import openpyxl
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Prices"
    ws["A1"] = "Item"
    ws["B3"] = cell
    other = wb.create_sheet("Contacts")
    other["C7"] = formula
    wb.save(str(path))


def pptx_file(path: Path, *, text: str, notes: str) -> None:
    import pptx
    from pptx.util import Inches
    prs = pptx.Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "Catalogue 2026"
    box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1))
    box.text_frame.text = text
    slide.notes_slide.notes_text_frame.text = notes
    prs.save(str(path))


OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


def cloudflare(address: str, key: int = 0x42) -> str:
    return f"{key:02x}" + "".join(f"{b ^ key:02x}" for b in address.encode())


class Site:
    """A loopback web server; ``pages`` maps a path to (status, content type, body)."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, ctype, body = site.pages.get(self.path, (404, "text/plain", b"not here"))
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", body.decode())
                    body = b""
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> "Site":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

