"""What we know about the common providers: hosts, ports and quirks.

``provider:`` in the config fills the hosts and ports left unset; the quirks shape
how the engine talks to the server (connection caps, MULTIAPPEND, IMAP ID, limits).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Provider:
    key: str
    label: str
    imap_host: str | None
    smtp_host: str | None
    imap_port: int = 993
    smtp_port: int = 465
    smtp_security: str = "ssl"
    max_connections: int = 4
    #: bytes per day the provider lets one account download / upload over IMAP
    daily_download_bytes: int | None = None
    daily_upload_bytes: int | None = None
    max_message_bytes: int | None = None
    gmail_labels: bool = False
    needs_imap_id: bool = False
    auth_hint: str = "the account password"
    autoreply_steps: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    #: change notices (core/notify/pacing.py): messages per minute / hour / day one account
    #: may send, kept under the provider's published limits (None = no limit of that span)
    notice_per_minute: int | None = None
    notice_per_hour: int = 60
    notice_per_day: int = 300


PROVIDERS: dict[str, Provider] = {p.key: p for p in [
    Provider("gmail", "Gmail / Google Workspace", "imap.gmail.com", "smtp.gmail.com",
             smtp_port=465, max_connections=10,
             daily_download_bytes=2500 * 10**6, daily_upload_bytes=500 * 10**6,
             max_message_bytes=25 * 2**20, gmail_labels=True,
             # Workspace: 2,000 messages a day; a consumer @gmail.com: 500 (pacing.py)
             notice_per_hour=200, notice_per_day=2000,
             auth_hint="an app password (with 2-step verification) or an OAuth2 token",
             autoreply_steps="Gmail: Settings → See all settings → General → Vacation responder → on, "
                             "set the last day, paste the notice, Save Changes."),
    Provider("outlook", "Outlook / Microsoft 365", "outlook.office365.com", "smtp.office365.com",
             smtp_port=587, smtp_security="starttls", max_connections=4,
             max_message_bytes=35 * 2**20,
             # Exchange Online: 30 messages a minute, 10,000 recipients a day
             notice_per_minute=30, notice_per_hour=600, notice_per_day=10000,
             auth_hint="an OAuth2 token (basic authentication is switched off for IMAP)",
             autoreply_steps="Outlook on the web: Settings → Mail → Automatic replies → on, "
                             "'Send replies only during a time period', paste the notice, Save."),
    Provider("exmail", "Tencent Exmail (腾讯企业邮)", "imap.exmail.qq.com", "smtp.exmail.qq.com",
             max_connections=3, auth_hint="the client-only password (客户端专用密码)",
             notice_per_hour=100, notice_per_day=1000,
             autoreply_steps="Exmail web: 设置 → 常规 → 自动回复 → 开启, paste the notice, 保存."),
    Provider("qq", "QQ Mail", "imap.qq.com", "smtp.qq.com", max_connections=2,
             notice_per_hour=40, notice_per_day=200,
             auth_hint="the 16-character authorization code (授权码)",
             autoreply_steps="QQ Mail web: 设置 → 常规 → 自动回复 → 启用, paste the notice, 保存更改."),
    Provider("163", "NetEase 163 / 126", "imap.163.com", "smtp.163.com", max_connections=2,
             notice_per_hour=40, notice_per_day=200,
             needs_imap_id=True, auth_hint="the authorization code (授权码)",
             autoreply_steps="163 web: 设置 → 邮箱设置 → 自动回复/转发 → 开启自动回复, paste the notice, 保存."),
    Provider("qiye163", "NetEase Qiye (网易企业邮)", "imap.qiye.163.com", "smtp.qiye.163.com",
             max_connections=2, needs_imap_id=True,
             auth_hint="the client password; the admin may need to allow your IP (ERR.LOGIN.IPDENY)",
             autoreply_steps="Qiye web: 设置 → 自动回复 → 开启, paste the notice, 保存."),
    Provider("aliyun", "Alibaba Mail (阿里企业邮)", "imap.qiye.aliyun.com", "smtp.qiye.aliyun.com",
             max_connections=3, auth_hint="the password; the admin must allow third-party clients",
             autoreply_steps="Alibaba Mail web: 设置 → 自动回复 → 开启, paste the notice, 保存."),
    Provider("zoho", "Zoho Mail", "imappro.zoho.com", "smtppro.zoho.com", max_connections=3,
             notice_per_hour=50, notice_per_day=300,
             auth_hint="an app password (with 2FA)",
             autoreply_steps="Zoho Mail: Settings → Out of Office → on, set the dates, paste the notice, Save."),
    Provider("yandex", "Yandex Mail", "imap.yandex.com", "smtp.yandex.com", max_connections=3,
             auth_hint="an app password or an OAuth2 token",
             autoreply_steps="Yandex Mail: Settings → Message filtering (rules) → Create rule → "
                             "'Reply with the following text', paste the notice, Create rule."),
    Provider("custom", "Self-hosted / other", None, None, max_connections=4),
]}


def get_provider(key: str) -> Provider:
    return PROVIDERS[key]


#: a domain's MX host (shell pattern, lower case) → the provider that receives its mail;
#: the first match wins, so narrower patterns come first (`switchover init`)
MX_PATTERNS: tuple[tuple[str, str], ...] = (
    ("*.mail.protection.outlook.com", "outlook"),
    ("aspmx.l.google.com", "gmail"), ("*.aspmx.l.google.com", "gmail"),
    ("*.googlemail.com", "gmail"), ("smtp.google.com", "gmail"),
    ("mxbiz*.qq.com", "exmail"), ("*.exmail.qq.com", "exmail"), ("mx*.qq.com", "qq"),
    ("qiye163mx*", "qiye163"), ("*.qiye.163.com", "qiye163"),
    ("163mx*.mxmail.netease.com", "163"), ("126mx*.mxmail.netease.com", "163"),
    ("*.mxhichina.com", "aliyun"), ("*.qiye.aliyun.com", "aliyun"),
    ("mx*.zoho.*", "zoho"),
    ("mx.yandex.*", "yandex"), ("*.yandex.net", "yandex"),
)


def provider_from_mx(hosts: list[str]) -> str | None:
    """The provider whose servers receive a domain's mail, from its MX hosts (most
    preferred first); None when no pattern knows them."""
    import fnmatch
    for host in hosts:
        host = host.rstrip(".").lower()
        for pattern, key in MX_PATTERNS:
            if fnmatch.fnmatchcase(host, pattern):
                return key
    return None
