"""SMTP with a signed-in account: XOAUTH2 with a fresh token against an aiosmtpd server
that asks the local identity provider whether the token is live (aiosmtpd has no
XOAUTH2 of its own; the mechanism below is the server side as Gmail and Exchange answer
it), and a refused token → "sign in again"."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from switchover.core.auth.oauth2 import SignInNeeded, begin_sign_in
from switchover.core.config import Account, Endpoint
from switchover.core.auth.settings import OAuth2Settings
from switchover.core.net import smtp
from tests.support.servers_base import free_port

pytestmark = pytest.mark.timeout(60)


class TokenCheckingHandler:
    def __init__(self, oauth: Any) -> None:
        self.oauth = oauth
        self.received: list[tuple[str, bytes]] = []
        self.logins: list[str] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802
        fields = dict(part.split("=", 1) for part in
                      base64.b64decode(args[1]).decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        if self.oauth.valid(token) != user:
            return AuthResult(success=False, handled=False,
                              message="535 5.7.3 Authentication unsuccessful")
        self.logins.append(user)
        return AuthResult(success=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append((envelope.mail_from, envelope.content))
        return "250 OK"


def test_smtp_sends_with_a_fresh_token_and_a_refusal_asks_for_sign_in(oauth, test_keyring):
    handler = TokenCheckingHandler(oauth)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            auth_require_tls=False, auth_exclude_mechanism=["PLAIN", "LOGIN"])
    controller.start()
    try:
        account = Account(side="new", provider="custom", imap=Endpoint("127.0.0.1", 1, "none"),
                          smtp=Endpoint("127.0.0.1", controller.port, "none"),
                          username="ana@corp.example", auth="oauth2",
                          oauth2=OAuth2Settings(**oauth.microsoft()))
        flow = begin_sign_in(account)
        threading.Timer(0.2, oauth.approve, (flow.code, account.username)).start()
        flow.wait()
        raw = b"From: ana@corp.example\r\nTo: bo@x.example\r\nSubject: hi\r\n\r\nhello\r\n"
        smtp.send(account, "ana@corp.example", ["bo@x.example"], raw)
        assert handler.logins == ["ana@corp.example"] and len(handler.received) == 1
        assert smtp.login_only(account).authenticated
        oauth.revoke(account.username, access_too=True)
        with pytest.raises(SignInNeeded, match="SMTP AUTH .*sign in again: switchover login new"):
            smtp.send(account, "ana@corp.example", ["bo@x.example"], raw)
        assert len(handler.received) == 1
    finally:
        controller.stop()
