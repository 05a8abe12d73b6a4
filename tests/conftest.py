"""Shared pytest fixtures: real servers on loopback (see tests/support/servers.py), and the
one engine fixture family (``engine``, ``make_engine``) every facet's tests use.

``mailserver`` is one Dovecot (or pymap, when Dovecot is absent or
SWITCHOVER_TEST_SERVER=pymap) for the whole session; every test gets fresh users, so
tests never see each other's mail. When a test that used Dovecot fails, the tail of
Dovecot's log is added to the report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.servers import (MailServer, MailUser, SmtpServer, start_mailserver,  # noqa: E402
                                   start_pymap, write_config)

if TYPE_CHECKING:
    from switchover.core.engine import Engine

#: ``make_engine(old_user, new_user, *, smtp=None, name="switchover.yaml", **sections)``
MakeEngine = Callable[..., Awaitable["Engine"]]


@pytest.fixture(scope="session")
def mailserver() -> Iterator[MailServer]:
    server = start_mailserver(os.environ.get("SWITCHOVER_TEST_SERVER") or None)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pymap_server() -> Iterator[MailServer]:
    server = start_pymap()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server(mailserver: MailServer) -> Iterator[SmtpServer]:
    smtp = SmtpServer(mailserver).start().attach()
    try:
        yield smtp
    finally:
        smtp.stop()


@pytest.fixture
def old_user(mailserver: MailServer) -> MailUser:
    return mailserver.add_user("old")


@pytest.fixture
def new_user(mailserver: MailServer) -> MailUser:
    return mailserver.add_user("new")


@pytest.fixture
def config_path(tmp_path: Path, mailserver: MailServer, old_user: MailUser, new_user: MailUser,
                smtp_server: SmtpServer) -> Path:
    return write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user,
                        server=mailserver, smtp=smtp_server)


@pytest.fixture
async def engine(config_path: Path) -> AsyncIterator["Engine"]:
    """An engine on the test's own old and new user and SMTP server (``config_path``)."""
    from switchover.core.config import load_config
    from switchover.core.engine import Engine
    eng = await Engine.open(load_config(config_path))
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
async def make_engine(tmp_path: Path, mailserver: MailServer) -> AsyncIterator[MakeEngine]:
    """The one way a test opens an engine on its own users or config sections:
    ``eng = await make_engine(old_user, new_user, smtp=smtp_server, transition={...})``.
    Every engine it made is closed after the test (state file in the test's tmp_path)."""
    from switchover.core.config import load_config
    from switchover.core.engine import Engine
    made: list[Engine] = []

    async def make(old_user: MailUser, new_user: MailUser, *, smtp: SmtpServer | None = None,
                   name: str = "switchover.yaml", **sections: Any) -> Engine:
        path = write_config(tmp_path / name, old_user=old_user, new_user=new_user, server=mailserver,
                            smtp=smtp, **sections)
        eng = await Engine.open(load_config(path))
        made.append(eng)
        return eng

    try:
        yield make
    finally:
        for eng in made:
            await eng.close()


_LOG_START = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    server = getattr(item, "funcargs", {}).get("mailserver")
    if server is not None:
        item.stash[_LOG_START] = server.log_size()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed or call.when != "call":
        return
    server = getattr(item, "funcargs", {}).get("mailserver")
    if server is None:
        return
    text = server.log_text(item.stash.get(_LOG_START, 0))
    if text:
        lines = text.splitlines()
        report.sections.append((f"{server.kind} log during this test ({len(lines)} lines, last 80)",
                                "\n".join(lines[-80:])))
