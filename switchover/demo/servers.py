"""The demo's real protocol servers, run in-process on loopback.

Owns: one background thread with its own asyncio loop running
  * two pymap IMAP servers (in-memory "dict" backend), the *old* and the *new* mailbox,
    one user each, LOGIN allowed without TLS (loopback only);
  * a ManageSieve listener (RFC 5804) on the old server, only when pymap's optional
    ``sievelib`` dependency is installed (it is not by default: ``sieve_port`` is None);
  * an aiosmtpd SMTP server (AUTH PLAIN/LOGIN without TLS, checked against the two
    users) that delivers recipients of the old/new address into the matching INBOX
    and keeps everything else, bounded, as "sent to the outside world".

Messages are injected straight into pymap's backend objects (no IMAP round trip), with
pinned UIDVALIDITY and UIDs, so loading thousands of messages takes a moment and a
snapshot restored on the next start gives the same UIDs (see ``persist.py``).
Nothing here knows about switchover's engine: it only serves mail.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import threading
import warnings
from argparse import Namespace
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parseaddr
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import DictBackend, Login
from pymap.backend.dict.mailbox import MailboxData, MailboxSet, Message
from pymap.imap import IMAPServer
from pymap.mime import MessageContent
from pymap.parsing.specials import ObjectId
from pymap.parsing.specials.flag import Flag, Recent, Wildcard, get_system_flags
from pymap.user import Passwords, UserMetadata

# aiosmtpd warns about its own legacy attribute on every AUTH; it is not ours to fix
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
# the servers share the process with the dashboard: their log lines must not reach the
# terminal through logging's last-resort handler
for _name in ("pymap", "mail.log", "aiosmtpd"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False

T = TypeVar("T")
HOST = "127.0.0.1"
#: how many outside-world messages the SMTP server remembers
OUTSIDE_KEEP = 200


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    address: str


class _Config(DictConfig):
    """pymap's dict config without DNS lookups (greeting FQDN) on a loopback demo."""

    @property
    def greeting(self) -> bytes:
        return b"Server ready (switchover demo)"


def _pymap_args(port: int) -> Namespace:
    return Namespace(host=HOST, port=port, debug=False, cert=None, key=None, tls=False,
                     passlib_cfg=None, proxy_protocol=None, inherited_sockets=None,
                     demo_data=False, demo_user="nobody", demo_password="",
                     sieve_host=[HOST], sieve_port=0)


@contextlib.contextmanager
def bulk_load() -> Iterator[None]:
    """Load thousands of parsed messages without the garbage collector rescanning them
    again and again (it tripled load time), then freeze them out of future collections
    so a long-running demo (and the dashboard in the same process) never pauses on them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


class _KeywordMailbox(MailboxData):
    """pymap's dict mailbox, but taking any keyword ($Forwarded, $Label1…) like Dovecot
    or Gmail do: stock pymap announces no ``\\*`` in PERMANENTFLAGS and silently drops
    keywords in STORE (APPEND keeps them)."""

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        return (get_system_flags() - {Recent}) | {Wildcard}


class _DemoMailboxSet(MailboxSet):
    async def get_mailbox(self, name: str) -> MailboxData:
        mbx = await super().get_mailbox(name)
        if type(mbx) is MailboxData:  # made by pymap (CREATE, RENAME): same layout
            mbx.__class__ = _KeywordMailbox
        return mbx


class ImapServer:
    """One pymap dict backend serving one user, plus an optional ManageSieve port."""

    def __init__(self, name: str, user: DemoUser) -> None:
        self.name = name
        self.user = user
        self.port = 0
        self.sieve_port: int | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self.config: _Config | None = None
        self.login: Login | None = None

    async def start(self, *, sieve: bool = False) -> None:
        args = _pymap_args(0)
        self.config = config = _Config.from_args(
            args, invalid_user_sleep=0.05, reject_dnsbl=False)
        config.apply_context()
        self.login = login = Login(config)
        backend = DictBackend(login, config)
        hashed = await Passwords(config).hash_password(self.user.password)
        login.users_dict[self.user.username] = UserMetadata(config, self.user.username,
                                                            password=hashed)
        self.mailbox_set()  # ours, before pymap makes its own at the first login
        cb = ProxyProtocolReader(config.proxy_protocol).get_callback(IMAPServer(login, config))
        srv = await asyncio.start_server(cb, host=HOST, port=0)
        self._servers.append(srv)
        self.port = srv.sockets[0].getsockname()[1]
        if sieve:
            try:
                from pymap.sieve.manage import ManageSieveServer
                scb = ProxyProtocolReader(config.proxy_protocol).get_callback(
                    ManageSieveServer(backend.login, config))
                ssrv = await asyncio.start_server(scb, host=HOST, port=0)
                self._servers.append(ssrv)
                self.sieve_port = ssrv.sockets[0].getsockname()[1]
            except Exception:  # the demo still works without auto-reply
                self.sieve_port = None

    async def stop(self) -> None:
        for srv in self._servers:
            srv.close()
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):
                pass

    # -- direct access to the backend ----------------------------------------------------
    def mailbox_set(self) -> MailboxSet:
        """The user's mailboxes (created the way pymap does on first login)."""
        from pymap.backend.dict import FilterSet
        assert self.config is not None
        cache = self.config.set_cache
        if self.user.username not in cache:
            cache[self.user.username] = (_DemoMailboxSet(), FilterSet())
        return cache[self.user.username][0]

    async def folder(self, name: str, *, uid_validity: int | None = None) -> MailboxData:
        """The mailbox ``name``, created with its parents when missing."""
        mset = self.mailbox_set()
        if name.upper() != "INBOX":
            parts = name.split("/")
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                if sub not in mset._set:
                    await mset.add_mailbox(sub)
                    await mset.set_subscribed(sub, True)
        mbx = await mset.get_mailbox(name)
        if uid_validity is not None:
            mbx._uid_validity = uid_validity
        return mbx

    async def inject(self, folder: str, raw: bytes, flags: tuple[str, ...] | frozenset[str] = (),
                     when: datetime | None = None, *, uid: int | None = None,
                     recent: bool = False) -> int:
        """Put one message into ``folder`` (byte-exact); returns its UID."""
        mbx = await self.folder(folder)
        content = MessageContent.parse(raw)
        when = when or datetime.now(timezone.utc)
        flag_set = frozenset(Flag(f) for f in flags)
        email_id = mbx._content_cache.add(content)
        # pymap's THREAD keys parse four headers per message (half the load time); the
        # engine never asks for THREAD, so each message gets its own thread id
        thread_id = ObjectId.random_thread_id()
        async with mbx.messages_lock.write_lock():
            if uid is None:
                uid = mbx._max_uid + 1
            mbx._max_uid = max(mbx._max_uid, uid)
            mbx._messages[uid] = Message(uid, when, flag_set, email_id=email_id,
                                         thread_id=thread_id, recent=recent, content=content)
            mbx._mod_sequences.update([uid])
            mbx._updated.set()  # wakes IDLE sessions
        return uid

    async def inject_many(self, items: Iterable[tuple[str, bytes, tuple[str, ...], datetime]]) -> int:
        """Inject (folder, raw, flags, internaldate) tuples in order; returns how many."""
        n = 0
        with bulk_load():
            for folder, raw, flags, when in items:
                await self.inject(folder, raw, flags, when)
                n += 1
                if n % 200 == 0:
                    await asyncio.sleep(0)  # let IMAP clients in while a big history loads
        return n

    def counts(self) -> dict[str, int]:
        """Messages per folder, read straight from the backend."""
        mset = self.mailbox_set()
        out = {"INBOX": len(mset._inbox._messages)}
        for name, mbx in mset._set.items():
            out[name] = len(mbx._messages)
        return out


