"""Sign-in against a local identity provider (tests/support/servers_oauth2.py) and a real
Dovecot whose oauth2 passdb asks that provider whether each XOAUTH2 / OAUTHBEARER token is
live: msal's device-code flow and google-auth-oauthlib's redirect (browser or pasted
address) store the sign-in in the (test) keyring; every (re)connect gets a fresh token;
an expired access token is refreshed when the watch reconnects; a revoked refresh token is
one sentence and exit 3; no keyring is one sentence pointing to password_command.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from switchover.core.auth import tokens
from switchover.core.auth.microsoft import SCOPES
from switchover.core.auth.oauth2 import SignInNeeded, access_token, begin_sign_in, forget_sources
from switchover.core.config import Account, Endpoint, load_config
from switchover.core.errors import AuthError, ConnectError
from switchover.core.net import imap, sieve
from tests.support.arrivals import Events, make_mail
from tests.support.proxy import Proxy
from tests.support.servers import write_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def oauth_side(server: Any, user: Any, block: dict[str, Any], **imap_ep: Any) -> dict[str, Any]:
    ep = {"host": server.host, "port": server.imap_port, "security": "none", **imap_ep}
    return {"imap": ep, "username": user.username, "password": None, "auth": "oauth2",
            "oauth2": block}


def config_for(tmp_path: Path, mailserver: Any, old_user: Any, new_user: Any, **sections: Any) -> Path:
    return write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                        server=mailserver, **sections)


def sign_in_microsoft(account: Account, oauth: Any, as_user: str | None = None) -> str:
    """The device-code flow, with the person approving the code on the provider's page."""
    flow = begin_sign_in(account)
    assert flow.url.startswith(oauth.base) and flow.code in flow.instructions()
    threading.Timer(0.2, oauth.approve, (flow.code, as_user or account.username)).start()
    return flow.wait()


def test_microsoft_device_code_sign_in_kept_in_keyring_then_xoauth2(
        oauth, oauth_dovecot, mailserver, old_user, tmp_path, test_keyring):
    user = oauth_dovecot.add_user("ms")
    cfg = load_config(config_for(tmp_path, mailserver, old_user, user,
                                 new=oauth_side(oauth_dovecot, user, oauth.microsoft())))
    account = cfg.new
    assert account.signs_in and account.uses_oauth2 and not account.password
    with pytest.raises(SignInNeeded, match="not signed in yet .*sign in: switchover login new$"):
        account.secret()                                        # nothing stored yet
    assert sign_in_microsoft(account, oauth) == user.username
    # the device-code request asked for IMAP and SMTP, and msal added offline_access
    asked = {s for d in [oauth.last_device_scope] for s in d.split()}
    assert set(SCOPES) <= asked and "offline_access" in asked
    stored = json.loads(test_keyring.get_password("switchover", f"new:{user.username}"))
    assert stored["provider"] == "microsoft" and "RefreshToken" in stored["cache"]
    assert "AccessToken" not in stored["cache"] and len(stored["cache"]) < 2500
    before = oauth.requests["introspect"]
    client = imap.connect(account)                              # XOAUTH2 with a live token
    try:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    finally:
        imap.close(client)
    assert oauth.requests["introspect"] == before + 1          # Dovecot asked the provider
    with pytest.raises(AuthError):                              # a made-up token is refused
        imap.connect(account, secret="at-made-up")
    if oauth_dovecot.sieve_port:                                # ManageSieve: OAUTHBEARER
        endpoint = Endpoint(oauth_dovecot.host, oauth_dovecot.sieve_port, "none")
        sieve.login(account, endpoint).close()
    # signed in as someone else: refused, nothing replaced
    other = oauth_dovecot.add_user("other")
    with pytest.raises(AuthError, match=f"You signed in as {other.username}"):
        sign_in_microsoft(account, oauth, as_user=other.username)


