"""New mail arriving while the demo runs, sent through the demo's SMTP server.

Every few seconds a thread writes the next message of a deterministic stream (seed +
running number, continued across restarts) and hands it to the SMTP server over the
real protocol, which delivers it into the old INBOX — or the new one, when a customer
who already switched writes to the new address. The mix is what the old address gets
during a transition: customers (known and new, in several languages, the old address
in To or only in Cc), a colleague, a newsletter, a bounce, an out-of-office reply, junk.
A reminder the engine sends out makes its recipient answer to the new address a few
seconds later. A change notice (a message from the owner that is not a reply) makes only
some recipients switch (``NOTICE_SWITCH``), each after a delay of seconds to minutes: they
answer to the new address and from then on write there; the rest keep writing to the old
address a while, as people do. Recipients on a gone domain bounce (servers.py) and never
switch. All of it is read from what the SMTP server receives (sender, To, Subject,
Message-ID); nothing here knows switchover's internals.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import random
import smtplib
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import formataddr

from . import texts
from .mime import JPEG, Mail, dsn, minimal_pdf
from .people import (NEW_ADDRESS, OLD_ADDRESS, OLD_DOMAIN, OWNER_NAME, PRODUCTS, Person,
                     cast)
from .servers import is_gone

ME_OLD = (OWNER_NAME, OLD_ADDRESS)
ME_NEW = (OWNER_NAME, NEW_ADDRESS)

#: share of a notice's recipients who switch, and their delay in seconds (min, max)
NOTICE_SWITCH = 0.35
SWITCH_DELAY = (3.0, 180.0)

# kind → weight
MIX = {"customer": 34, "customer_cc": 8, "new_sender": 12, "switched": 10, "colleague": 9,
       "newsletter": 9, "bounce": 6, "autoreply": 7, "spam": 5}
# the first arrivals of a fresh demo show one of each kind, a customer first
OPENING = ("customer", "newsletter", "new_sender", "customer_cc", "bounce", "switched",
           "colleague", "autoreply", "customer", "spam")

_NEW_PEOPLE = [
    ("Valeria Ríos", "valeria.rios@ferreteria-rios.mx.example", "es", "Ferretería Ríos"),
    ("Bruno Lima", "bruno.lima@lima-utilidades.br.example", "pt", "Lima Utilidades"),
    ("Ирина Орлова", "irina.orlova@orlov-trade.ru.example", "ru", "ООО «Орлов Трейд»"),
    ("Hannah Becker", "h.becker@becker-haus.de.example", "en", "Becker Haus GmbH"),
    ("Rashid Al Amiri", "rashid@amiri-building.ae.example", "en", "Amiri Building Materials"),
    ("Tomás Aguirre", "compras@aguirre-hogar.cl.example", "es", "Aguirre Hogar"),
]


def make_arrival(seed: int, index: int, people: list[Person] | None = None,
                 now: datetime | None = None) -> tuple[str, list[str], bytes]:
    """The ``index``-th arrival of the stream: (envelope sender, recipients, raw)."""
    rng = random.Random(f"live-{seed}-{index}")
    people = people if people is not None else cast(seed)
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    kind = OPENING[index] if index < len(OPENING) else rng.choices(list(MIX), list(MIX.values()))[0]
    customers = [p for p in people if p.role == "customer"]
    mid = f"<live.{seed}.{index}.{rng.randrange(10**8):08d}@"
    product_i = rng.randrange(len(PRODUCTS["en"]))

    def customer_mail(name: str, addr: str, lang: str, company: str, tz: timezone) -> Mail:
        lang = lang if lang in texts.CUSTOMER["inquiry"] else "en"
        step = rng.choice(["inquiry", "order", "followup", "payment", "complaint", "inquiry"])
        subj, body = texts.CUSTOMER[step][lang]
        f = dict(first=name.split()[0], me="Wu Jun", product=PRODUCTS[lang][product_i],
                 qty=rng.choice([300, 800, 1500, 4000]), ref=f"PO-{now.year}-{rng.randint(100, 999)}",
                 company=company, season=texts.SEASONS.get(lang, "spring"))
        mail = Mail(sender=(name, addr), to=[ME_OLD], subject=subj.format(**f), body=body.format(**f),
                    date=now.astimezone(tz), message_id=mid + addr.split("@")[1] + ">",
                    cte=rng.choice(["quoted-printable", "base64", None]))
        if step == "complaint":
            mail.attachments.append((f"IMG_{rng.randint(1000, 9999)}.jpg", "image/jpeg", JPEG))
        if step == "order" and rng.random() < 0.6:
            mail.attachments.append((f"{f['ref']}.pdf", "application/pdf",
                                     minimal_pdf([f"Purchase order {f['ref']}", PRODUCTS["en"][product_i]])))
        return mail

    if kind in ("customer", "customer_cc", "switched"):
        p = rng.choice(customers)
        mail = customer_mail(p.name, p.address, p.lang, p.company, p.tz)
        if kind == "customer_cc":  # written to a colleague of ours, the old address only in Cc
            mail.cc = [ME_OLD]
            mail.to = [("Sales Team", f"sales@{OLD_DOMAIN}")]
        elif kind == "switched":  # already uses the new address
            mail.to = [ME_NEW]
            mail.subject = "Re: Important Notice: Update of Email Address for Wu Jun"
            mail.body = (f"Dear Jun,\n\nThank you for letting us know, we have updated our address book to "
                         f"{NEW_ADDRESS}.\n\nBest regards,\n{p.name.split()[0]}\n{p.company}")
        return p.address, [a for _, a in mail.to + mail.cc], mail.render()
    if kind == "new_sender":
        name, addr, lang, company = rng.choice(_NEW_PEOPLE)
        mail = customer_mail(name, addr, lang, company, timezone.utc)
        return addr, [OLD_ADDRESS], mail.render()
    if kind == "colleague":
        p = rng.choice([p for p in people if p.role == "colleague"])
        subj, body = rng.choice(texts.COLLEAGUE)
        f = dict(first=p.name, product=rng.choice(PRODUCTS["zh"]), ref=f"PO-{now.year}-{rng.randint(100, 999)}")
        mail = Mail(sender=(p.name, p.address), to=[ME_OLD], subject=subj.format(**f), body=body.format(**f),
                    date=now.astimezone(p.tz), message_id=mid + OLD_DOMAIN + ">",
                    charset=rng.choice(["utf-8", "gb18030"]), cte="base64")
        return p.address, [OLD_ADDRESS], mail.render()
    if kind == "newsletter":
        name, addr, list_id, teaser = rng.choice(texts.NEWSLETTERS)
        dom = addr.split("@")[1]
        mail = Mail(sender=(name, addr), to=[ME_OLD], subject=f"{name}: {teaser[:48]}",
                    body=teaser + f"\n\nUnsubscribe: https://{dom}/unsubscribe\n", date=now,
                    message_id=mid + dom + ">",
                    html=f"<html><body><h2>{name}</h2><p>{teaser}</p></body></html>",
                    headers=[("List-Id", formataddr((name, list_id), charset="utf-8")),
                             ("List-Unsubscribe", f"<mailto:unsubscribe@{dom}>"), ("Precedence", "bulk")])
        return f"bounces+{index}@{dom}", [OLD_ADDRESS], mail.render()
    if kind == "bounce":
        p = rng.choice(customers)
        raw = dsn(postmaster=f"MAILER-DAEMON@{OLD_DOMAIN}", original_from=OLD_ADDRESS,
                  failed_rcpt="x" + p.address, subject="Important Notice: Update of Email Address for Wu Jun",
                  date=now, message_id=mid + OLD_DOMAIN + ">", original_id=f"<notice.{index}@{OLD_DOMAIN}>",
                  reason="Recipient address rejected: User unknown")
        return "", [OLD_ADDRESS], raw
    if kind == "autoreply":
        p = rng.choice(customers)
        mail = Mail(sender=(p.name, p.address), to=[ME_OLD],
                    subject="Automatic reply: Important Notice: Update of Email Address for Wu Jun",
                    body=f"I am out of the office until next Monday with limited access to e-mail.\n\n{p.name}",
                    date=now.astimezone(p.tz), message_id=mid + p.address.split("@")[1] + ">",
                    headers=[("Auto-Submitted", "auto-replied"), ("X-Autoreply", "yes")])
        return "", [OLD_ADDRESS], mail.render()
    subj, addr = rng.choice(texts.SPAM)
    mail = Mail(sender=("", addr), to=[ME_OLD], subject=subj, body=subj + "\n", date=now,
                message_id=mid + addr.split("@")[1] + ">",
                headers=[("X-Spam-Flag", "YES"), ("X-Spam-Status", "Yes, score=9.1")])
    return addr, [OLD_ADDRESS], mail.render()


def is_notice(raw: bytes) -> bool:
    """A message from the owner that starts a conversation (a change notice), as opposed
    to a reminder, which answers one (In-Reply-To / a "Re:" subject)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = " ".join(str(msg.get("Subject", "")).split()).lower()
    return not msg.get("In-Reply-To") and not subject.startswith(("re:", "回复"))


