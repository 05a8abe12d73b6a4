"""The change notice as built for one recipient: MIME structure, headers, every language,
highlighted addresses, escaping, the user's templates over the built-ins."""

import email
import email.policy
import re
from dataclasses import replace
from pathlib import Path

import pytest

from switchover.core.config import load_config
from switchover.core.errors import ConfigError
from switchover.core.notify.compose import NoticeComposer
from switchover.core.notify.texts import write_templates
from switchover.core.notify.vcard import Contact, vcard
from switchover.core.notify.wrap import columns
from switchover.core.people.audience import Recipient

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "company12345@old-mail.example", "john.wu@company.example"
LANGS = ("en", "zh", "es", "pt", "ru", "ar", "fr")
DATES = {"en": "31 March 2027", "zh": "2027年3月31日", "es": "31 de marzo de 2027",
         "pt": "31 de março de 2027", "ru": "31 марта 2027 г.", "ar": "31 مارس 2027",
         "fr": "31 mars 2027"}


def config(**notices):
    cfg = load_config(ROOT / "config.example.yaml")
    return replace(cfg, notices=replace(cfg.notices, **notices))


def person(lang="en", name="Ana Silva", address="ana@customer.example"):
    return Recipient(address, name, "customer", lang)


def parse(msg):
    return email.message_from_bytes(msg.as_bytes(policy=email.policy.SMTP), policy=email.policy.default)


def parts(m):
    return {p.get_content_type(): p for p in m.walk()}


def test_mime_structure_headers_and_vcard():
    c = NoticeComposer(config(phone="+86 21 5555 0100"))
    m = parse(c.message("notice", person(), message_id="<n1@company.example>"))
    assert m.get_content_type() == "multipart/mixed"
    alt = m.get_payload()[0]
    assert alt.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alt.get_payload()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in alt.get_payload())
    assert m["To"] == "Ana Silva <ana@customer.example>" and len(m.get_all("To")) == 1
    assert m["From"].addresses[0].addr_spec == NEW == m["Reply-To"].addresses[0].addr_spec
    assert m["From"].addresses[0].display_name == "Wu Jun"
    assert m["Message-ID"] == "<n1@company.example>" and m["Date"] and m["Content-Language"] == "en"
    assert m["Subject"].strip() == "Important Notice: Update of Email Address for Wu Jun / Example Trading Co."
    assert "Auto-Submitted" not in m and "List-Unsubscribe" not in m and "Cc" not in m
    card = parts(m)["text/vcard"]
    assert card.get_filename() == "john.wu.vcf"
    text = card.get_content()
    assert "BEGIN:VCARD" in text and "VERSION:3.0" in text and f"EMAIL;TYPE=INTERNET,PREF:{NEW}" in text
    assert "TEL;TYPE=WORK,VOICE:+86 21 5555 0100" in text and "ORG:Example Trading Co." in text
    # the text part is real text, wrapped to 76 columns
    body = parts(m)["text/plain"].get_content()
    assert "<" not in body and all(columns(line) <= 76 for line in body.splitlines())
    # the same Message-ID gives the same bytes but for the Date: a preview is what is sent
    date = m["Date"].datetime
    a = c.message("notice", person(), message_id="<n1@company.example>", date=date).as_bytes()
    b = c.message("notice", person(), message_id="<n1@company.example>", date=date).as_bytes()
    assert a == b


def test_without_vcard_the_message_is_the_alternative():
    m = parse(NoticeComposer(config(vcard=False)).message("notice", person(), message_id="<n2@x.example>"))
    assert m.get_content_type() == "multipart/alternative"


def test_cjk_name_is_rfc2047_encoded():
    cfg = config()
    cfg = replace(cfg, identity=replace(cfg.identity, name="吴军"))
    raw = NoticeComposer(cfg).message("notice", person("zh", "王伟"), message_id="<n3@x.example>").as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head and max(head) < 128
    m = parse(NoticeComposer(cfg).message("notice", person("zh", "王伟"), message_id="<n3@x.example>"))
    assert m["From"].addresses[0].display_name == "吴军" and str(m["To"]) == "王伟 <ana@customer.example>"


@pytest.mark.parametrize("kind", ["notice", "final"])
@pytest.mark.parametrize("lang", LANGS)
def test_every_language_names_both_addresses_and_the_date(kind, lang):
    c = NoticeComposer(config())
    r = c.render(kind, person(lang))
    assert r.language == lang
    for text in (r.text, r.html):
        assert OLD in text and NEW in text and DATES[lang] in text
    assert re.search(rf"<strong[^>]*>\s*(<a[^>]*>)?{re.escape(NEW)}", r.html)
    assert re.search(rf"<strong[^>]*>{re.escape(OLD)}</strong>", r.html)
    assert re.search(rf"<strong[^>]*>{re.escape(DATES[lang])}</strong>", r.html)
    assert f'lang="{lang}"' in r.html and "<style" not in r.html.split("</head>")[1]
    assert 'style="' in r.html and "http" not in r.html.replace("mailto:", "")   # inlined, no images
    assert c.subject(kind, lang) == r.subject and r.subject


def test_arabic_is_right_to_left():
    r = NoticeComposer(config()).render("notice", person("ar", "أحمد منصور"))
    assert 'dir="rtl"' in r.html and "text-align: right" in r.html
    assert f'<strong dir="ltr"><a class="addr-link" href="mailto:{NEW}"' in r.html


