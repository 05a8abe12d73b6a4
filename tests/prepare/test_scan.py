"""`switchover scan` (core/prepare/scan.py) on real files written by their libraries and
on pages of a loopback web server: every form of the old address in every file type,
unreadable files listed (never skipped), a rescan that sees a fix, the checklist's
website / documents proofs from a clean scan, and the CLI's exit codes. Nothing here
mocks a reader or a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from switchover.core.errors import SwitchoverError
from switchover.core.prepare.match import Matcher, cloudflare_decode

from .scanfiles import (OLE, Site, cloudflare, docx_file, encrypted_pdf, pdf_bytes, pptx_file,
                        xlsx_file)

pytestmark = pytest.mark.timeout(90)


def test_matcher_forms_and_boundaries() -> None:
    m = Matcher(["old1@example.com"])
    found = {h.form for t in ("mail OLD1@Example.COM now", "mailto:old1%40example.com",
                              "old1 [at] example [dot] com", "old1(at)example.com",
                              "联系邮箱:old1＠example.com", "请把#换成@:old1#example.com")
             for h in m.find(t)}
    assert found == {"plain", "url-encoded", "obfuscated"}
    assert len(m.find("联系old1@example.com")) == 1          # a CJK character before it
    for near_miss in ("xold1@example.com", "old1@example.com.cn", "old1@example.company",
                      "old12@example.com", "old1@example-shop.com"):
        assert m.find(near_miss) == [], near_miss
    assert cloudflare_decode(cloudflare("old1@example.com")) == "old1@example.com"


def _files(root: Path, old: str, new: str) -> None:
    local, domain = old.split("@")
    (root / "templates").mkdir()
    docx_file(root / "templates" / "quote.docx", body=f"Please reply to {old} for orders.",
              cell=f"{local} [at] {domain.replace('.', ' [dot] ')}", footer=f"Email: {old.upper()}  Tel 123")
    xlsx_file(root / "templates" / "prices.xlsx", cell=f"Contact: {old}",
              formula=f'=HYPERLINK("mailto:{local}%40{domain}","write to us")')
    pptx_file(root / "catalogue.pptx", text=f"Sales: {new}", notes=f"old contact {old}")
    (root / "catalogue.pdf").write_bytes(pdf_bytes([["Catalogue 2026"], ["Contact", f"sales: {old}"]]))
    (root / "notes.txt").write_bytes(f"第一行\n邮箱:{local}＠{domain}\n".encode("gb18030"))
    (root / "card.vcf").write_text(f"BEGIN:VCARD\nEMAIL;TYPE=work:{old}\nEND:VCARD\n")
    (root / "clean.docx").parent.mkdir(exist_ok=True)
    docx_file(root / "clean.docx", body=f"Write to {new}", cell="", footer="")
    encrypted_pdf(root / "secret.pdf")
    (root / "locked.xlsx").write_bytes(OLE)
    (root / "old.doc").write_bytes(OLE)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text(f"email = {old}\n")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "x.txt").write_text(old)


async def test_files_every_type_and_form_and_the_unreadable(make_engine: Any, old_user: Any, new_user: Any,
                                                            tmp_path: Path) -> None:
    eng = await make_engine(old_user, new_user)
    root = tmp_path / "docs"
    root.mkdir()
    _files(root, old_user.address, new_user.address)
    report = await eng.scan.run([str(root)])
    got = {(Path(p.source).name, p.location, p.form) for p in report.found}
    assert got == {
        ("quote.docx", "paragraph 2", "plain"),
        ("quote.docx", "table 1, row 2, column 2", "obfuscated"),
        ("quote.docx", "section 1 footer, paragraph 1", "plain"),
        ("prices.xlsx", "Prices!B3", "plain"),
        ("prices.xlsx", "Contacts!C7", "url-encoded"),
        ("catalogue.pptx", "slide 1 notes", "plain"),
        ("catalogue.pdf", "page 2", "plain"),
        ("notes.txt", "line 2", "obfuscated"),
        ("card.vcf", "line 2", "plain"),
    }, got
    unread = {Path(p.source).name: p.snippet for p in report.changes.unread}
    assert set(unread) == {"secret.pdf", "locked.xlsx", "old.doc"}
    assert "encrypted" in unread["secret.pdf"] and "encrypted" in unread["locked.xlsx"]
    assert ".doc" in unread["old.doc"]
    assert report.files_read == 7 and report.office_read == 5 and report.not_searched == 1
    assert not report.clean and report.first
    assert not any(".git" in p.source or "node_modules" in p.source for p in report.found)
    items = {i.key: i for i in await eng.checklist.items()}
    await eng.bus.drain()
    items = {i.key: i for i in await eng.checklist.items()}
    assert items["documents"].state == "open" and "could not be read" in items["documents"].evidence


async def test_rescan_shows_fixed_still_and_new_and_proves_documents(make_engine: Any, old_user: Any,
                                                                      new_user: Any, tmp_path: Path) -> None:
    eng = await make_engine(old_user, new_user)
    old, new = old_user.address, new_user.address
    root = tmp_path / "docs"
    root.mkdir()
    docx_file(root / "quote.docx", body=f"Reply to {old}", cell="", footer="")
    (root / "catalogue.pdf").write_bytes(pdf_bytes([[f"sales {old}"]]))
    (root / "notes.md").write_text(f"# Contacts\n\n- {old}\n")
    first = await eng.scan.run([str(root)])
    assert len(first.found) == 3

    (root / "notes.md").write_text(f"# Contacts\n\nintro line\n\n- {old}\n")   # moved, not fixed
    docx_file(root / "quote.docx", body=f"Reply to {new}", cell="", footer="")   # fixed
    (root / "price.csv").write_text(f"item,contact\nbolt,{old}\n")               # new
    second = await eng.scan.run([str(root)])
    c = second.changes
    assert [Path(p.source).name for p in c.fixed] == ["quote.docx"]
    assert sorted(Path(p.source).name for p in c.still) == ["catalogue.pdf", "notes.md"]
    assert next(p for p in c.still if p.source.endswith("notes.md")).location == "line 5"
    assert [Path(p.source).name for p in c.new] == ["price.csv"]

    for name in ("catalogue.pdf", "notes.md", "price.csv"):
        (root / name).unlink()
    (root / "catalogue.pdf").write_bytes(pdf_bytes([[f"sales {new}"]]))
    third = await eng.scan.run([str(root)])
    assert third.clean and len(third.changes.fixed) == 3 and not await eng.scan.left()
    await eng.bus.drain()
    documents = await eng.checklist.item("documents")
    assert documents.state == "done" and documents.by == "engine"
    assert "no trace" in documents.evidence and "2 office / PDF files" in documents.evidence


async def test_web_pages_links_protection_redirects_and_the_website_proof(
        make_engine: Any, old_user: Any, new_user: Any) -> None:
    eng = await make_engine(old_user, new_user)
    old, new = old_user.address, new_user.address
    local, domain = old.split("@")
    contact = (f'<html><head><meta charset="gbk"><title>联系我们</title></head><body>'
               f'<p>销售邮箱:{local}&#64;{domain}</p>'
               f'<a href="mailto:{local}%40{domain}?subject=Inquiry">Write to us</a>'
               f'<a href="/cdn-cgi/l/email-protection#{cloudflare(old)}">[email protected]</a>'
               f'<span class="__cf_email__" data-cfemail="{cloudflare(old, 0x17)}">[email protected]</span>'
               f'<p>{local} (at) {domain.replace(".", " (dot) ")}</p></body></html>').encode("gbk")
    with Site() as site:
        site.pages["/contact"] = (200, "text/html", contact)
        site.pages["/team"] = (301, "text/html", b"/team.html")
        site.pages["/team.html"] = (200, "text/html; charset=utf-8",
                                    f"<p>Ada — {new}</p>".encode())
        site.pages["/catalogue.pdf"] = (200, "application/pdf", pdf_bytes([[f"mail {old}"]]))
        report = await eng.scan.run([], [site.url("/contact"), site.url("/team"), site.url("/catalogue.pdf"),
                                         site.url("/gone")])
        forms = sorted((p.location.split(" (")[0], p.form) for p in report.found)
        assert forms == sorted([
            ("text line 2", "plain"), ("<a> mailto link", "mailto"), ("<a> protected link", "cloudflare"),
            ("<span> protected address", "cloudflare"), ("text line 6", "obfuscated"),
            ("page 1", "plain")]), forms
        assert report.pages_read == 3
        assert [(p.source.rsplit("/", 1)[1], p.snippet) for p in report.changes.unread] == [
            ("gone", "HTTP 404 Not Found")]
        await eng.bus.drain()
        assert (await eng.checklist.item("website")).state == "open"

        site.pages["/contact"] = (200, "text/html", f"<p>{new}</p>".encode())
        site.pages["/catalogue.pdf"] = (200, "application/pdf", pdf_bytes([[f"mail {new}"]]))
        again = await eng.scan.run([], [site.url("/contact"), site.url("/team"), site.url("/catalogue.pdf")])
        assert again.clean and len(again.changes.fixed) == 6
        # the 404 page was not scanned again: it is still listed as not read, so no proof yet
        await eng.bus.drain()
        assert (await eng.checklist.item("website")).state == "open"
        site.pages["/gone"] = (200, "text/html", b"<p>moved</p>")
        last = await eng.scan.run([], [site.url("/gone")])
        assert last.clean and not await eng.scan.left()
        await eng.bus.drain()
        website = await eng.checklist.item("website")
        assert website.state == "done" and website.by == "engine" and "no trace" in website.evidence


async def test_bad_input_is_one_sentence(make_engine: Any, old_user: Any, new_user: Any, tmp_path: Path) -> None:
    eng = await make_engine(old_user, new_user)
    for args, words in ((([str(tmp_path / "nope")], []), "does not exist"),
                        (([], ["ftp://example.com/x"]), "not a web address"),
                        (([], []), "Nothing to scan")):
        with pytest.raises(SwitchoverError) as e:
            await eng.scan.run(*args)
        assert e.value.exit_code == 2 and words in e.value.message


def test_cli_exit_codes_and_json(config_path: Path, old_user: Any, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(f"mail {old_user.address}\n")
    env = {**os.environ, "SWITCHOVER_CONFIG": str(config_path)}
    run = [sys.executable, "-m", "switchover", "scan"]
    bad = subprocess.run(run + [str(tmp_path / "missing")], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr
    found = subprocess.run(run + [str(docs), "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert found.returncode == 1, found.stderr
    data = json.loads(found.stdout)
    assert data["places"][0]["location"] == "line 1" and data["clean"] is False
    (docs / "a.txt").write_text("nothing here\n")
    clean = subprocess.run(run + [str(docs)], env=env, capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "1 fixed" in clean.stdout
