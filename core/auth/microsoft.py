"""Microsoft 365 sign-in through msal: the device-code flow (a URL and a code the person
types in any browser, so it works over SSH and tmux) and the silent refresh on every
(re)connect. msal's ``SerializableTokenCache`` is kept in the OS keyring (core/auth/tokens.py),
never in a plain file.

Scopes: IMAP and SMTP on outlook.office.com; msal adds offline_access (the refresh token),
openid and profile itself.

Only the account and the refresh token go to the keyring (``_persisted``): access tokens
live in memory (a new process refreshes once), which also keeps the entry under the 2.5 KB
a Windows Credential Manager entry holds.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import msal
import msal.exceptions
import requests

from ..errors import AuthError, ConnectError
from . import tokens
from .oauth2 import SignInCancelled, not_signed_in, same_user, sign_in_again
from .settings import OAuth2Settings

SCOPES = ["https://outlook.office.com/IMAP.AccessAsUser.All",
          "https://outlook.office.com/SMTP.Send"]
LOGIN_HOST = "https://login.microsoftonline.com"
#: errors of the token endpoint that mean the refresh token is no good any more
_SIGN_IN_AGAIN = {"invalid_grant", "interaction_required", "consent_required", "login_required"}
#: errors that mean "not now": a connection problem, tried again like one
_NOT_NOW = {"temporarily_unavailable", "server_error"}


def authority_url(settings: OAuth2Settings) -> str:
    return f"{settings.authority or LOGIN_HOST}/{settings.tenant}"


def _app(settings: OAuth2Settings, cache: msal.SerializableTokenCache) -> msal.PublicClientApplication:
    """msal's app; building it fetches the tenant's OpenID configuration (network)."""
    try:
        return msal.PublicClientApplication(
            settings.client_id, authority=authority_url(settings), token_cache=cache,
            # another cloud's login host needs no look-up at login.microsoftonline.com
            instance_discovery=False if settings.authority else None)
    except requests.RequestException as e:
        raise ConnectError(f"Cannot reach Microsoft's sign-in service at "
                           f"{settings.authority or LOGIN_HOST} ({type(e).__name__}).") from None
    except ValueError as e:
        raise AuthError(f"Microsoft does not know the tenant '{settings.tenant}' "
                        f"({str(e)[:160]}); check oauth2.tenant.") from None


def _refused(side: str, result: dict[str, Any]) -> ConnectError:
    code = str(result.get("error", ""))
    words = " ".join(str(result.get("error_description") or code).split())[:200]
    if code in _NOT_NOW:
        return ConnectError(f"Microsoft's sign-in service cannot refresh the {side} mailbox's "
                            f"token now ({words}).")
    if code in _SIGN_IN_AGAIN:
        return sign_in_again(side, f"is no longer accepted by Microsoft ({code})")
    return AuthError(f"Microsoft refused the {side} mailbox's sign-in: {words}.")


class MicrosoftTokens:
    """The access token of one account: msal's cache from the keyring, refreshed silently."""

    def __init__(self, side: str, username: str, settings: OAuth2Settings) -> None:
        self.side, self.username, self.settings = side, username, settings
        self._cache = msal.SerializableTokenCache()
        self._app: msal.PublicClientApplication | None = None
        self._lock = threading.Lock()
        self._loaded = ""           # the keyring's value this cache was last read from / saved as

    def access_token(self) -> str:
        with self._lock:
            stored = tokens.read_signin(self.side, self.username)
            if not stored or stored.get("provider") != "microsoft" or not stored.get("cache"):
                raise not_signed_in(self.side)
            if stored["cache"] != self._loaded:     # first use, or another process refreshed
                self._cache.deserialize(stored["cache"])
                self._loaded = stored["cache"]
            if self._app is None:
                self._app = _app(self.settings, self._cache)
            accounts = self._app.get_accounts()
            account = next((a for a in accounts if same_user(a.get("username", ""), self.username)),
                           accounts[0] if accounts else None)
            if account is None:
                raise sign_in_again(self.side, "holds no account")
            try:
                result = self._app.acquire_token_silent_with_error(SCOPES, account=account)
            except requests.RequestException as e:
                raise ConnectError(f"Cannot reach Microsoft's sign-in service to refresh the "
                                   f"{self.side} mailbox's token ({type(e).__name__}).") from None
            except (msal.exceptions.MsalServiceError, ValueError) as e:   # 5xx, or not JSON
                raise _refused(self.side, {"error": "temporarily_unavailable",
                                           "error_description": str(e)}) from None
            if not result:
                raise sign_in_again(self.side, "has no refresh token")
            if "access_token" not in result:
                raise _refused(self.side, result)
            self._loaded = _save(self.side, self.username, self._cache) or self._loaded
            return str(result["access_token"])


