"""The stream runtime every worker (care, nlp, imaging) uses: one consumer group, typed handlers.

aiokafka in the worker's own event loop. faust ran here before: its consumer thread and
per-record stream machinery took a third of care's CPU at 500 events/s (py-spy), more than
the clinical work. What a worker needs of a framework is small and written once, here:
handlers registered per topic (:func:`add_handler`), publishing (:func:`make_publisher`),
lanes (per-key order, overlapped waits), commits that never pass an unfinished record,
dead letters, and health/metrics pages.

Timeouts follow FIELD-NOTES: with default session settings a new consumer group waits
~20 s for its first record on Tansu; these values bring that to a few seconds. Records are
raw bytes (FHIR JSON exactly as validated at the edge); handlers decode what they need.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from carepulse.shared.context_crypto import ContextCryptoError
from carepulse.shared.fhir.codec import Issue
from carepulse.shared.fhir.outcome import operation_outcome
from carepulse.shared.health import HealthChecks
from carepulse.shared.heap import freeze_startup_heap
from carepulse.shared.kafka.deadletter import deadletter_headers
from carepulse.shared.kafka.headers import Headers, header
from carepulse.shared.kafka.lanes import lane_of, run_in_lanes
from carepulse.shared.kafka.offsets import OffsetTracker
from carepulse.shared.kafka.producer import KeyPartitioner
from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.logs import setup_logging
from carepulse.shared.metrics import processing_seconds, records_total, render_metrics
from carepulse.shared.settings import Settings
from carepulse.shared.tracing import consume_span, inject_kafka, setup_tracing

log = logging.getLogger(__name__)
SettingsT = TypeVar("SettingsT", bound=Settings)
COMMIT_INTERVAL_S = 1.0
POLL_TIMEOUT_MS = 200  # how long a poll waits before the loop looks at the stop signal again
MAX_POLL_RECORDS = 500
# A rebalance waits this long for records in flight before handing partitions over; what is
# still open after it is re-read by the new owner (outputs have input-derived ids).
REVOKE_WAIT_S = 5.0
MAX_FETCH_BYTES = 4 * 1024 * 1024
MAX_REQUEST_BYTES = 16 * 1024 * 1024

RecordHandler = Callable[[ConsumerRecord], Awaitable[None]]


class StreamApp:
    """One consumer group of a worker: its topics' handlers, a producer, health and metrics.

    Offsets are committed only up to the first record not yet finished, so a worker killed
    mid-stream re-reads what it had not finished (at-least-once); handlers make their output
    idempotent by deriving ids from the input.
    """

    def __init__(self, settings: Settings, group: str, *, web_port: int, health: HealthChecks) -> None:
        self.settings = settings
        self.group = group
        self.web_port = web_port
        self.health = health
        self.lanes = max(1, settings.stream_lanes)
        self.max_record_bytes = settings.kafka_max_record_bytes
        self.assigned = False  # the first rebalance is complete
        self.rebalancing = False
        self._routes: dict[str, RecordHandler] = {}
        self._producer: AIOKafkaProducer | None = None
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._idle = asyncio.Event()
        self._idle.set()
        # Ready once the group has settled: assigned, and no rebalance in progress (during
        # one, no partition is being consumed).
        health.add("kafka", lambda: self.assigned and not self.rebalancing)

    def route(self, topic: str, handle: RecordHandler) -> None:
        if topic in self._routes:
            raise ValueError(f"topic {topic} already has a handler")
        self._routes[topic] = handle

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future[Any]:
        """Queue one record; the returned future resolves when the brokers acknowledge it."""
        if self._producer is None:
            raise RuntimeError("the stream app is not running")
        return await self._producer.send(topic, value, key=key, headers=headers)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; a handler's unexpected exception ends it (and is raised)."""
        s = self.settings
        security = kafka_client_security(s)
        servers = ",".join(s.kafka_servers)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=s.kafka_fetch_max_wait_ms,
            session_timeout_ms=6000, heartbeat_interval_ms=1000, max_partition_fetch_bytes=MAX_FETCH_BYTES,
            **security)
        self._producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", partitioner=KeyPartitioner(),
                                          max_request_size=MAX_REQUEST_BYTES, **security)
        consumer.subscribe(list(self._routes), listener=_Rebalance(self, consumer))
        site = await self._serve_web()
        try:
            await self._producer.start()
            await consumer.start()
            committer = asyncio.create_task(self._commit_every(consumer))
            try:
                await run_in_lanes(self._records(consumer, stop),
                                   lambda r: lane_of(r.key, r.partition, self.lanes), self.lanes, self._handle)
            finally:
                committer.cancel()
                await self.commit(consumer)  # what finished, never past what did not
        finally:
            await consumer.stop()
            await self._producer.stop()  # flushes what is queued
            await site.cleanup()

    async def _records(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> AsyncIterator[ConsumerRecord]:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_POLL_RECORDS)
            # The whole batch is open before any of it is handed on, so a rebalance waits for all of it.
            for tp, records in batch.items():
                for r in records:
                    self._offsets.started(tp, r.offset)
            if self._offsets.in_flight:
                self._idle.clear()
            for records in batch.values():
                for r in records:
                    yield r

    async def _handle(self, record: ConsumerRecord) -> None:
        await self._routes[record.topic](record)
        self._offsets.finished(TopicPartition(record.topic, record.partition), record.offset)
        if not self._offsets.in_flight:
            self._idle.set()

    async def commit(self, consumer: AIOKafkaConsumer) -> None:
        positions = self._offsets.take()
        if not positions:
            return
        try:
            await consumer.commit(positions)
        except AIOKafkaError as exc:  # e.g. a rebalance under way: the next commit carries them
            self._offsets.retry(positions)
            log.warning("commit failed, will retry", extra={"fields": {"error": type(exc).__name__}})

    async def _commit_every(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            await self.commit(consumer)

    async def release(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Before partitions go to another member: finish what is in flight, commit, forget them."""
        try:
            await asyncio.wait_for(self._idle.wait(), REVOKE_WAIT_S)
        except TimeoutError:
            log.warning("records still in flight at rebalance", extra={"fields": {"open": self._offsets.in_flight}})
        await self.commit(consumer)
        self._offsets.forget(partitions)
        if not self._offsets.in_flight:
            self._idle.set()

    async def _serve_web(self) -> web.AppRunner:
        async def livez(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def readyz(request: web.Request) -> web.Response:
            ok, detail = await self.health.readiness()
            return web.json_response({"status": "ok" if ok else "unavailable", "checks": detail},
                                     status=200 if ok else 503)

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=render_metrics(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

        app = web.Application()
        app.router.add_get("/livez", livez)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.bind_host, self.web_port).start()
        return runner


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, app: StreamApp, consumer: AIOKafkaConsumer) -> None:
        self._app, self._consumer = app, consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._app.rebalancing = True
        await self._app.release(self._consumer, set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._app.assigned = True
        self._app.rebalancing = False


def run_worker(service: str, settings: SettingsT, build_app: Callable[[SettingsT], StreamApp]) -> None:
    """Entry point of a stream worker process: logging, tracing, the app, until SIGTERM/SIGINT."""
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing(service)  # exports spans only when CAREPULSE_OTLP_ENDPOINT is set
    app = build_app(settings)
    freeze_startup_heap()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("worker started", extra={"fields": {"service": service, "group": app.group}})
        await app.run(stop)
        log.info("worker stopped", extra={"fields": {"service": service}})

    try:
        asyncio.run(main())
    except Exception:
        # A handler failed in a way no rule covers (a bug): stop rather than skip the record;
        # its offset was not committed, so a restarted worker takes it up again.
        log.exception("worker failed", extra={"fields": {"service": service}})
        raise SystemExit(1) from None


def make_stream_app(settings: Settings, name: str, *, web_port: int, health: HealthChecks) -> StreamApp:
    """The stream app of consumer group ``name``, with health and metrics on ``web_port``."""
    return StreamApp(settings, name, web_port=web_port, health=health)


@dataclass(frozen=True)
class Outgoing:
    """One record to publish: the value is FHIR JSON bytes, the key ``Patient/<id>``."""

    topic: str
    key: str
    value: bytes
    headers: Headers


Publish = Callable[[Outgoing], Awaitable[None]]
# A handler gets (key, value, headers) of one record and raises ValueError (or a
# subclass) for input that can never be processed: that record is dead-lettered.
Handler = Callable[[bytes | None, bytes, Headers], Awaitable[object]]

# Dependencies being down (or the context keys being wrong) is not the record's fault:
# retry, holding the partition, until the operator fixes it.
TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, KafkaError, AIOKafkaError, ConnectionError, asyncio.TimeoutError,
    ContextCryptoError,
)
# RecursionError: JSON nested deeper than the interpreter's stack (a hostile or broken sender).
PERMANENT: tuple[type[BaseException], ...] = (ValueError, KeyError, TypeError, RecursionError)
# What a dead letter keeps of a record over the size limit: enough to see what it was (the
# whole might not fit in a producer request; origin-topic/origin-offset point at it).
DEADLETTER_KEEP_BYTES = 64 * 1024


# Acks still owed for the record being handled: inside add_handler, publish() only queues
# the record and the loop awaits every ack together after the handler returns (outputs of
# one record are produced in order, and acknowledged before the input is committed).
_pending_acks: contextvars.ContextVar[list[Awaitable[Any]] | None] = contextvars.ContextVar(
    "carepulse_pending_acks", default=None)


def make_publisher(app: StreamApp) -> Publish:
    """A coroutine that publishes one record; acknowledged before the input is committed."""

    async def publish(rec: Outgoing) -> None:
        # Outputs join the trace of the input being handled (see add_handler's span).
        fut = await app.send(rec.topic, rec.key.encode(), rec.value, inject_kafka(rec.headers))
        owed = _pending_acks.get()
        if owed is None:
            await fut  # outside a handler: wait for this ack now
        else:
            owed.append(fut)

    return publish


def add_handler(
    app: StreamApp,
    source_topic: str,
    handler: Handler,
    *,
    service: str,
    deadletter_topic: str,
    source_name: str,
    publish: Publish,
) -> None:
    """Run ``handler`` on every record of ``source_topic``, at least once, in order per key.

    Input the handler rejects (``PERMANENT`` errors) goes to ``deadletter_topic`` with its
    original bytes and an OperationOutcome; a dependency that is down is retried with
    back-off, since acknowledging the record would lose it.
    """
    ok = records_total().labels(service, source_topic, "ok")
    invalid = records_total().labels(service, source_topic, "invalid")
    timer = processing_seconds().labels(service, source_topic)
    max_bytes = app.max_record_bytes

    async def dead_letter(record: ConsumerRecord, headers: Headers, reason: str, code: str = "processing",
                          truncate: bool = False) -> None:
        outcome = operation_outcome([Issue(code, reason)])
        event_id = header(headers, "event-id") or f"{record.topic}:{record.partition}:{record.offset}"
        dl_headers = deadletter_headers(outcome, source_name, event_id, origin_topic=record.topic,
                                        origin_offset=record.offset, stage=service)
        value = record.value or b""
        if truncate and len(value) > DEADLETTER_KEEP_BYTES:
            dl_headers.append(("deadletter-truncated-from", str(len(value)).encode()))
            value = value[:DEADLETTER_KEEP_BYTES]
        key = (record.key or b"").decode(errors="replace")
        direct = _pending_acks.set(None)  # the dead letter's own ack is awaited right here
        try:
            await publish(Outgoing(deadletter_topic, key, value, dl_headers))
        finally:
            _pending_acks.reset(direct)
        invalid.inc()
        log.warning("record dead-lettered", extra={"fields": {"topic": record.topic, "offset": record.offset,
                                                              "reason": reason[:200]}})

    async def process(record: ConsumerRecord) -> None:
        headers: Headers = list(record.headers or ())
        size = len(record.value or b"")
        if max_bytes and size > max_bytes:
            await dead_letter(record, headers, f"record is {size} bytes, more than the {max_bytes} allowed "
                                               "(CAREPULSE_KAFKA_MAX_RECORD_BYTES)", code="too-long", truncate=True)
            return
        delay = 0.5
        while True:
            started = time.perf_counter()
            owed: list[Awaitable[Any]] = []
            token = _pending_acks.set(owed)
            try:
                with consume_span(f"{service} {source_topic}", headers):
                    await handler(record.key, record.value or b"", headers)
                await asyncio.gather(*owed)
                ok.inc()
                timer.observe(time.perf_counter() - started)
                return
            except TRANSIENT as exc:
                await asyncio.gather(*owed, return_exceptions=True)  # the retry publishes again
                log.warning("dependency unavailable, retrying", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except PERMANENT as exc:
                await asyncio.gather(*owed, return_exceptions=True)
                await dead_letter(record, headers, f"{type(exc).__name__}: {exc}")
                return
            finally:
                _pending_acks.reset(token)

    app.route(source_topic, process)
