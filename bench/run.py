"""`make bench`: clusterdb against the vendor drivers and libpq multi-host (issue 5).

Usage: ``.venv/bin/python bench/run.py [--quick] [--only query,connect,...] [--out PREFIX]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ itself first on sys.path, where our module names would
# shadow top-level ones; `bench.*` imports need the repository root instead.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
