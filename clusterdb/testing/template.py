"""A data dir made once per process and copied for every node, with the accounts baked into it."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["DataTemplate"]


class DataTemplate:
    """The template of one server kind: made on first :meth:`get`, again if it was removed.

    ``create(template, tool)`` makes the data dir with the accounts named here (their
    passwords are random per process) and returns its path.
    """

    def __init__(
        self,
        create: Callable[[DataTemplate, Path], Path],
        *,
        admin_user: str,
        app_user: str,
        dbname: str,
    ) -> None:
        self.admin_user = admin_user
        self.admin_password = secrets.token_hex(12)
        self.app_user = app_user
        self.app_password = secrets.token_hex(12)
        self.dbname = dbname
        self._create = create
        self._lock = threading.Lock()
        self._path: Path | None = None

    def get(self, tool: Path) -> Path:
        """The template's data dir; ``tool`` is the binary that creates it (initdb...)."""
        with self._lock:
            if self._path is None or not self._path.exists():
                self._path = self._create(self, tool)
            return self._path
