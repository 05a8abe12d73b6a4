"""switchover's own version, for ``switchover --version`` and the IMAP ID sent to servers.

The installed distribution's version (importlib.metadata); run from a source tree that was
never installed, the version in its pyproject.toml.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def version() -> str:
    # imported here: importlib.metadata costs ~10 ms at start-up, and only commands that
    # connect (the IMAP ID) or print --version ask
    import tomllib
    from importlib import metadata
    try:
        return metadata.version("switchover")
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        found = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        return str(found)
    except (OSError, KeyError, ValueError):
        return "0+unknown"
