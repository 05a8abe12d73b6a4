"""A folder past 1 MiB of UIDs (issue 9.1): one INBOX of 200,000 messages on a real
Dovecot. Its ``* SEARCH`` answer is one 1.3 MB line; the reader used to cut server lines
at 1 MiB and lose the tail silently (165,668 of 200,000 listed, "errors 0").

The mailbox is built the cheap, honest way: a throwaway Dovecot on mdbox without fsync,
1,000 messages appended, then COPY doubles them inside the server (mdbox copies by
reference), ~2 s in all."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

import switchover.core.net.wire as imapwire
from switchover.core.net.wire import ConnectionLost, ResponseTooLong, Wire
from switchover.core.migrate.transfer import probe_many
from tests.support.servers import start_dovecot

pytestmark = pytest.mark.timeout(120)

N = 200_000


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[Any, Any]]:
    server = start_dovecot(extra_conf="mail_fsync = never\nmail_location = mdbox:~/mdbox\n",
                           outbox=False)
    try:
        user = server.add_user("big")
        c = server.client(user, timeout=300)
        w = Wire(c)
        w.multiappend("INBOX", [(b"\\Seen", None, b"Message-ID: <%d@big.example>\r\nSubject: s %d\r\n"
                                 b"\r\nbody\r\n" % (i, i)) for i in range(1000)])
        w.select("INBOX", readonly=False)
        total = 1000
        while total < N:
            k = min(total, N - total)
            w.command(b"COPY 1:%d INBOX" % k)
            total += k
        c.logout()
        yield server, user
    finally:
        server.stop()


def test_a_search_answer_over_1_mib_is_read_whole(big: tuple[Any, Any]) -> None:
    server, user = big
    c = server.client(user, timeout=300)
    try:
        w = Wire(c)
        sel, uids = w.select_and_search("INBOX")
        assert sel.exists == N
        assert len(uids) == N and uids[-1] == N and len(set(uids)) == N
        probed = probe_many(w, ["INBOX"])["INBOX"]
        assert not isinstance(probed, Exception), probed
        assert probed[0].exists == N and len(probed[1]) == N
        w.command(b"NOOP")        # the stream is still in step after the long line
    finally:
        c.logout()


def test_a_line_past_the_bound_fails_loudly(big: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    server, user = big
    monkeypatch.setattr(imapwire, "MAX_LINE", 512 * 2**10)
    c = server.client(user, timeout=300)
    try:
        w = Wire(c)
        with pytest.raises(ResponseTooLong) as err:
            w.select_and_search("INBOX")
        assert "longer than" in err.value.text
        with pytest.raises(ConnectionLost):    # the connection is closed, not reused out of step
            w.command(b"NOOP")
    finally:
        try:
            c.logout()
        except Exception:
            pass