async def test_expired_token_is_refreshed_when_the_watch_reconnects(
        oauth, oauth_dovecot, make_engine, new_user, test_keyring):
    user = oauth_dovecot.add_user("watch")
    oauth.expires_in = 2
    try:
        with Proxy(oauth_dovecot.host, oauth_dovecot.imap_port) as proxy:
            engine = await make_engine(user, new_user, old=oauth_side(
                oauth_dovecot, user, oauth.microsoft(), host=proxy.host, port=proxy.port))
            await asyncio.to_thread(sign_in_microsoft, engine.account("old"), oauth)
            engine.monitor.backoff_cap = 1.0
            events = Events(engine)
            stop = asyncio.Event()
            task = asyncio.create_task(engine.monitor.run(stop))
            try:
                await events.wait(lambda: engine.connection_state.get("old") == "connected", timeout=10)
                await asyncio.sleep(0.3)
                first = access_token(engine.account("old"))
                await asyncio.to_thread(oauth_dovecot.deliver, user, make_mail("a@c.com", user.address, "before"))
                await events.wait(lambda: len(events.arrivals()) == 1)
                refreshes = oauth.requests["refresh_token"]
                await asyncio.sleep(2.2)                            # every token given so far expired
                assert oauth.valid(first) is None
                with pytest.raises(AuthError):                      # the server refuses it now
                    await asyncio.to_thread(imap.connect, engine.account("old"), secret=first)
                assert proxy.drop_all() >= 1                        # the watch must log in again
                await asyncio.to_thread(oauth_dovecot.deliver, user, make_mail("a@c.com", user.address, "after"))
                await events.wait(lambda: len(events.arrivals()) == 2, timeout=15)
                assert engine.connection_state["old"] == "connected"
                assert oauth.requests["refresh_token"] > refreshes  # refreshed, not signed in again
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
    finally:
        oauth.expires_in = 3600
    assert sorted(a.subject for a in await engine.monitor.arrivals()) == ["after", "before"]


def _env(oauth: Any, keyring_path: Path, backend: str = "tests.support.keyring_file.FileKeyring") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON_KEYRING_BACKEND": backend,
            "SWITCHOVER_TEST_KEYRING": str(keyring_path), "REQUESTS_CA_BUNDLE": str(oauth.ca_path)}


def _cli(cfg: Path, env: dict[str, str], *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), *argv],
                          cwd=ROOT, capture_output=True, text=True, timeout=40, env=env,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def test_revoked_sign_in_is_one_sentence_and_exit_3(
        oauth, oauth_dovecot, mailserver, new_user, tmp_path, test_keyring):
    user = oauth_dovecot.add_user("revoked")
    path = write_config(tmp_path / "switchover.yaml", old_user=user, new_user=new_user, server=mailserver,
                        old=oauth_side(oauth_dovecot, user, oauth.microsoft()))
    oauth.expires_in = 1                    # every connect needs the refresh token
    try:
        sign_in_microsoft(load_config(path).old, oauth)
        env = _env(oauth, test_keyring.path)
        ok = _cli(path, env, "watch", "--once")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        oauth.revoke(user.username)         # an admin ended the sessions
        forget_sources()
        with pytest.raises(SignInNeeded) as info:
            load_config(path).old.secret()
        assert info.value.exit_code == 3
        assert info.value.message.endswith("sign in again: switchover login old")
        r = _cli(path, env, "watch", "--once")
    finally:
        oauth.expires_in = 3600
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "sign in again: switchover login old" in out and "Traceback" not in out


def test_a_token_the_server_refuses_asks_for_a_new_sign_in(
        oauth, oauth_dovecot, mailserver, old_user, tmp_path, test_keyring):
    user = oauth_dovecot.add_user("refused")
    cfg = load_config(config_for(tmp_path, mailserver, old_user, user,
                                 new=oauth_side(oauth_dovecot, user, oauth.microsoft())))
    sign_in_microsoft(cfg.new, oauth)
    imap.close(imap.connect(cfg.new))
    oauth.revoke(user.username, access_too=True)    # the cached token dies before it expires
    with pytest.raises(SignInNeeded, match=r"refused by the IMAP server .*sign in again: "
                                           r"switchover login new$"):
        imap.connect(cfg.new)


