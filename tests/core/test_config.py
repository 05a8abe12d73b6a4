"""Config loading: every bad key or value is one sentence naming the key and line, exit code 2."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from switchover.core.config import load_config
from switchover.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = textwrap.dedent("""\
    identity: {name: Wu Jun, company: Example Trading Co., old_address: a@old.example, new_address: b@new.example}
    old:
      provider: qq
      username: a@old.example
      password_env: OLD_PW
    new:
      provider: custom
      imap: {host: imap.new.example, port: 993, security: ssl}
      smtp: {host: smtp.new.example, port: 587, security: starttls}
      username: b@new.example
      password_command: "echo s3cret"
    state: state/sw.sqlite
    """)


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "switchover.yaml"
    p.write_text(text, encoding="utf-8")
    p.chmod(mode)
    return p


def test_example_config_is_valid():
    cfg = load_config(ROOT / "config.example.yaml")
    assert cfg.identity.name == "Wu Jun"
    assert cfg.old.imap.port == 993 and cfg.new.smtp.security == "ssl"
    assert cfg.transition.close_date is not None


def test_provider_fills_hosts_and_state_is_relative(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.old.imap.host == "imap.qq.com" and cfg.old.imap.security == "ssl"
    assert cfg.old.smtp.host == "smtp.qq.com"
    assert cfg.state == tmp_path / "state" / "sw.sqlite"
    assert cfg.new.secret() == "s3cret"


def test_password_env_missing_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.delenv("OLD_PW", raising=False)
    cfg = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match=r"\$OLD_PW"):
        cfg.old.secret()
    monkeypatch.setenv("OLD_PW", "pw")
    assert cfg.old.secret() == "pw"


@pytest.mark.parametrize("mutate, expect", [
    (lambda t: t.replace("provider: qq", "provider: qqq"), r"'old.provider' \(line 3\).*not known"),
    (lambda t: t.replace("port: 993", "port: 99999"), r"'new.imap.port' \(line 8\)"),
    (lambda t: t.replace("security: starttls", "security: tls"), r"'new.smtp.security' \(line 9\)"),
    (lambda t: t + "colour: blue\n", r"'colour' \(line 13\).*not a known key"),
    (lambda t: t.replace("  username: a@old.example\n", ""), r"'old.username'.*missing"),
    (lambda t: t.replace("new_address: b@new.example", "new_address: nope"), r"identity.new_address"),
    (lambda t: t + "transition: {close_date: someday}\n", r"transition.close_date.*date"),
    (lambda t: t.replace("password_command", "password_env: X\n  password_command"), r"conflicts"),
])
def test_bad_config_names_key_and_line(tmp_path, mutate, expect):
    with pytest.raises(ConfigError, match=expect):
        load_config(write(tmp_path, mutate(GOOD)))


def test_plain_password_readable_by_others_warns(tmp_path):
    text = GOOD.replace("password_env: OLD_PW", "password: hunter2")
    cfg = load_config(write(tmp_path, text, 0o644))
    assert any("old.password" in w for w in cfg.warnings)
    assert not load_config(write(tmp_path, text, 0o600)).warnings
    assert "hunter2" not in repr(cfg.old)


def test_cli_bad_config_exit_2_no_traceback(tmp_path):
    p = write(tmp_path, GOOD.replace("port: 993", "port: abc"))
    r = subprocess.run([sys.executable, "-m", "switchover", "--config", str(p), "migrate", "--dry-run"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "new.imap.port" in r.stderr and "line 8" in r.stderr


def test_cli_missing_config_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "switchover", "--config", str(tmp_path / "none.yaml"), "verify"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ})
    assert r.returncode == 2 and "switchover init" in r.stderr and "Traceback" not in r.stderr


def test_init_writes_commented_valid_config(tmp_path):
    # a custom server: host, security, port (the defaults: ssl and its port)
    answers = ("Wu Jun\nExample Trading Co.\nold123@163.com\njohn.wu@company.example\n\n\n"
               "imap.company.example\n\n\nsmtp.company.example\n\n\n")
    target = tmp_path / "switchover.yaml"
    r = subprocess.run([sys.executable, "-m", "switchover", "--config", str(target), "init"],
                       input=answers, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    cfg = load_config(target)
    assert cfg.old.provider == "163" and cfg.old.imap.host == "imap.163.com"
    assert cfg.new.imap.host == "imap.company.example"
    assert "# the address being retired" in target.read_text()
    assert oct(target.stat().st_mode & 0o777) == "0o600"


# -- issue 10: values checked with key and line, secrets that cannot be had -------------------

def test_secret_problem_names_the_variable_or_command(tmp_path, monkeypatch):
    monkeypatch.delenv("OLD_PW", raising=False)
    cfg = load_config(write(tmp_path, GOOD))
    problem = cfg.old.secret_problem()
    assert problem and "$OLD_PW" in problem and "old.password_env" in problem and "not set" in problem
    assert cfg.new.secret_problem() is None                      # echo runs
    assert cfg.old.with_secret("typed").secret_problem() is None
    monkeypatch.setenv("OLD_PW", "pw")
    assert cfg.old.secret_problem() is None
    gone = load_config(write(tmp_path, GOOD.replace('"echo s3cret"', '"PASSWORD_STORE_DIR=x no-such-tool-xyz show a"')))
    problem = gone.new.secret_problem()
    assert problem and "'no-such-tool-xyz' is not found" in problem and "new.password_command" in problem


def test_handled_on_action_defaults_to_true(tmp_path):
    assert load_config(write(tmp_path, GOOD)).transition.handled_on_action is True
    cfg = load_config(write(tmp_path, GOOD + "transition: {handled_on_action: false}\n"))
    assert cfg.transition.handled_on_action is False
    with pytest.raises(ConfigError, match=r"'transition.handled_on_action' \(line 13\).*true or false"):
        load_config(write(tmp_path, GOOD + "transition: {handled_on_action: maybe}\n"))


@pytest.mark.parametrize("mutate, expect", [
    (lambda t: t + "transition: {close_date: 2027-02-30}\n", r"'transition.close_date' \(line 13\).*2027-02-30"),
    (lambda t: t + "transition: {start: 2027-13-45}\n", r"'transition.start' \(line 13\).*2027-13-45"),
    (lambda t: t + "transition: {start: 2027-03-02, close_date: 2027-03-01}\n", r"close_date.*before"),
    (lambda t: t.replace("new_address: b@new.example", 'new_address: "@"'), r"'identity.new_address' \(line 1\)"),
    (lambda t: t.replace("new_address: b@new.example", 'new_address: "a b@c@d"'), r"identity.new_address"),
    (lambda t: t.replace("new_address: b@new.example", "new_address: a@old.example"), r"same as identity.old"),
    (lambda t: t.replace("Trading Co.,", "Trading Co., language: klingon,"),
     r"'identity.language' \(line 1\).*'klingon'.*en, zh, es, ru, pt"),
    (lambda t: t.replace("  username: b@new.example\n", "  username: b@new.example\n  username: c@new.example\n"),
     r"'new.username' is written twice \(lines 10 and 11\)"),
    (lambda t: t + "state: other.sqlite\n", r"'state' is written twice \(lines 12 and 13\)"),
])
def test_bad_values_name_key_and_line(tmp_path, mutate, expect):
    with pytest.raises(ConfigError, match=expect):
        load_config(write(tmp_path, mutate(GOOD)))


def test_languages_and_addresses_that_are_fine(tmp_path):
    text = GOOD.replace("Trading Co.,", "Trading Co., language: zh-CN,").replace(
        "new_address: b@new.example", "new_address: 吴军@公司.中国")
    cfg = load_config(write(tmp_path, text))
    assert cfg.identity.language == "zh" and cfg.identity.new_address == "吴军@公司.中国"


def test_a_close_date_in_the_past_is_a_warning_not_an_error(tmp_path):
    import datetime as dt
    from switchover.core.config import parse_config
    import yaml
    text = GOOD + "transition: {start: 2026-01-05, close_date: 2026-03-31}\n"
    data = yaml.safe_load(text)
    cfg = parse_config(data, tmp_path / "s.yaml", text, today=dt.date(2026, 4, 1))
    assert cfg.transition.close_date == dt.date(2026, 3, 31)
    assert any("transition.close_date (line 13) is 2026-03-31, in the past" in w for w in cfg.warnings)
    assert not parse_config(data, tmp_path / "s.yaml", text, today=dt.date(2026, 3, 31)).warnings
