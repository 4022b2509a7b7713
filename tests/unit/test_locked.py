"""Locked, a cluster's critical section: prepared on entry, the rankings' epoch ended when a
transition says so, events logged only once the lock is released, the lock never left held."""

from __future__ import annotations

import logging
import threading

import pytest

from clusterdb.core.events import DrainChanged, StateChanged
from clusterdb.core.node_state import RERANK, UNCHANGED
from clusterdb.core.ranking_cache import RankingCache
from clusterdb.runtime.locked import Locked


def test_entry_prepares_and_apply_ends_the_epoch_only_when_told() -> None:
    lock, rankings, prepared = threading.Lock(), RankingCache(), []
    section = Locked("c", lock, lambda: prepared.append(lock.locked()), rankings)
    with section as s:
        assert s.apply(UNCHANGED) == () and rankings.epoch == 0
        assert s.apply(RERANK) == () and rankings.epoch == 1
    assert prepared == [True] and not lock.locked()


def test_events_are_logged_in_order_after_the_release(caplog: pytest.LogCaptureFixture) -> None:
    lock, rankings = threading.Lock(), RankingCache()
    held: list[bool] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(lock.locked())

    spy = Spy()
    logger = logging.getLogger("clusterdb")
    logger.addHandler(spy)
    try:
        caplog.set_level(logging.DEBUG, logger="clusterdb")
        with Locked("c", lock, lambda: None, rankings) as s:
            down = StateChanged("a", "up", "down", "h:1", "refused")
            assert s.apply(((down,), True)) == (down,)
            s.apply(((DrainChanged("b", True),), True))
            assert not caplog.records  # nothing logged under the lock
    finally:
        logger.removeHandler(spy)
    assert [r.getMessage() for r in caplog.records] == [
        "cluster 'c': node a (h:1) is down: refused",
        "cluster 'c': node b drained",
    ]
    assert held == [False, False] and rankings.epoch == 2


def test_the_lock_is_released_when_preparing_or_the_body_raises() -> None:
    lock = threading.Lock()

    def boom() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), Locked("c", lock, boom, RankingCache()):
        pass
    assert not lock.locked()
    with pytest.raises(ValueError), Locked("c", lock, lambda: None, RankingCache()):
        raise ValueError
    assert not lock.locked()