class _Delivery:
    """aiosmtpd handler: local recipients go into a pymap INBOX, the rest is kept."""

    def __init__(self, local: dict[str, ImapServer], outside: collections.deque) -> None:
        self.local = {k.lower(): v for k, v in local.items()}
        self.outside = outside
        self.delivered = 0
        #: told about every message leaving the demo (the live arrivals answer reminders)
        self.on_outside: Callable[[str, list[str], bytes], None] | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        outside: list[str] = []
        done: set[int] = set()
        for rcpt in envelope.rcpt_tos:
            target = self.local.get(parseaddr(rcpt)[1].lower())
            if target is None:
                outside.append(rcpt)
            elif id(target) not in done:  # one copy per mailbox, like a real MTA
                done.add(id(target))
                await target.inject("INBOX", raw, recent=True)
                self.delivered += 1
        if outside:
            self.outside.append((envelope.mail_from, outside, raw))
            if self.on_outside is not None:
                try:
                    self.on_outside(envelope.mail_from or "", outside, raw)
                except Exception:  # the demo's extras never refuse mail
                    pass
        return "250 Message accepted for delivery"


class DemoLoop:
    """A daemon thread running an asyncio loop; ``call`` runs a coroutine on it."""

    def __init__(self) -> None:
        self.errors: collections.deque[str] = collections.deque(maxlen=50)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="switchover-demo-servers",
                                       daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        # a client dropping its connection must not print a traceback over the dashboard
        self.loop.set_exception_handler(self._on_error)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def _on_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(str(context.get("exception") or context.get("message")))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


@dataclass
class DemoServers:
    """The old and new IMAP servers and the SMTP server, on one loop."""

    old_user: DemoUser
    new_user: DemoUser
    sieve: bool = True
    loop: DemoLoop = field(default_factory=DemoLoop)
    outside: collections.deque = field(default_factory=lambda: collections.deque(maxlen=OUTSIDE_KEEP))

    def __post_init__(self) -> None:
        self.old = ImapServer("old", self.old_user)
        self.new = ImapServer("new", self.new_user)
        self.smtp_port = 0
        self._smtp: asyncio.AbstractServer | None = None
        self.delivery = _Delivery({self.old_user.address: self.old,
                                   self.new_user.address: self.new}, self.outside)

    def start(self) -> None:
        self.loop.call(self._start())

    async def _start(self) -> None:
        await self.old.start(sieve=self.sieve)
        await self.new.start()
        users = {u.username: u.password for u in (self.old_user, self.new_user)}

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> AuthResult:
            if isinstance(auth_data, LoginPassword):
                name = auth_data.login.decode("utf-8", "replace")
                ok = users.get(name) == auth_data.password.decode("utf-8", "replace")
                return AuthResult(success=ok, handled=False)
            return AuthResult(success=False, handled=False)

        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            return SMTP(self.delivery, hostname="localhost", auth_require_tls=False,
                        authenticator=authenticator, auth_required=False, loop=loop)

        self._smtp = await loop.create_server(factory, host=HOST, port=0)
        self.smtp_port = self._smtp.sockets[0].getsockname()[1]

    def stop(self) -> None:
        try:
            self.loop.call(self._stop(), timeout=10)
        except Exception:
            pass
        self.loop.close()

    async def _stop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        await self.old.stop()
        await self.new.stop()
        # open client connections are tasks of this loop: end them before it stops
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 120) -> T:
        return self.loop.call(coro, timeout)
