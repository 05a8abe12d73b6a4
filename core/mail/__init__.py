"""Mail as data, no servers: headers.py (parsing and decoding headers, addresses),
text.py (readable text, previews), language.py (a language guess), dates.py (THE date
parser), compose.py (forwards and reminders), identity.py (identities that survive a
copy), templates.py (the texts people read)."""
