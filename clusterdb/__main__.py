"""``python -m clusterdb``: see :mod:`clusterdb.tools.cli`."""

from __future__ import annotations

from clusterdb.tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
