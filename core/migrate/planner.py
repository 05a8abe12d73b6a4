"""Planning: what of the old mailbox the new one lacks, read in *waves*, pipelined.

The planner's pair of connections reads a wave of groups (source folders that land in
one destination folder) at once: CREATE of missing destination folders, what every
destination folder holds (core/migrate/destination.py), and EXAMINE + one header FETCH
per source folder (big folders in chunks, UIDs first, checked against EXISTS). Every
listing is checked against the server's own count: a folder listed short is an error,
never "done". Every source message is recorded in the ledger; what the destination lacks
(multiset: an identity is copied as often as the source holds it more) becomes copy jobs
in a bounded queue (metadata only). Gmail's All Mail goes last and copies only
identities no other source folder holds. What a dead run may still be appending waits
(the settler's deferred identities). A message bigger than the new account's
``max_message_bytes`` is refused without an upload. A dropped connection while planning
resumes where it was (learned destination UIDs are recorded as they come, source chunks
already decided are not read again) with smaller chunks.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from ..config import MigrationSettings
from ..errors import SwitchoverError, sentence
from ..net.wire import Selected, WireError
from ..progress import batches
from .destination import Destination
from .flow import MAX_DROPS, ReadSize
from .ledger import Ledger
from .records import CopyJob, FolderRun, Group
from .run import RunState
from .settler import Settler
from .sides import Sides
from .transfer import LOST, Conn, DstLost, SrcMsg, identify, read_many, refusal_words

WAVE = 20000                     # messages of small folders planned together (pipelined)

#: what a destination folder holds by identity, and what a dead run may still append there
Holds = tuple[Counter[str], Counter[str]]


@dataclass
class WaveState:
    """What a wave's planning already did, so a dropped connection resumes it."""
    dest: dict[str, Holds] | None = None
    small: dict[str, tuple[Selected, list[SrcMsg]] | WireError] | None = None
    small_tried: bool = False
    listed: dict[str, tuple[Selected, list[int]]] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    progressed: bool = False


def waves(groups: list[Group]) -> list[list[Group]]:
    """Groups planned together (pipelined), bounded by message count; All Mail last."""
    out: list[list[Group]] = []
    cur: list[Group] = []
    n = 0
    for g in groups:
        size = sum(r.total_messages for r in g.folders)
        if cur and (n + size > WAVE or g.last != cur[-1].last):
            out.append(cur)
            cur, n = [], 0
        cur.append(g)
        n += size
    if cur:
        out.append(cur)
    return out


