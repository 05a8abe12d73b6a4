"""Appends whose outcome was not seen: a dead run's unsettled placements, late landings,
and the extra copies they leave (issue 9 "exactly once").

* Placements of the migration left ``sending`` by a process that is gone (kill -9) may
  still land after this run has looked. Those identities are *deferred* while the
  landing grace of this run lasts; every read of their folder matches learned UIDs that
  no placement claims against them (settled ``placed``; the source counted as copied).
  Unsettled placements older than LATE_MAX can no longer land: forgotten.
* An identity that a late landing (a broken append, a dead run's) may have doubled is
  *at risk*. At the end of a run the destination folder is read again and, for an
  identity it holds more often than the source, the extra copies this program placed are
  removed (UID STORE \\Deleted + UID EXPUNGE, UIDPLUS only) — never one it did not place.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

from ..errors import FolderError, sentence
from ..placements import Placement, Placements
from ..net.wire import WireError
from .destination import Destination
from .ledger import Ledger
from .records import Group
from .run import RunState
from .transfer import LOST, Conn, dst_side

LANDING_GRACE = 5.0              # seconds after the run's start a dead run's append may land
DEFER_WINDOW = 120.0             # placements younger than this (seconds) are waited for
LATE_MAX = 600.0                 # unsettled placements older than this are forgotten


def source_key(ref: str | None) -> tuple[int, int, str] | None:
    """(uidvalidity, uid, folder) of a placement's ref 'uidvalidity/uid/folder'."""
    try:
        uv, uid, folder = (ref or "").split("/", 2)
        return int(uv), int(uid), folder
    except ValueError:
        return None


def source_ref(uidvalidity: int, uid: int, folder: str) -> str:
    """A placement's ref for a source message."""
    return f"{uidvalidity}/{uid}/{folder}"


class Settler:
    """Unsettled placements of dead runs, late landings, our own extra copies."""

    def __init__(self, run: RunState, ledger: Ledger, placements: Placements,
                 landing_grace: float = LANDING_GRACE) -> None:
        self.run = run
        self.ledger = ledger
        self.placements = placements
        self.landing_grace = landing_grace
        #: appends a dead run left unsettled, not resolved yet
        self.dead: dict[int, Placement] = {}
        #: identities whose copies a late landing may have doubled: checked at the end
        self.risky: dict[str, set[str]] = {}

    async def load(self) -> None:
        """The migration's placements left 'sending': the job lock is held and nothing
        of this run is in flight yet, so every such row is a dead run's (even one whose
        pid a new, unrelated process has taken since). Older than LATE_MAX: forgotten."""
        now = time.time()
        rows = await self.placements.unsettled("migrate", include_live=True)
        old = [p.id for p in rows if now - p.started > LATE_MAX]
        if old:
            await self.placements.drop(old)
        self.dead = {p.id: p for p in rows if now - p.started <= LATE_MAX}
        for p in self.dead.values():
            self.at_risk(p.folder, [p.identity])

    def unsettled_folders(self) -> set[str]:
        return {p.folder for p in self.dead.values()}

    def suspects(self, folder: str) -> set[str]:
        """Identities a dead run may still be appending into ``folder``."""
        return {p.identity for p in self.dead.values() if p.folder == folder}

    def deferred_for(self, folder: str) -> Counter[str]:
        """Identities of ``folder`` to wait for: unsettled appends of a dead run that are
        recent, while the landing grace of this run lasts."""
        if time.monotonic() - self.run.t0 >= self.landing_grace:
            return Counter()
        now = time.time()
        return Counter(p.identity for p in self.dead.values()
                       if p.folder == folder and now - p.started < DEFER_WINDOW)

    async def wait_for_landings(self) -> None:
        await self.run.sleep_until(self.run.t0 + self.landing_grace)

    def at_risk(self, folder: str, identities: list[str]) -> None:
        self.risky.setdefault(folder, set()).update(identities)

    async def resolve(self, folder: str, uidvalidity: int, live: dict[int, str],
                      learned: dict[int, str]) -> None:
        """Match a dead run's unsettled appends into ``folder`` with the UIDs this run
        learned there that no placement claims: those copies landed."""
        rows = sorted((p for p in self.dead.values() if p.folder == folder), key=lambda p: p.id)
        if not rows or not learned:
            return
        cands = [u for u in sorted(learned) if u in live]
        free = set(cands) - await self.placements.uids_claimed(folder, uidvalidity, cands)
        by_ident: dict[str, list[int]] = defaultdict(list)
        for u in sorted(free):
            by_ident[learned[u]].append(u)
        settled: list[tuple[Placement, int]] = []
        for p in rows:
            lst = by_ident.get(p.identity)
            if lst:
                settled.append((p, lst.pop(0)))
        if not settled:
            return
        await self.ledger.settle_dead(folder, uidvalidity,
                                      [(p.id, source_key(p.ref), uid) for p, uid in settled])
        for p, _ in settled:
            self.dead.pop(p.id, None)

    async def forget_old(self) -> None:
        """Unsettled placements older than LATE_MAX can no longer land: forgotten."""
        now = time.time()
        old = [p.id for p in self.dead.values() if now - p.started > LATE_MAX]
        if old:
            await self.placements.drop(old)

    # -- extra copies ------------------------------------------------------------------------
    def has_risk(self, groups: list[Group]) -> bool:
        return any(self.risky.get(g.destination) for g in groups)

    async def remove_extra(self, conn: Conn, groups: list[Group], destination: Destination) -> None:
        """Read every folder a late landing may have doubled again and remove the extra
        copies this program placed. A folder that could not be checked is logged
        ('switchover verify' reports any extra copy)."""
        for g in groups:
            idents = self.risky.get(g.destination)
            if not idents or not g.planned or g.dirty or g.deferred or any(
                    r.errors or r.dirty for r in g.folders):
                continue
            try:
                await self._remove_extra_in(conn, g, idents, destination)
            except (*LOST, WireError, FolderError) as e:
                why = e.text if isinstance(e, WireError) else sentence(e)
                self.run.log("warning", f"{g.destination}: could not check for extra copies ({why}); "
                                        f"'switchover verify' reports any")

    async def _remove_extra_in(self, conn: Conn, g: Group, idents: set[str], destination: Destination) -> None:
        folder = g.destination
        async with destination.gate(folder).exclusive():
            sel, live = await destination.reread(conn, folder)
            await self.resolve(folder, sel.uidvalidity, live, destination.learned.get(folder, {}))
            holds = Counter(i for i in live.values() if i in idents)
            excess = {i: n - g.want.get(i, 0) for i, n in holds.items() if n > g.want.get(i, 0)}
            remove: list[int] = []
            for ident, n in excess.items():
                ours = [u for u in await self.placements.placed_by("migrate", folder, sel.uidvalidity, ident)
                        if u in live]
                remove += ours[:n]
            if not remove:
                return
            if not conn.wire.uidplus:
                self.run.summary.errors.append(
                    f"{folder}: {len(remove):,} messages are there twice (an interrupted append "
                    f"landed late) and the server cannot remove single messages; delete the "
                    f"newer copies by hand ('switchover verify' lists them).")
                return
            await self.run.io(dst_side(conn.wire.expunge_uids), folder, remove)
            await self.ledger.extra_removed(folder, sel.uidvalidity, remove)
            self.run.summary.duplicates_removed += len(remove)
            self.run.log("warning", f"{folder}: removed {len(remove):,} extra "
                                    f"cop{'ies' if len(remove) != 1 else 'y'} that an interrupted "
                                    f"append left (it landed after the destination was read)")