def _persisted(cache: msal.SerializableTokenCache) -> str:
    """The cache without its access and ID tokens (see the module docstring)."""
    data = json.loads(cache.serialize())
    for kind in ("AccessToken", "IdToken"):
        data.pop(kind, None)
    return json.dumps(data, separators=(",", ":"))


def _save(side: str, username: str, cache: msal.SerializableTokenCache) -> str:
    """Keep the cache's refresh token in the keyring when it changed; the value kept, or ""."""
    if not cache.has_state_changed:
        return ""
    value = _persisted(cache)
    tokens.store_signin(side, username, {"provider": "microsoft", "cache": value})
    cache.has_state_changed = False
    return value


class MicrosoftSignIn:
    """The device-code flow: show ``url`` and ``code``; ``wait`` polls until the person
    has signed in there, then keeps the tokens in the keyring."""

    accepts_paste = False

    def __init__(self, side: str, username: str, app: msal.PublicClientApplication,
                 cache: msal.SerializableTokenCache, flow: dict[str, Any]) -> None:
        self.side, self.username = side, username
        self._app, self._cache, self._flow = app, cache, flow
        self._cancelled = False
        self.url = str(flow.get("verification_uri", ""))
        self.code = str(flow.get("user_code", ""))
        self.expires_in = int(flow.get("expires_in", 900))

    @classmethod
    def begin(cls, side: str, username: str, settings: OAuth2Settings) -> "MicrosoftSignIn":
        tokens.read_secret(side, username)      # no keyring: say so before the person signs in
        cache = msal.SerializableTokenCache()
        app = _app(settings, cache)
        try:
            flow = app.initiate_device_flow(scopes=SCOPES)
        except requests.RequestException as e:
            raise ConnectError(f"Cannot reach Microsoft's sign-in service ({type(e).__name__}).") from None
        if "user_code" not in flow:
            raise _refused(side, flow)
        return cls(side, username, app, cache, flow)

    def instructions(self) -> str:
        return (f"On any device, open {self.url} and enter the code {self.code}, then sign in "
                f"as {self.username} (the code expires in {self.expires_in // 60} minutes).")

    def wait(self) -> str:
        try:
            result = self._app.acquire_token_by_device_flow(self._flow)
        except requests.RequestException as e:
            raise ConnectError(f"Lost Microsoft's sign-in service while waiting ({type(e).__name__}).") from None
        if self._cancelled:
            raise SignInCancelled(f"The {self.side} mailbox's sign-in was cancelled.")
        if "access_token" not in result:
            if result.get("error") in ("expired_token", "authorization_pending"):
                raise AuthError(f"The code {self.code} expired before the sign-in; run "
                                f"switchover login {self.side} again.")
            raise _refused(self.side, result)
        who = str((result.get("id_token_claims") or {}).get("preferred_username", ""))
        if not same_user(who, self.username):
            raise AuthError(f"You signed in as {who}, but the {self.side} mailbox is "
                            f"{self.username}; sign in again as {self.username} (or change "
                            f"{self.side}.username).")
        self._cache.has_state_changed = True
        _save(self.side, self.username, self._cache)
        return who

    def paste(self, address: str) -> None:
        raise AuthError("Microsoft's sign-in needs no address pasted: enter the code on the page.")

    def cancel(self) -> None:
        self._cancelled = True
        self._flow["expires_at"] = 0        # msal's documented way to end the polling
