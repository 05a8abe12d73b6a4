"""The demo's cast: the owner of the mailbox, and a few hundred correspondents.

Everything is fictional and lives under ``.example`` domains (RFC 2606). The cast is
drawn deterministically from a seed, so the history (``history.py``) and the live
arrivals (``live.py``) talk about the same customers.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta, timezone

OWNER_NAME = "Wu Jun"
OWNER_NAME_ZH = "吴军"
COMPANY = "Example Trading Co."
COMPANY_ZH = "示例贸易有限公司"
OLD_DOMAIN = "old-trading.example"
NEW_DOMAIN = "example-trading.example"
OLD_ADDRESS = f"sales.wu@{OLD_DOMAIN}"
NEW_ADDRESS = f"jun.wu@{NEW_DOMAIN}"
OWNER_TZ = timezone(timedelta(hours=8))

FOLDERS = ("INBOX", "Sent", "Drafts", "Trash", "Junk", "客户/墨西哥", "客户/巴西", "客户/俄罗斯",
           "供应商", "报价单", "合同", "物流", "Newsletters")
COUNTRY_FOLDER = {"MX": "客户/墨西哥", "BR": "客户/巴西", "RU": "客户/俄罗斯"}

PRODUCTS = {
    "en": ["LED panel lights", "solar street lights", "stainless steel cookware", "cordless drills",
           "PVC garden hoses", "ceramic floor tiles", "bamboo cutting boards", "USB-C chargers"],
    "es": ["paneles LED", "farolas solares", "baterías de cocina de acero inoxidable",
           "taladros inalámbricos", "mangueras de jardín de PVC", "baldosas de cerámica",
           "tablas de cortar de bambú", "cargadores USB-C"],
    "pt": ["painéis de LED", "postes solares", "panelas de aço inox", "furadeiras sem fio",
           "mangueiras de jardim em PVC", "pisos cerâmicos", "tábuas de corte de bambu",
           "carregadores USB-C"],
    "ru": ["светодиодные панели", "солнечные уличные фонари", "посуда из нержавеющей стали",
           "аккумуляторные дрели", "садовые шланги ПВХ", "керамическая плитка",
           "бамбуковые разделочные доски", "зарядные устройства USB-C"],
    "zh": ["LED面板灯", "太阳能路灯", "不锈钢锅具", "无线电钻", "PVC花园水管", "陶瓷地砖",
           "竹制砧板", "USB-C充电器"],
}

_FIRST = {
    "es": ["Carlos", "María", "José", "Ana", "Luis", "Sofía", "Miguel", "Lucía", "Javier",
           "Elena", "Diego", "Valentina", "Andrés", "Camila", "Fernando", "Gabriela"],
    "pt": ["João", "Ana", "Pedro", "Mariana", "Lucas", "Beatriz", "Rafael", "Juliana",
           "Tiago", "Fernanda", "Gustavo", "Larissa"],
    "ru": [("Алексей", "m"), ("Дмитрий", "m"), ("Сергей", "m"), ("Ольга", "f"), ("Наталья", "f"),
           ("Иван", "m"), ("Екатерина", "f"), ("Михаил", "m"), ("Анна", "f"), ("Павел", "m")],
    "en": ["John", "Sarah", "Michael", "Emily", "David", "Jessica", "Robert", "Laura",
           "Daniel", "Megan", "Kevin", "Rachel"],
    "ae": ["Ahmed", "Fatima", "Omar", "Layla", "Khalid", "Mariam", "Yousef", "Noura"],
    "zh": ["伟", "娜", "敏", "洋", "静", "磊", "霞", "强", "杰", "芳", "婷", "涛"],
}
_LAST = {
    "es": ["García", "Hernández", "López", "Martínez", "Ramírez", "Torres", "Flores",
           "Vargas", "Castillo", "Morales", "Ortega", "Navarro"],
    "pt": ["Silva", "Santos", "Oliveira", "Souza", "Costa", "Pereira", "Almeida",
           "Ferreira", "Ribeiro", "Carvalho"],
    "ru": ["Смирнов", "Кузнецов", "Попов", "Волков", "Соколов", "Морозов", "Лебедев", "Козлов"],
    "en": ["Miller", "Johnson", "Brown", "Davis", "Wilson", "Anderson", "Taylor", "Clark",
           "Walker", "Young"],
    "ae": ["Al Mansouri", "Hassan", "Khalid", "Al Farsi", "Rahman", "Saleh"],
    "zh": ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "孙", "徐", "马"],
}
_RU_TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                        ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n",
                         "o", "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "sch", "", "y",
                         "", "e", "yu", "ya"]))
_ZH_PINYIN = {"王": "wang", "李": "li", "张": "zhang", "刘": "liu", "陈": "chen", "杨": "yang",
              "赵": "zhao", "黄": "huang", "周": "zhou", "孙": "sun", "徐": "xu", "马": "ma",
              "伟": "wei", "娜": "na", "敏": "min", "洋": "yang", "静": "jing", "磊": "lei",
              "霞": "xia", "强": "qiang", "杰": "jie", "芳": "fang", "婷": "ting", "涛": "tao"}

_COMPANY = {
    "MX": (["Importadora", "Distribuidora", "Comercial", "Grupo"],
           ["Azteca", "del Norte", "Sol del Pacífico", "Monterrey", "Jalisco", "Bajío", "Maya"]),
    "BR": (["Importadora", "Comercial", "Distribuidora", "Casa"],
           ["Paulista", "Carioca", "Amazônia", "do Sul", "Minas", "Atlântico"]),
    "RU": (["ООО", "ТД", "АО"], ["Восток", "Северный Импорт", "Волга", "Урал Трейд", "Балтика"]),
    "ES": (["Suministros", "Comercial", "Importaciones"], ["Ibérica", "Levante", "Castilla", "Galicia"]),
    "CL": (["Comercial", "Importadora"], ["Andina", "del Pacífico", "Austral"]),
    "US": (["", ""], ["Lakeside Supply", "Prairie Home Goods", "Harbor Hardware", "Summit Retail"]),
    "AE": (["", ""], ["Gulf Star Trading", "Desert Rose General Trading", "Marina Imports"]),
    "CN": (["", ""], ["宁波恒达灯饰", "永康精工五金", "佛山美陶", "义乌优品", "深圳迅充电子"]),
    "LOG": (["", ""], ["环球捷运物流", "海星国际货运", "Blue Anchor Logistics", "Pacific Line Forwarding"]),
}
# Chinese company names spelled for their mail domains
_DOMAIN_NAMES = {"宁波恒达灯饰": "hengda-lighting", "永康精工五金": "jinggong-tools", "佛山美陶": "meitao-ceramics",
                 "义乌优品": "youpin-yiwu", "深圳迅充电子": "xunchong-tech", "环球捷运物流": "huanqiu-express",
                 "海星国际货运": "haixing-freight"}
# country → (language, name pool, tz hours, weight)
COUNTRIES = {
    "MX": ("es", "es", -6, 22), "BR": ("pt", "pt", -3, 18), "RU": ("ru", "ru", 3, 16),
    "ES": ("es", "es", 1, 8), "CL": ("es", "es", -4, 5), "US": ("en", "en", -5, 12),
    "AE": ("en", "ae", 4, 7),
}


@dataclass(frozen=True)
class Person:
    name: str
    address: str
    country: str
    lang: str
    role: str          # customer | supplier | logistics | colleague
    company: str
    tz: timezone

    @property
    def folder(self) -> str:
        return COUNTRY_FOLDER.get(self.country, "INBOX")


def ascii_slug(text: str) -> str:
    text = "".join(_RU_TRANSLIT.get(c, _ZH_PINYIN.get(c, c)) for c in text.lower())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "mail"


def _name(rng: random.Random, pool: str) -> tuple[str, str, str]:
    """(display name, first, last) in the pool's script."""
    last = rng.choice(_LAST[pool])
    if pool == "ru":
        first, gender = rng.choice(_FIRST["ru"])
        if gender == "f":
            last += "а"
        return f"{first} {last}", first, last
    first = rng.choice(_FIRST[pool])
    if pool == "zh":
        return last + first, first, last
    return f"{first} {last}", first, last


