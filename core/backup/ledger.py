"""The state file's ``imports`` table: each upload of an import, recorded before its
bytes leave (``pending``) and settled after (``uploaded`` with the new UID, or
``refused`` with the server's words). This module is the table's only writer.
"""

from __future__ import annotations

import time

from ..store import Store

#: (state, uidvalidity, uid, reason, row id) of a settled upload
Settled = tuple[str, "int | None", "int | None", "str | None", int]


class ImportLedger:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def pending(self, run_id: int | None, source: str, folder: str,
                      items: list[tuple[str, str]]) -> list[int]:
        """Record (source ref, identity) items as 'pending' in one transaction; their ids."""
        now = time.time()
        ids: list[int] = []
        async with self.store.transaction() as db:
            for ref, identity in items:
                cur = await db.execute(
                    "INSERT INTO imports (run_id, source, source_ref, identity, to_folder, state, updated) "
                    "VALUES (?, ?, ?, ?, ?, 'pending', ?)", (run_id, source, ref, identity, folder, now))
                ids.append(int(cur.lastrowid or 0))
        return ids

    async def settle(self, rows: list[Settled]) -> None:
        now = time.time()
        await self.store.executemany(
            "UPDATE imports SET state=?, dst_uidvalidity=?, dst_uid=?, reason=?, updated=? WHERE id=?",
            [(state, uv, uid, reason, now, rid) for state, uv, uid, reason, rid in rows])
