"""Loading the JSON scenario tables of tests/unit/scenarios/ as pytest parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SCENARIOS = Path(__file__).parent / "scenarios"


def load_cases(folder: Path = SCENARIOS) -> list[Any]:
    """Every scenario of every ``*.json`` file of ``folder``, with ids ``file[index]``."""
    cases = []
    for file in sorted(folder.glob("*.json")):
        for index, case in enumerate(json.loads(file.read_text())):
            cases.append(pytest.param(case, id=f"{file.stem}[{index}]"))
    return cases
