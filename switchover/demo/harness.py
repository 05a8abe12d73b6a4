"""Real protocol servers in-process on loopback: the ONE pymap + aiosmtpd harness.

The demo runs its old and new mailbox on it (switchover/demo/servers.py) and the tests
run theirs (tests/support/servers_pymap.py for IMAP where Dovecot is absent,
tests/support/servers_smtp.py for SMTP everywhere). It ships in the wheel because the
demo does. Nothing here mocks a protocol: clients speak IMAP and SMTP over TCP to pymap
and aiosmtpd; only *loading* mail goes straight into pymap's backend objects.

Owns:
  * ``ServerLoop`` — a daemon thread running an asyncio loop; ``call`` runs a coroutine
    on it from any thread;
  * ``ImapServer`` — pymap's in-memory "dict" backend for any number of users, LOGIN
    without TLS (loopback only), folders that keep any keyword ($Forwarded, $Label1…)
    as Dovecot and Gmail do, and an optional ManageSieve port (RFC 5804, only when
    pymap's optional ``sievelib`` is installed);
  * ``Mailboxes`` — one user's folders, for putting mail in byte-exact with pinned
    UIDVALIDITY and UIDs (thousands of messages in a moment) and counting it;
  * ``SmtpService`` — aiosmtpd on the loop with AUTH PLAIN/LOGIN without TLS, the
    caller's handler (``handle_RCPT`` / ``handle_DATA``) deciding what happens to mail.
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
from datetime import datetime, timezone
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import DictBackend, FilterSet, Login
from pymap.backend.dict.mailbox import MailboxData, MailboxSet, Message
from pymap.imap import IMAPServer
from pymap.mime import MessageContent
from pymap.parsing.specials import ObjectId
from pymap.parsing.specials.flag import Flag, Recent, Wildcard, get_system_flags
from pymap.user import Passwords, UserMetadata
from pysasl.hashing import Cleartext

# aiosmtpd warns about its own legacy attribute on every AUTH; it is not ours to fix
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
# the servers may share the process with the dashboard: their log lines must not reach
# the terminal through logging's last-resort handler
for _name in ("pymap", "mail.log", "aiosmtpd"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False

T = TypeVar("T")
HOST = "127.0.0.1"


class ServerLoop:
    """A daemon thread running an asyncio loop; ``call`` runs a coroutine on it."""

    def __init__(self, name: str = "switchover-servers") -> None:
        self.errors: collections.deque[str] = collections.deque(maxlen=50)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        # a client dropping its connection must not print a traceback (over the dashboard)
        self.loop.set_exception_handler(self._on_error)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def _on_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(str(context.get("exception") or context.get("message")))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """End the connections still open (tasks of this loop), then the loop itself."""
        if self.loop.is_running():
            try:
                self.call(_cancel_others(), timeout=5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


async def _cancel_others() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2)


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


# -- IMAP (pymap) -----------------------------------------------------------------------

class _Config(DictConfig):
    """pymap's dict config without DNS lookups (greeting FQDN) on loopback."""

    @property
    def greeting(self) -> bytes:
        return b"Server ready (switchover, pymap on loopback)"


def _pymap_args() -> Namespace:
    return Namespace(host=HOST, port=0, debug=False, cert=None, key=None, tls=False,
                     passlib_cfg=None, proxy_protocol=None, inherited_sockets=None,
                     demo_data=False, demo_user="nobody", demo_password="",
                     sieve_host=[HOST], sieve_port=0)


class _KeywordMailbox(MailboxData):
    """pymap's dict mailbox, but taking any keyword ($Forwarded, $Label1…) like Dovecot
    or Gmail do: stock pymap announces no ``\\*`` in PERMANENTFLAGS and silently drops
    keywords in STORE (APPEND keeps them)."""

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        return (get_system_flags() - {Recent}) | {Wildcard}


class _KeywordMailboxSet(MailboxSet):
    async def get_mailbox(self, name: str) -> MailboxData:
        mbx = await super().get_mailbox(name)
        if type(mbx) is MailboxData:  # made by pymap (CREATE, RENAME): same layout
            mbx.__class__ = _KeywordMailbox
        return mbx


