"""The atheris targets of tests/fuzz/, run briefly (a few seconds each) inside ``make test``:
each runs in its own process, as libFuzzer wants, and a crash (an exception or a broken
invariant) fails the test with the input that caused it. ``make fuzz`` runs them for longer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
BUDGET_S = {"fuzz_dsn.py": 3, "fuzz_statement.py": 5}  # longer: make fuzz
"""Seconds of fuzzing per target in ``make test`` (about 20 s in all, with start-up)."""


def fuzz_command(target: str, seconds: int, artifacts: Path) -> list[str]:
    """The command running ``target`` for ``seconds``, crash inputs written under
    ``artifacts``."""
    command = [sys.executable, str(HERE / target), f"-max_total_time={seconds}"]
    command += [f"-artifact_prefix={artifacts}/", "-print_final_stats=1"]
    command.append(f"-dict={HERE / target.removeprefix('fuzz_').replace('.py', '.dict')}")
    return command


@pytest.mark.parametrize("target", sorted(BUDGET_S))
def test_the_fuzz_target_finds_nothing_in_its_budget(target: str, tmp_path: Path) -> None:
    seconds = BUDGET_S[target]
    try:
        run = subprocess.run(
            fuzz_command(target, seconds, tmp_path),
            capture_output=True,
            text=True,
            timeout=seconds * 10 + 30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{target} did not stop within {seconds * 10 + 30} s (a hang?)")
    crashes = sorted(p.name for p in tmp_path.iterdir())
    detail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0 and not crashes, f"{target} crashed ({crashes}):\n{detail}"
    runs = [
        line
        for line in run.stderr.splitlines()
        if line.startswith("stat::number_of_executed_units")
    ]
    assert runs and int(runs[0].split(":")[-1]) > 100, detail  # it really ran
    print(f"\n{target}: {runs[0].split(':')[-1].strip()} inputs in {seconds} s")
