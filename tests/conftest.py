"""Suite-wide settings. The harness fixtures come from the clusterdb pytest plugin."""

from __future__ import annotations

import os

from hypothesis import settings

# CI (CI=true) runs the property tests on a fixed sequence of examples, so a run is
# reproducible; local runs keep drawing new examples, which is where new bugs are found.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
