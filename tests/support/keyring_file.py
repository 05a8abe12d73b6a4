"""A keyring backend for tests only: entries in a JSON file named by
``$SWITCHOVER_TEST_KEYRING`` (or the path given). In-process tests install it with
``keyring.set_keyring(FileKeyring(path))``; subprocess tests set
``PYTHON_KEYRING_BACKEND=tests.support.keyring_file.FileKeyring`` and the variable.
switchover itself never writes secrets to plain files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        # never picked by keyring's own detection unless a test named a file for it
        if "SWITCHOVER_TEST_KEYRING" not in os.environ:
            raise RuntimeError("the test keyring is used only when a test names its file")
        return 1

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.path = Path(path or os.environ["SWITCHOVER_TEST_KEYRING"])

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("not stored")
        self._save(data)
