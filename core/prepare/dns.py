"""DNS of the new address's domain, as receivers see it: MX (which provider gets the
mail), SPF (does it allow the provider that sends for the new account?), DKIM (the
configured selector, else the provider's usual ones) and DMARC (the policy) — each a
verdict with what to ask IT to change, in one sentence.

Look-ups go through dnspython (``dns.*`` config: the resolvers, the DKIM selector, the
time allowed). The SPF check is hand-written on purpose: no SPF library is among the
project's dependencies, and the question here is narrower than a full RFC 7208
evaluation — "would the sending provider's servers pass?" — answered by following
``include:`` / ``redirect=`` (at most 10 look-ups, as receivers allow) and matching
``ip4`` / ``ip6`` / ``a`` / ``mx`` against the SMTP host for a self-hosted server.
A look-up that times out or finds no resolver is "could not run", never a pass.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.resolver

from ..config import Config, DnsSettings
from .records import FAIL, NOT_RUN, OK, WARN, Finding

SECTION = "DNS"
#: MX host suffix → provider key (core/providers.py)
MX_PROVIDERS = (
    ("mail.protection.outlook.com", "outlook"), ("outlook.com", "outlook"),
    ("aspmx.l.google.com", "gmail"), ("googlemail.com", "gmail"), ("google.com", "gmail"),
    ("mxbiz1.qq.com", "exmail"), ("mxbiz2.qq.com", "exmail"), ("exmail.qq.com", "exmail"),
    ("qq.com", "qq"), ("qiye.163.com", "qiye163"), ("mxmail.netease.com", "163"),
    ("163.com", "163"), ("mxhichina.com", "aliyun"), ("qiye.aliyun.com", "aliyun"),
    ("zoho.com", "zoho"), ("zoho.eu", "zoho"), ("yandex.net", "yandex"), ("yandex.ru", "yandex"),
)
PROVIDER_NAMES = {"outlook": "Microsoft 365", "gmail": "Google", "exmail": "Tencent Exmail",
                  "qq": "QQ Mail", "163": "NetEase", "qiye163": "NetEase Qiye", "aliyun": "Alibaba Mail",
                  "zoho": "Zoho", "yandex": "Yandex"}
#: what a provider's customers put in their SPF record
SPF_INCLUDES = {
    "outlook": ("spf.protection.outlook.com",), "gmail": ("_spf.google.com",),
    "exmail": ("spf.mail.qq.com",), "qq": ("spf.mail.qq.com",), "163": ("spf.163.com",),
    "qiye163": ("spf.qiye.163.com", "spf.163.com"),
    "aliyun": ("spf.mxhichina.com", "spf.qiye.aliyun.com"),
    "zoho": ("zoho.com", "zohomail.com", "zoho.eu"), "yandex": ("_spf.yandex.net",),
}
DKIM_SELECTORS = {"outlook": ("selector1", "selector2"), "gmail": ("google",)}
USUAL_SELECTORS = ("default", "s1", "s2", "mail", "dkim")
#: RFC 2606 / 6761 names: no real DNS behind them
RESERVED = ("example.com", "example.net", "example.org")
RESERVED_TLDS = ("example", "test", "invalid", "localhost")
MAX_LOOKUPS = 10


class Trouble(Exception):
    """The look-up itself failed (timeout, no resolver answered): could not run."""


class NoDomain(Exception):
    """NXDOMAIN for the domain itself."""


class Resolver:
    """dnspython with the configured resolvers; TXT strings joined, errors sorted into
    "no such name" (empty), "the domain does not exist" and "could not ask"."""

    def __init__(self, settings: DnsSettings) -> None:
        self.r = dns.resolver.Resolver(configure=not settings.nameservers)
        if settings.nameservers:
            self.r.nameservers = [_nameserver(ns) for ns in settings.nameservers]
        self.r.timeout = self.r.lifetime = settings.timeout
        self.lookups = 0

    def query(self, name: str, rtype: str) -> list[str]:
        self.lookups += 1
        try:
            answer = self.r.resolve(name, rtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise NoDomain(name) from None
        except dns.resolver.NoAnswer:
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration) as e:
            raise Trouble(_trouble(e)) from None
        except dns.exception.DNSException as e:
            raise Trouble(str(e) or e.__class__.__name__) from None
        if rtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        if rtype == "MX":
            return [f"{r.preference} {str(r.exchange).rstrip('.').lower()}" for r in answer]
        return [r.to_text() for r in answer]

    def txt(self, name: str) -> list[str]:
        try:
            return self.query(name, "TXT")
        except NoDomain:
            return []

    def addresses(self, host: str) -> list[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        out = []
        for rtype in ("A", "AAAA"):
            try:
                out += self.query(host, rtype)
            except NoDomain:
                return []
        return out


def _nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    host, port = spec, 53
    if spec.count(":") == 1:
        host, number = spec.rsplit(":", 1)
        port = int(number)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = str(socket.getaddrinfo(host, port, proto=socket.IPPROTO_UDP)[0][4][0])
    return dns.nameserver.Do53Nameserver(host, port)


def _trouble(e: BaseException) -> str:
    if isinstance(e, dns.exception.Timeout):
        return "no DNS answer in time"
    if isinstance(e, dns.resolver.NoResolverConfiguration):
        return "no DNS resolver is configured on this computer"
    return "no DNS server answered"


def reserved(domain: str) -> bool:
    d = domain.lower().rstrip(".")
    return d in RESERVED or any(d.endswith("." + r) for r in RESERVED) or d.rsplit(".", 1)[-1] in RESERVED_TLDS


def provider_of_mx(host: str) -> str | None:
    h = host.lower().rstrip(".")
    return next((key for suffix, key in MX_PROVIDERS if h == suffix or h.endswith("." + suffix)), None)


def check_domain(config: Config) -> list[Finding]:
    """The four DNS findings for the new address's domain (blocking; a worker thread)."""
    domain = config.identity.new_address.rsplit("@", 1)[-1].lower().rstrip(".")
    if reserved(domain) and not config.dns.nameservers:
        return [Finding("dns", SECTION, domain, NOT_RUN,
                        f"{domain} is a reserved example domain (RFC 2606) with no real DNS; not looked up",
                        "Nothing about MX, SPF, DKIM or DMARC is known.",
                        "Use the real address, or set dns.nameservers to a resolver that serves this domain.",
                        blocks=False)]
    r = Resolver(config.dns)
    try:
        mx = r.query(domain, "MX")
    except NoDomain:
        return [Finding("dns.mx", SECTION, "MX", FAIL, f"{domain} does not exist in DNS",
                        "Nobody can send mail to the new address.",
                        f"Ask IT to register {domain} and publish its MX records.")]
    except Trouble as e:
        why = f"{e} for {domain}"
        return [Finding(f"dns.{k}", SECTION, k.upper(), NOT_RUN, why,
                        "Not known whether receivers accept mail from the new address.",
                        "Check the network or set dns.nameservers, then run the check again.")
                for k in ("mx", "spf", "dkim", "dmarc")]
    provider = config.new.provider
    out = [mx_finding(domain, mx, provider)]
    for fn in (spf_finding, dkim_finding, dmarc_finding):
        try:
            out.append(fn(r, domain, config, out))
        except Trouble as e:
            key = fn.__name__.split("_")[0]
            out.append(Finding(f"dns.{key}", SECTION, key.upper(), NOT_RUN, f"{e} for {domain}",
                               "Not known whether receivers accept mail from the new address.",
                               "Run the check again; if it persists, ask IT to check the DNS servers."))
    return out


