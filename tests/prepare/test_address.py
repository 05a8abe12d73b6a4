"""The new address as a customer reads it (core/prepare/address.py): digit runs, random
strings, free-mail domains and throw-away names warn with a better suggestion; a good
business address passes; invalid syntax fails (email-validator, no DNS look-ups)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from switchover.core.config import parse_config
from switchover.core.prepare.address import check_address, looks_random
from switchover.core.prepare.records import FAIL, OK, WARN


def finding(tmp_path: Path, new_address: str, name: str = "Wu Jun"):
    side = {"provider": "custom", "imap": {"host": "127.0.0.1", "port": 1143, "security": "none"},
            "username": "u", "password": "p"}
    cfg = parse_config({"identity": {"name": name, "old_address": "old@old.example",
                                     "new_address": new_address},
                        "old": dict(side), "new": dict(side)}, tmp_path / "switchover.yaml")
    [f] = check_address(cfg)
    return f


@pytest.mark.parametrize("address", ["wu.jun@acme-trading.com", "sales@acme-trading.com",
                                     "maria.lopez@importadora.mx", "info@shop.cn"])
def test_business_addresses_read_well(tmp_path: Path, address: str) -> None:
    f = finding(tmp_path, address)
    assert f.verdict == OK, f


@pytest.mark.parametrize("address, why", [
    ("company12345@acme-trading.com", "run of 5 digits"),
    ("12345678@qq.com", "only digits"),
    ("xk7q9zt2p@acme-trading.com", "random"),
    ("wujun@gmail.com", "free-mail"),
    ("test@acme-trading.com", "throw-away"),
])
def test_unprofessional_addresses_warn_with_a_suggestion(tmp_path: Path, address: str, why: str) -> None:
    f = finding(tmp_path, address)
    assert f.verdict == WARN and why in f.found and not f.blocking, f
    assert "wu.jun@" in f.advice and "sales@" in f.advice


def test_random_looking_is_about_how_it_reads() -> None:
    assert looks_random("qwrtzpl") and looks_random("a1b2c3d4")
    assert not looks_random("alexander") and not looks_random("john.smith")


def test_invalid_syntax_fails(tmp_path: Path) -> None:
    # the config refuses most bad addresses itself; email-validator is stricter still
    side = {"provider": "custom", "imap": {"host": "127.0.0.1", "port": 1143, "security": "none"},
            "username": "u", "password": "p"}
    cfg = parse_config({"identity": {"name": "Wu Jun", "old_address": "old@old.example",
                                     "new_address": "wu@acme-trading.com"},
                        "old": dict(side), "new": dict(side)}, tmp_path / "switchover.yaml")
    cfg = dataclasses.replace(cfg, identity=dataclasses.replace(cfg.identity, new_address="wu..jun@acme-trading.com"))
    [f] = check_address(cfg)
    assert f.verdict == FAIL and f.blocking and "period" in f.found
