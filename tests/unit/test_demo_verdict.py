"""The demo's closing verdict (issue 16): made of the counts alone, never "kept succeeding"
when a read failed or stalled."""

from __future__ import annotations

import pytest

from clusterdb.tools.demo.script import verdict


@pytest.mark.parametrize(
    ("failed", "stalled", "expected"),
    [
        (
            {"primary": 4},
            {},
            "'any' and 'prefer-replica' kept succeeding through every step, no call stalled; "
            "'primary' 4 failed, 0 stalled.",
        ),
        (
            {},
            {"prefer-replica": 1},
            "not every read went smoothly: 'prefer-replica' 0 failed, 1 stalled; "
            "'primary' never failed or stalled.",
        ),
        (
            {"any": 2, "prefer-replica": 1},
            {"prefer-replica": 1, "primary": 1},
            "not every read went smoothly: 'any' 2 failed, 0 stalled; 'prefer-replica' 1 "
            "failed, 1 stalled; 'primary' 0 failed, 1 stalled.",
        ),
    ],
)
def test_the_demo_verdict_is_made_of_its_counts(
    failed: dict[str, int], stalled: dict[str, int], expected: str
) -> None:
    # issue 16: a stuck call is not "succeeding"; a stall alone denies "kept succeeding".
    assert verdict(failed, stalled) == expected