def _company(rng: random.Random, country: str) -> str:
    prefixes, names = _COMPANY[country]
    prefix = rng.choice(prefixes)
    name = rng.choice(names)
    if country == "RU":
        return f"{prefix} «{name}»"
    return f"{prefix} {name}".strip()


def cast(seed: int, customers: int = 260) -> list[Person]:
    """Customers abroad, suppliers and forwarders in China, colleagues at the company."""
    rng = random.Random(f"cast-{seed}")
    people: list[Person] = []
    seen: set[str] = set()
    companies: dict[str, str] = {}

    def add(name: str, first: str, last: str, country: str, lang: str, role: str,
            company: str, tz_h: int, domain: str | None = None) -> None:
        if domain is None:
            slug = _DOMAIN_NAMES.get(company) or ascii_slug(company)[:28]
            domain = companies.setdefault(company, slug + "."
                                          + country.lower() + ".example")
        local = f"{ascii_slug(first)}.{ascii_slug(last)}" if rng.random() < 0.7 else \
            rng.choice(["sales", "compras", "import", "info", "purchase", "office"]) \
            if role == "customer" else f"{ascii_slug(first)}{rng.randint(1, 99)}"
        addr = f"{local}@{domain}"
        if addr in seen:
            addr = f"{local}{len(seen)}@{domain}"
        seen.add(addr)
        people.append(Person(name, addr, country, lang, role, company, timezone(timedelta(hours=tz_h))))

    keys = list(COUNTRIES)
    weights = [COUNTRIES[k][3] for k in keys]
    for _ in range(customers):
        country = rng.choices(keys, weights)[0]
        lang, pool, tz_h, _w = COUNTRIES[country]
        name, first, last = _name(rng, pool)
        # several people per company, as in real customer accounts
        company = _company(rng, country)
        add(name, first, last, country, lang, "customer", company, tz_h)
    for _ in range(18):
        name, first, last = _name(rng, "zh")
        add(name, first, last, "CN", "zh", "supplier", _company(rng, "CN"), 8)
    for _ in range(10):
        company = _company(rng, "LOG")
        if company.isascii():
            name, first, last = _name(rng, "en")
            add(name, first, last, "CN", "en", "logistics", company, 8)
        else:
            name, first, last = _name(rng, "zh")
            add(name, first, last, "CN", "zh", "logistics", company, 8)
    for _ in range(8):
        name, first, last = _name(rng, "zh")
        add(name, first, last, "CN", "zh", "colleague", COMPANY_ZH, 8, domain=OLD_DOMAIN)
    return people
