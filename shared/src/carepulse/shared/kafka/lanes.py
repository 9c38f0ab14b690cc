"""Concurrency across keys, order within a key: how stream workers overlap their waits.

A stream worker's record spends most of its time waiting on Redis and Kafka round trips.
Handling records one at a time leaves the CPU idle during those waits; handling them all
at once would let a patient's later reading overtake an earlier one. Lanes sit between:
each key always goes to the same lane, lanes run side by side, each lane in arrival order.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def lane_of(key: bytes | None, fallback: int, lanes: int) -> int:
    """The lane of a record: by its key, or by ``fallback`` (its partition) when it has none.

    CRC32, not ``hash()``: the same key must land in the same lane in every process."""
    return (zlib.crc32(key) if key else fallback) % lanes


async def run_in_lanes(
    items: AsyncIterable[T], lane: Callable[[T], int], lanes: int, work: Callable[[T], Awaitable[None]],
    depth: int = 64,
) -> None:
    """Call ``work`` on every item of ``items``: one lane at a time per ``lane(item)``.

    Each lane holds at most ``depth`` items, so a slow lane slows the reader instead of
    buffering without bound. An exception in ``work`` stops every lane and is raised
    (in an ``ExceptionGroup``), as a failure of a one-at-a-time loop would be.
    """
    queues: list[asyncio.Queue[T]] = [asyncio.Queue(maxsize=depth) for _ in range(lanes)]

    async def drain(queue: asyncio.Queue[T]) -> None:
        while True:
            item = await queue.get()
            try:
                await work(item)
            finally:
                queue.task_done()

    async with asyncio.TaskGroup() as group:
        workers = [group.create_task(drain(q)) for q in queues]
        async for item in items:
            await queues[lane(item) % lanes].put(item)
        for q in queues:  # the source ended: finish what was read, then stop
            await q.join()
        for w in workers:
            w.cancel()
