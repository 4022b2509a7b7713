"""What the demo shows: narration, a live block redrawn in place, and clusterdb's own log lines."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

import clusterdb
from clusterdb.tools import report
from clusterdb.tools.demo.workload import CLUSTER, Tally

__all__ = ["COLUMNS", "LogTap", "Screen", "log_tap"]

# The status table's columns that tell this story, narrow enough for a common terminal.
COLUMNS = (
    "NODE",
    "STATE",
    "ROLE",
    "LAT_MS",
    "CONNECTS",
    "ERRORS",
    "LAST_OK",
    "LAST_ERR",
    "LAST_ERROR",
)


class LogTap(logging.Handler):
    """Keeps clusterdb's INFO+ log lines so the narration can show them."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(logging.INFO)
        # A minute of state changes: a few dozen lines, kept whole so readers can slice.
        self.lines: list[str] = []
        self._secrets = secrets

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            masked = report.mask_secrets(record.getMessage(), self._secrets)
            self.lines.append(f"{record.levelname.lower()}: {report.collapse_whitespace(masked)}")


@contextlib.contextmanager
def log_tap(secrets: list[str]) -> Iterator[LogTap]:
    """Tap the ``clusterdb`` logger at INFO for the block; restore its handlers and level."""
    logger = logging.getLogger("clusterdb")
    level = logger.level
    tap = LogTap(secrets)
    logger.addHandler(tap)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield tap
    finally:
        logger.removeHandler(tap)
        logger.setLevel(level)


class Screen:
    """Narration plus a live block.

    On a terminal the live block (where connects went, the stats table) is redrawn in place
    below the narration, which scrolls on as history. Elsewhere (CI, a pipe) every update is
    a plain appended line and the table is printed once at the end of each step.
    """

    def __init__(self, out: TextIO, secrets: list[str]) -> None:
        self.out = out
        self.tty = out.isatty()
        self.secrets = secrets
        self._live = 0
        """Lines of the live block on screen, to erase before the next redraw."""

    def _erase_live(self) -> None:
        if self._live:
            # Cursor up to the block's first line, then clear to the end of the screen.
            self.out.write(f"\x1b[{self._live}F\x1b[J")
            self._live = 0

    def say(self, text: str) -> None:
        """A permanent line (narration, an event)."""
        self._erase_live()
        self.out.write(report.mask_secrets(text, self.secrets) + "\n")
        self.out.flush()

    def keep_live(self) -> None:
        """Leave the current live block on screen as history."""
        self._live = 0

    def stats_table(self) -> str:
        stats = {CLUSTER: clusterdb.stats.snapshot(CLUSTER)}
        return report.render_status(
            stats, datetime.now(UTC), error_width=56, secrets=self.secrets, columns=COLUMNS
        )

    def tick(self, elapsed: float, tally: Tally, logs: list[str]) -> None:
        for line in logs:
            self.say(f"  clusterdb {line}")
        live = f"  [{elapsed:4.1f}s] reached  {tally.line()}"
        if not self.tty:
            self.say(live)
            return
        width = max(40, shutil.get_terminal_size().columns - 1)
        # Cut to the terminal's width: a wrapped line would throw off the cursor-up count.
        block = [
            report.truncate(report.mask_secrets(line, self.secrets), width)
            for line in [live, "", *self.stats_table().splitlines()]
        ]
        self._erase_live()
        self.out.write("\n".join(block) + "\n")
        self.out.flush()
        self._live = len(block)