def mx_finding(domain: str, mx: list[str], provider: str) -> Finding:
    hosts = [h for _, h in sorted((int(p), h) for p, h in (m.split(" ", 1) for m in mx))]
    if not hosts or hosts == [""] or hosts == ["."]:
        return Finding("dns.mx", SECTION, "MX", FAIL, f"{domain} has no MX record (or a null MX)",
                       "Mail to the new address has no server to go to; many senders give up.",
                       f"Ask IT to publish the MX records the provider gives for {domain}.")
    where = {provider_of_mx(h) for h in hosts} - {None}
    named = ", ".join(PROVIDER_NAMES.get(p or "", p or "") for p in sorted(w for w in where if w))
    found = f"{', '.join(hosts[:3])}" + (f" ({named})" if named else "")
    if provider in PROVIDER_NAMES and where and provider not in where:
        return Finding("dns.mx", SECTION, "MX", FAIL, f"points to {found}",
                       f"Mail to the new address goes to {named}, not to the new "
                       f"{PROVIDER_NAMES[provider]} mailbox.",
                       f"Ask IT to point the MX of {domain} to {PROVIDER_NAMES[provider]} "
                       f"(after the copy, on the agreed switch day).")
    return Finding("dns.mx", SECTION, "MX", OK, f"points to {found}")


def spf_records(texts: list[str]) -> list[str]:
    return [t.strip() for t in texts if t.strip().lower() == "v=spf1" or t.strip().lower().startswith("v=spf1 ")]


