"""OAuth2 for tests: a local identity provider on loopback and a Dovecot that accepts
XOAUTH2 / OAUTHBEARER tokens only when that provider says they are valid.

Owns:
- ``OAuthServer``: HTTPS (a self-signed certificate for 127.0.0.1; clients trust it through
  ``REQUESTS_CA_BUNDLE`` = ``ca_path``) with the endpoints msal and google-auth-oauthlib
  call — Microsoft's OpenID configuration, device code and token endpoints under
  ``/<tenant>/``, Google's ``/auth`` (consents at once and redirects, as a browser would
  see) and ``/token`` (authorization_code with PKCE, refresh_token, device_code grants) —
  plus a plain-HTTP ``/introspect`` (RFC 7662) for Dovecot. Access tokens expire after
  ``expires_in`` seconds and are then refused by introspection; ``revoke(user)`` kills a
  user's refresh tokens. ``requests`` counts what was asked, by grant.
- ``start_oauth2_dovecot(oauth)``: its own Dovecot instance (the shared fixture is not
  touched) with ``passdb { driver = oauth2 }`` validating against ``oauth.introspect_url``.
- the fixtures ``oauth`` (module), ``oauth_dovecot`` (module) and ``test_keyring`` (a file
  keyring per test, tests/support/keyring_file.py); import them into a test module or
  conftest to use them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import keyring
import pytest

from tests.support.keyring_file import FileKeyring
from tests.support.servers_base import HOST
from tests.support.servers_dovecot import DovecotServer, dovecot_available


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, written to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class OAuthServer:
    """A small identity provider; see the module docstring."""

    def __init__(self, *, expires_in: int = 3600, tenant: str = "organizations",
                 rotate_refresh: bool = False) -> None:
        self.expires_in = expires_in
        self.tenant = tenant
        self.rotate_refresh = rotate_refresh
        self.dir = Path(tempfile.mkdtemp(prefix="swoauth-"))
        self.ca_path, key_path = self_signed(self.dir)
        self.lock = threading.Lock()
        self.access: dict[str, tuple[str, float]] = {}     # token -> (user, expires at)
        self.refresh: dict[str, str] = {}                   # refresh token -> user
        self.devices: dict[str, dict[str, Any]] = {}        # device code -> state
        self.codes: dict[str, dict[str, Any]] = {}          # auth code -> state
        self.consent_as: str | None = None                  # who /auth signs in (Google)
        self.requests: Counter[str] = Counter()
        self.down = False                                   # True: the token endpoint answers 503
        self.last_device_scope = ""                         # what the last device-code request asked
        handler = _handler(self)
        self._https = http.server.ThreadingHTTPServer((HOST, 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.ca_path, key_path)
        self._https.socket = ctx.wrap_socket(self._https.socket, server_side=True)
        self._http = http.server.ThreadingHTTPServer((HOST, 0), handler)
        for srv in (self._https, self._http):
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.base = f"https://{HOST}:{self._https.server_address[1]}"
        self.introspect_url = f"http://{HOST}:{self._http.server_address[1]}/introspect"

    # -- what a test configures ------------------------------------------------------------
    def microsoft(self, client_id: str = "test-client") -> dict[str, Any]:
        """An ``oauth2:`` config block for provider microsoft pointed here."""
        return {"provider": "microsoft", "client_id": client_id, "tenant": self.tenant,
                "authority": self.base}

    def google(self, client_id: str = "test-client.apps.example") -> dict[str, Any]:
        return {"provider": "google", "client_id": client_id, "client_secret": "not-secret",
                "auth_uri": f"{self.base}/auth", "token_uri": f"{self.base}/token"}

    def approve(self, user_code: str, user: str) -> None:
        """The person typed the code on the provider's page and signed in as ``user``."""
        with self.lock:
            for state in self.devices.values():
                if state["user_code"] == user_code:
                    state["user"] = user
                    return
        raise KeyError(user_code)

    def revoke(self, user: str, *, access_too: bool = False) -> None:
        """An admin revoked the user's sessions: the refresh tokens die (access tokens live
        until they expire, as Microsoft's and Google's do, unless ``access_too``)."""
        with self.lock:
            self.refresh = {k: v for k, v in self.refresh.items() if v != user}
            if access_too:
                self.access = {k: v for k, v in self.access.items() if v[0] != user}

    def valid(self, token: str) -> str | None:
        with self.lock:
            user, until = self.access.get(token, ("", 0.0))
        return user if until > time.time() else None

    def stop(self) -> None:
        for srv in (self._https, self._http):
            srv.shutdown()
            srv.server_close()

    # -- answers ---------------------------------------------------------------------------
    def _tokens(self, user: str, client_id: str, refresh: str | None = None) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(16)
        if refresh is None or self.rotate_refresh:
            refresh = "rt-" + secrets.token_urlsafe(16)
        now = int(time.time())
        with self.lock:
            self.access[access] = (user, time.time() + self.expires_in)
            self.refresh[refresh] = user
        claims = {"iss": self.issuer, "aud": client_id, "iat": now, "nbf": now,
                  "exp": now + 3600, "preferred_username": user, "oid": "oid-" + user,
                  "tid": "tid-test", "sub": "sub-" + user}
        id_token = ".".join((_b64(b'{"alg":"none","typ":"JWT"}'),
                             _b64(json.dumps(claims).encode()), ""))
        client_info = _b64(json.dumps({"uid": "oid-" + user, "utid": "tid-test"}).encode())
        return {"token_type": "Bearer", "access_token": access, "refresh_token": refresh,
                "expires_in": self.expires_in, "ext_expires_in": self.expires_in,
                "id_token": id_token, "client_info": client_info}

    @property
    def issuer(self) -> str:
        return f"{self.base}/{self.tenant}/v2.0"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        self.requests[grant] += 1
        if self.down:
            return 503, {"error": "temporarily_unavailable"}
        client = form.get("client_id", "")
        if grant == "refresh_token":
            with self.lock:
                user = self.refresh.pop(form.get("refresh_token", ""), None) if self.rotate_refresh \
                    else self.refresh.get(form.get("refresh_token", ""))
            if user is None:
                return 400, {"error": "invalid_grant",
                             "error_description": "AADSTS70008: The refresh token has expired or was revoked."}
            answer = self._tokens(user, client, form["refresh_token"])
            return 200, {**answer, "scope": form["scope"]} if form.get("scope") else answer
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            state = self.devices.get(form.get("device_code", ""))
            if state is None:
                return 400, {"error": "expired_token"}
            if state["user"] is None:
                return 400, {"error": "authorization_pending"}
            del self.devices[form["device_code"]]
            return 200, {**self._tokens(state["user"], client), "scope": state["scope"]}
        if grant == "authorization_code":
            state = self.codes.pop(form.get("code", ""), None)
            if state is None or state["redirect_uri"] != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant"}
            verifier = form.get("code_verifier", "")
            if _b64(hashlib.sha256(verifier.encode()).digest()) != state["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE mismatch"}
            return 200, {**self._tokens(state["user"], client), "scope": state["scope"]}
        return 400, {"error": "unsupported_grant_type"}

    def device(self, form: dict[str, str]) -> dict[str, Any]:
        code, user_code = secrets.token_urlsafe(12), secrets.token_hex(4).upper()
        self.devices[code] = {"user_code": user_code, "user": None, "scope": form.get("scope", "")}
        self.last_device_scope = form.get("scope", "")
        self.requests["devicecode"] += 1
        return {"device_code": code, "user_code": user_code,
                "verification_uri": f"{self.base}/devicelogin", "expires_in": 900, "interval": 1,
                "message": f"To sign in, open {self.base}/devicelogin and enter the code {user_code}."}

    def consent(self, query: dict[str, str]) -> str:
        """Google's consent page: signs ``consent_as`` (or the login hint) in at once and
        answers with the redirect a browser would follow."""
        user = self.consent_as or query.get("login_hint", "")
        code = "code-" + secrets.token_urlsafe(12)
        self.codes[code] = {"user": user, "redirect_uri": query.get("redirect_uri"),
                            "challenge": query.get("code_challenge", ""),
                            "scope": query.get("scope", "")}
        return f"{query['redirect_uri']}?{urlencode({'state': query.get('state', ''), 'code': code})}"


