"""Fetching a web page for `switchover scan --url`: the standard library's urllib
(httpx is not a dependency), redirects followed, a 10 s timeout, a size cap, the
charset from the Content-Type header. Every failure is ``Unreadable`` with the reason
("HTTP 404 Not Found", "did not answer within 10 s"), listed like an unreadable file.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

from .piece import Unreadable

TIMEOUT = 10.0
MAX_BYTES = 20 * 2**20
USER_AGENT = "switchover-scan/0.1 (checking a page for an old e-mail address)"


@dataclass(frozen=True)
class Page:
    url: str            # as asked
    final_url: str      # after redirects
    content_type: str
    charset: str | None
    data: bytes


def url_problem(url: str) -> str | None:
    """One sentence when ``url`` cannot be fetched at all (bad input), else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"'{url}' is not a web address; give it as http://… or https://…"
    return None


def fetch(url: str, *, timeout: float = TIMEOUT, max_bytes: int = MAX_BYTES) -> Page:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            data = resp.read(max_bytes + 1)
            headers: Message = resp.headers
            final = resp.geturl()
    except urllib.error.HTTPError as e:
        raise Unreadable(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, socket.gaierror):
            raise Unreadable(f"cannot find the host {urlsplit(url).hostname}") from None
        if isinstance(reason, ssl.SSLError):
            raise Unreadable(f"TLS failed ({getattr(reason, 'reason', None) or reason})") from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise Unreadable(f"did not answer within {timeout:.0f} s") from None
        raise Unreadable(f"cannot connect ({reason})") from None
    except (TimeoutError, socket.timeout):
        raise Unreadable(f"did not answer within {timeout:.0f} s") from None
    except (OSError, ValueError) as e:
        raise Unreadable(f"cannot fetch it ({e})") from None
    if len(data) > max_bytes:
        raise Unreadable(f"larger than {max_bytes // 2**20} MB")
    return Page(url=url, final_url=final, content_type=headers.get_content_type(),
                charset=headers.get_content_charset(), data=data)
