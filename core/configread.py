"""Reading the YAML config with a sentence for every mistake: a loader that leaves
dates as text, the line of every key, keys written twice, and typed getters that name
the key and its line when a value is wrong (core/config.py builds the records with them).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml

from .errors import ConfigError

#: one mapping of the YAML document
Keys = dict[str, Any]


class KeyLines:
    """Maps dotted key paths to line numbers of a YAML document, and finds keys written
    twice in one mapping (YAML loaders keep the last one silently)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        self.duplicates: list[tuple[str, int, int]] = []     # (key, first line, second line)
        try:
            node = yaml.compose(text, Loader=ConfigLoader)
        except yaml.YAMLError:
            node = None
        if node is not None:
            self._walk(node, "")

    def _walk(self, node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:merge":
                    continue
                key = f"{prefix}{k.value}"
                line = k.start_mark.line + 1
                if k.value in seen:
                    self.duplicates.append((key, seen[k.value], line))
                else:
                    seen[k.value] = line
                    self.lines[key] = line
                self._walk(v, key + ".")

    def at(self, key: str) -> str:
        line = self.lines.get(key)
        while line is None and "." in key:
            key = key.rsplit(".", 1)[0]
            line = self.lines.get(key)
        return f" (line {line})" if line else ""


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: the config reader checks them itself and
    names key and line (YAML's own parser turns 2027-02-30 into a bare ValueError)."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class Reader:
    """Typed getters over the parsed YAML; every mistake is a ConfigError naming key and line."""

    def __init__(self, lines: KeyLines) -> None:
        self.lines = lines

    def fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"config key '{key}'{self.lines.at(key)}: {what}")

    def mapping(self, data: Any, key: str, allowed: set[str], required: bool = True) -> Keys:
        if data is None:
            if required:
                raise self.fail(key, "is missing.")
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, "must be a mapping of keys.")
        for k in data:
            if k not in allowed:
                sub = f"{key}.{k}" if key else str(k)
                raise self.fail(sub, f"is not a known key (expected one of: {', '.join(sorted(allowed))}).")
        return data

    def string(self, data: Keys, key: str, name: str, default: str | None = None,
               required: bool = False) -> str | None:
        value = data.get(name, default)
        full = f"{key}.{name}" if key else name
        if value is None:
            if required:
                raise self.fail(full, "is missing.")
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(full, "must be text.")
        value = value.strip()
        if required and not value:
            raise self.fail(full, "is empty.")
        return value

    def text(self, data: Keys, key: str, name: str) -> str:
        """A required, non-empty text value."""
        value = self.string(data, key, name, required=True)
        if value is None:      # string() raised already; this tells the type checker
            raise self.fail(f"{key}.{name}" if key else name, "is missing.")
        return value

    def integer(self, data: Keys, key: str, name: str, default: int, lo: int = 0, hi: int = 10**12) -> int:
        value = data.get(name, default)
        full = f"{key}.{name}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(full, "must be a whole number.")
        if not lo <= value <= hi:
            raise self.fail(full, f"must be between {lo} and {hi}.")
        return value

    def number(self, data: Keys, key: str, name: str, default: float, lo: float = 0.0) -> float:
        value = data.get(name, default)
        full = f"{key}.{name}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(full, "must be a number.")
        if value < lo:
            raise self.fail(full, f"must be at least {lo}.")
        return float(value)

    def boolean(self, data: Keys, key: str, name: str, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key}.{name}", "must be true or false.")
        return value

    def strings(self, data: Keys, key: str, name: str) -> tuple[str, ...]:
        value = data.get(name) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{key}.{name}", "must be a list of text.")
        return tuple(value)

    def date(self, data: Keys, key: str, name: str) -> dt.date | None:
        value = data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        m = _DATE.fullmatch(str(value).strip())
        if not m:
            raise self.fail(f"{key}.{name}", f"must be a date like 2027-03-31, not '{value}'.")
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as e:
            raise self.fail(f"{key}.{name}", f"'{value}' is not a day of the calendar ({e}).") from None


_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
# one address: a local part without spaces or '@', a domain of dot-separated labels
_LOCAL = re.compile(r"[^\s@\"(),:;<>\[\\\]]+")
_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")


def address_problem(value: str) -> str | None:
    """None when ``value`` looks like one deliverable-form email address (name@domain.tld,
    Unicode allowed), else why not, as the end of a sentence. No DNS lookup."""
    if not value or value.count("@") != 1:
        return "must be one email address like name@company.example"
    local, domain = value.split("@")
    if not local or not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith(".") \
            or ".." in local or len(local) > 64:
        return f"'{value}' is not an email address (the part before '@' is not valid)"
    labels = domain.rstrip(".").split(".") if domain else []
    if len(labels) < 2 or not all(_LABEL.fullmatch(lbl) and "_" not in lbl for lbl in labels) \
            or labels[-1].isdigit() or len(domain) > 253:
        return f"'{value}' is not an email address (the domain after '@' is not valid)"
    return None
