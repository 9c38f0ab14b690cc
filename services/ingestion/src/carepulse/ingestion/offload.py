"""Validation off the event loop and across cores: Intake's CPU-bound steps in worker processes.

Validating FHIR with fhir.resources is ~85 % of ingestion's CPU and pure Python, so one
process uses one core at most, and while it validates a large Bundle its event loop serves
nobody. With ``CAREPULSE_INGESTION_VALIDATION_PROCESSES`` > 0, Bundle entries and NDJSON
chunks are validated in that many worker processes, each request split in one slice per
worker: entries or lines go in, the accepted resources (document, canonical bytes, route,
event ids) or the issues come back. Work is spread per request, not per connection, so a
few senders with large Bundles or long uploads still use every core. Publishing, dedupe,
auditing and HTTP stay in the one server process. With 0 (the default) the same steps run
inline, exactly as before.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from carepulse.ingestion.intake import EntryResult, Intake
from carepulse.shared.heap import freeze_startup_heap
from carepulse.shared.topics import Topics

# The Intake of a worker process (built once by the pool's initializer; it never publishes).
_worker_intake: Intake | None = None


def _start_worker(topic_prefix: str, source_name: str, max_entries: int) -> None:
    global _worker_intake  # noqa: PLW0603 - one per worker process, set before any task runs
    _worker_intake = Intake(Topics.with_prefix(topic_prefix), None, source_name, max_entries)
    freeze_startup_heap()


def _ready() -> bool:
    time.sleep(0.05)  # held briefly, so that each of the first tasks lands on its own new process
    return _worker_intake is not None


def _entries_in_worker(entries: list[Any], local: dict[str, str], start: int, event_id: str | None,
                       traceparent: str | None) -> list[EntryResult]:
    assert _worker_intake is not None
    results = _worker_intake.entry_results(entries, local, start, event_id, traceparent)
    for r in results:
        if r.accepted is not None:
            # The server holds the same prepared document (validation does not change it):
            # sending it back would cost more to unpickle there than anything else it does.
            r.accepted.resource = {}
    return results


def _lines_in_worker(lines: list[bytes], event_ids: list[str | None]) -> list[EntryResult]:
    assert _worker_intake is not None
    return [_worker_intake.accept_line(line, "", eid) for line, eid in zip(lines, event_ids, strict=True)]


class Validation:
    """Intake's validation steps, inline (``processes == 0``) or in a pool of worker processes."""

    def __init__(self, intake: Intake, processes: int, *, topic_prefix: str, source_name: str,
                 max_entries: int) -> None:
        self._intake = intake
        self._processes = processes
        self._init_args = (topic_prefix, source_name, max_entries)
        self._pool: ProcessPoolExecutor | None = None

    async def start(self) -> None:
        if self._processes > 0 and self._pool is None:
            # spawn: fresh interpreters, nothing of this process's sockets or threads copied.
            self._pool = ProcessPoolExecutor(self._processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=self._init_args)
            # The pool starts its processes on demand: start them all now, so the first requests
            # do not wait for interpreters to start and import the FHIR models.
            await asyncio.gather(*(self._run(_ready) for _ in range(self._processes)))

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def bundle_entries(self, doc: dict[str, Any], event_id: str | None,
                             traceparent: str | None) -> tuple[str, list[EntryResult]]:
        """``Intake.bundle_entries`` of the Bundle ``doc``: prepared here (ids, local references),
        its entries then validated in slices, one per worker, so one large Bundle uses every core."""
        if self._pool is None:
            return self._intake.bundle_entries(doc, event_id, traceparent)
        btype, entries, local = self._intake.prepare_bundle(doc)
        results = await self._spread(_entries_in_worker, entries, local, event_id, traceparent)
        for entry, r in zip(entries, results, strict=True):
            if r.accepted is not None:
                r.accepted.resource = entry["resource"]
        return btype, results

    async def accept_lines(self, lines: list[bytes], event_ids: list[str | None]) -> list[EntryResult]:
        """``Intake.accept_line`` of each NDJSON line, in order; the chunk is split over the workers."""
        if self._pool is None:
            return [self._intake.accept_line(line, "", eid) for line, eid in zip(lines, event_ids, strict=True)]
        step = self._step(len(lines))
        parts = await asyncio.gather(*(self._run(_lines_in_worker, lines[i:i + step], event_ids[i:i + step])
                                       for i in range(0, len(lines), step)))
        return [r for part in parts for r in part]

    def _step(self, n: int) -> int:
        return max(1, -(-n // self._processes))

    async def _spread(self, fn: Any, entries: list[Any], local: dict[str, str], event_id: str | None,
                      traceparent: str | None) -> list[EntryResult]:
        step = self._step(len(entries))
        parts = await asyncio.gather(*(self._run(fn, entries[i:i + step], local, i, event_id, traceparent)
                                       for i in range(0, len(entries), step)))
        return [r for part in parts for r in part]
