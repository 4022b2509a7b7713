"""The harness's one exception type."""

from __future__ import annotations


class HarnessError(RuntimeError):
    """A test cluster could not be started or did not do what was asked; the message says why."""
