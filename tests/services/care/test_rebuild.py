"""Flushing Redis mid-stream and rebuilding the context from the topics changes no later result."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
import redis

from carepulse.care.processor import CareProcessor
from carepulse.care.rebuild import rebuild
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.demo.scenario import rounds
from carepulse.shared.kafka.admin import create_topics
from carepulse.shared.kafka.headers import fhir_headers
from carepulse.shared.kafka.producer import FhirProducer, make_producer
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
START = datetime(2026, 2, 1, 6, 0, tzinfo=UTC)


def run(settings: Settings, flush_at: int | None) -> list[Outgoing]:
    """Feed the scenario's observations through Kafka and the processor; optionally flush Redis
    after ``flush_at`` records and rebuild the context from the topics before going on."""
    topics = Topics.with_prefix(settings.topic_prefix)
    care = CareSettings(**settings.model_dump())
    records = [e["resource"] for rnd in rounds(START) for b in rnd for e in b["entry"]]
    producer = FhirProducer(make_producer(settings, "test-rebuild"))
    out: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        out.append(rec)
        await producer.send(rec.topic, rec.key, rec.value, rec.headers)

    async def main() -> None:
        store = PatientContextStore(make_redis(settings))
        p = CareProcessor(topics, store, publish, care)
        for i, obs in enumerate(records):
            if i == flush_at:
                await asyncio.to_thread(redis.Redis.from_url(settings.redis_url).flushdb)
                counts = await rebuild(p, settings, topics)
                assert counts[topics.observation] == flush_at
            raw = json.dumps(obs).encode()
            await producer.send(topics.observation, obs["subject"]["reference"], raw,
                                fhir_headers("Observation", obs["id"], "test"))
            await p.on_observation(None, raw, None)
        await store.close()

    asyncio.run(main())
    producer.close()
    return out


def test_rebuilt_context_gives_the_same_later_results(settings: Settings) -> None:
    reference = run(settings, None)
    other = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "r.",
                                        "redis_url": settings.redis_url.rsplit("/", 1)[0] + "/3"})
    create_topics(other, Topics.with_prefix(other.topic_prefix))
    redis.Redis.from_url(other.redis_url).flushdb()
    flush_at = 51  # mid-stream: inside round 3, after the deteriorating patient's medium alert
    interrupted = run(other, flush_at)

    def results(out: list[Outgoing]) -> list[tuple[str, str]]:
        return [(json.loads(r.value)["resourceType"], json.loads(r.value)["id"]) for r in out]

    assert results(interrupted) == results(reference)
    alert_topic = Topics.with_prefix(other.topic_prefix).alerts
    assert sum(r.topic == alert_topic for r in interrupted) == 4
