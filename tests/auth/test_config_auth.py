"""The sign-in part of the config: ``auth``, ``oauth2: {provider, client_id, tenant,
client_secret}``, ``password_keyring``; every mistake one sentence with key and line; the
advice for a personal Gmail address; a keyring password as the account's secret."""

from __future__ import annotations

import textwrap
from pathlib import Path

import keyring
import pytest

from switchover.core.auth import tokens
from switchover.core.auth.advice import GMAIL_APP_PASSWORD, sign_in_advice
from switchover.core.config import load_config
from switchover.core.errors import ConfigError
from tests.support.keyring_file import FileKeyring

HEAD = textwrap.dedent("""\
    identity: {name: Wu Jun, old_address: a@old.example, new_address: b@new.example}
    old:
      provider: qq
      username: a@old.example
      password_env: OLD_PW
    new:
      provider: outlook
      username: b@new.example
    """)


def load(tmp_path: Path, new_extra: str):
    p = tmp_path / "switchover.yaml"
    p.write_text(HEAD + textwrap.indent(textwrap.dedent(new_extra), "  "), encoding="utf-8")
    p.chmod(0o600)
    return load_config(p)


def test_microsoft_oauth2_block(tmp_path):
    cfg = load(tmp_path, """\
        auth: oauth2
        oauth2: {provider: microsoft, client_id: 11111111-2222-3333-4444-555555555555}
        """)
    acct = cfg.new
    assert acct.auth == "oauth2" and acct.signs_in and acct.uses_oauth2
    assert acct.oauth2.tenant == "organizations" and acct.oauth2.client_secret is None
    assert acct.has_secret_source() and acct.secret_problem() is None   # no password prompt
    assert cfg.old.auth == "password" and not cfg.old.uses_oauth2
    assert sign_in_advice(acct) is None


def test_google_workspace_and_personal_gmail_advice(tmp_path):
    cfg = load(tmp_path, """\
        auth: oauth2
        oauth2: {provider: google, client_id: x.apps.googleusercontent.com, client_secret: GOCSPX-abc}
        """)
    assert cfg.new.oauth2.client_secret == "GOCSPX-abc" and "GOCSPX" not in repr(cfg.new)
    assert sign_in_advice(cfg.new) is None                  # a company domain: OAuth2 fits
    p = tmp_path / "switchover.yaml"
    p.write_text(p.read_text().replace("b@new.example", "b@gmail.com"))
    advice = sign_in_advice(load_config(p).new)
    assert advice == GMAIL_APP_PASSWORD
    assert "app password" in advice and "restricted" in advice and "100 users" in advice


def test_oauth2_token_command_stays_supported(tmp_path):
    cfg = load(tmp_path, """\
        auth: oauth2
        oauth2_token_command: "echo tok"
        """)
    assert cfg.new.uses_oauth2 and not cfg.new.signs_in and cfg.new.secret() == "tok"
    cfg = load(tmp_path, 'oauth2_token_command: "echo tok"\n')     # as before: auth unset
    assert cfg.new.uses_oauth2 and cfg.new.secret() == "tok"


@pytest.mark.parametrize("extra, key, words", [
    ("auth: oauth2\n", "new.oauth2", "is missing"),
    ("auth: token\n", "new.auth", "must be password or oauth2"),
    ("oauth2: {provider: microsoft, client_id: x}\n", "new.oauth2", "auth is password"),
    ("auth: oauth2\noauth2: {provider: yahoo, client_id: x}\n", "new.oauth2.provider", "microsoft or google"),
    ("auth: oauth2\noauth2: {provider: microsoft}\n", "new.oauth2.client_id", "is missing"),
    ("auth: oauth2\noauth2: {provider: google, client_id: x, tenant: t}\n", "new.oauth2.tenant",
     "only for provider microsoft"),
    ("auth: oauth2\noauth2: {provider: microsoft, client_id: x, token_uri: 'https://t'}\n",
     "new.oauth2.token_uri", "only for provider google"),
    ("auth: oauth2\noauth2: {provider: microsoft, client_id: x, authority: 'http://login'}\n",
     "new.oauth2.authority", "https://"),
    ("auth: oauth2\noauth2: {provider: microsoft, client_id: x, colour: red}\n", "new.oauth2.colour",
     "not a known key"),
    ("auth: oauth2\npassword_env: PW\noauth2: {provider: microsoft, client_id: x}\n",
     "new.password_env", "conflicts with new.auth: oauth2"),
    ("auth: oauth2\noauth2_token_command: x\noauth2: {provider: microsoft, client_id: x}\n",
     "new.oauth2", "conflicts with new.oauth2_token_command"),
    ("password_env: PW\npassword_keyring: true\n", "new.password_keyring", "conflicts with new.password_env"),
    ("password_keyring: yes please\n", "new.password_keyring", "true or false"),
])
def test_mistakes_name_key_and_line(tmp_path, extra, key, words):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, extra)
    message = info.value.message
    assert f"'{key}'" in message and words in message and "line" in message, message
    assert info.value.exit_code == 2


def test_password_from_the_keyring(tmp_path):
    cfg = load(tmp_path, "password_keyring: true\n")
    before = keyring.get_keyring()
    try:
        keyring.set_keyring(FileKeyring(tmp_path / "k.json"))
        assert "switchover login new --password" in cfg.new.secret_problem()
        assert not cfg.new.has_secret_source()              # a face may ask for it instead
        with pytest.raises(ConfigError):
            cfg.new.secret()
        tokens.store_secret("new", "b@new.example", "pw-in-keyring")
        assert cfg.new.secret_problem() is None and cfg.new.secret() == "pw-in-keyring"
        assert "pw-in-keyring" not in (tmp_path / "switchover.yaml").read_text()
        from keyring.backends import fail
        keyring.set_keyring(fail.Keyring())
        problem = cfg.new.secret_problem()
        assert problem.startswith("No OS keyring is available") and "password_command" in problem
        with pytest.raises(tokens.NoKeyring):
            cfg.new.secret()
    finally:
        keyring.set_keyring(before)
