"""The preflight's DNS findings (core/prepare/dns.py) against a real DNS responder on
loopback (dnslib, tests/prepare/preflight_dns.py): a good domain, no SPF, two SPF
records, SPF without the sending provider, SPF reached through includes, DMARC p=none,
missing DKIM, a domain that does not exist, a resolver that never answers ("could not
run", never a pass), and MX pointing at another provider."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from switchover.core.config import parse_config
from switchover.core.prepare.dns import check_domain, reserved
from switchover.core.prepare.records import FAIL, NOT_RUN, OK, WARN
from tests.prepare.preflight_dns import Responder, Silent, good_zone

pytestmark = pytest.mark.timeout(30)
DOMAIN = "acme-trading.test"


def config(tmp_path: Path, nameserver: str | None, *, provider: str = "custom", selector: str = "",
           domain: str = DOMAIN, timeout: float = 2.0) -> Any:
    side = {"provider": provider, "imap": {"host": "127.0.0.1", "port": 1143, "security": "none"},
            "smtp": {"host": "127.0.0.1", "port": 1025, "security": "none"},
            "username": "u", "password": "p"}
    data = {"identity": {"name": "Wu Jun", "old_address": "company12345@qq.com",
                         "new_address": f"wu.jun@{domain}"},
            "old": dict(side), "new": dict(side),
            "dns": {"nameservers": [nameserver] if nameserver else [], "dkim_selector": selector,
                    "timeout": timeout}}
    return parse_config(data, tmp_path / "switchover.yaml")


def findings(tmp_path: Path, zone: dict, **kw: Any) -> dict[str, Any]:
    with Responder(zone) as ns:
        return {f.name: f for f in check_domain(config(tmp_path, ns.spec, **kw))}


def test_a_good_domain_passes_every_check(tmp_path: Path) -> None:
    found = findings(tmp_path, good_zone(DOMAIN))
    assert {k: f.verdict for k, f in found.items()} == {
        "dns.mx": OK, "dns.spf": OK, "dns.dkim": OK, "dns.dmarc": OK}, found
    assert "mx.acme-trading.test" in found["dns.mx"].found
    assert "strict (-all)" in found["dns.spf"].found
    assert "default._domainkey" in found["dns.dkim"].found


def test_no_spf_fails_with_the_record_to_ask_for(tmp_path: Path) -> None:
    f = findings(tmp_path, good_zone(DOMAIN, spf=""))["dns.spf"]
    assert f.verdict == FAIL and f.blocking
    assert "no SPF record" in f.found
    assert "v=spf1" in f.advice and "Russia" in f.meaning


def test_two_spf_records_are_an_error(tmp_path: Path) -> None:
    zone = good_zone(DOMAIN)
    zone[DOMAIN].append(("TXT", "v=spf1 include:_spf.google.com ~all"))
    f = findings(tmp_path, zone)["dns.spf"]
    assert f.verdict == FAIL and "2 SPF records" in f.found and "merge" in f.advice


def test_spf_without_the_sending_server_fails(tmp_path: Path) -> None:
    f = findings(tmp_path, good_zone(DOMAIN, spf="v=spf1 ip4:192.0.2.10 -all"))["dns.spf"]
    assert f.verdict == FAIL and "does not allow 127.0.0.1" in f.found


def test_spf_of_a_known_provider_is_found_through_an_include_chain(tmp_path: Path) -> None:
    zone = good_zone(DOMAIN, spf="v=spf1 include:_spf.acme-trading.test ~all", selector="selector1")
    zone["_spf.acme-trading.test"] = [("TXT", "v=spf1 include:spf.protection.outlook.com -all")]
    zone[DOMAIN][0] = ("MX", "0 acme-trading-test.mail.protection.outlook.com.")
    found = findings(tmp_path, zone, provider="outlook")
    assert found["dns.spf"].verdict == OK and "Microsoft 365" in found["dns.spf"].found
    assert "soft (~all)" in found["dns.spf"].found
    assert found["dns.mx"].verdict == OK and "Microsoft 365" in found["dns.mx"].found
    assert found["dns.dkim"].verdict == OK and "selector1" in found["dns.dkim"].found   # Microsoft's usual


def test_spf_without_the_provider_names_the_include_to_add(tmp_path: Path) -> None:
    zone = good_zone(DOMAIN, spf="v=spf1 include:spf.mail.qq.com -all")
    f = findings(tmp_path, zone, provider="outlook")["dns.spf"]
    assert f.verdict == FAIL and "include:spf.protection.outlook.com" in f.advice


def test_mx_at_another_provider_fails(tmp_path: Path) -> None:
    zone = good_zone(DOMAIN, spf="v=spf1 include:spf.protection.outlook.com -all")
    zone[DOMAIN][0] = ("MX", "5 mxbiz1.qq.com.")
    f = findings(tmp_path, zone, provider="outlook")["dns.mx"]
    assert f.verdict == FAIL and "Tencent Exmail" in f.meaning and "Microsoft 365" in f.advice


def test_dmarc_none_warns_and_missing_dkim_warns_or_fails(tmp_path: Path) -> None:
    found = findings(tmp_path, good_zone(DOMAIN, dmarc="v=DMARC1; p=none", dkim=None))
    assert found["dns.dmarc"].verdict == WARN and "p=none" in found["dns.dmarc"].found
    assert "no rua" in found["dns.dmarc"].found and not found["dns.dmarc"].blocking
    assert found["dns.dkim"].verdict == WARN and "default, s1, s2, mail, dkim" in found["dns.dkim"].found
    # the configured selector must be there
    found = findings(tmp_path, good_zone(DOMAIN, dkim=None), selector="sel2025")
    assert found["dns.dkim"].verdict == FAIL and "sel2025" in found["dns.dkim"].found


def test_strict_dmarc_with_spf_and_dkim_failing_fails(tmp_path: Path) -> None:
    found = findings(tmp_path, good_zone(DOMAIN, spf="v=spf1 ip4:192.0.2.1 -all", dkim=None,
                                         dmarc="v=DMARC1; p=reject"))
    assert found["dns.dmarc"].verdict == FAIL and "refuse" in found["dns.dmarc"].meaning


def test_a_domain_that_does_not_exist_fails(tmp_path: Path) -> None:
    found = findings(tmp_path, {"other.test": [("MX", "10 mx.other.test.")]})
    assert list(found) == ["dns.mx"]
    assert found["dns.mx"].verdict == FAIL and "does not exist" in found["dns.mx"].found


def test_a_resolver_that_never_answers_could_not_run(tmp_path: Path) -> None:
    with Silent() as ns:
        t0 = time.monotonic()
        found = check_domain(config(tmp_path, ns.spec, timeout=0.5))
        took = time.monotonic() - t0
    assert took < 5
    assert [f.verdict for f in found] == [NOT_RUN] * 4
    assert all(f.blocking and f.verdict != OK for f in found)
    assert "no DNS answer in time" in found[0].found


def test_a_reserved_example_domain_is_not_looked_up(tmp_path: Path) -> None:
    assert reserved("example.com") and reserved("acme.test") and not reserved("acme.com")
    found = check_domain(config(tmp_path, None, domain="example.com"))
    assert [(f.name, f.verdict, f.blocks) for f in found] == [("dns", NOT_RUN, False)]


def test_bad_dns_config_is_one_sentence(tmp_path: Path) -> None:
    from switchover.core.errors import ConfigError
    with pytest.raises(ConfigError, match="dns.nameservers"):
        config(tmp_path, "127.0.0.1:notaport")
