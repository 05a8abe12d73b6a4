"""Google Workspace sign-in: the installed-app flow (google-auth-oauthlib's ``Flow``) with a
loopback redirect, and a paste-the-address fallback for SSH; the refresh token is kept in
the OS keyring and google.oauth2's ``Credentials`` refresh the access token on every
(re)connect. Scope: https://mail.google.com/ (IMAP and SMTP).

Why not ``InstalledAppFlow.run_local_server``: it waits for the redirect only, and over
SSH the browser (on the person's own machine) cannot reach this machine's loopback. Here
the same loopback listener runs in a thread while the person may instead paste the
address the browser ended on (``paste``); whichever comes first is exchanged with
``flow.fetch_token(authorization_response=...)``.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import requests
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from ..errors import AuthError, ConnectError
from . import tokens
from .oauth2 import SignInCancelled, not_signed_in, sign_in_again
from .settings import OAuth2Settings

SCOPES = ["https://mail.google.com/"]
AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
TOKEN_URI = "https://oauth2.googleapis.com/token"
DONE_PAGE = (b"<!doctype html><meta charset=utf-8><title>switchover</title>"
             b"<p>Signed in. You can close this tab and go back to switchover.</p>")


def _token_uri(settings: OAuth2Settings) -> str:
    return settings.token_uri or TOKEN_URI


class GoogleTokens:
    """The access token of one account, refreshed from the keyring's refresh token."""

    def __init__(self, side: str, username: str, settings: OAuth2Settings) -> None:
        self.side, self.username, self.settings = side, username, settings
        self._creds: google.oauth2.credentials.Credentials | None = None
        self._lock = threading.Lock()

    def access_token(self) -> str:
        with self._lock:
            stored = tokens.read_signin(self.side, self.username)
            refresh = (stored or {}).get("refresh_token") if (stored or {}).get("provider") == "google" else None
            if not refresh:
                raise not_signed_in(self.side)
            if self._creds is None or self._creds.refresh_token != refresh:
                s = self.settings
                self._creds = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
                    token=None, refresh_token=refresh, token_uri=_token_uri(s),
                    client_id=s.client_id, client_secret=s.client_secret or "", scopes=SCOPES)
            if not self._creds.valid:
                self._refresh(self._creds)
            if self._creds.refresh_token and self._creds.refresh_token != refresh:
                tokens.store_signin(self.side, self.username,
                                    {"provider": "google", "refresh_token": self._creds.refresh_token})
            return str(self._creds.token)

    def _refresh(self, creds: google.oauth2.credentials.Credentials) -> None:
        try:
            creds.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
        except google.auth.exceptions.RefreshError as e:
            if getattr(e, "retryable", False):          # 5xx, "try later": not the sign-in
                raise ConnectError(f"Google's sign-in service cannot refresh the {self.side} "
                                   f"mailbox's token now.") from None
            if "invalid_grant" in str(e) or "unauthorized_client" in str(e):
                raise sign_in_again(self.side, "is no longer accepted by Google (invalid_grant)") from None
            raise AuthError(f"Google refused to refresh the {self.side} mailbox's token: "
                            f"{' '.join(str(e).split())[:200]}.") from None
        except google.auth.exceptions.TransportError as e:
            raise ConnectError(f"Cannot reach Google's sign-in service to refresh the "
                               f"{self.side} mailbox's token ({type(e).__name__}).") from None


class _Redirect(http.server.BaseHTTPRequestHandler):
    """The loopback page Google sends the browser back to: note the address, say done."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        signin: GoogleSignIn = self.server.signin  # type: ignore[attr-defined]
        if "code=" not in self.path and "error=" not in self.path:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(DONE_PAGE)
        port = int(self.server.server_address[1])  # type: ignore[index]
        signin.arrived(f"http://127.0.0.1:{port}{self.path}")

    def log_message(self, format: str, *args: Any) -> None:
        pass        # the address holds the code: never in a log


class GoogleSignIn:
    """Show ``url``; the browser comes back to the loopback listener, or the person
    pastes the address it ended on; ``wait`` exchanges the code and keeps the refresh
    token in the keyring."""

    code = ""
    accepts_paste = True
    expires_in = 600

    def __init__(self, side: str, username: str, settings: OAuth2Settings) -> None:
        self.side, self.username, self.settings = side, username, settings
        self._answer: str | None = None
        self._cancelled = False
        self._event = threading.Event()
        self._server = http.server.HTTPServer(("127.0.0.1", 0), _Redirect)
        self._server.signin = self  # type: ignore[attr-defined]
        port = self._server.server_address[1]
        config = {"installed": {
            "client_id": settings.client_id, "client_secret": settings.client_secret or "",
            "auth_uri": settings.auth_uri or AUTH_URI, "token_uri": _token_uri(settings),
            "redirect_uris": ["http://127.0.0.1"]}}
        self._flow = Flow.from_client_config(config, scopes=SCOPES,
                                             redirect_uri=f"http://127.0.0.1:{port}/")
        # prompt=consent: Google gives a refresh token again on a second sign-in
        self.url, self._state = self._flow.authorization_url(
            access_type="offline", prompt="consent", login_hint=username)
        threading.Thread(target=self._server.serve_forever, name="switchover-signin",
                         daemon=True).start()

    @classmethod
    def begin(cls, side: str, username: str, settings: OAuth2Settings) -> "GoogleSignIn":
        tokens.read_secret(side, username)      # no keyring: say so before the person signs in
        return cls(side, username, settings)

    def instructions(self) -> str:
        return (f"Open this address in a browser and sign in as {self.username}:\n{self.url}\n"
                f"If the browser is on another machine (SSH), it ends on a page that does not "
                f"load; copy that page's whole address (it starts with http://127.0.0.1:) "
                f"and paste it here.")

    def arrived(self, address: str) -> None:
        if self._answer is None:
            self._answer = address
            self._event.set()

    def paste(self, address: str) -> None:
        address = address.strip()
        query = parse_qs(urlsplit(address).query)
        if "code" not in query and "error" not in query:
            raise AuthError("That address holds no sign-in code; paste the whole address the "
                            "browser ended on (it starts with http://127.0.0.1:).")
        self.arrived(address)

    def cancel(self) -> None:
        self._cancelled = True
        self._event.set()

    def wait(self) -> str:
        try:
            self._event.wait()
        finally:
            self._server.shutdown()
            self._server.server_close()
        if self._cancelled or self._answer is None:
            raise SignInCancelled(f"The {self.side} mailbox's sign-in was cancelled.")
        query = parse_qs(urlsplit(self._answer).query)
        if "error" in query:
            raise AuthError(f"Google did not sign the {self.side} mailbox in: {query['error'][0]}.")
        # oauthlib insists on https; the loopback redirect is http by Google's design
        answer = "https://" + self._answer.split("://", 1)[-1]
        try:
            self._flow.fetch_token(authorization_response=answer)
        except OAuth2Error as e:
            raise AuthError(f"Google refused the sign-in code ({e.error}): sign in again with "
                            f"switchover login {self.side}.") from None
        except requests.RequestException as e:
            raise ConnectError(f"Cannot reach Google's sign-in service ({type(e).__name__}).") from None
        refresh = self._flow.credentials.refresh_token
        if not refresh:
            raise AuthError("Google gave no refresh token; remove switchover's access at "
                            "myaccount.google.com/permissions and sign in again.")
        tokens.store_signin(self.side, self.username, {"provider": "google", "refresh_token": refresh})
        return ""
