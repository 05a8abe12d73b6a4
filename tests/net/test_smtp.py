"""core/smtp.py against a real aiosmtpd server on loopback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from switchover.core.config import Endpoint
from switchover.core.errors import AuthError, ConnectError
from switchover.core.net.smtp import SmtpError, is_temporary, send
from tests.support.servers import SmtpServer, free_port

RAW = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n"
       b"line one\r\n.starts with a dot\r\n\xe4\xbd\xa0\xe5\xa5\xbd\r\n")


@pytest.fixture
def sink():
    with SmtpServer(passwords={"me@example.com": "s3cret"}, deliver=False) as s:
        yield s


def _account(mailserver, old_user, sink, **kw):
    acct = mailserver.account(old_user, "old", smtp=sink)
    return replace(acct, username="me@example.com", password="s3cret", **kw)


def test_send_byte_exact_with_login(mailserver, old_user, sink):
    res = send(_account(mailserver, old_user, sink), "a@example.com", ["b@example.com"], RAW)
    assert res.accepted == ("b@example.com",)
    mail_from, rcpts, raw = sink.wait_for(1)[0]
    assert mail_from == "a@example.com" and rcpts == ["b@example.com"]
    assert raw.replace(b"\r\n", b"\n").rstrip(b"\n") == RAW.replace(b"\r\n", b"\n").rstrip(b"\n")
    assert sink.logins == ["me@example.com"]


def test_wrong_password_is_auth_error(mailserver, old_user, sink):
    acct = replace(_account(mailserver, old_user, sink), password="wrong")
    with pytest.raises(AuthError) as e:
        send(acct, "a@example.com", ["b@example.com"], RAW)
    assert "535" in e.value.message and "me@example.com" in e.value.message
    assert not is_temporary(e.value)


def test_permanent_and_temporary_refusals(mailserver, old_user, sink):
    acct = _account(mailserver, old_user, sink)
    sink.reject["nobody@example.com"] = "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
    with pytest.raises(SmtpError) as e:
        send(acct, "a@example.com", ["nobody@example.com"], RAW)
    assert e.value.code == 550 and not e.value.temporary
    assert "User unknown" in e.value.message and "permanent" in e.value.message

    sink.fail_data = "451 4.7.1 Too many messages, slow down"
    with pytest.raises(SmtpError) as e:
        send(acct, "a@example.com", ["b@example.com"], RAW)
    assert e.value.code == 451 and e.value.temporary and e.value.throttled
    assert "slow down" in e.value.message and is_temporary(e.value)

    sink.fail_data = "452 4.3.1 Insufficient system storage"
    with pytest.raises(SmtpError) as e:
        send(acct, "a@example.com", ["b@example.com"], RAW)
    assert e.value.temporary and not e.value.throttled


def test_unreachable_and_missing_starttls(mailserver, old_user, sink):
    acct = _account(mailserver, old_user, sink)
    closed = replace(acct, smtp=Endpoint("127.0.0.1", free_port(), "none"))
    with pytest.raises(ConnectError) as e:
        send(closed, "a@example.com", ["b@example.com"], RAW, timeout=5)
    assert "refused the connection" in e.value.message and is_temporary(e.value)
    tls = replace(acct, smtp=Endpoint(sink.host, sink.port, "starttls"))
    with pytest.raises(ConnectError) as e:
        send(tls, "a@example.com", ["b@example.com"], RAW, timeout=5)
    assert "STARTTLS" in e.value.message


def test_the_in_doubt_window(mailserver, old_user, sink):
    """Issue 9.7: only a missing answer to the end of the data is "in doubt"; the phase
    hook runs once, right before the data, and can still stop the send."""
    from switchover.core.net.smtp import SmtpInDoubt
    acct = _account(mailserver, old_user, sink)
    calls: list[int] = []
    sink.reply_delay = 2.0
    with pytest.raises(SmtpInDoubt) as e:
        send(acct, "a@example.com", ["b@example.com"], RAW, data_timeout=0.5,
             before_data=lambda: calls.append(sink.taken))
    assert calls == [0] and sink.taken == 1          # the hook ran before the data left
    assert "no reply within 0.5 s" in e.value.message and not is_temporary(e.value)
    sink.reply_delay = 0.0
    sink.drop_after_data = True
    with pytest.raises(SmtpInDoubt) as e:
        send(acct, "a@example.com", ["b@example.com"], RAW)
    assert "connection broke" in e.value.message
    sink.drop_after_data = False

    def refuse() -> None:
        raise RuntimeError("the state file is busy")
    with pytest.raises(RuntimeError):
        send(acct, "a@example.com", ["b@example.com"], RAW, before_data=refuse)
    assert sink.taken == 2                            # nothing of the third one was delivered
    # a slow answer within the time allowed is a plain success
    sink.reply_delay = 1.0
    res = send(acct, "a@example.com", ["b@example.com"], RAW, data_timeout=5)
    assert res.accepted == ("b@example.com",) and sink.taken == 3
