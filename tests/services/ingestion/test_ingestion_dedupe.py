"""The publish-once store: claims, duplicates, and recovery of a crashed instance's claims via the topic."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from kafka import KafkaProducer

from carepulse.ingestion.dedupe import LEASE_PREFIX, SeenStore, StaleClaim
from carepulse.ingestion.probe import TopicProbe
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration


def test_crashed_claims_are_resolved_by_what_is_on_the_topic(settings: Settings, topics: Topics) -> None:
    # What the crashed instance managed to publish before dying: e1 (not e2).
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    producer.send(topics.observation, key=b"Patient/p", value=b"{}", headers=[("event-id", b"e1")])
    producer.flush()
    producer.close()

    async def main() -> None:
        dead = SeenStore(aioredis.Redis.from_url(settings.redis_url), ttl_s=60, lease_s=0.5)
        await dead.start()
        assert await dead.claim([["e1"], ["e2"]], [topics.observation] * 2, _never) == [True, True]
        dead._lease_task.cancel()  # type: ignore[union-attr]  # the process is killed: no mark, no renewal
        await dead._r.delete(LEASE_PREFIX + dead.instance)

        live = SeenStore(aioredis.Redis.from_url(settings.redis_url), ttl_s=60, busy_wait_s=5)
        await live.start()
        probe = TopicProbe(settings)
        fresh = await live.claim([["e1"], ["e2"], ["e3"]], [topics.observation] * 3, probe)
        assert fresh == [False, True, True]  # e1 is on the topic: not again; e2 never got there: publish it
        await live.mark_done(["e2", "e3"])
        assert await live.claim([["e2"], ["e3", "other-key"]], [topics.observation] * 2, _never) == [False, False]
        await live.stop()
        await dead._r.aclose()

    asyncio.run(main())


async def _never(stale: object) -> set[str]:
    raise AssertionError(f"no probe expected: {stale}")


def test_probe_finds_a_published_event_id(settings: Settings, topics: Topics) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    producer.send(topics.clinical, key=b"Patient/p", value=b"{}", headers=[("event-id", b"old")])
    producer.flush()
    producer.close()
    found = asyncio.run(TopicProbe(settings)([StaleClaim(0, topics.clinical, "old", 0)]))
    assert found == {"old"}
    assert asyncio.run(TopicProbe(settings)([StaleClaim(0, topics.clinical, "never-sent", 0)])) == set()
