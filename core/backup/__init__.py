"""Local backups and imports (``engine.backups``, the facade in backups.py).

backups.py  the facade: backup / verify_backup / import_path, pause / resume / cancel
writer.py   one backup run (folders → files → index, batch by batch, as a job)
layout.py   the backup directory: paths, safe names, durable writes
index.py    the backup's own index (ROOT/index.sqlite) and the state's ``backups`` mirror
mbox.py     the mbox format: mboxrd writing, mboxo / mboxrd reading
check.py    verifying a backup against its checksums and the live mailbox
importer.py one import run (files → a mailbox folder, as a job)
sources.py  finding mail in local files; flags and dates from headers
ledger.py   the state's ``imports`` table
session.py  the IMAP connection of a backup or import job (reconnects through net.retry)
"""
