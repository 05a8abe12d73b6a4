"""A real DNS responder on loopback for the preflight's DNS tests (dnslib): UDP and TCP
on one random port, serving a zone a test writes as a dict, with NXDOMAIN for names
outside it; and a "silent" server that never answers (a timeout).

``zone`` maps a name to records: ``{"example.com": [("MX", "10 mx.example.com."),
("TXT", "v=spf1 ip4:127.0.0.1 -all")], "_dmarc.example.com": [("TXT", "v=DMARC1; p=none")]}``.
A name present with no record of the asked type answers NOERROR with no data (NoAnswer).
"""

from __future__ import annotations

import socket
from typing import Any

from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer

Zone = dict[str, list[tuple[str, str]]]


def _txt(value: str) -> str:
    # zone-file syntax: long TXT values split into 255-byte strings
    parts = [value[i:i + 250] for i in range(0, len(value), 250)] or [""]
    return " ".join('"' + p.replace('"', '\\"') + '"' for p in parts)


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, zone: Zone) -> None:
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.asked: list[tuple[str, str]] = []

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        self.asked.append((qname, qtype))
        if qname not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rtype, value in self.zone[qname]:
            if rtype == qtype or (rtype == "CNAME" and qtype != "CNAME"):
                data = _txt(value) if rtype == "TXT" else value
                reply.add_answer(*RR.fromZone(f"{qname}. 60 IN {rtype} {data}"))
        return reply


class Responder:
    """``with Responder(zone) as ns:`` → ``ns.spec`` ("127.0.0.1:port") for dns.nameservers."""

    def __init__(self, zone: Zone) -> None:
        self.resolver = ZoneResolver(zone)
        self.port = _free_udp_tcp_port()
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self.udp = DNSServer(self.resolver, address="127.0.0.1", port=self.port, logger=logger)
        self.tcp = DNSServer(self.resolver, address="127.0.0.1", port=self.port, tcp=True, logger=logger)

    @property
    def spec(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "Responder":
        self.udp.start_thread()
        self.tcp.start_thread()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.udp.stop()
        self.tcp.stop()
        self.udp.server.server_close()
        self.tcp.server.server_close()


class Silent:
    """A UDP port that takes queries and never answers: every look-up times out."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.spec = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> "Silent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()


def _free_udp_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port for the DNS responder")


def good_zone(domain: str, *, spf: str = "v=spf1 ip4:127.0.0.1 -all", dmarc: str = "v=DMARC1; p=quarantine; rua=mailto:d@{d}",
              dkim: str | None = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC", selector: str = "default") -> Zone:
    zone: Zone = {domain: [("MX", f"10 mx.{domain}."), ("TXT", spf)] if spf else [("MX", f"10 mx.{domain}.")],
                  f"mx.{domain}": [("A", "127.0.0.1")],
                  f"_dmarc.{domain}": [("TXT", dmarc.format(d=domain))]}
    if dkim:
        zone[f"{selector}._domainkey.{domain}"] = [("TXT", dkim)]
    return zone

