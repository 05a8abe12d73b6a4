"""The `notices:` config section: defaults, values, and one sentence naming key and line."""

import textwrap
from pathlib import Path

import pytest

from switchover.core.config import NoticeSettings, load_config
from switchover.core.errors import ConfigError

BASE = textwrap.dedent("""\
    identity: {name: Wu Jun, company: Example Trading Co., old_address: a@old.example, new_address: b@new.example}
    old: {provider: qq, username: a@old.example, password_env: OLD_PW}
    new:
      provider: custom
      imap: {host: imap.new.example, port: 993, security: ssl}
      smtp: {host: smtp.new.example, port: 587, security: starttls}
      username: b@new.example
      password_env: NEW_PW
    """)


def load(tmp_path: Path, notices: str):
    p = tmp_path / "switchover.yaml"
    p.write_text(BASE + textwrap.dedent(notices), encoding="utf-8")
    p.chmod(0o600)
    return load_config(p)


def test_defaults_when_absent(tmp_path):
    cfg = load(tmp_path, "")
    assert cfg.notices == NoticeSettings()
    assert cfg.notices.vcard and cfg.notices.final_reminder_days == 14
    assert cfg.notices.per_hour is None and cfg.notices.templates is None


def test_values_are_read(tmp_path):
    (tmp_path / "texts").mkdir()
    cfg = load(tmp_path, """\
        notices:
          reason: "  We moved   to our own mail system. "
          internal_domains: ["@Group.Example", sub.company.example.]
          vcard: false
          templates: texts
          final_reminder_days: 10
          per_hour: 30
          per_day: 200
          phone: +86 21 5555 0100
          company: Example Group
        """)
    n = cfg.notices
    assert n.reason == "We moved to our own mail system."
    assert n.internal_domains == ("group.example", "sub.company.example")
    assert n.vcard is False and n.templates == tmp_path / "texts"
    assert (n.final_reminder_days, n.per_hour, n.per_day) == (10, 30, 200)
    assert n.phone == "+86 21 5555 0100" and n.company == "Example Group"
    assert not cfg.warnings


def test_reason_per_language(tmp_path):
    cfg = load(tmp_path, """\
        notices:
          reason: {EN: "  We moved.  ", zh: 公司已启用自己的邮件系统。}
        """)
    n = cfg.notices
    assert n.reasons == (("en", "We moved."), ("zh", "公司已启用自己的邮件系统。")) and n.reason == ""
    assert n.reason_for("zh") == "公司已启用自己的邮件系统。"
    assert n.reason_for("es") == "We moved."
    assert NoticeSettings(reason="One line.").reason_for("ar") == "One line."
    # a language given an empty line gets none, not the English one; no: is Norwegian
    cfg = load(tmp_path, """\
        notices:
          reason: {en: We moved., zh: "", no: Vi har flyttet.}
        """)
    assert cfg.notices.reason_for("zh") == "" and cfg.notices.reason_for("no") == "Vi har flyttet."
    with pytest.raises(ConfigError, match=r"'notices.reason.English' \(line \d+\): is not a language code"):
        load(tmp_path, """\
            notices:
              reason: {English: We moved.}
            """)
    with pytest.raises(ConfigError, match="notices.reason.en.*one line of text"):
        load(tmp_path, """\
            notices:
              reason: {en: [a, b]}
            """)


def test_missing_template_folder_is_a_warning(tmp_path):
    cfg = load(tmp_path, "notices: {templates: nowhere}\n")
    assert cfg.notices.templates == tmp_path / "nowhere"
    assert any("notices.templates" in w and "switchover notify --templates" in w for w in cfg.warnings)


@pytest.mark.parametrize("body, key, words", [
    ("notices:\n  final_reminder_days: 0\n", "notices.final_reminder_days", "between 1"),
    ("notices:\n  per_hour: -5\n", "notices.per_hour", "between 1"),
    ("notices:\n  per_day: lots\n", "notices.per_day", "whole number"),
    ("notices:\n  internal_domains: [not a domain]\n", "notices.internal_domains", "not a domain"),
    ("notices:\n  vcard: maybe\n", "notices.vcard", "true or false"),
    ("notices:\n  colour: blue\n", "notices.colour", "not a known key"),
    ("notices: [1, 2]\n", "notices", "mapping"),
])
def test_bad_values_name_key_and_line(tmp_path, body, key, words):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, body)
    text = str(e.value)
    assert f"'{key}'" in text and "(line " in text and words in text
    assert e.value.exit_code == 2 and "\n" not in text


def test_templates_naming_a_file_is_refused(tmp_path):
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"notices.templates.*line 10\).*not a directory"):
        load(tmp_path, "notices:\n  templates: t.txt\n")