class Planner:
    """Reads both sides wave by wave and queues what to copy; see the module docstring."""

    def __init__(self, run: RunState, sides: Sides, ledger: Ledger, destination: Destination,
                 settler: Settler, read: ReadSize, settings: MigrationSettings, *,
                 batch_bytes: int, sources: list[str], max_message: int | None) -> None:
        self.run = run
        self.sides = sides
        self.ledger = ledger
        self.destination = destination
        self.settler = settler
        self.read = read
        self.settings = settings
        #: the size of the copy jobs queued (every lane holds about two at once)
        self.batch_bytes = batch_bytes
        self.sources = sources          # every source folder the plan copies (All Mail looks there)
        self.max_message = max_message

    async def plan(self, pair: tuple[Conn, Conn], groups: list[Group],
                   jobs: asyncio.Queue[CopyJob | None]) -> None:
        """Plan ``groups`` wave by wave, feeding ``jobs``."""
        for wave in waves(groups):
            if self.run.stopping():
                break
            await self._plan_wave(pair, wave, jobs)

    async def _plan_wave(self, pair: tuple[Conn, Conn], wave: list[Group],
                         jobs: asyncio.Queue[CopyJob | None]) -> None:
        """Plan a wave; a dropped connection resumes where it was (smaller chunks), up to
        MAX_DROPS / 2 drops in a row without progress (then the wave is planned again
        in the next pass)."""
        for g in wave:
            g.queued = 0
            g.failed = False
            g.planned = False
            g.want = Counter()
        st = WaveState()
        drops = 0
        while True:
            try:
                await self._plan_wave_once(pair, wave, jobs, st)
                for g in wave:
                    g.planned = not g.failed and not self.run.stopping()
                return
            except LOST as e:
                drops = 1 if st.progressed else drops + 1
                st.progressed = False
                if drops > MAX_DROPS // 2:
                    break
                self.read.shrink()
                await self.sides.reconnect(pair[1] if isinstance(e, DstLost) else pair[0], e,
                                           lambda: self.run.cancelled)
        for g in wave:
            if not g.failed:
                g.dirty = True

    async def _plan_wave_once(self, pair: tuple[Conn, Conn], wave: list[Group],
                              jobs: asyncio.Queue[CopyJob | None], st: WaveState) -> None:
        src, dst = pair
        # small folders: one pipelined read of all of them (until a drop: then in chunks)
        small = [] if st.small_tried else [
            r for g in wave for r in g.folders if r.total_messages <= self.read.small]
        st.small_tried = st.small_tried or bool(small)

        async def dest_read() -> dict[str, Holds] | None:
            return await self._holdings(dst, wave) if st.dest is None else None

        async def small_read() -> dict[str, tuple[Selected, list[SrcMsg]] | WireError] | None:
            if not small:
                return None
            return await self.run.io(read_many, src.wire, [(r.source, b"1:*") for r in small],
                                     self.settings.batch_bytes)

        dest, listed = await asyncio.gather(dest_read(), small_read(), return_exceptions=True)
        if dest is not None and not isinstance(dest, BaseException):
            st.dest = dest
            st.progressed = True
        if listed is not None and not isinstance(listed, BaseException):
            st.small = listed
        if isinstance(dest, (SwitchoverError, WireError)):
            # the new server would not let the wave's folders be read: those groups fail
            for g in wave:
                if not g.failed:
                    self.run.group_error(g, f"the new server could not be read ({sentence(dest)}).")
            return
        for x in (dest, listed):
            if isinstance(x, BaseException):
                raise x
        if st.dest is None:
            return
        for g in wave:
            if g.failed or self.run.cancelled:
                continue
            holds, deferred = st.dest.get(g.destination, (Counter(), Counter()))
            for r in g.folders:
                if self.run.cancelled:
                    return
                if r.source in st.done:
                    continue
                got = (st.small or {}).pop(r.source, None)
                if isinstance(got, WireError):
                    st.done.add(r.source)
                    self.run.folder_error(r, refusal_words(got, "the old server refused to read it") + ".")
                    continue
                if got is not None:
                    sel, msgs = got
                    await self._begin_folder(r, sel, len(msgs))
                    await self._decide(g, r, sel.uidvalidity, msgs, holds, deferred, jobs)
                    st.done.add(r.source)
                    st.progressed = True
                    continue
                await self._plan_big(src, g, r, holds, deferred, jobs, st)

    async def _plan_big(self, src: Conn, g: Group, r: FolderRun, holds: Counter[str],
                        deferred: Counter[str], jobs: asyncio.Queue[CopyJob | None], st: WaveState) -> None:
        """A folder read in chunks: UIDs first (checked against EXISTS), then the headers
        chunk by chunk; after a drop it goes on with the first chunk not decided yet."""
        if r.source not in st.listed:
            try:
                sel, uids = await self.run.io(src.wire.select_and_search, r.source)
            except WireError as e:
                st.done.add(r.source)
                self.run.folder_error(r, refusal_words(e, "the old server refused to open it") + ".")
                return
            st.listed[r.source] = (sel, uids)
            st.next[r.source] = 0
            st.progressed = True
            await self._begin_folder(r, sel, len(uids))
        sel, uids = st.listed[r.source]

        def read(part: list[int]) -> tuple[int, list[SrcMsg]]:
            w = src.wire
            uv = w.selected.uidvalidity if (w.selected and w.selected.name == r.source) else \
                w.select(r.source).uidvalidity
            return uv, identify(w, part, self.settings.batch_bytes)

        while st.next[r.source] < len(uids):
            if self.run.cancelled:
                return
            i = st.next[r.source]
            part = uids[i:i + self.read.chunk]
            uv, msgs = await self.run.io(read, part)
            if uv != sel.uidvalidity:
                st.done.add(r.source)
                g.dirty = True        # renumbered while read: planned again by identity
                return
            if len(msgs) != len(part):
                self.run.folder_error(r, f"{len(part) - len(msgs):,} messages the old server listed "
                                         f"could not be read (deleted meanwhile?); run the migration again.")
            await self._decide(g, r, sel.uidvalidity, msgs, holds, deferred, jobs)
            st.next[r.source] = i + len(part)
            st.progressed = True
        st.done.add(r.source)

    async def _holdings(self, dst: Conn, wave: list[Group]) -> dict[str, Holds]:
        """What each destination folder of the wave holds, by identity (creating missing
        folders), and what a dead run may still be appending there."""
        errs = await self.destination.create_missing(dst, [g.destination for g in wave])
        for g in wave:
            if g.destination in errs:
                self.run.group_error(g, f"the new server refused to create the folder ({errs[g.destination]}).")
        names = sorted({g.destination for g in wave if not g.failed})
        probes = await self.destination.probe(dst, names)
        for name, p in probes.items():
            if isinstance(p, WireError):
                why = refusal_words(p, "the new server refused to open the folder")
                for g in wave:
                    if g.destination == name:
                        self.run.group_error(g, why + ".")
        known = await self.destination.holdings(dst, names, probes)
        out: dict[str, Holds] = {}
        for name, (sel, idents) in known.items():
            await self.settler.resolve(name, sel.uidvalidity, idents, self.destination.learned.get(name, {}))
            out[name] = (Counter(idents.values()), self.settler.deferred_for(name))
        return out

    async def _begin_folder(self, r: FolderRun, sel: Selected, count: int) -> None:
        r.uidvalidity, r.uidnext, r.total_messages = sel.uidvalidity, sel.uidnext, count
        r.state = "copying"
        # copies of an earlier pass of this run stay counted as copies, not as "already there"
        r.present = r.refused = r.to_copy = r.copied_plan = r.deferred = 0
        r.present_bytes = r.total_bytes = 0
        await self.ledger.begin_folder(r.source, r.special, r.destination, sel.uidvalidity,
                                       sel.uidnext, count)

    async def _decide(self, g: Group, r: FolderRun, uidvalidity: int, msgs: list[SrcMsg],
                      holds: Counter[str], deferred: Counter[str],
                      jobs: asyncio.Queue[CopyJob | None]) -> None:
        """Record a chunk of source messages and queue what the destination lacks
        (multiset: an identity is copied as often as the source holds it more); what a
        dead run may still be appending waits (``deferred``)."""
        r.total_bytes += sum(m.size for m in msgs)
        elsewhere: set[str] = set()
        others = [s for s in self.sources if s != r.source]
        if r.role == "all_mail" and others:
            elsewhere = await self.ledger.held_elsewhere([m.identity for m in msgs], others)
        present: list[tuple[SrcMsg, str | None]] = []
        copy: list[SrcMsg] = []
        for m in msgs:
            if m.identity in elsewhere:
                present.append((m, "in another folder"))
                continue
            g.want[m.identity] += 1
            if holds.get(m.identity, 0) > 0:
                holds[m.identity] -= 1
                present.append((m, None))
            elif deferred.get(m.identity, 0) > 0:
                deferred[m.identity] -= 1     # a dead run's append of it may still land
                r.deferred += 1
                g.deferred = True
            else:
                copy.append(m)
        too_big: list[tuple[SrcMsg, str]] = []
        limit = self.max_message
        if limit and copy:
            too_big = [(m, f"it is {m.size / 1e6:,.1f} MB, more than the {limit / 1e6:,.1f} MB the "
                           f"new account accepts per message; it was not sent")
                       for m in copy if m.size > limit]
            copy = [m for m in copy if m.size <= limit]
        await self.ledger.record_read(r.source, r.destination, uidvalidity, msgs, present, too_big)
        for m, why in too_big:
            self.run.refuse(r, m, why)
        r.add_present([m for m, _ in present if m.uid not in r.copied_uids])
        r.to_copy += len(copy)
        # even batches (240 -> 120 + 120, not 200 + 40) keep the lanes equally busy
        bm = self.settings.batch_messages
        per = -(-len(copy) // max(1, -(-len(copy) // bm))) if copy else bm
        for batch in batches(copy, per, self.batch_bytes, size=lambda m: m.size):
            if self.run.stopping():
                return
            g.queued += 1
            await jobs.put(CopyJob(g, r, uidvalidity, batch, sum(m.size for m in batch)))