def test_greeting_uses_the_name_when_known():
    c = NoticeComposer(config())
    assert c.render("notice", person("es", "Ana Silva")).text.startswith("Estimado/a Ana Silva:")
    assert c.render("notice", person("zh", "王伟")).text.startswith("王伟，您好！")
    assert c.render("notice", person("en", "")).text.startswith("Hello,")
    assert c.render("notice", person("en", "ana@customer.example")).text.startswith("Hello,")


def test_unknown_language_falls_back_to_english_and_internal_speaks_every_language():
    c = NoticeComposer(config())
    assert c.render("notice", person("de")).language == "en"
    assert set(c.languages()) >= set(LANGS) and set(c.languages("internal")) >= set(LANGS)
    assert c.render("internal", person("zh")).subject == f"邮箱变更：请改用 {NEW}"
    assert c.render("internal", person("de")).language == "en"
    for lang in LANGS:
        r = c.render("internal", person(lang))
        assert r.language == lang and NEW in r.text and OLD in r.text and DATES[lang] in r.text
        assert NEW in r.html and DATES[lang] in r.html
    assert 'dir="rtl"' in c.render("internal", person("ar")).html


def test_test_notice_is_marked():
    r = NoticeComposer(config()).render("test", person("en"))
    assert r.subject.startswith("[TEST] Important Notice")
    assert r.text.startswith("*** TEST") and "TEST —" in r.html


def test_names_and_reason_are_escaped():
    c = NoticeComposer(config(reason="<b>upgrade</b> & more"))
    r = c.render("notice", person("en", "<script>alert(1)</script> Ana"))
    assert "<script>" not in r.html and "&lt;script&gt;" in r.html
    assert "&lt;b&gt;upgrade&lt;/b&gt; &amp; more" in r.html
    assert "<script>alert(1)</script> Ana" in r.text     # text is text


def test_a_reason_per_language_goes_in_that_language_and_english_stands_in():
    c = NoticeComposer(config(reasons=(("en", "We moved to our own mail system."),
                                       ("zh", "公司已启用自己的邮件系统。"))))
    assert "公司已启用自己的邮件系统。" in c.render("notice", person("zh", "王伟")).text
    en = c.render("notice", person("en")).text
    assert "We moved to our own mail system." in en and "公司" not in en
    assert "We moved to our own mail system." in c.render("notice", person("pt")).text
    none = NoticeComposer(config(reasons=(("zh", "公司已启用自己的邮件系统。"),)))
    assert "公司" not in none.render("notice", person("es")).text


def test_missing_close_date_is_one_sentence():
    cfg = config()
    cfg = replace(cfg, transition=replace(cfg.transition, close_date=None))
    with pytest.raises(ConfigError, match="transition.close_date"):
        NoticeComposer(cfg).render("notice", person())


def test_user_template_overrides_builtin_file_by_file(tmp_path):
    (tmp_path / "notice.en.txt.j2").write_text("Hi {{ greeting }} -> {{ new_address }} by {{ close_date }}\n")
    (tmp_path / "words.en.yaml").write_text('subject: {notice: "New address for {{ name }}"}\n')
    c = NoticeComposer(config(templates=tmp_path))
    r = c.render("notice", person())
    assert r.text == f"Hi Dear Ana Silva, -> {NEW} by 31 March 2027\n"
    assert r.subject == "New address for Wu Jun"
    assert "I hope this email finds you well" in r.html            # the built-in HTML
    assert c.render("notice", person("fr")).text.startswith("Bonjour Ana Silva,")


def test_broken_user_template_is_one_sentence_with_file_and_line(tmp_path):
    (tmp_path / "notice.en.html.j2").write_text('{% extends "base.html.j2" %}\n{% block body %}\n'
                                                "<p>{{ greeting }</p>\n{% endblock %}\n")
    c = NoticeComposer(config(templates=tmp_path))
    with pytest.raises(ConfigError) as e:
        c.check()
    text = str(e.value)
    assert str(tmp_path / "notice.en.html.j2") in text and "line 3" in text
    assert e.value.exit_code == 2 and "\n" not in text


def test_undefined_name_in_user_template_names_file_and_line(tmp_path):
    (tmp_path / "final.en.txt.j2").write_text("Hello\n{{ greting }}\n")
    with pytest.raises(ConfigError, match=r"final\.en\.txt\.j2 failed at line 2: 'greting' is undefined"):
        NoticeComposer(config(templates=tmp_path)).render("final", person())


def test_write_templates_never_overwrites_without_force(tmp_path):
    out = tmp_path / "texts"
    written = write_templates(out)
    names = {p.name for p in written}
    assert {"notice.en.txt.j2", "notice.ar.html.j2", "words.zh.yaml", "base.html.j2", "README.txt"} <= names
    (out / "notice.en.txt.j2").write_text("mine\n")
    with pytest.raises(ConfigError, match="already exist.*--force"):
        write_templates(out)
    assert (out / "notice.en.txt.j2").read_text() == "mine\n"
    write_templates(out, force=True)
    assert (out / "notice.en.txt.j2").read_text() != "mine\n"
    # the written copies render exactly like the built-ins
    c1, c2 = NoticeComposer(config()), NoticeComposer(config(templates=out))
    assert c1.render("notice", person("ar")) == c2.render("notice", person("ar"))


def test_vcard_escapes_and_folds():
    card = vcard(Contact("Wu, Jun; \\ 吴军" + "长" * 40, "john.wu@company.example", "A;B", "+1"))
    lines = card.split("\r\n")
    assert card.endswith("END:VCARD\r\n")
    assert "FN:Wu\\, Jun\\; \\\\ 吴军" in card.replace("\r\n ", "")
    assert all(len(line.encode()) <= 75 for line in lines)
    assert "ORG:A\\;B" in card
