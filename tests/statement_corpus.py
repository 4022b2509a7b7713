"""The statement scenario tables (tests/unit/scenarios/statements/*.json, format in the
README there), shared by the unit runner and the server test."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterdb.core.statement import Classification, Dialect

TABLES = Path(__file__).parent / "unit" / "scenarios" / "statements"
DIALECTS: tuple[Dialect, ...] = ("postgresql", "mysql")
FIXTURE_FUNCTIONS = frozenset({"bump", "touch"})
"""The functions that may write in the server test's schema, as its lookup finds them."""


@dataclass(frozen=True)
class Row:
    table: str
    index: int
    sql: str
    dialect: Dialect
    target: str
    reason: str | None
    pins: str | None
    transaction: str | None
    refused: bool
    run: bool
    params: Any

    @property
    def id(self) -> str:
        return f"{self.table}[{self.index}]-{self.dialect}"

    def mismatch(self, got: Classification) -> str | None:
        """What in ``got`` contradicts the row, or None."""
        if got.target != self.target:
            return f"target {got.target!r} ({got.reason}), expected {self.target!r}"
        if self.reason is not None and self.reason not in got.reason:
            return f"reason {got.reason!r} lacks {self.reason!r}"
        if (got.pins_session is None) != (self.pins is None):
            return f"pins_session {got.pins_session!r}, expected {self.pins!r}"
        if self.pins is not None and self.pins not in (got.pins_session or ""):
            return f"pins_session {got.pins_session!r} lacks {self.pins!r}"
        if got.transaction != self.transaction:
            return f"transaction {got.transaction!r}, expected {self.transaction!r}"
        return None


def rows() -> list[Row]:
    out = []
    for path in sorted(TABLES.glob("*.json")):
        for index, raw in enumerate(json.loads(path.read_text())):
            dialects = DIALECTS if raw["dialect"] == "both" else (raw["dialect"],)
            for dialect in dialects:
                refused = raw.get("refused", False)
                out.append(
                    Row(
                        table=path.stem,
                        index=index,
                        sql=raw["sql"],
                        dialect=dialect,
                        target=raw["target"],
                        reason=raw.get("reason"),
                        pins=raw.get("pins"),
                        transaction=raw.get("transaction"),
                        refused=refused is True or refused == dialect,
                        run=raw.get("run", True),
                        params=raw.get("params"),
                    )
                )
    return out