def switch_decision(seed: int, address: str) -> float | None:
    """Seconds after a notice at which ``address`` switches to the new address, or None
    when this person keeps writing to the old one (the same answer in every run)."""
    rng = random.Random(f"switch-{seed}-{address.lower()}")
    if is_gone(address) or rng.random() >= NOTICE_SWITCH:
        return None
    return rng.uniform(*SWITCH_DELAY)


def readdress(rcpts: list[str], raw: bytes) -> tuple[list[str], bytes]:
    """The same mail written to the new address instead of the old one (To/Cc and the
    envelope): what a switched person sends."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    head = head.replace(OLD_ADDRESS.encode(), NEW_ADDRESS.encode())
    return [NEW_ADDRESS if r.lower() == OLD_ADDRESS else r for r in rcpts], head + sep + body


def switch_reply(original: bytes, rcpt: str, people: list[Person],
                 now: datetime | None = None) -> tuple[str, list[str], bytes]:
    """A correspondent's answer to a reminder or notice, written to the NEW address:
    how the demo shows a sender switching."""
    msg = email.message_from_bytes(original, policy=email.policy.default)
    who = next((p for p in people if p.address == rcpt.lower()), None)
    name = who.name if who else rcpt.split("@")[0].replace(".", " ").title()
    first = name.split()[0] if who is None or who.lang != "zh" else name
    subject = str(msg.get("Subject", "")).strip()
    mid = str(msg.get("Message-ID", "")).strip()
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    mail = Mail(sender=(name, rcpt), to=[ME_NEW],
                subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
                body=(f"Dear Jun,\n\nThank you for {'letting us know' if is_notice(original) else 'the reminder'}. "
                      f"We have updated our address book to "
                      f"{NEW_ADDRESS} and will write to you there from now on.\n\nBest regards,\n{first}"),
                date=now.astimezone(who.tz) if who else now,
                message_id=f"<switch.{hashlib.sha1((rcpt + mid).encode()).hexdigest()[:16]}@{rcpt.split('@')[1]}>",
                in_reply_to=mid or None, references=[mid] if mid else [])
    return rcpt, [NEW_ADDRESS], mail.render()


class LiveArrivals:
    """A daemon thread sending the stream to the SMTP server every ``every`` seconds."""

    def __init__(self, host: str, port: int, *, seed: int = 7, every: float = 6.0,
                 start_index: int = 0, on_sent: Callable[[int], None] | None = None) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.every = max(0.05, every)
        self.index = start_index       # next message of the stream
        self.sent = 0                  # sent since this start
        self.errors = 0
        self.replies_sent = 0
        self.on_sent = on_sent
        self.people = cast(seed)
        self._stop = threading.Event()
        self._replies: list[tuple[float, bytes, str]] = []   # (due, original, recipient)
        self._replied: set[str] = set()
        #: people who switched after a notice: their next mail goes to the new address
        self.switched: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name="switchover-demo-arrivals", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def on_outside(self, mail_from: str, rcpts: list[str], raw: bytes) -> None:
        """Called by the SMTP server for mail leaving the demo: a reminder or notice from
        the owner makes its recipient answer to the new address a little later."""
        if mail_from.lower() not in (OLD_ADDRESS, NEW_ADDRESS):
            return
        notice = is_notice(raw)
        now = time.monotonic()
        with self._lock:
            for rcpt in rcpts:
                addr = rcpt.lower()
                if addr in self._replied or addr.endswith("@" + OLD_DOMAIN) or is_gone(addr):
                    continue
                delay = switch_decision(self.seed, addr) if notice else 1.5 * self.every
                if delay is None:
                    continue              # keeps writing to the old address for now
                self._replied.add(addr)
                self._replies.append((now + delay, raw, addr))

    def _send_due_replies(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [r for r in self._replies if r[0] <= now]
            self._replies = [r for r in self._replies if r[0] > now]
        for _, raw, rcpt in due:
            with self._lock:
                self.switched.add(rcpt)
            mail_from, rcpts, reply = switch_reply(raw, rcpt, self.people)
            with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
                smtp.sendmail(mail_from, rcpts, reply)
            self.replies_sent += 1

    def send_one(self) -> None:
        mail_from, rcpts, raw = make_arrival(self.seed, self.index, self.people)
        with self._lock:
            moved = mail_from.lower() in self.switched
        if moved and OLD_ADDRESS in (r.lower() for r in rcpts):
            rcpts, raw = readdress(rcpts, raw)
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.sendmail(mail_from, rcpts, raw)
        self.index += 1
        self.sent += 1
        if self.on_sent is not None:
            try:
                self.on_sent(self.index)
            except Exception:  # the counter is a nicety; never stop the arrivals for it
                pass

    def _main(self) -> None:
        jitter = random.Random(f"jitter-{self.seed}")
        # the first one soon, so a newcomer sees the feed move at once
        wait = min(2.0, self.every)
        next_at = time.monotonic() + wait
        while not self._stop.wait(max(0.0, min(0.5, next_at - time.monotonic()))):
            try:
                self._send_due_replies()
                if time.monotonic() >= next_at:
                    next_at = time.monotonic() + self.every * jitter.uniform(0.7, 1.3)
                    self.send_one()
            except (OSError, smtplib.SMTPException):
                self.errors += 1  # servers stopping or busy: try again next round


__all__ = ["LiveArrivals", "is_notice", "make_arrival", "readdress", "switch_decision"]