def test_no_keyring_backend_is_one_sentence(oauth, mailserver, old_user, new_user, tmp_path):
    path = config_for(tmp_path, mailserver, old_user, new_user,
                      new=oauth_side(mailserver, new_user, oauth.microsoft()))
    env = _env(oauth, tmp_path / "unused.json", backend="keyring.backends.fail.Keyring")
    r = _cli(path, env, "login", "new")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No OS keyring is available" in lines[0]
    assert "password_command" in lines[0] and "oauth2_token_command" in lines[0]
    assert not list(tmp_path.glob("*.json"))                    # no plain file instead
    # a password kept in the keyring, on a machine without one: the same sentence
    path2 = config_for(tmp_path, mailserver, old_user, new_user,
                       new={"password": None, "password_keyring": True})
    r = _cli(path2, env, "login", "new", "--password", stdin="whatever\n")
    assert r.returncode == 2 and "No OS keyring is available" in r.stderr


def test_password_kept_in_keyring_after_the_server_took_it(
        oauth, mailserver, old_user, new_user, tmp_path, test_keyring):
    path = config_for(tmp_path, mailserver, old_user, new_user,
                      new={"password": None, "password_keyring": True})
    env = _env(oauth, test_keyring.path)
    wrong = _cli(path, env, "login", "new", "--password", stdin="not-it\n")
    assert wrong.returncode == 3 and test_keyring.get_password("switchover", f"new:{new_user.username}") is None
    cfg = load_config(path)
    assert "switchover login new --password" in (cfg.new.secret_problem() or "")
    r = _cli(path, env, "login", "new", "--password", stdin=new_user.password + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert test_keyring.get_password("switchover", f"new:{new_user.username}") == new_user.password
    assert cfg.new.secret_problem() is None and cfg.new.secret() == new_user.password
    imap.close(imap.connect(cfg.new))
    assert new_user.password not in r.stdout + r.stderr
    r = _cli(path, env, "login", "new", "--forget")
    assert r.returncode == 0 and test_keyring.get_password("switchover", f"new:{new_user.username}") is None


@pytest.mark.parametrize("how", ["browser", "paste"])
def test_google_installed_app_sign_in(how, oauth, oauth_dovecot, mailserver, old_user, tmp_path,
                                      test_keyring):
    user = oauth_dovecot.add_user("g")
    cfg = load_config(config_for(tmp_path, mailserver, old_user, user,
                                 new=oauth_side(oauth_dovecot, user, oauth.google())))
    flow = begin_sign_in(cfg.new)
    assert flow.accepts_paste and "127.0.0.1" in flow.instructions()
    # the browser: Google's consent page sends it back to the loopback address
    landing = requests.get(flow.url, allow_redirects=False, timeout=10).headers["Location"]
    assert landing.startswith("http://127.0.0.1:")
    if how == "browser":
        threading.Thread(target=requests.get, args=(landing,), kwargs={"timeout": 10}).start()
    else:                       # over SSH the page does not load; the person pastes its address
        with pytest.raises(AuthError, match="holds no sign-in code"):
            flow.paste("http://127.0.0.1:1/")
        flow.paste(landing)
    flow.wait()
    stored = json.loads(test_keyring.get_password("switchover", f"new:{user.username}"))
    assert stored == {"provider": "google", "refresh_token": stored["refresh_token"]}
    client = imap.connect(cfg.new)
    imap.close(client)
    oauth.revoke(user.username)
    forget_sources()
    with pytest.raises(SignInNeeded, match="sign in again: switchover login new"):
        cfg.new.secret()


def test_tokens_shared_by_parallel_connections(oauth, oauth_dovecot, mailserver, old_user, tmp_path,
                                               test_keyring):
    """Four connections at once (the migration's lanes) share one live token."""
    user = oauth_dovecot.add_user("lanes")
    cfg = load_config(config_for(tmp_path, mailserver, old_user, user,
                                 new=oauth_side(oauth_dovecot, user, oauth.microsoft())))
    sign_in_microsoft(cfg.new, oauth)
    before = dict(oauth.requests)
    started = time.monotonic()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cfg.new.secret())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and time.monotonic() - started < 5
    # the sign-in's access token stayed with the sign-in: one refresh for all four
    assert oauth.requests["refresh_token"] == before.get("refresh_token", 0) + 1
    assert cfg.new.secret() == results[0]                       # 3600 s left: from memory
    assert oauth.requests["refresh_token"] == before.get("refresh_token", 0) + 1
    assert tokens.read_signin("new", user.username) is not None


