"""`switchover init`: the provider recognised from the domain's MX records (a real DNS
responder on loopback, dnslib), addresses checked before anything is written, custom
servers' host / security / port validated, where the file goes, and how each mailbox signs
in: OAuth2 for Microsoft 365 / Google Workspace, the app-password advice for personal
Gmail, the password kept in the (test) OS keyring after the real Dovecot took it, and the
one sentence where no keyring exists.

Every test starts without a keyring (the fail backend), whatever the machine has; the
``test_keyring`` fixture (tests/support/servers_oauth2.py) gives one."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
import yaml
from keyring.backends import fail

from switchover.core.auth.advice import GMAIL_APP_PASSWORD
from switchover.core.auth.settings import OAuth2Settings
from switchover.core.config import load_config
from switchover.core.providers import provider_from_mx
from switchover.init import Wizard, run_init
from tests.prepare.preflight_dns import Responder, Silent
from tests.support.servers_oauth2 import test_keyring  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
ZONE = {
    "acme-trading.cn": [("MX", "5 mxbiz1.qq.com.")],                       # Tencent Exmail
    "newco.com.cn": [("MX", "0 newco-com-cn.mail.protection.outlook.com.")],  # Microsoft 365
    "selfhosted.org": [("MX", "10 mail.selfhosted.org.")],
    "nomx.org": [("A", "192.0.2.1")],
    "gws-trading.cn": [("MX", "1 aspmx.l.google.com.")],                    # Google Workspace
}
NO_KEYRING = "No OS keyring is available on this machine"


@pytest.fixture(autouse=True)
def no_keyring():
    """No OS keyring unless a test asks for ``test_keyring`` (set after this one)."""
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(before)


def scripted(answers: list[str]):
    """An ``ask`` that answers in order and records every prompt."""
    prompts: list[str] = []
    queue = list(answers)

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)
    ask.prompts = prompts   # type: ignore[attr-defined]
    return ask


@pytest.mark.parametrize("hosts, provider", [
    (["alt1.aspmx.l.google.com"], "gmail"), (["acme.mail.protection.outlook.com"], "outlook"),
    (["mxbiz2.qq.com"], "exmail"), (["mx3.qq.com"], "qq"), (["qiye163mx02.mxmail.netease.com"], "qiye163"),
    (["163mx01.mxmail.netease.com"], "163"), (["mxw.mxhichina.com"], "aliyun"), (["mx.zoho.eu"], "zoho"),
    (["mx.yandex.net"], "yandex"), (["mail.selfhosted.org"], None),
])
def test_mx_patterns(hosts, provider):
    assert provider_from_mx(hosts) == provider


def test_providers_from_mx_and_a_typo_asked_again(tmp_path, capsys):
    with Responder(ZONE) as ns:
        ask = scripted([
            "Wu Jun", "Acme Trading",
            "wu@acme-tradng.cn",          # a typo: the domain does not exist → asked again
            "wu@@acme-trading.cn",        # bad syntax (email-validator) → asked again
            "wu@acme-trading.cn",
            "john.wu@newco.com.cn",
            "", "",                        # the providers recognised from MX: accepted
            "",                            # old: no keyring here → the password from $OLD_MAIL_PASSWORD
            "", "",                        # new: OAuth2 (Microsoft 365); no token command
            "app-1234", "",                # its client ID; the tenant: the address's domain
        ])
        path = tmp_path / "cfg" / "switchover.yaml"
        assert run_init(path, wizard=Wizard(ask=ask, nameservers=(ns.spec,))) == 0
    out = capsys.readouterr().out
    assert "acme-tradng.cn does not exist in DNS" in out and "type the same address again" in out
    assert "after the @-sign" in out
    assert any("[exmail]" in p for p in ask.prompts) and any("[outlook]" in p for p in ask.prompts)
    cfg = load_config(path)
    assert (cfg.old.provider, cfg.old.imap.host) == ("exmail", "imap.exmail.qq.com")
    assert (cfg.new.provider, cfg.new.imap.host, cfg.new.smtp.security) == (
        "outlook", "outlook.office365.com", "starttls")
    assert cfg.old.password_env == "OLD_MAIL_PASSWORD" and cfg.new.signs_in
    assert f"Wrote {path}" in out
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_address_typed_twice_is_kept_whatever_dns_says(tmp_path):
    with Responder(ZONE) as ns:
        ask = scripted(["", "", "me@intranet-only.cn", "me@intranet-only.cn", "b@gmail.com",
                        "", "", "", "", "", "", "", "", "", "", ""])
        run_init(tmp_path / "s.yaml", wizard=Wizard(ask=ask, nameservers=(ns.spec,)))
    assert load_config(tmp_path / "s.yaml").identity.old_address == "me@intranet-only.cn"


def test_custom_servers_are_validated(tmp_path, capsys):
    with Responder(ZONE) as ns:
        ask = scripted([
            "", "",
            "me@selfhosted.org", "me@nomx.org", "", "",
            # old: host, security, port (bad answers first)
            "http://imap.selfhosted.org", "imap.selfhosted.org", "tls", "starttls", "70000", "",
            "smtp.selfhosted.org", "ssl", "0", "465", "",
            # new: all defaults
            "", "", "", "", "", "", "",
        ])
        path = tmp_path / "switchover.yaml"
        run_init(path, wizard=Wizard(ask=ask, nameservers=(ns.spec,)))
    out = capsys.readouterr().out
    assert "no scheme" in out and "Choose ssl, starttls or none" in out
    assert out.count("from 1 to 65535") == 2
    assert "nomx.org has no MX record" in out
    assert any("port [143]" in p for p in ask.prompts)      # the default follows starttls
    cfg = load_config(path)
    assert (cfg.old.imap.host, cfg.old.imap.port, cfg.old.imap.security) == ("imap.selfhosted.org", 143, "starttls")
    assert (cfg.old.smtp.port, cfg.old.smtp.security) == (465, "ssl")
    assert (cfg.new.imap.host, cfg.new.imap.port, cfg.new.smtp.host) == ("imap.nomx.org", 993, "smtp.nomx.org")


def test_dns_that_cannot_answer_does_not_block(tmp_path, capsys):
    with Silent() as silent:
        ask = scripted(["", "", "a@selfhosted.org", "b@gmail.com", "", "", "", "", "", "", "", "", "", "", ""])
        run_init(tmp_path / "s.yaml", wizard=Wizard(ask=ask, nameservers=(silent.spec,), timeout=0.5))
    assert "could not look up selfhosted.org" in capsys.readouterr().out
    assert load_config(tmp_path / "s.yaml").new.provider == "gmail"


def test_init_by_stdin_writes_where_the_user_is(tmp_path):
    """No --config: ./switchover.yaml of the current folder; the sentence names it; the
    state goes to the platform's state folder (XDG_STATE_HOME here)."""
    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "conf"), "PATH": "/usr/bin:/bin",
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    work = tmp_path / "work"
    work.mkdir()
    answers = "Wu Jun\nAcme\nold123@qq.com\njohn.wu@gmail.com\n\n\n" + "\n" * 3
    r = subprocess.run([sys.executable, "-m", "switchover", "init"], input=answers, cwd=work, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"Wrote {work / 'switchover.yaml'}" in r.stdout
    assert "export OLD_MAIL_PASSWORD, export NEW_MAIL_PASSWORD" in r.stdout
    assert str(tmp_path / "state" / "switchover" / "old123@qq.com") in r.stdout
    again = subprocess.run([sys.executable, "-m", "switchover", "init"], input=answers, cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr


def _side(path: Path, side: str) -> dict:
    return yaml.safe_load(path.read_text())[side]


@pytest.mark.parametrize("new, answers, block", [
    ("john.wu@newco.com.cn", ["app-1234", ""],          # Microsoft 365: the tenant defaults to the domain
     OAuth2Settings("microsoft", "app-1234", tenant="newco.com.cn")),
    ("john.wu@gws-trading.cn", ["1234-abc.apps.googleusercontent.com", "GOCSPX-x1"],   # Google Workspace
     OAuth2Settings("google", "1234-abc.apps.googleusercontent.com", client_secret="GOCSPX-x1")),
])
def test_a_company_on_microsoft_or_google_signs_in_with_oauth2(new, answers, block, tmp_path, capsys,
                                                               test_keyring):
    with Responder(ZONE) as ns:
        ask = scripted(["", "", "old123@qq.com", new, "", "",
                        "no", "",               # old (QQ): a password, not in the keyring: $OLD_MAIL_PASSWORD
                        "",                     # new: OAuth2, offered by default
                        *answers,
                        "no"])                  # after writing: sign in now? not yet
        path = tmp_path / "switchover.yaml"
        assert run_init(path, wizard=Wizard(ask=ask, nameservers=(ns.spec,))) == 0
    out = capsys.readouterr().out
    assert any("signs in with (oauth2 | password) [oauth2]" in p for p in ask.prompts)
    cfg = load_config(path)
    assert cfg.new.auth == "oauth2" and cfg.new.oauth2 == block and cfg.new.signs_in
    written = _side(path, "new")
    assert not [k for k in written if k.startswith("password")]          # the config refuses both
    assert written["oauth2"]["provider"] == block.provider
    assert "Next: export OLD_MAIL_PASSWORD, run 'switchover login new'" in out
    assert NO_KEYRING not in out and not test_keyring.path.exists()       # nothing stored yet


def test_sign_in_now_that_cannot_reach_the_provider_is_one_sentence_and_the_file_stays(
        tmp_path, capsys, monkeypatch, test_keyring):
    # every HTTPS request goes to a closed local port: the provider is unreachable, never the internet
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with Responder(ZONE) as ns:
        ask = scripted(["", "", "old123@qq.com", "john.wu@newco.com.cn", "", "", "no", "",
                        "", "app-1234", "organizations", "yes"])
        path = tmp_path / "switchover.yaml"
        assert run_init(path, wizard=Wizard(ask=ask, nameservers=(ns.spec,))) == 0
    out = capsys.readouterr().out
    assert "Cannot reach Microsoft's sign-in service" in out
    assert "The file is written; run 'switchover login new' when ready." in out
    assert load_config(path).new.oauth2.tenant == "organizations"
    assert "run 'switchover login new'" in out.splitlines()[-1]


def test_personal_gmail_gets_the_app_password_advice_and_no_keyring_is_one_sentence(tmp_path, capsys):
    ask = scripted(["", "", "old123@qq.com", "john.wu@gmail.com", "", "",
                    "",                                     # old: $OLD_MAIL_PASSWORD
                    "",                                     # new: a password, the default for Gmail
                    "command", "", "pass show mail/new"])   # a command (asked again when empty)
    path = tmp_path / "switchover.yaml"
    assert run_init(path, wizard=Wizard(ask=ask)) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert GMAIL_APP_PASSWORD in flat                       # printed whole, wrapped
    assert any("signs in with (oauth2 | password) [password]" in p for p in ask.prompts)
    assert flat.count(NO_KEYRING) == 2 and "use new.password_command" in flat
    assert "Give a command." in out
    assert not any("keyring" in p for p in ask.prompts)     # not offered where there is none
    cfg = load_config(path)
    assert cfg.new.auth == "password" and cfg.new.password_command == "pass show mail/new"
    assert cfg.new.password_env is None and not cfg.new.password_keyring
    assert "Next: export OLD_MAIL_PASSWORD; then run 'switchover check'" in out


def test_the_keyring_keeps_a_password_the_server_took(tmp_path, capsys, monkeypatch, mailserver,
                                                      old_user, new_user, test_keyring):
    def server(proto: str, port: int) -> list[str]:
        return [mailserver.host, "none", str(port)]
    ask = scripted(["", "", old_user.address, new_user.address, "", "",
                    *server("imap", mailserver.imap_port), *server("smtp", 25), "",   # old: keyring (default)
                    *server("imap", mailserver.imap_port), *server("smtp", 25), "yes"])
    # the passwords, as a pipe gives them to cmd_auth (getpass on a terminal): old right, new wrong
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{old_user.password}\nnot-the-password\n"))
    path = tmp_path / "switchover.yaml"
    assert run_init(path, wizard=Wizard(ask=ask)) == 0
    out = capsys.readouterr().out
    cfg = load_config(path)
    assert cfg.old.password_keyring and cfg.new.password_keyring
    assert _side(path, "old").get("password_env") is None
    assert test_keyring.get_password("switchover", f"old:{old_user.username}") == old_user.password
    assert cfg.old.secret() == old_user.password
    assert "The old mailbox took the password; it is kept in the OS keyring." in out
    # refused: one sentence, nothing stored, the file kept and the way to do it later named
    assert test_keyring.get_password("switchover", f"new:{new_user.username}") is None
    assert "The file is written; run 'switchover login new --password' when ready." in out
    assert "Next: run 'switchover login new --password'; then" in out
    assert old_user.password not in out and old_user.password not in path.read_text()