class ImapServer:
    """pymap's dict backend serving its users on one loopback port (plus ManageSieve
    when asked and available). Start, add users and stop it on its ServerLoop."""

    def __init__(self, name: str = "imap", *, invalid_user_sleep: float = 0.0) -> None:
        self.name = name
        self.port = 0
        self.sieve_port: int | None = None
        self.config: _Config | None = None
        self.login: Login | None = None
        self._invalid_user_sleep = invalid_user_sleep
        self._servers: list[asyncio.AbstractServer] = []
        self._users: dict[str, Mailboxes] = {}

    async def start(self, *, sieve: bool = False) -> None:
        # Cleartext: a hashed password costs ~0.2 s of CPU per login, and the password is
        # in the client's config file anyway (loopback servers, throwaway accounts)
        self.config = config = _Config.from_args(
            _pymap_args(), invalid_user_sleep=self._invalid_user_sleep, reject_dnsbl=False,
            hash_context=Cleartext())
        config.apply_context()
        self.login = login = Login(config)
        backend = DictBackend(login, config)
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
            except Exception:  # no sievelib: everything else still works
                self.sieve_port = None

    async def add_user(self, username: str, password: str) -> "Mailboxes":
        """A user who can log in at once; returns their mailboxes."""
        assert self.config is not None and self.login is not None, "start() first"
        hashed = await Passwords(self.config).hash_password(password)
        self.login.users_dict[username] = UserMetadata(self.config, username, password=hashed)
        mail = Mailboxes(self, username)
        mail.mailbox_set()  # ours, before pymap makes its own at the first login
        self._users[username] = mail
        return mail

    def mailboxes(self, username: str) -> "Mailboxes":
        return self._users[username]

    async def stop(self) -> None:
        for srv in self._servers:
            srv.close()
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):
                pass


class Mailboxes:
    """One user's folders on an ImapServer, reached in the backend directly (no IMAP
    round trip): run these on the server's loop."""

    def __init__(self, server: ImapServer, username: str) -> None:
        self.server = server
        self.username = username

    @property
    def name(self) -> str:
        """The server's name ("old", "new" in the demo)."""
        return self.server.name

    @property
    def started(self) -> bool:
        return self.server.config is not None

    def mailbox_set(self) -> MailboxSet:
        """The user's mailboxes (created the way pymap does on first login)."""
        assert self.server.config is not None
        cache = self.server.config.set_cache
        if self.username not in cache:
            cache[self.username] = (_KeywordMailboxSet(), FilterSet())
        mset: MailboxSet = cache[self.username][0]
        return mset

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

    async def inject(self, folder: str, raw: bytes, flags: Iterable[str] = (),
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


# -- SMTP (aiosmtpd) --------------------------------------------------------------------

#: decides a login: (username, password) -> accepted
LoginCheck = Callable[[str, str], bool]


class SmtpService:
    """aiosmtpd on a loopback port of the running loop. ``handler`` is an aiosmtpd
    handler (``handle_RCPT``, ``handle_DATA``…); ``check_login`` decides AUTH PLAIN and
    LOGIN (offered without TLS, never required)."""

    def __init__(self, handler: Any, check_login: LoginCheck, *, hostname: str = "localhost",
                 data_size_limit: int = 33_554_432, smtputf8: bool = False) -> None:
        self.handler = handler
        self.check_login = check_login
        self.hostname = hostname
        self.data_size_limit = data_size_limit
        self.smtputf8 = smtputf8
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        name = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        return AuthResult(success=self.check_login(name, password), handled=False)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            return SMTP(self.handler, hostname=self.hostname, data_size_limit=self.data_size_limit,
                        enable_SMTPUTF8=self.smtputf8, authenticator=self._authenticate,
                        auth_require_tls=False, auth_required=False, loop=loop)

        self._server = await loop.create_server(factory, host=HOST, port=0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
