"""Faust wiring of the care worker: topic in, CareProcessor, topics out.

Errors are sorted in two: input that can never be processed goes to the
dead-letter topic (with its reason) and the stream moves on; a dependency that is
down (Redis, Kafka) is retried with back-off, holding the partition, because
acknowledging the record would lose it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import faust
from kafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from carepulse.care.processor import CareProcessor, Outgoing
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.fhir.codec import Issue
from carepulse.shared.fhir.outcome import operation_outcome
from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.deadletter import deadletter_headers
from carepulse.shared.kafka.headers import header
from carepulse.shared.kafka.streams import make_stream_app
from carepulse.shared.metrics import processing_seconds, records_total
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
SERVICE = "care"
TRANSIENT = (RedisConnectionError, RedisTimeoutError, KafkaError, ConnectionError, asyncio.TimeoutError)


def _headers(event: Any) -> list[tuple[str, bytes]]:
    raw = getattr(event, "headers", None) or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


def build_app(settings: CareSettings) -> faust.App:
    topics = Topics.with_prefix(settings.topic_prefix)
    redis = make_redis(settings)
    store = PatientContextStore(redis, ttl_seconds=settings.care_context_ttl_s)
    health = HealthChecks()
    app = make_stream_app(
        settings, settings.care_group, web_port=settings.care_port, data_dir=settings.care_data_dir, health=health
    )
    health.add("redis", store.ping)
    health.add("kafka", lambda: bool(app.consumer.assignment()) or app.consumer_generation_id > 0)

    out_topics: dict[str, faust.TopicT] = {}

    async def publish(rec: Outgoing) -> None:
        topic = out_topics.get(rec.topic)
        if topic is None:
            topic = out_topics[rec.topic] = app.topic(rec.topic, value_serializer="raw", key_serializer="raw")
        fut = await topic.send(key=rec.key.encode(), value=rec.value, headers=rec.headers)
        await fut  # wait for the broker's ack before the input may be committed

    processor = CareProcessor(
        topics, store, publish, source_name=settings.source_name, set_tolerance_s=settings.care_set_tolerance_s
    )
    source = app.topic(topics.observation, value_serializer="raw", key_serializer="raw")
    ok = records_total().labels(SERVICE, topics.observation, "ok")
    invalid = records_total().labels(SERVICE, topics.observation, "invalid")
    timer = processing_seconds().labels(SERVICE, "observation")

    async def dead_letter(event: Any, headers: list[tuple[str, bytes]], reason: str) -> None:
        outcome = operation_outcome([Issue("processing", reason)])
        msg = event.message
        dl_headers = deadletter_headers(
            outcome, settings.source_name, header(headers, "event-id") or f"{msg.topic}:{msg.partition}:{msg.offset}",
            origin_topic=msg.topic, origin_offset=msg.offset, stage=SERVICE,
        )
        await publish(Outgoing(topics.deadletter, (event.key or b"").decode(errors="replace"), event.value, dl_headers))
        invalid.inc()
        log.warning("record dead-lettered", extra={"fields": {"offset": msg.offset, "reason": reason[:200]}})

    @app.agent(source, name="care.observations")
    async def observations(stream: faust.StreamT) -> None:
        async for event in stream.events():
            headers = _headers(event)
            delay = 0.5
            while True:
                started = time.perf_counter()
                try:
                    await processor.on_observation(event.key, event.value, headers)
                    ok.inc()
                    timer.observe(time.perf_counter() - started)
                    break
                except TRANSIENT as exc:
                    log.warning("dependency unavailable, retrying", extra={"fields": {"error": type(exc).__name__}})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
                    await dead_letter(event, headers, f"{type(exc).__name__}: {exc}")
                    break

    return app
