"""The copy lanes: one source + one destination connection each (the planner's pair joins
after planning). A lane FETCHes a batch of bodies while APPENDing the previous one:
MULTIAPPEND with LITERAL+ where offered, else pipelined single APPENDs; bytes untouched,
flags (minus \\Recent) and INTERNALDATE as the source gave them. A shared byte budget
bounds the bodies in memory; batches adapt to the link (core/migrate/flow.py).

**Placements** (core/placements.py): every batch is recorded in ``placements`` before
its bytes leave and settled after (APPENDUIDs, or dropped when refused), in the
transaction that records the copy. A message a forward already placed there is counted
as already there (the forward and the copy never both append it); one a forward is
still sending is waited for (BUSY_WAIT), then its folder is planned again. When an
APPEND breaks, the lane reconnects, re-reads what landed in that folder (appends to it
wait meanwhile) and sends again only what did not land.

Daily caps (core/migrate/quota.py): a batch is counted against the rolling window before
it is fetched; when the window is full the lane waits (pause- and cancel-aware).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from ..jobs import Cancelled
from ..net.wire import AppendResult, WireError
from ..placements import Placements
from .destination import Destination
from .flow import MAX_DROPS, BatchSize, ByteBudget
from .ledger import Copied, Ledger
from .records import CopyJob
from .run import RunState
from .settler import Settler, source_ref
from .sides import Sides
from .transfer import LOST, Conn, DstLost, SrcMsg, append_batch, fetch_batch

BUSY_WAIT = 30.0                 # seconds a batch waits for a forward sending the same message

#: a fetched message on its way: (message, (flags, internaldate, body), placement id)
Sending = tuple[SrcMsg, tuple[bytes, bytes | None, bytes], int]


class _Dropped(Exception):
    """A connection dropped under a fetch (reconnected): send the batch again, smaller."""


def _size(item: Sending | SrcMsg) -> int:
    return item[0].size if isinstance(item, tuple) else item.size


class Lanes:
    """The copy connections and what flows through them; see the module docstring."""

    def __init__(self, run: RunState, sides: Sides, ledger: Ledger, placements: Placements,
                 destination: Destination, settler: Settler, budget: ByteBudget, size: BatchSize) -> None:
        self.run = run
        self.sides = sides
        self.ledger = ledger
        self.placements = placements
        self.destination = destination
        self.settler = settler
        self.budget = budget
        self.size = size

    async def lane(self, pair: tuple[Conn, Conn], jobs: asyncio.Queue[CopyJob | None]) -> None:
        """Copy jobs from ``jobs`` until a None: the FETCH of batch k+1 overlaps the
        APPEND of batch k. A job is cut to the current batch limits as it goes."""
        src, dst = pair
        handoff: asyncio.Queue[tuple[CopyJob, list[Sending]] | None] = asyncio.Queue(maxsize=1)

        async def fetcher() -> None:
            try:
                while True:
                    job = await jobs.get()
                    if job is None:
                        return
                    await self._fetch_job(src, job, handoff)
            finally:
                await handoff.put(None)

        async def appender() -> None:
            while True:
                item = await handoff.get()
                if item is None:
                    return
                job, sending = item
                try:
                    await self._append_job(dst, job, sending)
                except Cancelled:
                    pass
                except BaseException as e:
                    self.run.fail(e)
                finally:
                    del item, sending
                    self.budget.release(job.nbytes)

        await asyncio.gather(fetcher(), appender())

    def _cut(self, job: CopyJob) -> tuple[CopyJob, CopyJob | None]:
        """The part of ``job`` that fits the current batch limits, and the rest."""
        n = self.size.fits(job.items, _size)
        if n >= len(job.items):
            return job, None
        size = sum(m.size for m in job.items[:n])
        return (CopyJob(job.group, job.run, job.uidvalidity, job.items[:n], size),
                CopyJob(job.group, job.run, job.uidvalidity, job.items[n:], job.nbytes - size))

    def _give_back(self, part: CopyJob) -> None:
        self.budget.release(part.nbytes)
        if self.run.quota is not None:
            self.run.quota.refund(part.nbytes)

    async def _fetch_job(self, src: Conn, job: CopyJob,
                         handoff: asyncio.Queue[tuple[CopyJob, list[Sending]] | None]) -> None:
        """Fetch ``job`` in parts that fit the batch limits; hand each to the appender."""
        rest: CopyJob | None = job
        quota = self.run.quota
        drops = 0
        while rest is not None:
            try:
                await self.run.job.checkpoint()
            except Cancelled:
                return
            if self.run.stopping() or rest.group.dirty:
                return
            part, rest = self._cut(rest)
            if quota is not None:
                if not await quota.reserve(part.nbytes, self.run.stopping, self.run.quota_wait):
                    return
                try:
                    await self.run.job.checkpoint()    # paused while waiting: stay paused
                except Cancelled:
                    pass
                if self.run.stopping() or part.group.dirty:
                    quota.refund(part.nbytes)
                    return
            await self.budget.acquire(part.nbytes)
            got: list[Sending] | None = None
            dropped = False
            try:
                got = await self._fetch(src, part)
            except _Dropped:
                dropped = True
            except Cancelled:
                pass
            except BaseException as e:
                self.run.fail(e)
            if got is None:
                self._give_back(part)
                if dropped:                      # again, in smaller batches
                    drops += 1
                    if drops > MAX_DROPS:
                        part.group.dirty = part.run.dirty = True
                        return
                    rest = part if rest is None else CopyJob(
                        part.group, part.run, part.uidvalidity, part.items + rest.items,
                        part.nbytes + rest.nbytes)
                    continue
                if self.run.stopping():
                    return
                continue
            drops = 0
            sending = await self._placed_before_sending(part, got)
            got = None
            if not sending:          # a forward placed all of it already
                self._give_back(part)
                continue
            await handoff.put((part, sending))
            del sending    # the appender owns the bodies now

    async def _fetch(self, src: Conn, job: CopyJob) -> list[Sending] | None:
        """Bodies of ``job`` (placement ids still 0), or None (nothing to send); raises
        _Dropped after a drop (reconnected; the batch limits are smaller now)."""
        r = job.run
        try:
            uv, bodies = await self.run.io(fetch_batch, src.wire, r.source, [m.uid for m in job.items])
        except LOST as e:
            self.size.shrink(job.nbytes)
            await self.sides.reconnect(src, e, lambda: self.run.cancelled)
            raise _Dropped() from None
        except WireError as e:
            r.errors += 1
            job.group.dirty = True
            self.run.log("error", f"{r.source}: the old server refused a FETCH ({e.text})")
            return None
        if uv != job.uidvalidity:
            job.group.dirty = True     # the source was renumbered: plan it again by identity
            return None
        self.size.grow()
        items = [m for m in job.items if m.uid in bodies]
        if len(items) != len(job.items):
            gone = len(job.items) - len(items)
            self.run.folder_error(r, f"{gone:,} messages the old server listed could not be fetched "
                                     f"(deleted meanwhile?); run the migration again.")
        return [(m, (m.flags, m.date, bodies.pop(m.uid)), 0) for m in items] or None

    async def _placed_before_sending(self, job: CopyJob, fetched: list[Sending]) -> list[Sending]:
        """Record a fetched batch in ``placements`` (state 'sending') before any of it
        leaves — in the fetcher, so the appender's APPEND of the batch before overlaps
        it. A message a forward already placed there is already there: left out."""
        r = job.run
        ids = await self._begin(r.destination, [(m.identity, source_ref(job.uidvalidity, m.uid, r.source))
                                                for m, _, _ in fetched])
        if any(pid == self.placements.BUSY for pid in ids):
            # a forward kept sending these: what it placed is seen when the folder is read again
            job.group.dirty = r.dirty = True
        yielded = [m for (m, _, _), pid in zip(fetched, ids) if pid is None]
        if yielded:
            await self.ledger.record_yielded(r.source, job.uidvalidity, yielded)
            r.add_present(yielded)
            r.to_copy -= len(yielded)
        return [(m, msg, pid) for (m, msg, _), pid in zip(fetched, ids)
                if pid is not None and pid != self.placements.BUSY]

    async def _begin(self, folder: str, items: list[tuple[str, str]]) -> list[int | None]:
        """Placements of a batch: an id per item, None where a forward's placed copy
        stands in for it, BUSY while a forward is sending it (asked again shortly; after
        BUSY_WAIT seconds the folder is planned again instead)."""
        pl = self.placements
        out = await pl.begin(folder, "migrate", items, yield_to=("forward",))
        deadline = time.monotonic() + BUSY_WAIT
        while any(x == pl.BUSY for x in out) and time.monotonic() < deadline and not self.run.stopping():
            await asyncio.sleep(0.25)
            busy = [k for k, x in enumerate(out) if x == pl.BUSY]
            again = await pl.begin(folder, "migrate", [items[k] for k in busy], yield_to=("forward",))
            for k, x in zip(busy, again):
                out[k] = x
        return out

    async def _append_job(self, dst: Conn, job: CopyJob, pending: list[Sending]) -> None:
        """APPEND a fetched batch (its placements recorded). After a drop: reconnect, find
        what landed, send the rest again in smaller batches under the same placements.
        Whatever is not sent in the end has its placements dropped."""
        r = job.run
        drops = 0
        try:
            while pending:
                await self.run.job.checkpoint()        # paused: nothing new goes out
                if self.run.stopping() or job.group.dirty:
                    return
                n = self.size.fits(pending, _size)
                send, pending = pending[:n], pending[n:]
                try:
                    async with self.destination.gate(r.destination).shared():
                        results = await self.run.io(append_batch, dst.wire, r.destination,
                                                    [msg for _, msg, _ in send])
                        await self._record(job, send, results)
                    self.size.grow()
                    drops = 0
                    continue
                except LOST as e:
                    err: BaseException = e
                drops += 1
                self.size.shrink(sum(m.size for m, _, _ in send))
                self.settler.at_risk(r.destination, [m.identity for m, _, _ in send])
                pending = send + pending          # nothing of it is settled yet
                await self.sides.reconnect(dst, err, lambda: self.run.cancelled)
                if drops > MAX_DROPS or not dst.wire.uidplus:
                    # without APPENDUID what landed cannot be told apart: plan it again
                    job.group.dirty = r.dirty = True
                    return
                try:
                    landed = await self._reconcile(dst, r.destination, send)
                except LOST as e:
                    job.group.dirty = r.dirty = True
                    await self.sides.reconnect(dst, e, lambda: self.run.cancelled)
                    return
                if landed:
                    await self._record_landed(job, landed)
                    done = {pid for _, pid, _, _ in landed}
                    pending = [x for x in pending if x[2] not in done]
        finally:
            if pending:    # never sent (stopped, or planned again): nothing was placed
                await asyncio.shield(self.placements.drop([pid for *_, pid in pending]))

    async def _reconcile(self, dst: Conn, folder: str, send: list[Sending]
                         ) -> list[tuple[SrcMsg, int, int, int]]:
        """After a broken APPEND into ``folder``: which of ``send`` landed? Appends into the
        folder wait meanwhile, so a UID no placement claims came from the broken one
        (another broken append's landing counts too: its own reconcile may have learned
        it first). Returns [(msg, placement id, uidvalidity, uid)]."""
        async with self.destination.gate(folder).exclusive():
            try:
                sel, live = await self.destination.reread(dst, folder)
            except WireError as e:
                raise DstLost(f"the new server could not list {folder} ({e.text})") from None
            free = self.destination.landings(folder, live)
            for u in await self.placements.uids_claimed(folder, sel.uidvalidity, list(free)):
                free.pop(u, None)
            by_ident: dict[str, list[int]] = defaultdict(list)
            for u in sorted(free):
                by_ident[free[u]].append(u)
            landed = []
            for m, _, pid in send:
                lst = by_ident.get(m.identity)
                if lst:
                    landed.append((m, pid, sel.uidvalidity, lst.pop(0)))
            return landed

    async def _record(self, job: CopyJob, send: list[Sending], results: list[AppendResult]) -> None:
        """What the server said to each message of a batch, recorded with its placement."""
        r = job.run
        copied: list[Copied] = []
        refused: list[tuple[SrcMsg, int, str]] = []
        placed: list[tuple[int, int | None, int | None]] = []
        dropped: list[int] = []
        for (m, _, pid), res in zip(send, results):
            if res.ok:
                copied.append(Copied(job.uidvalidity, m, res.uidvalidity, res.uid))
                placed.append((pid, res.uidvalidity, res.uid))
                r.add_copied(m.uid, m.size)
            else:
                refused.append((m, job.uidvalidity, res.text))
                dropped.append(pid)
                self.run.refuse(r, m, res.text)
        await self.ledger.record_batch(r.source, r.destination, copied, refused, placed, dropped)

    async def _record_landed(self, job: CopyJob, landed: list[tuple[SrcMsg, int, int, int]]) -> None:
        """Copies of this run that landed although their APPEND broke: copied by this run."""
        r = job.run
        await self.ledger.record_landed(r.source, r.destination,
                                        [(Copied(job.uidvalidity, m, uv, uid), pid)
                                         for m, pid, uv, uid in landed])
        for m, *_ in landed:
            r.add_copied(m.uid, m.size)

