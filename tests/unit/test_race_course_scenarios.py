"""Race course tables (tests/unit/scenarios/race/*.json, format in its README.md): the pure
decisions both racers share, event by event, with no thread, loop or server."""

from __future__ import annotations

import math
from typing import Any

import pytest
from scenario_tables import SCENARIOS, load

from clusterdb.core.race_course import RaceCourse
from clusterdb.core.selection import Plan


class Refused(Exception):
    pass


def _step(course: RaceCourse, nodes: list[str], step: dict[str, Any]) -> None:
    at = step.get("at", 0.0)
    if "wake" in step:
        assert course.wake_at() == pytest.approx(step["wake"])
    elif "timer" in step:
        assert course.timer(at) == step["timer"]
        if "silent" in step:
            node, elapsed = course.silent(at)
            assert [node, pytest.approx(elapsed)] == step["silent"]
    elif "start" in step:
        assert nodes[course.start_next(at)] == step["start"]
    elif "failed" in step:
        node = step["failed"]
        assert course.failed(nodes.index(node), Refused(node), f"{node}: refused") == step["step"]
    elif "primary" in step:
        held, next_step = course.offered(nodes.index(step["primary"]), at)
        assert (held, next_step) == (step["held"], step["step"])
    elif "late_failure" in step:
        node = step["late_failure"]
        course.late_failure(nodes.index(node), Refused(node), f"{node}: refused")
    else:
        raise AssertionError(f"unknown step {step}")


@pytest.mark.parametrize("case", load(SCENARIOS / "race"))
def test_scenario(case: dict[str, Any]) -> None:
    spec = case["plan"]
    plan = Plan(tuple(spec["nodes"]), tuple(spec["hedge_delays"]), spec["race"])
    course = RaceCourse(plan, 0.0, case["timeout"], case["fallback_wait"])
    nodes = list(plan.nodes)
    assert list(course.opening) == list(range(len(nodes) if plan.race else 1))
    for step in case["steps"]:
        _step(course, nodes, step)
    if "tried" in case:
        assert list(course.tried) == case["tried"]
    if "report" in case:
        report, last = course.report()
        assert {node: line for node, (_, line) in report.items()} == case["report"]
        assert list(report) == list(case["report"])  # plan order
        for exc, line in report.values():
            assert (exc is None) == line.startswith("no answer")
        assert (None if last is None else str(last)) == case["last"]


def test_a_plan_of_one_attempt_never_hedges() -> None:
    course = RaceCourse(Plan(("a",), (0.01,), False), 5.0, 1.0, 0.05)
    assert course.wake_at() == 6.0
    assert course.timer(5.5) == "wait"
    assert course.next_hedge == math.inf


def test_scenario_files_are_found() -> None:
    assert len(load(SCENARIOS / "race")) >= 10
