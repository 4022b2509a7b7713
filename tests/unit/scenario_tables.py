"""Loading the JSON scenario tables under tests/unit/scenarios/ (format in their README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SCENARIOS = Path(__file__).parent / "scenarios"


def load(folder: Path = SCENARIOS) -> list[Any]:
    """Every scenario of every ``*.json`` file in ``folder``, as pytest params named
    ``<file>[<index>]``."""
    cases = []
    for file in sorted(folder.glob("*.json")):
        for index, case in enumerate(json.loads(file.read_text())):
            cases.append(pytest.param(case, id=f"{file.stem}[{index}]"))
    return cases
