"""The sign-in part of an account's config: ``auth: password | oauth2`` and the
``oauth2: {provider, client_id, tenant, client_secret}`` block, read and validated with
key + line like the rest of the config (core/config.py calls ``read_auth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..configread import Keys, Reader

PROVIDERS = ("microsoft", "google")
OAUTH2_KEYS = {"provider", "client_id", "tenant", "client_secret", "authority", "auth_uri",
               "token_uri"}
#: keys that only mean something for one provider
_ONLY = {"tenant": "microsoft", "authority": "microsoft", "auth_uri": "google", "token_uri": "google"}


@dataclass(frozen=True)
class OAuth2Settings:
    """How an ``auth: oauth2`` account signs in: the provider's app registration.

    ``client_secret`` is the non-secret "secret" of a Google installed-app client (never
    needed for Microsoft). ``authority`` (Microsoft, instead of
    https://login.microsoftonline.com) and ``auth_uri`` / ``token_uri`` (Google) replace the
    public endpoints — the tests point them at a local identity provider; the scopes stay
    those of outlook.office.com / mail.google.com."""
    provider: str                   # microsoft | google
    client_id: str
    tenant: str = "organizations"
    client_secret: str | None = field(default=None, repr=False)
    authority: str | None = None
    auth_uri: str | None = None
    token_uri: str | None = None


def read_auth(r: Reader, d: Keys, side: str) -> tuple[str, OAuth2Settings | None]:
    """``auth`` and its ``oauth2`` block. ``auth: oauth2`` takes either the block (switchover
    signs in, ``switchover login``) or an ``oauth2_token_command``; it has no password."""
    auth = r.string(d, side, "auth", "password") or "password"
    if auth not in ("password", "oauth2"):
        raise r.fail(f"{side}.auth", f"must be password or oauth2, not '{auth}'.")
    has_block = d.get("oauth2") is not None
    if auth == "password":
        if has_block:
            raise r.fail(f"{side}.oauth2", f"is set but {side}.auth is password; write "
                                           f"auth: oauth2 or remove the block.")
        return auth, None
    for key in ("password_env", "password_command", "password", "password_keyring"):
        if d.get(key):
            raise r.fail(f"{side}.{key}", f"conflicts with {side}.auth: oauth2 (an OAuth2 "
                                          f"account signs in; it has no password).")
    if d.get("oauth2_token_command"):
        if has_block:
            raise r.fail(f"{side}.oauth2", f"conflicts with {side}.oauth2_token_command; keep "
                                           f"one way to get the token.")
        return auth, None
    if not has_block:
        raise r.fail(f"{side}.oauth2", "is missing: auth: oauth2 needs {provider: microsoft or "
                                       "google, client_id: ...} (or an oauth2_token_command).")
    return auth, _block(r, d, f"{side}.oauth2")


def _block(r: Reader, d: Keys, key: str) -> OAuth2Settings:
    o = r.mapping(d.get("oauth2"), key, OAUTH2_KEYS)
    provider = r.text(o, key, "provider").lower()
    if provider not in PROVIDERS:
        raise r.fail(f"{key}.provider", f"must be microsoft or google, not '{provider}'.")
    for name, who in _ONLY.items():
        if o.get(name) is not None and provider != who:
            raise r.fail(f"{key}.{name}", f"is only for provider {who}.")
    urls = {}
    for name in ("authority", "auth_uri", "token_uri"):
        url = r.string(o, key, name)
        if url is not None and not url.startswith("https://"):
            raise r.fail(f"{key}.{name}", f"must be an https:// address, not '{url}'.")
        urls[name] = url.rstrip("/") if url else None
    tenant = r.string(o, key, "tenant", "organizations") or "organizations"
    if "/" in tenant or " " in tenant:
        raise r.fail(f"{key}.tenant", f"'{tenant}' is not a tenant (a domain like "
                                      f"company.example, a tenant id, or organizations).")
    return OAuth2Settings(provider=provider, client_id=r.text(o, key, "client_id"),
                          tenant=tenant, client_secret=r.string(o, key, "client_secret"), **urls)
