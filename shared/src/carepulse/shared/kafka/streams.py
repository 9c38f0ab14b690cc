"""The faust-streaming app factory every stream worker (care, nlp, imaging) uses.

Timeouts follow FIELD-NOTES: with faust's defaults a new consumer group waits
~20 s for its first record on Tansu; these values bring that to a few seconds.
Records are raw bytes (FHIR JSON exactly as validated at the edge); handlers
decode what they need. Workers register typed handlers with :func:`add_handler`
and publish with :func:`make_publisher`; the Kafka loop is written once, here.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from carepulse.shared.context_crypto import ContextCryptoError
from carepulse.shared.fhir.codec import Issue
from carepulse.shared.fhir.outcome import operation_outcome
from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.deadletter import deadletter_headers
from carepulse.shared.kafka.headers import Headers, header
from carepulse.shared.kafka.lanes import lane_of, run_in_lanes
from carepulse.shared.kafka.security import faust_broker_credentials
from carepulse.shared.logs import setup_logging
from carepulse.shared.metrics import processing_seconds, records_total, render_metrics
from carepulse.shared.settings import Settings
from carepulse.shared.tracing import consume_span, inject_kafka, setup_tracing

log = logging.getLogger(__name__)
GIL_SWITCH_INTERVAL_S = 0.0005
SettingsT = TypeVar("SettingsT", bound=Settings)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # faust hard-codes fetch_max_wait_ms=1500; a broker that holds fetches for the full
        # wait (Tansu does) then adds up to 1.5 s per hop. Ours comes from settings.
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class StreamApp(faust.App):
    """faust's App with the consumer's fetch wait under our control."""

    fetch_max_wait_ms: int = 500
    stream_lanes: int = 1
    max_record_bytes: int = 0

    def _new_transport(self) -> faust_aiokafka.Transport:
        return _Transport(self.conf.broker_consumer, self)


def run_worker(service: str, settings: SettingsT, build_app: Callable[[SettingsT], faust.App]) -> None:
    """Entry point of a stream worker process: logging, tracing, the app, until SIGTERM/SIGINT."""
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing(service)  # exports spans only when CAREPULSE_OTLP_ENDPOINT is set
    # faust's consumer runs in its own thread and shares the GIL with the event loop; by default a
    # thread keeps the GIL up to 5 ms while a ready Redis reply or ack waits. 0.5 ms: measured on
    # care at 500 events/s, p99 POST -> score 370-1,110 ms before, 225-540 ms after (noisy 2-core VM).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    worker = faust.Worker(build_app(settings), loglevel=settings.log_level, override_logging=False, quiet=True)
    worker.execute_from_commandline()


def make_stream_app(
    settings: Settings,
    name: str,
    *,
    web_port: int,
    data_dir: Path,
    health: HealthChecks,
) -> faust.App:
    """A faust app for consumer group ``name`` with health and metrics on ``web_port``.

    Offsets are committed only after the agent has finished with an event, so a
    worker killed mid-stream re-reads what it had not finished (at-least-once);
    handlers make their output idempotent by deriving ids from the input.
    """
    app = StreamApp(
        name,
        broker=[f"kafka://{s}" for s in settings.kafka_servers],
        # TLS / SASL from settings; faust passes them to its consumer, producer and admin client.
        broker_credentials=faust_broker_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(data_dir),
        web_enabled=True,
        web_host=settings.bind_host,
        web_port=web_port,
        web_in_thread=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_max_poll_interval=10.0,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_acks=-1,
        producer_max_request_size=16 * 1024 * 1024,
        stream_wait_empty=True,
    )

    app.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
    app.stream_lanes = settings.stream_lanes
    app.max_record_bytes = settings.kafka_max_record_bytes
    # Ready once the consumer group has settled: the first rebalance is complete and
    # none is in progress (during one, no partition is being consumed).
    health.add("kafka", lambda: app.rebalancing_count > 0 and not app.rebalancing)

    @app.page("/livez")
    async def livez(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ok, detail = await health.readiness()
        return web.json({"status": "ok" if ok else "unavailable", "checks": detail}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(render_metrics(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return app


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
    RedisConnectionError, RedisTimeoutError, KafkaError, ConnectionError, asyncio.TimeoutError, ContextCryptoError,
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


def make_publisher(app: faust.App) -> Publish:
    """A coroutine that publishes one record; acknowledged before the input is committed."""
    topics: dict[str, faust.TopicT] = {}

    async def publish(rec: Outgoing) -> None:
        topic = topics.get(rec.topic)
        if topic is None:
            topic = topics[rec.topic] = app.topic(rec.topic, value_serializer="raw", key_serializer="raw")
        # Outputs join the trace of the input being handled (see add_handler's span).
        fut = await topic.send(key=rec.key.encode(), value=rec.value, headers=inject_kafka(rec.headers))
        owed = _pending_acks.get()
        if owed is None:
            await fut  # outside a handler: wait for this ack now
        else:
            owed.append(fut)

    return publish


def _headers(event: Any) -> Headers:
    raw = getattr(event, "headers", None) or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


def add_handler(
    app: faust.App,
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

    async def dead_letter(event: Any, headers: Headers, reason: str, code: str = "processing",
                          truncate: bool = False) -> None:
        msg = event.message
        outcome = operation_outcome([Issue(code, reason)])
        event_id = header(headers, "event-id") or f"{msg.topic}:{msg.partition}:{msg.offset}"
        dl_headers = deadletter_headers(outcome, source_name, event_id, origin_topic=msg.topic,
                                        origin_offset=msg.offset, stage=service)
        value = event.value or b""
        if truncate and len(value) > DEADLETTER_KEEP_BYTES:
            dl_headers.append(("deadletter-truncated-from", str(len(value)).encode()))
            value = value[:DEADLETTER_KEEP_BYTES]
        key = (event.key or b"").decode(errors="replace")
        direct = _pending_acks.set(None)  # the dead letter's own ack is awaited right here
        try:
            await publish(Outgoing(deadletter_topic, key, value, dl_headers))
        finally:
            _pending_acks.reset(direct)
        invalid.inc()
        log.warning("record dead-lettered", extra={"fields": {"topic": msg.topic, "offset": msg.offset,
                                                              "reason": reason[:200]}})

    max_bytes = getattr(app, "max_record_bytes", 0)

    async def process(event: Any) -> None:
        headers = _headers(event)
        size = len(event.value or b"")
        if max_bytes and size > max_bytes:
            await dead_letter(event, headers, f"record is {size} bytes, more than the {max_bytes} allowed "
                                              "(CAREPULSE_KAFKA_MAX_RECORD_BYTES)", code="too-long", truncate=True)
            return
        delay = 0.5
        while True:
            started = time.perf_counter()
            owed: list[Awaitable[Any]] = []
            token = _pending_acks.set(owed)
            try:
                with consume_span(f"{service} {source_topic}", headers):
                    await handler(event.key, event.value, headers)
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
                await dead_letter(event, headers, f"{type(exc).__name__}: {exc}")
                return
            finally:
                _pending_acks.reset(token)

    async def handle_then_ack(event: Any) -> None:
        await process(event)
        # Only now may faust commit this offset: it commits up to the first offset not yet
        # acknowledged, so a record still waiting in another lane holds the commit back.
        event.ack()

    lanes = max(1, getattr(app, "stream_lanes", 1))

    async def consume(stream: faust.StreamT) -> None:
        # Lanes overlap the Redis and Kafka waits of different patients; each patient's
        # records stay in one lane, in order, so results equal one-at-a-time handling.
        await run_in_lanes(stream.noack().events(), lambda e: lane_of(e.key, e.message.partition, lanes),
                           lanes, handle_then_ack)

    source = app.topic(source_topic, value_serializer="raw", key_serializer="raw")
    app.agent(source, name=f"{service}.{source_topic}")(consume)
