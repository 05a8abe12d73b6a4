"""The people CSV, the contract with spreadsheet users: ``switchover people --csv FILE``
writes it, ``--import FILE`` reads it back. Columns (keep these names):

    address,name,group,language,notify,messages_from,messages_to,last_seen,state

Written as UTF-8 with a BOM (Excel then shows Chinese names right), comma separated.
Read back as Excel and LibreOffice write it: with or without the BOM (else GB18030, what
a Chinese Excel's plain "CSV" is), comma, semicolon (European Excel) or tab separated,
yes / no / 1 / 0 / true / false / 是 / 否. ``address`` is required; name, group,
language and notify are the user's to change; messages_from, messages_to, last_seen and
state are switchover's and ignored when read. Every row is checked before anything is
applied; a bad value is one sentence naming its line.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable


from ..errors import SwitchoverError
from .choices import KEEP, parse_group, parse_language, parse_notify

COLUMNS = ("address", "name", "group", "language", "notify", "messages_from", "messages_to", "last_seen",
           "state")


@dataclass(frozen=True)
class CsvRow:
    """One person as the user left them; None = an empty cell (back to the guess), KEEP =
    the file has no such column."""
    line: int
    address: str
    name: str
    group: Any
    language: Any
    notify: Any


def render(people: Iterable[Any]) -> str:
    """The CSV text of ``people`` (people.Correspondent records), without the BOM."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for p in people:
        w.writerow([p.address, p.name, p.group, p.language, "yes" if p.notify else "no", p.messages_from,
                    p.messages_to, p.last_seen.date().isoformat() if p.last_seen else "", p.state])
    return out.getvalue()


def write(path: Path, people: Iterable[Any]) -> int:
    """Write the CSV (UTF-8 with BOM); returns how many people."""
    text = render(people)
    try:
        path.write_text(text, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise SwitchoverError(f"Cannot write {path}: {e.strerror or e}.", exit_code=2) from None
    return text.count("\r\n") - 1


def _decode(data: bytes, path: Path) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise SwitchoverError(f"{path} is neither UTF-8 nor GB18030 text; save it as \"CSV UTF-8\".", exit_code=2)


def _dialect(first_line: str) -> str:
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t")}
    return max(counts, key=lambda s: counts[s]) if any(counts.values()) else ","


def parse(text: str, path: Path) -> list[CsvRow]:
    """Every row, checked; SwitchoverError (exit 2) names the first bad line."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise SwitchoverError(f"{path} is empty; write it with `switchover people --csv {path}` first.",
                              exit_code=2)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(lines[0]))
    header = [h.strip().lstrip("\ufeff").lower() for h in next(reader)]
    if "address" not in header:
        raise SwitchoverError(f"{path}, line 1: no 'address' column (the columns are {','.join(COLUMNS)}).",
                              exit_code=2)
    index = {name: header.index(name) for name in COLUMNS if name in header}
    out: list[CsvRow] = []
    seen: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue

        cell = _Cells(index, cells)
        try:
            out.append(_row(line, cell, seen))
        except SwitchoverError as e:
            raise SwitchoverError(f"{path}, line {line}: {e.message}. Nothing was imported.", exit_code=2) from None
    return out


class _Cells:
    """The cells of one row by column name; ``has``: the file has that column."""

    def __init__(self, index: dict[str, int], cells: list[str]) -> None:
        self.index, self.cells = index, cells

    def has(self, name: str) -> bool:
        return name in self.index

    def __call__(self, name: str) -> str:
        i = self.index.get(name)
        return self.cells[i].strip() if i is not None and i < len(self.cells) else ""


def _row(line: int, cell: _Cells, seen: dict[str, int]) -> CsvRow:
    address = cell("address").strip("<>").lower()
    # loaded when a CSV is read: email_validator compiles its grammar on import (~40 ms)
    from email_validator import EmailNotValidError, validate_email
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        raise SwitchoverError(f"'{cell('address')}' is not an email address", exit_code=2) from None
    if address in seen:
        raise SwitchoverError(f"{address} is already on line {seen[address]}", exit_code=2)
    seen[address] = line
    return CsvRow(line, address, cell("name"),
                  parse_group(cell("group")) if cell.has("group") else KEEP,
                  parse_language(cell("language")) if cell.has("language") else KEEP,
                  parse_notify(cell("notify")) if cell.has("notify") else KEEP)


def read(path: Path) -> list[CsvRow]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SwitchoverError(f"Cannot read {path}: {e.strerror or e}.", exit_code=2) from None
    return parse(_decode(data, path), path)
