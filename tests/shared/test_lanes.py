"""Lanes: concurrency across keys, arrival order within a key, failures not swallowed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from carepulse.shared.kafka.lanes import lane_of, run_in_lanes


async def _source(items: list[tuple[bytes, int]]) -> AsyncIterator[tuple[bytes, int]]:
    for item in items:
        yield item


def test_each_key_keeps_its_order_while_keys_overlap() -> None:
    rng = random.Random(7)
    items = [(f"Patient/{rng.randrange(12)}".encode(), seq) for seq in range(400)]
    done: list[tuple[bytes, int]] = []
    running = 0
    most = 0

    async def work(item: tuple[bytes, int]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(rng.random() / 500)  # a Redis round trip of random length
        running -= 1
        done.append(item)

    asyncio.run(run_in_lanes(_source(items), lambda it: lane_of(it[0], 0, 8), 8, work, depth=4))

    assert sorted(done, key=lambda it: it[1]) == items  # every item once
    for key in {k for k, _ in items}:
        assert [s for k, s in done if k == key] == [s for k, s in items if k == key]
    assert done != items  # lanes did overlap: the global order changed
    assert most > 1


def test_one_lane_is_one_at_a_time() -> None:
    items = [(f"k{i % 5}".encode(), i) for i in range(50)]
    done: list[tuple[bytes, int]] = []

    async def work(item: tuple[bytes, int]) -> None:
        await asyncio.sleep(0.001 * (item[1] % 3))
        done.append(item)

    asyncio.run(run_in_lanes(_source(items), lambda it: lane_of(it[0], 0, 1), 1, work))
    assert done == items


def test_a_failing_item_stops_the_lanes_and_is_raised() -> None:
    handled: list[int] = []

    async def work(item: tuple[bytes, int]) -> None:
        if item[1] == 10:
            raise RuntimeError("handler bug")
        await asyncio.sleep(0.001)
        handled.append(item[1])

    items = [(b"k", i) for i in range(100)]
    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(run_in_lanes(_source(items), lambda it: 0, 4, work))
    assert info.group_contains(RuntimeError)
    assert handled == list(range(10))  # nothing after the failure in that lane was handled


def test_lane_is_stable_for_a_key_and_spreads_keyless_records_by_partition() -> None:
    assert lane_of(b"Patient/1", 3, 8) == lane_of(b"Patient/1", 5, 8)
    assert {lane_of(None, p, 4) for p in range(4)} == {0, 1, 2, 3}
    assert len({lane_of(f"Patient/{i}".encode(), 0, 8) for i in range(200)}) == 8