def _handler(server: OAuthServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            size = int(self.headers.get("Content-Length") or 0)
            return {k: v[0] for k, v in parse_qs(self.rfile.read(size).decode()).items()}

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path.endswith("/.well-known/openid-configuration"):
                base = f"{server.base}/{server.tenant}"
                self._json(200, {"issuer": server.issuer,
                                 "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                 "token_endpoint": f"{base}/oauth2/v2.0/token",
                                 "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"})
            elif url.path == "/auth":
                self.send_response(302)
                self.send_header("Location", server.consent(query))
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            path, form = urlsplit(self.path).path, self._form()
            if path.endswith("/token"):
                self._json(*server.token(form))
            elif path.endswith("/devicecode"):
                self._json(200, server.device(form))
            elif path == "/introspect":
                server.requests["introspect"] += 1
                user = server.valid(form.get("token", ""))
                self._json(200, {"active": True, "email": user} if user else {"active": False})
            else:
                self._json(404, {"error": "not_found"})

    return Handler


_PASSDB = """\
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {conf}
}}
"""

_OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
username_attribute = email
active_attribute = active
active_value = true
"""


def start_oauth2_dovecot(oauth: OAuthServer) -> DovecotServer:
    """A Dovecot of its own whose logins by token are checked by ``oauth``'s introspection
    (passwords still work through the usual passwd-file passdb)."""
    conf = oauth.dir / "dovecot-oauth2.conf.ext"
    conf.write_text(_OAUTH2_CONF.format(url=oauth.introspect_url))
    conf.chmod(0o644)
    oauth.dir.chmod(0o755)
    return DovecotServer(outbox=False, extra_conf=_PASSDB.format(conf=conf))


@pytest.fixture(scope="module")
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer(expires_in=3600)
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(server.ca_path)    # msal and google-auth trust it
    try:
        yield server
    finally:
        server.stop()
        if before is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = before


@pytest.fixture(scope="module")
def oauth_dovecot(oauth: OAuthServer) -> Iterator[DovecotServer]:
    if not dovecot_available():
        pytest.skip("Dovecot is not installed (its oauth2 passdb validates the tokens)")
    server = start_oauth2_dovecot(oauth)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def test_keyring(tmp_path: Path) -> Iterator[FileKeyring]:
    from switchover.core.auth.oauth2 import forget_sources
    before = keyring.get_keyring()
    backend = FileKeyring(tmp_path / "keyring.json")
    keyring.set_keyring(backend)
    forget_sources()
    try:
        yield backend
    finally:
        keyring.set_keyring(before)
        forget_sources()
