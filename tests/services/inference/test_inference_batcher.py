"""Dynamic batching: requests merge into one run, results go back to the right caller."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from carepulse.inference.batcher import DirectScheduler, DynamicBatcher

pytestmark = pytest.mark.timeout(60)


class RecordingModel:
    """y = 2x + row offset; records the batch size of every run and the running thread."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[int] = []
        self.threads: set[int] = set()
        self.delay = delay

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append(len(feeds["x"]))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        return {"y": feeds["x"] * 2, "n": np.full((len(feeds["x"]), 1), len(feeds["x"]))}


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


def test_concurrent_requests_merge_and_split_back() -> None:
    model = RecordingModel(delay=0.01)

    async def scenario() -> list[np.ndarray]:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("m", model, pool, max_batch_size=16, max_queue_delay_s=0.05)
            b.start()
            xs = [np.full((1 + i % 3, 2), i, dtype=np.float32) for i in range(12)]
            outs = await asyncio.gather(*(b.submit({"x": x}, len(x)) for x in xs))
            await b.stop()
            for x, out in zip(xs, outs, strict=True):
                np.testing.assert_array_equal(out["y"], x * 2)
            return outs

    outs = _run(scenario())
    assert sum(model.batches) == sum(len(o["y"]) for o in outs)
    assert max(model.batches) > 1 and len(model.batches) < 12
    assert all(b <= 16 for b in model.batches)
    assert threading.main_thread().ident not in model.threads  # never on the event loop thread


def test_max_batch_size_is_respected() -> None:
    model = RecordingModel()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("m", model, pool, max_batch_size=4, max_queue_delay_s=0.05)
            b.start()
            await asyncio.gather(*(b.submit({"x": np.ones((3, 1))}, 3) for _ in range(5)))
            await b.stop()

    _run(scenario())
    assert model.batches == [3, 3, 3, 3, 3]  # 3 + 3 > 4: never merged


def test_preferred_batch_size_runs_without_waiting() -> None:
    model = RecordingModel()

    async def scenario() -> float:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("m", model, pool, max_batch_size=8, max_queue_delay_s=5.0,
                               preferred_batch_sizes=(2,))
            b.start()
            start = time.perf_counter()
            await asyncio.gather(*(b.submit({"x": np.ones((1, 1))}, 1) for _ in range(2)))
            elapsed = time.perf_counter() - start
            await b.stop()
            return elapsed

    assert _run(scenario()) < 1.0  # the 5 s queue delay was not waited out
    assert model.batches == [2]


def test_queue_delay_bounds_the_wait_for_a_lone_request() -> None:
    model = RecordingModel()

    async def scenario() -> float:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("m", model, pool, max_batch_size=8, max_queue_delay_s=0.2)
            b.start()
            start = time.perf_counter()
            await b.submit({"x": np.ones((1, 1))}, 1)
            elapsed = time.perf_counter() - start
            await b.stop()
            return elapsed

    elapsed = _run(scenario())
    assert 0.15 < elapsed < 2.0


def test_different_trailing_shapes_are_not_merged() -> None:
    model = RecordingModel()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("m", model, pool, max_batch_size=8, max_queue_delay_s=0.05)
            b.start()
            a, c = await asyncio.gather(b.submit({"x": np.ones((1, 2))}, 1), b.submit({"x": np.ones((1, 3))}, 1))
            await b.stop()
            assert a["y"].shape == (1, 2) and c["y"].shape == (1, 3)

    _run(scenario())
    assert model.batches == [1, 1]


def test_a_failing_run_fails_its_batch_not_the_batcher() -> None:
    calls = {"n": 0}

    def flaky(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return {"y": feeds["x"]}

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher("m", flaky, pool, max_batch_size=4)
            b.start()
            with pytest.raises(RuntimeError):
                await b.submit({"x": np.ones((1, 1))}, 1)
            out = await b.submit({"x": np.ones((1, 1))}, 1)
            assert out["y"].shape == (1, 1)
            await b.stop()

    _run(scenario())


def test_direct_scheduler_runs_each_request_alone() -> None:
    model = RecordingModel()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            s = DirectScheduler("m", model, pool)
            s.start()
            await asyncio.gather(*(s.submit({"x": np.ones((2, 1))}, 2) for _ in range(4)))
            await s.stop()

    _run(scenario())
    assert model.batches == [2, 2, 2, 2]
