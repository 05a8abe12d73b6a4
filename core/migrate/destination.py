"""The new mailbox as one run knows it: which folders exist (missing ones are created,
parents first), what each folder holds by identity (EXAMINE + UID SEARCH, then a header
FETCH of every UID the ledger does not know yet — a crash between APPEND and recording
is harmless: the destination is re-identified, never trusted), and what may be a landing
of an append whose answer was lost.

A UID is *learned* when this run read it at or above the folder's UIDNEXT at its first
read in this run (what this run appends lands there), or when it holds an identity a
dead run left unsettled there: those are the UIDs a broken or dead append may account
for. Appends into one folder pass its ``FolderGate``; re-reading after a broken append
holds them back.
"""

from __future__ import annotations

from typing import Callable

from ..errors import FolderError
from ..net.wire import Selected, WireError, uid_set
from .flow import FolderGate, ReadSize
from .ledger import Ledger
from .run import RunState
from .transfer import Conn, SrcMsg, create_many, dst_side, identify, probe_many, read_many

#: what a destination folder holds: the selected folder and {uid: identity}
Holding = tuple[Selected, dict[int, str]]


class Destination:
    """What the destination's folders hold, as read by this run; see the module docstring."""

    def __init__(self, run: RunState, ledger: Ledger, read: ReadSize, existing: set[str],
                 delimiter: str, suspects: Callable[[str], set[str]], batch_bytes: int) -> None:
        self.run = run
        self.ledger = ledger
        self.read = read
        self.existing = set(existing)
        self.delimiter = delimiter
        #: identities of a folder that a dead run may still be appending (the settler's)
        self.suspects = suspects
        self.batch_bytes = batch_bytes
        #: {folder: {uid: identity}} learned by this run (current UIDVALIDITY)
        self.learned: dict[str, dict[int, str]] = {}
        self._learned_uv: dict[str, int] = {}
        self._floor: dict[str, int] = {}     # UIDNEXT of a folder at its first read
        self._gates: dict[str, FolderGate] = {}

    def gate(self, folder: str) -> FolderGate:
        gate = self._gates.get(folder)
        if gate is None:
            gate = self._gates[folder] = FolderGate()
        return gate

    async def create_missing(self, conn: Conn, names: list[str]) -> dict[str, str]:
        """CREATE the folders of ``names`` that do not exist; {name: server's words} of
        the refused ones."""
        missing = [n for n in dict.fromkeys(names) if n not in self.existing]
        if not missing:
            return {}
        errs = await self.run.io(dst_side(create_many), conn.wire, missing, self.delimiter, self.existing)
        self.existing.update(n for n in missing if n not in errs)
        return errs

    async def probe(self, conn: Conn, names: list[str]) -> dict[str, tuple[Selected, list[int]] | WireError]:
        return await self.run.io(dst_side(probe_many), conn.wire, names)

    async def holdings(self, conn: Conn, names: list[str],
                       probes: dict[str, tuple[Selected, list[int]] | WireError]) -> dict[str, Holding]:
        """For probed folders: the identity of every live UID, fetching the headers of
        UIDs the ledger does not know yet (recorded per read, so a retry after a drop
        goes on from there)."""
        cached = await self.ledger.dest_known(names)
        todo: dict[str, tuple[Selected, dict[int, str], list[int]]] = {}
        fetch_small: list[tuple[str, bytes]] = []
        for name in names:
            probe = probes[name]
            if isinstance(probe, WireError):
                continue
            sel, uids = probe
            rows = cached.get(name, [])
            if any(uv != sel.uidvalidity for uv, _, _ in rows):
                await self.ledger.dest_forget(name, sel.uidvalidity)
            known = {uid: ident for uv, uid, ident in rows if uv == sel.uidvalidity}
            live = set(uids)
            await self.ledger.dest_forget(name, sel.uidvalidity, [u for u in known if u not in live])
            idents = {u: known[u] for u in uids if u in known}
            unknown = [u for u in uids if u not in known]
            todo[name] = (sel, idents, unknown)
            if self._learned_uv.get(name) != sel.uidvalidity:
                self.learned[name] = {}
                self._learned_uv[name] = sel.uidvalidity
                self._floor[name] = sel.uidnext    # what this run appends lands from here
            if unknown and len(unknown) <= self.read.chunk and self.read.whole:
                fetch_small.append((name, uid_set(unknown)))

        async def keep(name: str, msgs: list[SrcMsg]) -> None:
            sel, idents, _ = todo[name]
            pairs = [(m.uid, m.identity) for m in msgs]
            await self.ledger.dest_learned(name, sel.uidvalidity, pairs)
            idents.update(pairs)
            floor = self._floor.get(name, 0)
            dead = self.suspects(name)
            self.learned[name].update((u, i) for u, i in pairs if u >= floor or i in dead)

        if fetch_small:
            got = await self.run.io(dst_side(read_many), conn.wire, fetch_small, self.batch_bytes)
            for name, res in got.items():
                if isinstance(res, WireError):
                    raise FolderError(f"the new server refused to read {name} ({res.text})")
                await keep(name, res[1])
        out: dict[str, Holding] = {}
        for name, (sel, idents, unknown) in todo.items():
            rest = [u for u in unknown if u not in idents]

            def read(part: list[int], name: str = name) -> list[SrcMsg]:
                w = conn.wire
                if not (w.selected and w.selected.name == name):
                    w.select(name)
                return identify(w, part, self.batch_bytes)

            while rest:
                part, rest = rest[:self.read.chunk], rest[self.read.chunk:]
                await keep(name, await self.run.io(dst_side(read), part))
            out[name] = (sel, idents)
        return out

    async def reread(self, conn: Conn, folder: str) -> Holding:
        """Read one folder again (after a broken append, or to find extra copies);
        a refusal to open it is a WireError."""
        probes = await self.probe(conn, [folder])
        probe = probes[folder]
        if isinstance(probe, WireError):
            raise probe
        return (await self.holdings(conn, [folder], probes))[folder]

    def landings(self, folder: str, live: dict[int, str]) -> dict[int, str]:
        """UIDs this run learned in ``folder`` from its first UIDNEXT on that are still
        there: any of them may be a landing of a broken append (claimed ones aside)."""
        floor = self._floor.get(folder, 0)
        return {u: i for u, i in self.learned.get(folder, {}).items() if u >= floor and u in live}
