"""Commit positions while lanes finish records out of order (carepulse.shared.kafka.offsets)."""

from __future__ import annotations

import random

from carepulse.shared.kafka.offsets import OffsetTracker


def test_position_never_passes_an_unfinished_record() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    for off in (10, 11, 12):
        t.started("p0", off)
    t.finished("p0", 12)
    t.finished("p0", 11)
    assert t.take() == {} and t.in_flight == 1  # 10 still open: nothing may be committed
    t.finished("p0", 10)
    assert t.take() == {"p0": 13} and t.in_flight == 0
    assert t.take() == {}  # handed out once


def test_partitions_are_independent_and_the_position_stops_at_the_first_open_offset() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    for off in range(5):
        t.started("a", off)
        t.started("b", off)
    for off in (0, 1, 3):
        t.finished("a", off)
    t.finished("b", 0)
    assert t.take() == {"a": 2, "b": 1}


def test_random_finishing_order_matches_the_first_open_offset() -> None:
    rng = random.Random(7)
    t: OffsetTracker[int] = OffsetTracker()
    offsets = list(range(100, 400))
    for off in offsets:
        t.started(0, off)
    order = offsets[:]
    rng.shuffle(order)
    done: set[int] = set()
    committed = 100
    for off in order:
        t.finished(0, off)
        done.add(off)
        expected = min((o for o in offsets if o not in done), default=offsets[-1] + 1)
        committed = t.take().get(0, committed)
        assert committed == expected
    assert t.in_flight == 0


def test_forgotten_partitions_are_dropped_and_their_late_finishes_ignored() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    for off in (0, 1, 2):
        t.started("gone", off)
    t.started("kept", 0)
    t.finished("gone", 1)
    t.forget(["gone"])
    assert t.in_flight == 1  # only "kept" is still ours
    t.finished("gone", 0)  # a lane finishing after the rebalance
    assert t.take() == {} and t.in_flight == 1


def test_a_failed_commit_is_retried_unless_a_newer_position_is_waiting() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    for off in (0, 1):
        t.started("p", off)
    t.finished("p", 0)
    failed = t.take()
    t.retry(failed)
    assert t.take() == {"p": 1}
    t.finished("p", 1)
    t.retry({"p": 1})  # an older failure must not overwrite the newer position
    assert t.take() == {"p": 2}