@dataclass
class _Spf:
    r: Resolver
    includes: tuple[str, ...]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
    lookups: int = 0
    too_many: bool = False

    def allows(self, domain: str, record: str, depth: int = 0) -> bool:
        terms = record.split()[1:]
        redirect = None
        for term in terms:
            t = term.lstrip("+").lower()
            if term[:1] in "-~?":
                continue                       # a non-pass qualifier never authorises
            if t.startswith("redirect="):
                redirect = t.split("=", 1)[1]
            elif t.startswith("include:"):
                target = t.split(":", 1)[1]
                if any(target == inc or target.endswith("." + inc) for inc in self.includes):
                    return True
                if self._follow(target, depth):
                    return True
            elif t.startswith(("ip4:", "ip6:")) and self.ips:
                if self._in_network(t[4:]):
                    return True
            elif (t == "a" or t.startswith(("a:", "a/")) or t == "mx" or t.startswith(("mx:", "mx/"))) and self.ips:
                if self._host_match(t, domain):
                    return True
        if redirect:
            if any(redirect == inc for inc in self.includes):
                return True
            return self._follow(redirect, depth)
        return False

    def _count(self) -> bool:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            self.too_many = True
        return not self.too_many

    def _follow(self, target: str, depth: int) -> bool:
        if depth >= 5 or not self._count():
            return False
        found = spf_records(self.r.txt(target))
        return len(found) == 1 and self.allows(target, found[0], depth + 1)

    def _in_network(self, text: str) -> bool:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for ip in self.ips)

    def _host_match(self, term: str, domain: str) -> bool:
        kind, _, rest = term.partition(":")
        kind = kind.split("/")[0]
        host = rest.split("/")[0] if rest else domain
        if not self._count():
            return False
        hosts = [host] if kind == "a" else [m.split(" ", 1)[1] for m in self._mx(host)]
        addrs = {ipaddress.ip_address(a) for h in hosts for a in self.r.addresses(h)}
        return any(ip in addrs for ip in self.ips)

    def _mx(self, host: str) -> list[str]:
        try:
            return self.r.query(host, "MX")
        except NoDomain:
            return []


def spf_finding(r: Resolver, domain: str, config: Config, _done: list[Finding]) -> Finding:
    records = spf_records(r.txt(domain))
    name, label = "dns.spf", "SPF"
    provider = config.new.provider
    sender = PROVIDER_NAMES.get(provider) or (config.new.smtp.host if config.new.smtp else "the new server")
    want = SPF_INCLUDES.get(provider)
    example = f"include:{want[0]}" if want else f"ip4:<the address of {sender}>"
    if not records:
        return Finding(name, SECTION, label, FAIL, f"{domain} publishes no SPF record",
                       "Receivers cannot tell your mail from forgeries; strict ones (Russia's Yandex and "
                       "Mail.ru, many in South America) junk or refuse it.",
                       f"Ask IT to publish the TXT record 'v=spf1 {example} -all' for {domain}.")
    if len(records) > 1:
        return Finding(name, SECTION, label, FAIL, f"{len(records)} SPF records: " + " | ".join(records),
                       "Two SPF records make SPF invalid (permerror): receivers treat your mail as unchecked.",
                       f"Ask IT to merge them into one record with {example}.")
    record = records[0]
    ips = []
    if not want and config.new.smtp is not None:
        ips = [ipaddress.ip_address(a) for a in r.addresses(config.new.smtp.host)]
    spf = _Spf(r, want or (), ips)
    allowed = spf.allows(domain, record)
    tail = record.split()[-1].lower() if record.split() else ""
    if spf.too_many:
        return Finding(name, SECTION, label, FAIL, f"'{record}' needs more than {MAX_LOOKUPS} DNS look-ups",
                       "Receivers stop at 10 look-ups and treat SPF as broken (permerror).",
                       "Ask IT to flatten the SPF record (fewer include: terms).")
    if not want and not ips:
        return Finding(name, SECTION, label, WARN, f"'{record}'; cannot tell whether it allows {sender}",
                       "The sending server's address is unknown here.",
                       f"Ask IT whether the SPF record of {domain} covers {sender}.", blocks=False)
    if not allowed:
        return Finding(name, SECTION, label, FAIL, f"'{record}' does not allow {sender}",
                       f"Mail sent from the new mailbox fails SPF: it lands in spam or is refused, "
                       f"especially by strict receivers (Russia, South America).",
                       f"Ask IT to add {example} to the SPF record of {domain} (one record only).")
    if tail in ("+all", "all"):
        return Finding(name, SECTION, label, FAIL, f"'{record}' ends in +all",
                       "+all lets anyone on the internet send as your domain.",
                       "Ask IT to end the SPF record with -all (or ~all).")
    if tail == "?all" or not (tail.endswith("all") or "redirect=" in record.lower()):
        return Finding(name, SECTION, label, WARN, f"'{record}' allows {sender} but ends neutral",
                       "Forgeries from other servers are not marked as failing.",
                       "Ask IT to end the SPF record with ~all or -all.", blocks=False)
    how = "strict (-all)" if tail == "-all" else "soft (~all)" if tail == "~all" else "via redirect"
    return Finding(name, SECTION, label, OK, f"'{record}' allows {sender}; others {how}")


