"""The README's "Guarantees" table names only tests that exist: every ``path::name`` in it is a
file of the repository defining a test function of that name."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)(?:\[[^\]`]*\])?`")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_every_test_the_guarantees_name_exists() -> None:
    section = _section((REPO / "README.md").read_text(), "Guarantees")
    refs = TEST_REF.findall(section)
    assert len(refs) >= 30, refs  # the table is there and read
    missing = [
        f"{path}::{name}"
        for path, name in refs
        if not (REPO / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (REPO / path).read_text(), re.MULTILINE)
    ]
    assert missing == []


def test_every_row_names_at_least_one_test() -> None:
    section = _section((REPO / "README.md").read_text(), "Guarantees")
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| promise")
    for row in rows[1:]:
        assert TEST_REF.search(row), row
