"""`python -m bench.selftest`: does bench/check.py judge copies right? (~10 s, own Dovecot)

An exact copy must pass; the same instant written in another time zone must pass; a
gained keyword, an added X-TUID header, another received date must show as *altered*;
a missing or extra message must fail.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.check import compare  # noqa: E402
from bench.corpus import generate  # noqa: E402
from bench.server import fill, start_bench_dovecot  # noqa: E402


def main() -> int:
    server, _ = start_bench_dovecot()
    failures = []

    def expect(what: str, src, dst, status: str, words: str = "") -> None:
        a, b = server.client(src), server.client(dst)
        try:
            got = compare(a, b)
        finally:
            a.logout()
            b.logout()
        ok = got.status == status and words in got.summary()
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {got.summary()}")
        if not ok:
            failures.append(what)

    try:
        msgs = list(itertools.islice(generate("mixed"), 300))
        a, b = server.add_user("a"), server.add_user("b")
        fill(server, a, msgs)
        fill(server, b, msgs)
        expect("identical copy", a, b, "exact")
        c = server.client(b)
        c.select_folder("INBOX")
        uids = c.search("ALL")
        c.add_flags(uids[:2], [b"$Custom"])
        expect("keyword gained", a, b, "altered", "gained $Custom")
        c.remove_flags(uids[:2], [b"$Custom"])
        c.delete_messages(uids[:3])
        c.expunge()
        c.logout()
        expect("messages missing", a, b, "FAILED", "3 missing")

        raw = msgs[0][1]
        when = dt.datetime(2022, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
        one, zone, tuid, later, twice = (server.add_user(p) for p in ("one", "zone", "tuid", "later", "twice"))
        server.append(one, "INBOX", raw, flags=["\\Seen"], date=when)
        server.append(zone, "INBOX", raw, flags=["\\Seen"],
                      date=when.astimezone(dt.timezone(dt.timedelta(hours=8))))
        expect("same instant, another time zone", one, zone, "exact")
        server.append(tuid, "INBOX", raw.replace(b"\r\n", b"\r\nX-TUID: abcdefghijkl\r\n", 1),
                      flags=["\\Seen"], date=when)
        expect("X-TUID header added", one, tuid, "altered", "X-TUID header added to 1")
        server.append(later, "INBOX", raw, flags=["\\Seen"], date=when + dt.timedelta(hours=1))
        expect("another received date", one, later, "altered", "another received date")
        for _ in range(2):
            server.append(twice, "INBOX", raw, flags=["\\Seen"], date=when)
        expect("copied twice", one, twice, "FAILED", "1 extra")
    finally:
        server.stop()
    print("selftest:", "FAILED " + ", ".join(failures) if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
