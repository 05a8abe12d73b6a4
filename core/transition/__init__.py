"""The transition period, after the move: the old mailbox is watched for months.

watch.py (the facet ``Monitor``: watchers, reconnecting) → sync.py (catching up a folder)
→ arrivals.py (the ``arrivals`` table) and an ``ArrivalSeen`` event → actions.py (the
facet: requests, perform / settle, the automatic rules of rules.py as a reaction) →
runner.py → sending.py / placing.py (SMTP, IMAP into the new INBOX) → outcomes.py; the
``actions`` table in ledger.py. people.py (``correspondents``) with history.py (the
scan); classify.py (badges, RFC 3834); drafts.py (what an action sends); mailbox.py (the
IMAP reads and writes of the transition); autoreply.py (the Sieve vacation).
"""
