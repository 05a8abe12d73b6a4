"""The one way switchover waits and tries again after a connection trouble.

Every job that holds connections — the migration's lanes, the watch, backups and
imports — reopens a dropped connection through :func:`reconnect`: exponential backoff
with a cap, the server's own hint when it throttles ("Request is throttled ... backoff
30"), stop- and wake-aware waits, connection states published for the faces, and a
clear rule for refused logins (raised at once, or — for the months-long watch — retried
slowly until the person types a new password). Nothing else sleeps and retries.
"""

from __future__ import annotations

import asyncio
import re
from typing import Awaitable, Callable, TypeVar

import imapclient

from ..errors import AuthError, ConfigError, ConnectError, ThrottledError

T = TypeVar("T")

_THROTTLE = re.compile(rb"throttl|\[LIMIT\]|\[UNAVAILABLE\]|too many|rate limit|try again later|"
                       rb"bandwidth|System Error", re.I)
_RETRY_AFTER = re.compile(rb"(?:backoff|retry)[^0-9]{0,20}(\d+)", re.I)


class Stopped(Exception):
    """The job was asked to stop while it waited to reconnect."""


class Backoff:
    """Exponential backoff with a cap: first, 2×first, 4×first, ... up to ``cap`` seconds."""

    def __init__(self, first: float = 1.0, cap: float = 120.0) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def next(self) -> float:
        d = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return d

    def reset(self) -> None:
        self.delay = self.first


def is_throttle(exc: BaseException) -> bool:
    """The server asks us to slow down (words providers use for it)."""
    if isinstance(exc, ThrottledError):
        return True
    return bool(_THROTTLE.search(str(exc).encode(errors="replace")))


def retry_after(exc: BaseException, default: float) -> float:
    """The server's back-off hint in seconds (milliseconds when it is a big number)."""
    if isinstance(exc, ThrottledError):
        return exc.retry_after
    m = _RETRY_AFTER.search(str(exc).encode(errors="replace"))
    if m:
        value = int(m.group(1))
        return value / 1000 if value > 1000 else float(value)
    return default


def is_connection_error(exc: BaseException) -> bool:
    """True when the connection is gone and a new one should be opened."""
    if isinstance(exc, (OSError, EOFError, imapclient.IMAPClient.AbortError, ThrottledError)):
        return True
    return is_throttle(exc)


def wait_after(exc: BaseException, backoff: Backoff) -> float:
    """How long to wait before the next attempt after ``exc``."""
    step = backoff.next()
    return retry_after(exc, step) if is_throttle(exc) else step


async def pause(seconds: float, *, stopped: Callable[[], bool] | None = None,
                wake: asyncio.Event | None = None) -> None:
    """Sleep ``seconds``, cut short by ``wake``; raise Stopped when ``stopped()``."""
    if stopped is not None and stopped():
        raise Stopped()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        left = end - loop.time()
        if left <= 0:
            break
        step = min(left, 0.25)
        if wake is not None:
            try:
                await asyncio.wait_for(wake.wait(), step)
            except asyncio.TimeoutError:
                pass
            else:
                wake.clear()
                break
        else:
            await asyncio.sleep(step)
        if stopped is not None and stopped():
            raise Stopped()
    if stopped is not None and stopped():
        raise Stopped()


async def reconnect(open_once: Callable[[], Awaitable[T]], *, side: str,
                    error: BaseException | None = None, backoff: Backoff | None = None,
                    attempts: int | None = 10, auth_retry: float | None = None,
                    stopped: Callable[[], bool] | None = None, wake: asyncio.Event | None = None,
                    on_state: Callable[[str, str], None] | None = None) -> T:
    """Open a connection with ``open_once`` until it works.

    ``error`` is what broke the previous connection (its throttle hint sets the first
    wait; without it the first attempt is immediate). ``attempts`` None means forever.
    A refused login (AuthError) or a config problem is raised at once — unless
    ``auth_retry`` is set, then it is retried every ``auth_retry`` seconds (the watch
    waits for the person to type a new password; ``wake`` cuts the wait short).
    ``on_state(state, detail)`` hears "reconnecting", "auth failed" and "connected".
    """
    backoff = backoff or Backoff(first=0.2, cap=30.0)
    last: BaseException | None = error
    delay = wait_after(error, backoff) if error is not None and is_throttle(error) else (
        0.05 if error is not None else 0.0)
    tries = 0
    while True:
        if delay:
            await pause(delay, stopped=stopped, wake=wake)
        elif stopped is not None and stopped():
            raise Stopped()
        tries += 1
        try:
            conn = await open_once()
        except (AuthError, ConfigError) as e:
            if on_state is not None:
                on_state("auth failed", str(e))
            if auth_retry is None:
                raise
            last, delay = e, max(auth_retry, backoff.next())
            continue
        except ConnectError as e:
            last = e
        except Exception as e:  # noqa: BLE001 - a dropped socket has many shapes
            if not is_connection_error(e):
                raise
            last = e
        else:
            if on_state is not None:
                on_state("connected", "")
            return conn
        if attempts is not None and tries >= attempts:
            if isinstance(last, ConnectError):
                raise last
            raise ConnectError(f"The {side} mailbox kept dropping the connection ({last}).")
        if on_state is not None:
            on_state("reconnecting", str(last)[:200])
        delay = wait_after(last, backoff)