def dkim_finding(r: Resolver, domain: str, config: Config, _done: list[Finding]) -> Finding:
    name, label = "dns.dkim", "DKIM"
    configured = config.dns.dkim_selector
    selectors = (configured,) if configured else DKIM_SELECTORS.get(config.new.provider, USUAL_SELECTORS)
    for sel in selectors:
        texts = [t for t in r.txt(f"{sel}._domainkey.{domain}") if "p=" in t.replace(" ", "")]
        if not texts:
            continue
        tags = dict(p.strip().split("=", 1) for p in texts[0].split(";") if "=" in p)
        if not tags.get("p", "").strip():
            return Finding(name, SECTION, label, FAIL, f"selector '{sel}' has an empty key (revoked)",
                           "Mail signed with this selector fails DKIM.",
                           f"Ask IT to publish the provider's current DKIM key for {domain}.")
        return Finding(name, SECTION, label, OK, f"key published under '{sel}._domainkey.{domain}'")
    tried = ", ".join(selectors)
    if configured:
        return Finding(name, SECTION, label, FAIL, f"no DKIM key under the configured selector '{configured}'",
                       "Mail from the new address is not signed in a way receivers can check; "
                       "with a strict DMARC policy it is refused.",
                       f"Ask IT to switch on DKIM signing at the provider and publish the key "
                       f"'{configured}._domainkey.{domain}'.")
    return Finding(name, SECTION, label, WARN, f"no DKIM key under the usual selectors ({tried})",
                   "Maybe DKIM is off, maybe the provider uses another selector name.",
                   f"Ask IT whether DKIM signing is on for {domain}; set dns.dkim_selector to its "
                   f"selector to check it.", blocks=False)


def dmarc_finding(r: Resolver, domain: str, config: Config, done: list[Finding]) -> Finding:
    name, label = "dns.dmarc", "DMARC"
    records = [t.strip() for t in r.txt(f"_dmarc.{domain}") if t.strip().lower().startswith("v=dmarc1")]
    first = f"'v=DMARC1; p=none; rua=mailto:dmarc@{domain}'"
    if not records:
        return Finding(name, SECTION, label, WARN, f"no DMARC record at _dmarc.{domain}",
                       "Big receivers (Gmail, Yahoo, Mail.ru) expect one; without it your domain is "
                       "easier to forge and your mail easier to junk.",
                       f"Ask IT to publish {first} for a start.", blocks=False)
    if len(records) > 1:
        return Finding(name, SECTION, label, FAIL, f"{len(records)} DMARC records at _dmarc.{domain}",
                       "Receivers ignore DMARC when there is more than one record.",
                       "Ask IT to keep exactly one.")
    tags = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in records[0].split(";"))}
    policy = tags.get("p", "").lower()
    rua = "" if tags.get("rua") else " (no rua: nobody receives the reports)"
    spf_dkim_bad = all(f.verdict != OK for f in done if f.name in ("dns.spf", "dns.dkim"))
    if policy in ("quarantine", "reject") and spf_dkim_bad:
        return Finding(name, SECTION, label, FAIL, f"p={policy}, but neither SPF nor DKIM passes",
                       f"Receivers are told to {'junk' if policy == 'quarantine' else 'refuse'} "
                       f"your own mail from the new address.",
                       "Ask IT to fix SPF or DKIM first (see above), or set p=none until they pass.")
    if policy == "none":
        return Finding(name, SECTION, label, WARN, f"p=none{rua}",
                       "Monitoring only: receivers are not told to act on forgeries.",
                       "Fine to start; once SPF and DKIM pass, ask IT to move to p=quarantine"
                       + (f" and add rua=mailto:dmarc@{domain}." if rua else "."), blocks=False)
    if policy in ("quarantine", "reject"):
        return Finding(name, SECTION, label, OK, f"p={policy}{rua}")
    return Finding(name, SECTION, label, FAIL, f"'{records[0]}' has no valid policy (p=)",
                   "Receivers ignore a DMARC record without a policy.",
                   f"Ask IT to correct it to {first}.")
