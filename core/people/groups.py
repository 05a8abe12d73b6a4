"""Which group a person is in, with the evidence: customer, supplier, logistics, internal,
business (notified by default) or automated, newsletter, bounce, cold, own (never).

Pure and synchronous: it judges what the history scan counted of one person
(``Facts``) against the company's domains and what is known of the person's
organisation. The order of the rules is the order of certainty: the user's own
addresses, then robots (every message they sent was automated), colleagues by domain,
the folders the user filed their mail in, a colleague of theirs filed somewhere, then who
answered whom.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .audience import GROUPS, NOTIFY_GROUPS

#: folder-name words, in the languages a trading mailbox uses (a path component that is
#: or contains one of them files its mail in that group)
FOLDER_WORDS: dict[str, tuple[str, ...]] = {
    "customer": ("客户", "客戶", "顾客", "顧客", "买家", "customers", "customer", "clients", "client",
                 "clientes", "cliente", "clienti", "клиенты", "клиент", "заказчики", "kunden",
                 "kunde", "müşteriler", "고객", "عملاء", "buyers", "buyer", "compradores"),
    "supplier": ("供应商", "供應商", "供货商", "工厂", "厂家", "suppliers", "supplier", "vendors", "vendor",
                 "proveedores", "proveedor", "fornecedores", "fornecedor", "поставщики",
                 "поставщик", "fournisseurs", "fournisseur", "lieferanten", "lieferant",
                 "fornitori", "tedarikçiler", "factories", "factory", "仕入先", "공급업체", "موردين"),
    "logistics": ("货代", "物流", "船务", "船務", "货运", "快递", "logistics", "forwarders", "forwarder",
                  "forwarding", "freight", "shipping", "spedition", "speditionen", "логистика",
                  "перевозчики", "logística", "logistica", "transitaires", "transitaire",
                  "transporte", "cargo", "lojistik", "物流業者"),
    "internal": ("同事", "公司内部", "内部", "colleagues", "internal", "intern", "kollegen", "коллеги",
                 "compañeros", "collègues", "colegas"),
}
#: a domain that says it moves goods (weaker than a folder: used when nothing else is known)
_LOGISTICS_DOMAIN = re.compile(r"logistic|freight|shipping|cargo|forwarding|express|maersk|dhl|"
                               r"fedex|\bups\b|kuehne|schenker|cosco|msc|cma-?cgm|hapag", re.I)
#: public mailbox providers: their domain is no organisation
FREE_MAIL = frozenset("""
gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr yahoo.es yahoo.de yahoo.co.jp
yahoo.com.br yahoo.com.mx ymail.com hotmail.com hotmail.co.uk hotmail.fr hotmail.es
hotmail.de hotmail.it outlook.com outlook.es outlook.fr outlook.de live.com live.fr msn.com
icloud.com me.com mac.com aol.com gmx.com gmx.de gmx.net web.de t-online.de mail.com
protonmail.com proton.me zoho.com yandex.ru yandex.com ya.ru mail.ru bk.ru list.ru inbox.ru
rambler.ru qq.com foxmail.com 163.com 126.com yeah.net sina.com sina.cn sohu.com aliyun.com
139.com 189.cn 21cn.com orange.fr free.fr laposte.net sfr.fr wanadoo.fr libero.it tin.it
virgilio.it alice.it uol.com.br bol.com.br terra.com.br ig.com.br terra.es telefonica.net
naver.com daum.net hanmail.net rediffmail.com
""".split())


@dataclass
class Facts:
    """What the history and the watch counted of one address."""
    address: str
    name: str = ""
    messages_from: int = 0
    messages_to: int = 0
    auto_from: int = 0          # RFC 3834 / no-reply messages they sent
    list_from: int = 0          # newsletters / mailing lists
    bounce_from: int = 0        # delivery reports
    sent_as: int = 0            # messages of the Sent folder sent from this address
    folders: dict[str, int] = field(default_factory=dict)   # folder -> messages from them


@dataclass(frozen=True)
class Verdict:
    group: str
    evidence: str


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower() if "@" in address else ""


def organisation_of(address: str) -> str:
    """The organisation an address belongs to: its domain, unless a public provider's."""
    domain = domain_of(address)
    return "" if not domain or domain in FREE_MAIL else domain


def company_domains(new_address: str, old_address: str, internal: tuple[str, ...] = ()) -> set[str]:
    """The colleagues' domains: the new address's, the old one's when it is a company's,
    and the configured ``notices.internal_domains``."""
    out = {d.lower() for d in internal if d}
    for addr in (new_address, old_address):
        org = organisation_of(addr)
        if org:
            out.add(org)
    return out


def _normal_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name or "").casefold()
    text = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", " ", text)      # "(Sales)" "[ACME]"
    words = re.findall(r"\w+", text)
    return " ".join(sorted(words))                           # "Wu, John" == "John Wu"


def alias_key(name: str, address: str) -> str:
    """The name key of an address: a full name (two words, or a CJK name), a single word
    only within one organisation ("carlos@acme.mx"); "" when there is no name."""
    normal = _normal_name(name)
    if not normal or "@" in (name or ""):
        return ""
    cjk = any("\u4e00" <= c <= "\u9fff" for c in normal)
    if " " in normal or (cjk and len(normal) >= 2):
        return normal
    org = organisation_of(address)
    return f"{normal}@{org}" if org else ""


