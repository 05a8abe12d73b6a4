"""The people of the history on a real Dovecot mailbox (tests/people/mailbox.py): groups with
their evidence, languages from what people write (not "RE: PI-2291"), aliases, the
incremental rescan, choices that survive it, the CSV round trip (all or nothing), the
notice states the campaign's events leave, the audience and the switched trend."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from switchover.core.errors import SwitchoverError
from switchover.core.events import NoticeChanged
from switchover.core.people import csvfile
from switchover.core.people.choices import Choice
from tests.people.mailbox import fill, mail

ADDR = {"carlos": "carlos@distribuidora-mx.com", "gmail": "carlos.mendez1975@gmail.com",
        "ivan": "ivan@torgservis.ru", "wang": "wangwei@jinhua-factory.cn", "lisa": "lisa@hk-lines.com",
        "lina": "li.na@example.com", "cold": "growth@rank-top.biz", "news": "news@tradeshow-news.com",
        "noreply": "noreply@service.alibaba.com", "daemon": "mailer-daemon@mx.relay.net",
        "anna": "anna@kunden-beispiel.de"}


@pytest.fixture
async def people(make_engine: Any, mailserver: Any, old_user: Any, new_user: Any) -> Any:
    fill(mailserver, old_user)
    eng = await make_engine(old_user, new_user)
    assert await eng.correspondents.scan_history() == 20
    return eng


async def test_groups_languages_and_aliases(people: Any) -> None:
    c = people.correspondents
    got = {k: await c.get(a) for k, a in ADDR.items()}
    assert {k: p.group for k, p in got.items()} == {
        "carlos": "customer", "gmail": "customer", "ivan": "customer", "wang": "supplier",
        "lisa": "logistics", "lina": "internal", "cold": "cold", "news": "newsletter",
        "noreply": "automated", "daemon": "bounce", "anna": "business"}
    assert got["carlos"].evidence == "in folder 客户/Mexico; 2 from, 1 to"
    assert got["ivan"].evidence == "in folder 客户/Russia; 2 from, 1 to"
    assert got["lina"].evidence.startswith("company domain example.com")
    assert got["cold"].evidence == "wrote 1, never answered"
    assert got["gmail"].evidence == f"same person as {ADDR['carlos']} (in folder 客户/Mexico); 1 from, 0 to"
    # their own words, not the English subject nor our English quote
    assert {k: got[k].language for k in ("carlos", "gmail", "ivan", "wang", "lisa", "lina", "anna")} == {
        "carlos": "es", "gmail": "es", "ivan": "ru", "wang": "zh", "lisa": "en", "lina": "en", "anna": "de"}
    # one person, two addresses: shown together, both notified
    assert got["carlos"].alias_key and got["carlos"].alias_key == got["gmail"].alias_key
    assert got["ivan"].alias_key == ""
    assert got["carlos"].organisation == "distribuidora-mx.com" and got["gmail"].organisation == ""
    assert [p.address for p in await c.list(order="group", limit=3)] == [ADDR["carlos"], ADDR["gmail"], ADDR["ivan"]]
    # notify: the business groups yes, the rest no
    assert {k for k, p in got.items() if p.notify} == {"carlos", "gmail", "ivan", "wang", "lisa", "lina", "anna"}

    notice = await c.audience("notice")
    assert [r.address for r in notice][:2] == [ADDR["carlos"], ADDR["ivan"]]      # the busiest first
    assert {r.address for r in notice} == {ADDR[k] for k in ("carlos", "gmail", "ivan", "wang", "lisa", "anna")}
    # a language without a notice text goes English, never the user's language
    assert {r.address: r.language for r in notice}[ADDR["anna"]] == "en"
    assert [(r.address, r.group) for r in await c.audience("internal")] == [(ADDR["lina"], "internal")]
    assert [r.address for r in await c.audience("notice", group="supplier")] == [ADDR["wang"]]
    counts = {g: (n, yes, on) for g, n, yes, on in await c.group_counts()}
    assert counts["customer"] == (3, 3, True) and counts["newsletter"] == (1, 0, False)


async def test_incremental_rescan_and_choices_survive(people: Any, mailserver: Any, old_user: Any) -> None:
    c = people.correspondents
    await c.choose(ADDR["anna"], Choice(group="customer", language="de"))
    await c.choose(ADDR["cold"], Choice(notify=True))
    await c.set_group_notify("logistics", False)
    assert await c.scan_history() == 0                          # nothing new: nothing read
    mailserver.append(old_user, "INBOX", mail(ADDR["anna"], old_user.address, "Bestellung",
                                              "Guten Tag, wir möchten 200 Stück bestellen. Viele Grüße"))
    mailserver.append(old_user, "INBOX", mail(ADDR["cold"], old_user.address, "Follow up",
                                              "Just following up on my last email about SEO for your site."))
    t0 = time.monotonic()
    assert await c.scan_history() == 2                          # only what is new
    assert time.monotonic() - t0 < 5
    anna, cold, lisa = [await c.get(ADDR[k]) for k in ("anna", "cold", "lisa")]
    assert (anna.messages_from, anna.group, anna.group_guess, anna.language) == (2, "customer", "business", "de")
    assert (cold.messages_from, cold.group, cold.notify) == (2, "cold", True)
    assert lisa.notify is False and lisa.choice_notify is None
    await c.choose(ADDR["anna"], Choice(group=None))            # back to the guess
    assert (await c.get(ADDR["anna"])).group == "business"


async def test_csv_round_trip(people: Any, tmp_path: Path) -> None:
    c = people.correspondents
    path = tmp_path / "people.csv"
    n = csvfile.write(path, await c.list(limit=1000, order="group"))
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and n == 11
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0] == "address,name,group,language,notify,messages_from,messages_to,last_seen,state"
    assert f"{ADDR['carlos']},Carlos Méndez,customer,es,yes,2,1," in lines[1]
    assert lines[1].endswith(",not notified")
    # read back unchanged: nothing changes
    assert await c.import_rows(csvfile.read(path)) == 0

    # as European Excel saves it: semicolons, no BOM, 是/否, a name fixed, a group in Chinese
    edited = [lines[0].replace(",", ";"),
              f"{ADDR['wang']};王伟 (Jinhua);物流;zh;否;1;1;2025-01-01;sent",
              f"{ADDR['cold']};SEO Expert;cold;;是;1;0;;",
              f"{ADDR['anna']};Anna Schmidt;;;;1;1;;",
              "new.buyer@importer.cl;Pedro;customer;es;yes;;;;"]
    path.write_text("\r\n".join(edited) + "\r\n", encoding="utf-8")
    assert await c.import_rows(csvfile.read(path)) == 3
    wang, cold, new = [await c.get(a) for a in (ADDR["wang"], ADDR["cold"], "new.buyer@importer.cl")]
    assert (wang.name, wang.group, wang.notify) == ("王伟 (Jinhua)", "logistics", False)
    assert (cold.notify, cold.choice_notify) == (True, True)
    assert (new.group, new.language, new.notify, new.name) == ("customer", "es", True, "Pedro")

    # one bad row: its line in one sentence, nothing of the file applied
    bad = [lines[0], f"{ADDR['ivan']},Ivan,supplier,ru,yes,,,,", f"{ADDR['lisa']},Lisa,customer,xx,yes,,,,"]
    path.write_text("\n".join(bad) + "\n", encoding="utf-8-sig")
    with pytest.raises(SwitchoverError) as e:
        await c.import_rows(csvfile.read(path))
    assert "line 3" in e.value.message and "'xx' is not a language" in e.value.message
    assert e.value.exit_code == 2
    assert (await c.get(ADDR["ivan"])).group == "customer"
    bad = [lines[0], f"{ADDR['ivan']},Ivan,supplier,ru,yes,,,,", "not-an-address,X,customer,,,,,,"]
    path.write_text("\n".join(bad) + "\n", encoding="utf-8")
    with pytest.raises(SwitchoverError, match="line 3: 'not-an-address' is not an email address"):
        csvfile.read(path)
    bad = [lines[0], f"{ADDR['ivan']},Ivan,supplier,ru,maybe,,,,"]
    path.write_text("\n".join(bad) + "\n", encoding="utf-8")
    with pytest.raises(SwitchoverError, match="line 2: 'maybe' is not yes or no"):
        csvfile.read(path)

    # all or nothing even past validation: a failure mid-import rolls every row back
    rows = [csvfile.CsvRow(2, ADDR["ivan"], "Ivan", "supplier", "ru", True),
            csvfile.CsvRow(3, ADDR["lisa"], "Lisa", "nope", None, None)]
    with pytest.raises(SwitchoverError):
        await c.import_rows(rows)
    assert (await c.get(ADDR["ivan"])).group == "customer"


async def test_notice_states_and_trend(people: Any) -> None:
    c = people.correspondents
    now = time.time()
    for ev in (NoticeChanged(ADDR["carlos"], "notice", "queued", at=now - 5 * 86400),
               NoticeChanged(ADDR["ivan"], "notice", "sent", at=now - 5 * 86400),
               NoticeChanged(ADDR["wang"], "notice", "bounced", "550 5.1.1 user unknown", at=now - 4 * 86400),
               NoticeChanged(ADDR["lisa"], "notice", "sent", at=now - 5 * 86400),
               NoticeChanged(ADDR["anna"], "test", "sent", at=now)):
        people.publish(ev)
    await people.bus.drain()
    await c.mark_switched(ADDR["lisa"], now - 2 * 86400)
    states = {k: (await c.get(ADDR[k])).state for k in ("carlos", "ivan", "wang", "lisa", "anna")}
    assert states == {"carlos": "queued", "ivan": "sent", "wang": "bounced", "lisa": "switched",
                      "anna": "not notified"}
    wang = await c.get(ADDR["wang"])
    assert wang.bounce_reason == "550 5.1.1 user unknown"
    trend = await c.switch_trend(7)
    assert len(trend) == 7 and [n for _, n in trend] == [0, 0, 0, 0, 1, 1, 1]
    stats = await c.stats()
    assert (stats["switched"], stats["switched_week"], stats["bounced"], stats["notified"]) == (1, 1, 1, 2)
    # the final reminder: sent the notice, not switched, wrote to the old address after it
    await c.note_arrival(ADDR["ivan"], "Иван Петров", "ru", False, now - 86400)
    assert [r.address for r in await c.audience("final")] == [ADDR["ivan"]]


def test_people_command(tmp_path: Path, mailserver: Any, old_user: Any, new_user: Any) -> None:
    """`switchover people` end to end: the table, --json, --csv then --import (a bad row:
    one sentence with its line, exit 2)."""
    import json
    import subprocess
    import sys

    from tests.support.servers import write_config
    fill(mailserver, old_user)
    cfg = write_config(tmp_path / "switchover.yaml", old_user=old_user, new_user=new_user, server=mailserver)
    root = Path(__file__).resolve().parents[2]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "switchover", "--config", str(cfg), "people", *argv],
                              cwd=root, capture_output=True, text=True, timeout=60)

    shown = run()
    assert shown.returncode == 0, shown.stderr
    assert "Scanned 20 new messages" in shown.stdout and "customer        3" in shown.stdout
    assert f"↳ {ADDR['gmail']}" in shown.stdout
    data = json.loads(run("--json").stdout)
    assert {p["address"]: p["group"] for p in data["people"]}[ADDR["wang"]] == "supplier"
    csv_path = tmp_path / "people.csv"
    wrote = run("--csv", str(csv_path))
    assert wrote.returncode == 0 and "Wrote 11 people" in wrote.stdout
    text = csv_path.read_text(encoding="utf-8-sig").replace(f"{ADDR['cold']},SEO Expert,cold,en,no",
                                                             f"{ADDR['cold']},SEO Expert,cold,en,是")
    csv_path.write_text(text, encoding="utf-8-sig")
    done = run("--import", str(csv_path))
    assert done.returncode == 0 and "1 people changed" in done.stdout, done.stdout + done.stderr
    csv_path.write_text(text.replace(f"{ADDR['ivan']},Иван Петров,customer", f"{ADDR['ivan']},Иван Петров,friend"),
                        encoding="utf-8-sig")
    bad = run("--import", str(csv_path))
    assert bad.returncode == 2 and "line" in bad.stderr and "'friend' is not a group" in bad.stderr
    assert "Traceback" not in bad.stderr