def test_cli_login_microsoft_prints_address_and_code_then_proves_the_login(
        oauth, oauth_dovecot, mailserver, old_user, tmp_path, test_keyring):
    user = oauth_dovecot.add_user("climicro")
    path = config_for(tmp_path, mailserver, old_user, user,
                      new=oauth_side(oauth_dovecot, user, oauth.microsoft()))
    proc = subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(path), "login", "new"],
                            cwd=ROOT, env=_env(oauth, test_keyring.path), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        assert f"{oauth.base}/devicelogin" in first and "enter the code" in first, first
        oauth.approve(first.split("enter the code ")[1].split(",")[0], user.username)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    assert f"Signed in as {user.username}" in out and "IMAP login of the new mailbox works" in out
    assert tokens.read_signin("new", user.username)["provider"] == "microsoft"


def test_cli_login_google_with_the_address_pasted(oauth, oauth_dovecot, mailserver, old_user,
                                                  tmp_path, test_keyring):
    user = oauth_dovecot.add_user("cligoogle")
    path = config_for(tmp_path, mailserver, old_user, user,
                      new=oauth_side(oauth_dovecot, user, oauth.google()))
    proc = subprocess.Popen([sys.executable, "-m", "switchover", "--config", str(path), "login", "new"],
                            cwd=ROOT, env=_env(oauth, test_keyring.path), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = next(line for line in iter(proc.stdout.readline, "") if line.startswith("https://"))
        landing = requests.get(url.strip(), allow_redirects=False, timeout=10).headers["Location"]
        out, err = proc.communicate("not an address\n" + landing + "\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    assert "holds no sign-in code" in err                      # the first paste, explained
    assert "IMAP login of the new mailbox works" in out
    assert tokens.read_signin("new", user.username)["provider"] == "google"


def test_when_the_browser_comes_back_the_next_line_typed_is_not_eaten_by_the_paste_reader(
        oauth, oauth_dovecot, mailserver, old_user, tmp_path, test_keyring, monkeypatch, capsys):
    """``init`` signs in, then asks more questions: a paste reader left blocked on stdin
    would take the answer to the next one."""
    from switchover import cmd_auth
    user = oauth_dovecot.add_user("gback")
    cfg = load_config(config_for(tmp_path, mailserver, old_user, user,
                                 new=oauth_side(oauth_dovecot, user, oauth.google())))
    master, slave = os.openpty()            # a terminal, as the person has
    stdin = os.fdopen(slave, "r")
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        flow = begin_sign_in(cfg.new)
        landing = requests.get(flow.url, allow_redirects=False, timeout=10).headers["Location"]
        threading.Timer(0.5, requests.get, args=(landing,), kwargs={"timeout": 10}).start()
        cmd_auth._interactive(flow)
        # the reader ended with the flow
        assert not [t for t in threading.enumerate() if t.name == "switchover-paste"]
        os.write(master, b"the answer to the next question\n")
        assert sys.stdin.readline() == "the answer to the next question\n"
    finally:
        os.close(master)
        stdin.close()
    assert tokens.read_signin("new", user.username)["provider"] == "google"


@pytest.mark.parametrize("provider", ["microsoft", "google"])
def test_a_token_endpoint_down_is_a_connection_problem_not_a_sign_in(
        provider, oauth, mailserver, old_user, new_user, tmp_path, test_keyring):
    """503 from the token endpoint: ConnectError (retried by the reconnect loop), the
    sign-in kept; once it answers again the token comes."""
    block = oauth.microsoft() if provider == "microsoft" else oauth.google()
    cfg = load_config(config_for(tmp_path, mailserver, old_user, new_user,
                                 new=oauth_side(mailserver, new_user, block)))
    if provider == "microsoft":
        sign_in_microsoft(cfg.new, oauth)
    else:
        flow = begin_sign_in(cfg.new)
        flow.paste(requests.get(flow.url, allow_redirects=False, timeout=10).headers["Location"])
        flow.wait()
    forget_sources()                    # a new process: no access token in memory
    oauth.down = True
    try:
        with pytest.raises(ConnectError) as info:
            cfg.new.secret()
        assert not isinstance(info.value, AuthError) and "now" in info.value.message
    finally:
        oauth.down = False
    forget_sources()        # msal holds a 5xx back for a while per app; a new process asks again
    assert cfg.new.secret().startswith("at-")
