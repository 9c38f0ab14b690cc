"""Scheduling requests onto a model's session: as they come, or merged by dynamic batching.

Dynamic batching follows Triton's ``dynamic_batching`` settings. A batch opens with the
oldest waiting request and takes every request already queued, up to ``max_batch_size``;
if the queue runs dry first, it waits up to ``max_queue_delay`` (counted from the oldest
request) for more, except that a batch which has reached one of the
``preferred_batch_size`` values runs at once. While a batch runs, new requests queue, so
under load batches fill by themselves without any delay. One batch runs at a time per
model instance; session.run happens on an executor thread, never on the event loop.

Requests are merged only if their non-batch dimensions agree (variable dims can differ
between requests); a request that does not fit starts the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from carepulse.inference import metrics
from carepulse.inference.errors import ModelNotReady

log = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]
RunFn = Callable[[Tensors], Tensors]


class Scheduler(Protocol):
    def start(self) -> None: ...

    async def submit(self, inputs: Tensors, size: int) -> Tensors:
        """Run ``inputs`` (batch of ``size``); return every output, sliced to this request."""
        ...

    async def stop(self) -> None:
        """Finish what is queued, then refuse new work."""
        ...


class _Observer:
    def __init__(self, model: str) -> None:
        self.queue = metrics.queue_seconds().labels(model)
        self.compute = metrics.compute_seconds().labels(model)
        self.batch = metrics.batch_size().labels(model)


class DirectScheduler:
    """No batching: each request runs on its own (an executor per instance serialises them)."""

    def __init__(self, model: str, run: RunFn, executor: Executor) -> None:
        self._run = run
        self._executor = executor
        self._observe = _Observer(model)
        self._closed = False
        self._model = model

    def start(self) -> None:
        self._closed = False

    async def submit(self, inputs: Tensors, size: int) -> Tensors:
        if self._closed:
            raise ModelNotReady(f"model '{self._model}' is unloading")
        loop = asyncio.get_running_loop()
        enqueued = time.perf_counter()

        def job() -> Tensors:
            start = time.perf_counter()
            self._observe.queue.observe(start - enqueued)
            out = self._run(inputs)
            self._observe.compute.observe(time.perf_counter() - start)
            return out

        self._observe.batch.observe(size)
        return await loop.run_in_executor(self._executor, job)

    async def stop(self) -> None:
        self._closed = True


@dataclass(slots=True)
class _Pending:
    inputs: Tensors
    size: int
    key: tuple[tuple[str, tuple[int, ...]], ...]
    future: asyncio.Future[Tensors]
    enqueued: float = field(default_factory=time.perf_counter)


_STOP = object()


class DynamicBatcher:
    """Merges concurrent requests of one model into one session.run (see module doc)."""

    def __init__(self, model: str, run: RunFn, executor: Executor, *, max_batch_size: int,
                 max_queue_delay_s: float = 0.0, preferred_batch_sizes: tuple[int, ...] = ()) -> None:
        self._model = model
        self._run = run
        self._executor = executor
        self._max = max_batch_size
        self._delay = max_queue_delay_s
        self._preferred = frozenset(preferred_batch_sizes)
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._observe = _Observer(model)

    def start(self) -> None:
        if self._task is None:
            self._closed = False
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher:{self._model}")

    async def submit(self, inputs: Tensors, size: int) -> Tensors:
        if self._closed or self._task is None:
            raise ModelNotReady(f"model '{self._model}' is not accepting requests")
        key = tuple((name, arr.shape[1:]) for name, arr in inputs.items())
        pending = _Pending(inputs, size, key, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def stop(self) -> None:
        if self._task is None:
            return
        self._closed = True
        self._queue.put_nowait(_STOP)
        await self._task
        self._task = None

    async def _loop(self) -> None:
        carry: _Pending | object | None = None
        while True:
            first = carry if carry is not None else await self._queue.get()
            carry = None
            if first is _STOP:
                return
            assert isinstance(first, _Pending)
            batch = [first]
            size = first.size
            deadline = first.enqueued + self._delay
            while size < self._max:
                if self._queue.empty():
                    if size in self._preferred:
                        break
                    timeout = deadline - time.perf_counter()
                    if timeout <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), timeout)
                    except TimeoutError:
                        break
                else:
                    item = self._queue.get_nowait()
                if not isinstance(item, _Pending) or item.key != first.key or size + item.size > self._max:
                    carry = item
                    break
                batch.append(item)
                size += item.size
            await self._execute(batch, size)

    async def _execute(self, batch: list[_Pending], size: int) -> None:
        # Requests whose caller went away (deadline, cancel) are not worth computing.
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        if len(live) != len(batch):
            size = sum(p.size for p in live)
        start = time.perf_counter()
        for p in live:
            self._observe.queue.observe(start - p.enqueued)
        self._observe.batch.observe(size)
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, live)
        except Exception as e:  # one failure fails the batch, never the loop
            for p in live:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        finally:
            self._observe.compute.observe(time.perf_counter() - start)
        for p, out in zip(live, results, strict=True):
            if not p.future.done():
                p.future.set_result(out)

    def _run_batch(self, batch: list[_Pending]) -> list[Tensors]:
        """Executor thread: merge inputs, one session.run, split outputs by request."""
        if len(batch) == 1:
            return [self._run(batch[0].inputs)]
        names = batch[0].inputs.keys()
        merged = {n: np.concatenate([p.inputs[n] for p in batch]) for n in names}
        out = self._run(merged)
        results: list[Tensors] = []
        offset = 0
        for p in batch:
            results.append({k: v[offset : offset + p.size] for k, v in out.items()})
            offset += p.size
        return results
