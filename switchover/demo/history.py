"""The generated five-year history of an export business's mailbox.

``generate_messages(seed, count)`` yields ``(folder, raw_bytes, flags, internaldate)``
in date order: customer threads in English, Spanish, Portuguese and Russian (Re: with
In-Reply-To / References, quotes with PDF attachments, complaints with photos),
Chinese mail from suppliers, forwarders and colleagues (UTF-8 or GB18030), newsletters
with List-* headers, junk, delivery-status bounces, drafts and trash. Deterministic
for a seed and an end date (default: today, 00:00 UTC). The bench reuses it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import formataddr

from . import texts
from .mime import JPEG, Mail, dsn, minimal_pdf, png_image
from .people import (COMPANY, FOLDERS, OLD_ADDRESS, OLD_DOMAIN, OWNER_NAME, OWNER_TZ, PRODUCTS,
                     Person, cast)

__all__ = ["generate_messages", "FOLDERS", "HistoryMessage"]

HistoryMessage = tuple[str, bytes, tuple[str, ...], datetime]
YEARS = 5
ME = (OWNER_NAME, OLD_ADDRESS)


def today_utc() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class _Writer:
    """Draws messages one event at a time from a seeded random source."""

    def __init__(self, seed: int, end: datetime) -> None:
        self.rng = random.Random(f"history-{seed}")
        self.seed = seed
        self.end = end
        self.start = end - timedelta(days=365 * YEARS)
        self.people = cast(seed)
        self.customers = [p for p in self.people if p.role == "customer"]
        self.suppliers = [p for p in self.people if p.role == "supplier"]
        self.forwarders = [p for p in self.people if p.role == "logistics"]
        self.colleagues = [p for p in self.people if p.role == "colleague"]
        self.n = 0
        self.out: list[tuple[datetime, str, Mail, tuple[str, ...]]] = []

    # -- helpers --------------------------------------------------------------------------
    def msgid(self, domain: str) -> str:
        self.n += 1
        h = hashlib.sha1(f"{self.seed}-{self.n}".encode()).hexdigest()[:16]
        return f"<{h}.{self.n}@{domain}>"

    def when(self, lo: datetime | None = None, hi: datetime | None = None) -> datetime:
        lo = lo or self.start
        hi = hi or self.end
        span = max(1, int((hi - lo).total_seconds()))
        t = lo + timedelta(seconds=self.rng.randrange(span))
        # office hours, mostly
        if self.rng.random() < 0.8:
            t = t.replace(hour=self.rng.randint(1, 10))  # 09:00-18:00 in China is 01-10 UTC
        return t

    def ref(self, kind: str, t: datetime) -> str:
        return f"{kind}-{t.year}-{self.rng.randint(1, 999):03d}"

    def flags_in(self, t: datetime, *, answered: bool = False) -> tuple[str, ...]:
        recent = (self.end - t) < timedelta(days=3)
        f = []
        if self.rng.random() < (0.5 if recent else 0.97):
            f.append("\\Seen")
        if answered:
            f.append("\\Answered")
        if self.rng.random() < 0.05:
            f.append("\\Flagged")
        if self.rng.random() < 0.03:
            f.append("$Label1")
        return tuple(f)

    def add(self, folder: str, mail: Mail, flags: tuple[str, ...]) -> None:
        self.out.append((mail.date, folder, mail, flags))

    @staticmethod
    def _who(p: Person) -> tuple[str, str]:
        return (p.name, p.address)

    def _first(self, p: Person) -> str:
        return p.name.split()[0] if p.lang != "zh" else p.name

    def _charset(self, lang: str) -> tuple[str, str | None]:
        r = self.rng.random()
        if lang == "zh":
            return ("gb18030", "base64") if r < 0.35 else ("utf-8", "base64" if r < 0.7 else None)
        if lang == "ru":
            return ("utf-8", "base64" if r < 0.5 else "quoted-printable")
        return ("utf-8", "quoted-printable" if r < 0.6 else None)

    # -- events ---------------------------------------------------------------------------
    def thread(self) -> None:
        """A customer conversation: inquiry → quote → follow-ups → order → shipped."""
        p = self.rng.choice(self.customers)
        lang = p.lang if p.lang in texts.OWNER["quote"] else "en"
        t = self.when(hi=self.end - timedelta(hours=6))
        pi = self.rng.randrange(len(PRODUCTS["en"]))
        product = PRODUCTS[lang][pi]
        qty = self.rng.choice([200, 500, 1000, 2000, 5000, 12000])
        ref = self.ref("PO", t)
        steps = ["inquiry", "quote"] + self.rng.choice([
            [], ["followup"], ["answer"], ["order", "answer"], ["order", "shipped"],
            ["order", "shipped", "thanks"], ["order", "payment", "shipped", "complaint", "answer"]])
        subject0 = ""
        refs: list[str] = []
        for i, step in enumerate(steps):
            fields = dict(first=self._first(p), me="Wu Jun", product=product, qty=qty, ref=ref,
                          company=p.company, season=texts.SEASONS.get(lang, "spring"))
            incoming = step in texts.CUSTOMER
            if incoming:
                subj, body = texts.CUSTOMER[step][lang]
                subj = subj.format(**fields)
                body = body.format(**fields)
            else:
                subj, body = "", texts.OWNER[step][lang].format(**fields)
            if i == 0:
                subject0 = subj
            elif step in ("order", "payment", "complaint", "thanks"):
                pass  # a new topic in the same thread keeps its own subject
            else:
                subj = "Re: " + subject0
            if not subj:
                subj = "Re: " + subject0
            charset, cte = self._charset(lang)
            mail = Mail(sender=self._who(p) if incoming else ME, to=[ME] if incoming else [self._who(p)],
                        subject=subj, body=body, date=t.astimezone(p.tz if incoming else OWNER_TZ),
                        message_id=self.msgid(p.address.split("@")[1] if incoming else OLD_DOMAIN),
                        in_reply_to=refs[-1] if refs else None, references=list(refs[-5:]),
                        charset=charset, cte=cte)
            if incoming and self.rng.random() < 0.15:  # a colleague of theirs in copy
                other = self.rng.choice(self.customers)
                mail.cc.append(self._who(other))
            if step == "quote":
                qref = self.ref("Q", t)
                mail.attachments.append((f"Quotation_{qref}.pdf", "application/pdf", minimal_pdf([
                    f"{COMPANY} - Quotation {qref}", f"To: {p.company.encode('ascii', 'replace').decode()}",
                    f"Item: {PRODUCTS['en'][pi]}", f"Quantity: {qty} pcs",
                    f"Unit price: USD {self.rng.randint(2, 90)}.{self.rng.randint(0, 99):02d} FOB Ningbo",
                    "Payment: 30% T/T deposit, 70% against B/L copy", "Validity: 30 days"])))
            elif step == "complaint":
                mail.attachments.append(("IMG_%04d.jpg" % self.rng.randint(1, 9999), "image/jpeg", JPEG))
            elif step == "order" and self.rng.random() < 0.5:
                mail.attachments.append((f"{ref}.pdf", "application/pdf",
                                         minimal_pdf([f"Purchase order {ref}", f"{PRODUCTS['en'][pi]}: {qty} pcs"])))
            refs.append(mail.message_id)
            answered = incoming and i + 1 < len(steps) and steps[i + 1] in texts.OWNER
            if incoming:
                aged = (self.end - t) > timedelta(days=45)
                folder = p.folder if aged else "INBOX"
                if step == "order" and mail.attachments and aged:
                    folder = "合同"
                self.add(folder, mail, self.flags_in(t, answered=answered))
            else:
                self.add("Sent", mail, ("\\Seen",))
            t += timedelta(hours=self.rng.randint(2, 96))
            if t > self.end:
                break

    def supplier(self) -> None:
        p = self.rng.choice(self.suppliers)
        t = self.when()
        subj, body = self.rng.choice(texts.SUPPLIER)
        pi = self.rng.randrange(len(PRODUCTS["zh"]))
        f = dict(first=p.name, product=PRODUCTS["zh"][pi], ref=self.ref("BJ", t), company=p.company)
        charset, cte = self._charset("zh")
        mail = Mail(sender=self._who(p), to=[ME], subject=subj.format(**f), body=body.format(**f),
                    date=t.astimezone(p.tz), message_id=self.msgid(p.address.split("@")[1]),
                    charset=charset, cte=cte)
        # filed like the buyers' threads: a 供应商 folder once it is no longer current
        folder = "供应商" if (self.end - t) > timedelta(days=45) else "INBOX"
        if "报价" in subj:
            mail.attachments.append((f"报价单-{f['ref']}.pdf", "application/pdf",
                                     minimal_pdf([f"Price list {f['ref']}", PRODUCTS["en"][pi], "EXW, VAT incl."])))
            folder = "报价单"
        elif "包装" in subj:
            mail.attachments.append(("彩盒样稿.png", "image/png", png_image(self.rng)))
        self.add(folder, mail, self.flags_in(t))

    def logistics(self) -> None:
        p = self.rng.choice(self.forwarders)
        t = self.when()
        subj, body = self.rng.choice(texts.LOGISTICS["zh" if p.lang == "zh" else "en"])
        f = dict(first=self._first(p), ref=self.ref("BK", t), company=p.company)
        charset, cte = self._charset(p.lang)
        mail = Mail(sender=self._who(p), to=[ME], subject=subj.format(**f), body=body.format(**f),
                    date=t.astimezone(p.tz), message_id=self.msgid(p.address.split("@")[1]),
                    charset=charset, cte=cte)
        if "提单" in subj:
            mail.attachments.append((f"BL-draft-{f['ref']}.pdf", "application/pdf",
                                     minimal_pdf([f"Draft bill of lading {f['ref']}", "Port of loading: Ningbo"])))
        self.add("物流", mail, self.flags_in(t))

    def colleague(self) -> None:
        p = self.rng.choice(self.colleagues)
        t = self.when()
        subj, body = self.rng.choice(texts.COLLEAGUE)
        f = dict(first=p.name, product=self.rng.choice(PRODUCTS["zh"]), ref=self.ref("PO", t))
        charset, cte = self._charset("zh")
        mail = Mail(sender=self._who(p), to=[ME], subject=subj.format(**f), body=body.format(**f),
                    date=t.astimezone(p.tz), message_id=self.msgid(OLD_DOMAIN), charset=charset, cte=cte)
        self.add("INBOX", mail, self.flags_in(t))

    def newsletter(self) -> None:
        name, addr, list_id, teaser = self.rng.choice(texts.NEWSLETTERS)
        t = self.when()
        dom = addr.split("@")[1]
        issue = f"{t:%Y-%m-%d}"
        html = (f"<html><body><h1>{name}</h1><p>{teaser}</p>"
                f"<p><a href=\"https://{dom}/issues/{issue}\">Read online</a> · "
                f"<a href=\"https://{dom}/unsubscribe\">Unsubscribe</a></p></body></html>")
        mail = Mail(sender=(name, addr), to=[ME], subject=f"{name} — {issue}: {teaser[:40]}",
                    body=f"{teaser}\n\nRead online: https://{dom}/issues/{issue}\n", date=t,
                    message_id=self.msgid(dom), html=html, cte="quoted-printable",
                    headers=[("List-Id", formataddr((name, list_id), charset="utf-8")),
                             ("List-Unsubscribe", f"<mailto:unsubscribe@{dom}>, <https://{dom}/unsubscribe>"),
                             ("Precedence", "bulk")])
        self.add("Newsletters", mail, ("\\Seen",) if self.rng.random() < 0.7 else ())

    def spam(self) -> None:
        subj, addr = self.rng.choice(texts.SPAM)
        t = self.when(lo=self.end - timedelta(days=30))  # junk gets emptied, only recent stays
        mail = Mail(sender=("", addr), to=[ME], subject=subj, body=subj + "\nClick here: http://"
                    + addr.split("@")[1] + "/x\n", date=t, message_id=self.msgid(addr.split("@")[1]),
                    headers=[("X-Spam-Flag", "YES"), ("X-Spam-Status", f"Yes, score={self.rng.randint(6, 15)}.2")])
        if self.rng.random() < 0.3:
            mail.attachments.append(("offer.png", "image/png", png_image(self.rng)))
        self.add("Junk", mail, ())

    def bounce(self) -> None:
        p = self.rng.choice(self.customers)
        t = self.when()
        gone = "old." + p.address
        raw = dsn(postmaster=f"MAILER-DAEMON@{OLD_DOMAIN}", original_from=OLD_ADDRESS, failed_rcpt=gone,
                  subject="Re: " + texts.CUSTOMER["inquiry"]["en"][0].format(product="LED panel lights",
                                                                           season="spring"),
                  date=t, message_id=self.msgid(OLD_DOMAIN), original_id=self.msgid(OLD_DOMAIN),
                  reason="User unknown in virtual mailbox table")
        self.out.append((t, "INBOX", raw, self.flags_in(t)))  # type: ignore[arg-type]

    def draft(self) -> None:
        p = self.rng.choice(self.customers)
        lang = p.lang if p.lang in texts.OWNER["answer"] else "en"
        t = self.when(lo=self.end - timedelta(days=200))
        mail = Mail(sender=ME, to=[self._who(p)], subject="Re: " + texts.CUSTOMER["followup"][lang][0].format(
                    product=self.rng.choice(PRODUCTS[lang])),
                    body=texts.OWNER["answer"][lang].format(first=self._first(p)), date=t.astimezone(OWNER_TZ),
                    message_id=self.msgid(OLD_DOMAIN))
        self.add("Drafts", mail, ("\\Draft", "\\Seen"))

    def trash(self) -> None:
        if self.rng.random() < 0.5:
            self.newsletter()
        else:
            self.spam()
        t, _folder, mail, _flags = self.out.pop()
        self.out.append((t, "Trash", mail, ("\\Seen",)))

    def run(self, count: int) -> list[HistoryMessage]:
        events = [(self.thread, 52), (self.supplier, 10), (self.logistics, 8), (self.colleague, 7),
                  (self.newsletter, 11), (self.spam, 3), (self.bounce, 2), (self.draft, 1.5),
                  (self.trash, 3)]
        fns = [e[0] for e in events]
        weights = [e[1] for e in events]
        while len(self.out) < count:
            self.rng.choices(fns, weights)[0]()
        del self.out[count:]
        self.out.sort(key=lambda e: e[0])
        result: list[HistoryMessage] = []
        for t, folder, mail, flags in self.out:
            raw = mail if isinstance(mail, bytes) else mail.render()
            result.append((folder, raw, flags, t))
        return result


def generate_messages(seed: int = 7, count: int = 3000, *,
                      end: datetime | None = None) -> Iterator[HistoryMessage]:
    """Yield ``count`` messages ``(folder, raw, flags, internaldate)`` in date order."""
    yield from _Writer(seed, end or today_utc()).run(count)


def folder_counts(messages: list[HistoryMessage]) -> dict[str, int]:
    counts = {f: 0 for f in FOLDERS}
    for folder, *_ in messages:
        counts[folder] = counts.get(folder, 0) + 1
    return counts
