"""`make lint`: no module of the package over LIMIT lines (one job per module)."""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 400


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    over = []
    for path in sorted((root / "clusterdb").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > LIMIT:
            over.append(f"{rel}: {lines} lines (limit {LIMIT}): split it by job")
    for line in over:
        print(line, file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
