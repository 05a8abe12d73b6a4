"""The engine faces drive: one object holding the config, the state file, the event bus
and the facets that do the work (migration, backups, monitor, actions, auto-reply,
checklist, correspondents).

Blocking IMAP/SMTP work runs in worker threads (``run_blocking``); everything a face
calls is a coroutine or a plain, quick method. Faces subscribe to ``bus`` for events.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .config import Account, Config
from .events import ConnectionState, Event, EventBus
from .store import Store

if TYPE_CHECKING:  # facets are imported lazily so a broken one doesn't stop the others
    from .actions import Actions
    from .autoreply import AutoReply
    from .backup import Backups
    from .checklist import Checklist
    from .correspondents import Correspondents
    from .migrate import Migration
    from .monitor import Monitor
    from .placements import Placements

T = TypeVar("T")


class Engine:
    def __init__(self, config: Config, store: Store, bus: EventBus | None = None) -> None:
        self.config = config
        self.store = store
        self.bus = bus or EventBus()
        self._secrets: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="switchover")
        self.connection_state: dict[str, str] = {"old": "unknown", "new": "unknown"}

    # -- life cycle ---------------------------------------------------------------------
    @classmethod
    async def open(cls, config: Config, bus: EventBus | None = None) -> "Engine":
        store = await Store.open(config.state)
        engine = cls(config, store, bus)
        engine.bus.attach(asyncio.get_running_loop())
        return engine

    async def close(self) -> None:
        for name in ("monitor", "migration", "actions", "backups"):
            facet = self.__dict__.get(name)
            stop = getattr(facet, "stop", None)
            if stop is not None:
                try:
                    res = stop()
                    if asyncio.iscoroutine(res):
                        await res
                except Exception:
                    pass
        await self.store.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- helpers for facets -------------------------------------------------------------
    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def publish(self, event: Event) -> None:
        if isinstance(event, ConnectionState):
            self.connection_state[event.side] = event.state
        self.bus.publish(event)

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def changed_elsewhere(self) -> bool:
        """True when another process (a headless ``watch``, a CLI command) wrote to the
        state file since the last call; a face polls this about once a second and
        re-reads what it shows."""
        return await self.store.changed_elsewhere()

    def account(self, side: str) -> Account:
        """The account of ``side`` with any secret the user typed into a face."""
        acct = self.config.account(side)
        secret = self._secrets.get(side)
        return acct.with_secret(secret) if secret else acct

    def needs_secret(self, side: str) -> bool:
        return side not in self._secrets and not self.config.account(side).has_secret_source()

    def set_secret(self, side: str, secret: str) -> None:
        """Keep a secret typed by the user, in memory only."""
        self._secrets[side] = secret

    # -- facets (lazy) ------------------------------------------------------------------
    @functools.cached_property
    def migration(self) -> "Migration":
        from .migrate import Migration
        return Migration(self)

    @functools.cached_property
    def backups(self) -> "Backups":
        from .backup import Backups
        return Backups(self)

    @functools.cached_property
    def monitor(self) -> "Monitor":
        from .monitor import Monitor
        return Monitor(self)

    @functools.cached_property
    def actions(self) -> "Actions":
        from .actions import Actions
        return Actions(self)

    @functools.cached_property
    def autoreply(self) -> "AutoReply":
        from .autoreply import AutoReply
        return AutoReply(self)

    @functools.cached_property
    def checklist(self) -> "Checklist":
        from .checklist import Checklist
        return Checklist(self)

    @functools.cached_property
    def placements(self) -> "Placements":
        from .placements import Placements
        return Placements(self.store)

    @functools.cached_property
    def correspondents(self) -> "Correspondents":
        from .correspondents import Correspondents
        return Correspondents(self)