def alias_keys(people: list[tuple[str, str]]) -> dict[str, str]:
    """{address: key} for the (address, name) pairs that are one person's several
    addresses: the same name within one organisation, plus that name's addresses at
    public providers. The same full name at two companies is two people (names repeat:
    two 张伟 at two factories are not one person); a name at public providers only, with
    no company address, is one person."""
    by_name: dict[str, list[str]] = {}
    for address, name in people:
        key = alias_key(name, address)
        if key:
            by_name.setdefault(key, []).append(address)
    out: dict[str, str] = {}
    for key, addresses in by_name.items():
        orgs = {organisation_of(a) for a in addresses} - {""}
        if len(orgs) > 1:       # several companies: one person per company, public ones apart
            for org in orgs:
                same = [a for a in addresses if organisation_of(a) == org]
                if len(same) > 1:
                    out.update({a: f"{key}@{org}" for a in same})
            continue
        if len(addresses) > 1:
            out.update({a: key for a in addresses})
    return out


def folder_group(folder: str) -> str:
    """The group a folder files mail in ("" when its name says nothing)."""
    parts = re.split(r"[/.\\]", folder.casefold())
    for part in parts:
        words = set(re.findall(r"\w+", part))
        for group, keys in FOLDER_WORDS.items():
            for k in keys:
                if k in words or (not k.isascii() and k in part):
                    return group
    return ""


def folder_votes(folders: dict[str, int]) -> tuple[str, str, int]:
    """(group, the folder that says it most, how many messages) by the folders a person's
    mail is filed in; ("", "", 0) when no folder name says anything."""
    tally: dict[str, int] = {}
    best_folder: dict[str, tuple[int, str]] = {}
    for folder, n in folders.items():
        group = folder_group(folder)
        if group:
            tally[group] = tally.get(group, 0) + n
            if n > best_folder.get(group, (0, ""))[0]:
                best_folder[group] = (n, folder)
    if not tally:
        return "", "", 0
    group = max(tally, key=lambda g: (tally[g], g))
    return group, best_folder[group][1], tally[group]


def _counts(f: Facts) -> str:
    return f"{f.messages_from} from, {f.messages_to} to"


def classify(f: Facts, company: set[str], org_hint: tuple[str, str] | None = None) -> Verdict:
    """The group of one person, and why. ``org_hint`` is (group, folder) when colleagues of
    theirs (same organisation) are filed in a group's folder."""
    if f.sent_as:
        return Verdict("own", f"sends from the Sent folder ({f.sent_as} messages)")
    robot = f.auto_from + f.list_from + f.bounce_from
    if f.messages_from and not f.messages_to and robot >= f.messages_from:
        if f.bounce_from >= max(f.list_from, f.auto_from):
            return Verdict("bounce", f"delivery reports; {f.messages_from} from")
        if f.list_from >= f.auto_from:
            return Verdict("newsletter", f"list or bulk mail (List-Id, Precedence); {f.messages_from} from")
        return Verdict("automated", f"automatic mail (Auto-Submitted, no-reply); {f.messages_from} from")
    domain = domain_of(f.address)
    if domain in company:
        return Verdict("internal", f"company domain {domain}; {_counts(f)}")
    group, folder, n = folder_votes(f.folders)
    if group:
        return Verdict(group, f"in folder {folder}; {_counts(f)}")
    if org_hint:
        return Verdict(org_hint[0], f"colleagues at {domain} are in folder {org_hint[1]}; {_counts(f)}")
    if _LOGISTICS_DOMAIN.search(domain):
        return Verdict("logistics", f"domain {domain}; {_counts(f)}")
    if not f.messages_to and f.messages_from <= 2:
        return Verdict("cold", f"wrote {f.messages_from}, never answered")
    if f.messages_to and f.messages_from:
        return Verdict("business", f"answered both ways; {_counts(f)}")
    if f.messages_to:
        return Verdict("business", f"written to; {_counts(f)}")
    return Verdict("business", f"wrote {f.messages_from}, never answered")


def org_hints(people: list[Facts]) -> dict[str, tuple[str, str]]:
    """Per organisation, the group its filed people are in (for their unfiled colleagues)."""
    tally: dict[str, dict[str, int]] = {}
    where: dict[tuple[str, str], str] = {}
    for f in people:
        org = organisation_of(f.address)
        group, folder, n = folder_votes(f.folders)
        if org and group and group in NOTIFY_GROUPS:
            tally.setdefault(org, {})[group] = tally.setdefault(org, {}).get(group, 0) + n
            where.setdefault((org, group), folder)
    out: dict[str, tuple[str, str]] = {}
    for org, groups in tally.items():
        group = max(groups, key=lambda g: (groups[g], g))
        out[org] = (group, where[(org, group)])
    return out


def valid_group(value: str) -> str | None:
    """A group name as a person may write it ("Customer", "customers", "客户") → its key."""
    v = (value or "").strip().casefold()
    if v.endswith("s") and v[:-1] in GROUPS:
        v = v[:-1]
    if v in GROUPS:
        return v
    for group, keys in FOLDER_WORDS.items():
        if v in keys:
            return group
    return {"forwarder": "logistics", "colleague": "internal", "other": "business",
            "robot": "automated", "list": "newsletter", "spam": "cold"}.get(v.rstrip("s"))
