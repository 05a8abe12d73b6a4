"""The IMAP connection of a backup or an import job: opened and reopened through the one
reconnect loop (core/net/retry.py), its states published for the faces.

A connection that drops — during login too (issue 9.8) — is tried again with backoff; a
refused login (AuthError: only a real NO to LOGIN) is raised at once; a cancel during
the wait ends it (``Stopped``). imapclient is blocking: opening and closing run in the
job's worker threads.
"""

from __future__ import annotations

from typing import Callable

import imapclient

from ..config import Account
from ..context import Blocking
from ..events import ConnectionState, EventBus
from ..net.imap import close, connect
from ..net.retry import Backoff, reconnect

#: attempts to open a connection before the job gives up (a ConnectError, exit 3)
ATTEMPTS = 4


class Session:
    def __init__(self, account: Account, side: str, bus: EventBus, blocking: Blocking,
                 stopped: Callable[[], bool]) -> None:
        self.account = account
        self.side = side
        self.bus = bus
        self.blocking = blocking
        self.stopped = stopped
        self.client: imapclient.IMAPClient | None = None

    def _state(self, state: str, detail: str) -> None:
        self.bus.publish(ConnectionState(side=self.side, state=state, detail=detail))

    def _connect(self) -> imapclient.IMAPClient:
        client = connect(self.account)
        client.normalise_times = False       # keep INTERNALDATE's zone
        return client

    async def open(self, error: BaseException | None = None) -> imapclient.IMAPClient:
        """Open the connection; ``error`` is what broke the previous one (it sets the
        first wait: a throttling server's hint, else a short pause)."""
        if error is None:
            self._state("connecting", "")

        async def once() -> imapclient.IMAPClient:
            return await self.blocking.run_to_end(self._connect)
        self.client = await reconnect(once, side=self.side, error=error, attempts=ATTEMPTS,
                                      backoff=Backoff(first=0.5, cap=10.0), stopped=self.stopped,
                                      on_state=self._state)
        return self.client

    async def drop(self) -> None:
        """Close the connection (logout, else shut the socket); a closed one is a no-op."""
        client, self.client = self.client, None
        if client is not None:
            await self.blocking.run_to_end(close, client)

    def get(self) -> imapclient.IMAPClient:
        """The open connection (a job calls this only between ``open`` and ``drop``)."""
        if self.client is None:
            raise ConnectionResetError("the connection is closed")
        return self.client
