"""Validation off the event loop and across cores: Intake's CPU-bound steps in worker processes.

Validating FHIR with fhir.resources is ~85 % of ingestion's CPU and pure Python, so one
process uses one core at most, and while it validates a large Bundle its event loop serves
nobody. With ``CAREPULSE_INGESTION_VALIDATION_PROCESSES`` > 0, Bundles and NDJSON chunks are
validated in that many worker processes. A Bundle goes as the bytes it arrived in: the
server does not parse it. A large one goes to every worker, each parsing and preparing the
whole Bundle (cheap next to validation) and validating its own slice of the entries, so one
large Bundle still uses every core; a small one goes whole to one worker. NDJSON chunks are
split in one slice of lines per worker. What comes back is lean: per entry the bytes to
publish, the route, the event ids and the document's type/id/version, or the issues.
Publishing, dedupe, auditing and HTTP stay in the one server process. With 0 (the default)
the same steps run inline.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from carepulse.ingestion.intake import BundleWork, EntryResult, Intake, read_bundle
from carepulse.shared.heap import freeze_startup_heap
from carepulse.shared.topics import Topics

# Below this size a Bundle goes whole to one worker: splitting it would cost each worker a
# parse of the whole body for a slice of a few entries (~25 vital signs fit in 64 KiB).
SPLIT_BUNDLE_BYTES = 64 * 1024
# The Intake of a worker process (built once by the pool's initializer; it never publishes).
_worker_intake: Intake | None = None


def _start_worker(topic_prefix: str, source_name: str, max_entries: int) -> None:
    global _worker_intake  # noqa: PLW0603 - one per worker process, set before any task runs
    _worker_intake = Intake(Topics.with_prefix(topic_prefix), None, source_name, max_entries)
    freeze_startup_heap()


def _ready() -> bool:
    time.sleep(0.05)  # held briefly, so that each of the first tasks lands on its own new process
    return _worker_intake is not None


def _slimmed(results: list[EntryResult]) -> list[EntryResult]:
    for r in results:
        if r.accepted is not None:
            r.accepted.slim()
    return results


def _bundle_in_worker(raw: bytes, event_id: str | None, traceparent: str | None, part: int,
                      parts: int) -> BundleWork:
    assert _worker_intake is not None
    work = _worker_intake.bundle_work(read_bundle(raw), event_id, traceparent, part, parts)
    _slimmed(work.results)
    return work


def _lines_in_worker(lines: list[bytes], event_ids: list[str | None]) -> list[EntryResult]:
    assert _worker_intake is not None
    return _slimmed([_worker_intake.accept_line(line, "", eid) for line, eid in zip(lines, event_ids, strict=True)])


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

    async def bundle(self, raw: bytes, event_id: str | None, traceparent: str | None) -> BundleWork:
        """The Bundle body ``raw`` validated (``Intake.bundle_work``); raises FhirValidationError
        when it is not a Bundle's JSON."""
        if self._pool is None:
            return self._intake.bundle_work(read_bundle(raw), event_id, traceparent)
        parts = 1 if len(raw) < SPLIT_BUNDLE_BYTES else self._processes
        works = await asyncio.gather(*(self._run(_bundle_in_worker, raw, event_id, traceparent, k, parts)
                                       for k in range(parts)))
        work = works[0]
        work.results = [r for w in works for r in w.results]
        return work

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
