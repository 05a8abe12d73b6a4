"""The composition root: builds the facets with the narrow things each needs and wires
their reactions to each other's events. Faces (the CLI, the dashboard) hold an Engine
and call the facets' public methods; no facet imports this module.

```
Config ─┐
Store ──┼─► Accounts (secrets typed into a face, memory only)   Blocking (worker threads)
Bus ────┘        │                                                   │
                 ▼                                                   ▼
   migration · backups · monitor (watch) · actions · autoreply · correspondents
        │ publish typed events (progress, arrivals, actions, Proven, LogLine)
        ▼
   EventBus ──► faces (pump → panes, CLI progress line)
            ──► checklist (records Proven)      ──► actions (auto rules on ArrivalSeen)
```
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .config import Account, Config
from .context import Accounts, Blocking
from .events import ConnectionState, Event, EventBus, NoticeChanged
from .placements import Placements
from .store import Store

if TYPE_CHECKING:
    from .backup.backups import Backups
    from .checklist import Checklist
    from .migrate.migration import Migration
    from .prepare.letter import Letter
    from .prepare.preflight import Preflight
    from .prepare.scan import Scanner
    from .transition.actions import Actions
    from .transition.autoreply import AutoReply
    from .transition.people import Correspondents
    from .wrapup.archive import Archive
    from .wrapup.closing import Closing
    from .wrapup.schedule import Schedule
    from .transition.watch import Monitor

T = TypeVar("T")


class Engine:
    """What a face holds: the config, the facets, the bus."""

    def __init__(self, config: Config, store: Store, bus: EventBus | None = None) -> None:
        self.config = config
        self.store = store
        self.bus = bus or EventBus()
        self.accounts = Accounts(config)
        self.blocking = Blocking()
        self.placements = Placements(store)
        #: the last connection state of each mailbox, as the facets published it
        self.connection_state: dict[str, str] = {"old": "unknown", "new": "unknown"}
        self.bus.subscribe(self._track_connection)
        self._build()

    def _build(self) -> None:
        """One line per facet: what it is built from is all it can reach. The facets that
        react to events are built here; those that only run when asked (preflight,
        letter, scan, schedule, closing, archive) are built on first use below, so a
        `migrate` or a `watch` never loads what they need (bs4, dnspython, jinja2 …)."""
        from .backup.backups import Backups
        from .checklist import Checklist
        from .migrate.migration import Migration
        from .notify.notices import Notices
        from .transition.actions import Actions
        from .transition.arrivals import Arrivals
        from .transition.autoreply import AutoReply
        from .transition.people import Correspondents
        from .transition.watch import Monitor
        self.arrivals: Arrivals = Arrivals(self.store)
        self.checklist: Checklist = Checklist(self.store, self.bus, self.accounts, self.blocking, self.config,
                                              arrivals=self.arrivals)
        self.correspondents: Correspondents = Correspondents(self.store, self.bus, self.accounts, self.blocking,
                                                             self.config, self.arrivals)
        self.bus.subscribe_async((NoticeChanged,), self.correspondents.on_notice)   # notice states, bounces
        self.migration: Migration = Migration(self.store, self.bus, self.accounts, self.blocking,
                                              self.config, self.placements)
        self.backups: Backups = Backups(self.store, self.bus, self.accounts, self.blocking, self.config,
                                        self.placements)
        self.actions: Actions = Actions(self.store, self.bus, self.accounts, self.blocking, self.config,
                                        self.arrivals, self.correspondents, self.placements)
        self.monitor: Monitor = Monitor(self.store, self.bus, self.accounts, self.blocking, self.config,
                                        self.arrivals, self.correspondents, self.migration.snapshot)
        self.autoreply: AutoReply = AutoReply(self.store, self.bus, self.accounts, self.blocking, self.config)
        # the campaign hears arrivals (bounces of its notices) while a watch runs
        self.notices: Notices = Notices(self.store, self.bus, self.accounts, self.blocking, self.config,
                                        self.placements, self.correspondents)
        # a person's language is kept when the notice has texts in it (a user's own
        # templates may add languages); else the audience says English. Asked when an
        # audience is built, so opening the engine never loads the templates
        self.correspondents.template_languages = lambda: self.notices.composer.languages()

    # -- facets built on first use ------------------------------------------------------
    @functools.cached_property
    def preflight(self) -> "Preflight":
        from .prepare.preflight import Preflight
        return Preflight(self.store, self.bus, self.accounts, self.blocking, self.config)

    @functools.cached_property
    def letter(self) -> "Letter":
        from .prepare.letter import Letter
        return Letter(self.store, self.bus, self.accounts, self.blocking, self.config)

    @functools.cached_property
    def scan(self) -> "Scanner":
        from .prepare.scan import Scanner
        return Scanner(self.store, self.bus, self.blocking, self.config)

    @functools.cached_property
    def schedule(self) -> "Schedule":
        from .wrapup.schedule import Schedule
        return Schedule(self.config, self.monitor.last_checked)

    @functools.cached_property
    def closing(self) -> "Closing":
        from .wrapup.closing import Closing
        return Closing(self.config, self.schedule, self.arrivals, self.correspondents,
                       self.checklist, self.backups)

    @functools.cached_property
    def archive(self) -> "Archive":
        from .wrapup.archive import Archive
        return Archive(self.bus, self.config, self.backups, self.closing, self.arrivals,
                       self.correspondents, self.checklist, self.migration)

    # -- life cycle ---------------------------------------------------------------------
    @classmethod
    async def open(cls, config: Config, bus: EventBus | None = None) -> "Engine":
        store = await Store.open(config.state)
        engine = cls(config, store, bus)
        engine.bus.attach(asyncio.get_running_loop())
        return engine

    async def close(self) -> None:
        """Stop every job at a safe point, let event reactions finish, close the state."""
        self.monitor.stop()
        self.notices.cancel()
        self.migration.stop()
        self.backups.stop()
        try:
            await self.actions.stop()
        except Exception:
            pass
        await self.backups.join()      # the batch in flight ends and the run is recorded
        try:
            await self.bus.drain()
        finally:
            await self.store.close()
            self.blocking.shutdown()

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- for faces ----------------------------------------------------------------------
    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def _track_connection(self, event: Event) -> None:
        if isinstance(event, ConnectionState):
            self.connection_state[event.side] = event.state

    async def changed_elsewhere(self) -> bool:
        """True when another process (a headless ``watch``, a CLI command) wrote to the
        state file since the last call; a face polls this about once a second and
        re-reads what it shows."""
        return await self.store.changed_elsewhere()

    def account(self, side: str) -> Account:
        """The account of ``side`` with any secret the user typed into a face."""
        return self.accounts.account(side)

    def needs_secret(self, side: str) -> bool:
        return self.accounts.needs_secret(side)

    def set_secret(self, side: str, secret: str) -> None:
        """Keep a secret typed by the user, in memory only."""
        self.accounts.set_secret(side, secret)

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # transitional: facets get ``Blocking`` directly once they are built from parts
        return await self.blocking.run(fn, *args, **kwargs)
