"""The narrow shared parts every facet may be built from: the accounts (with secrets a
person typed, memory only) and the worker threads for blocking protocol libraries.
Facets take these (plus the store, the bus and the collaborators they really use);
nothing in core imports the engine.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, TypeVar

from .config import Account, Config

T = TypeVar("T")


async def to_the_end(work: Awaitable[T]) -> T:
    """Await ``work``; a cancelled caller still waits for it to end before the
    cancellation goes on (what is under way finishes and is recorded)."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


class Accounts:
    """The two accounts of the config, with any secret the person typed into a face
    (kept in memory only, never written anywhere)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._secrets: dict[str, str] = {}

    def account(self, side: str) -> Account:
        acct = self._config.account(side)
        secret = self._secrets.get(side)
        return acct.with_secret(secret) if secret else acct

    def needs_secret(self, side: str) -> bool:
        return side not in self._secrets and not self._config.account(side).has_secret_source()

    def set_secret(self, side: str, secret: str) -> None:
        self._secrets[side] = secret


class Blocking:
    """Worker threads for the blocking protocol libraries (imapclient, smtplib)."""

    def __init__(self, workers: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="switchover")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def run_to_end(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``run``, except that a cancelled caller still waits for ``fn`` to end before
        the cancellation goes on: a batch being written completes, and nothing the caller
        cleans up next (a connection, an index) is closed under it."""
        return await to_the_end(self.run(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
