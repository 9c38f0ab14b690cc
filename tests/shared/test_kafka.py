"""The shared producer against a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio

import pytest

from carepulse.shared.kafka.headers import fhir_headers, stable_id
from carepulse.shared.kafka.producer import FhirProducer, KeyPartitioner, make_producer
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration


def test_records_carry_key_and_contract_headers(settings: Settings, topics: Topics, topic_reader: TopicReader) -> None:
    producer = FhirProducer(make_producer(settings, "test"))

    async def main() -> None:
        assert await producer.ready(topics.observation)
        futs = [producer.send(topics.observation, "Patient/p1", b'{"n":%d}' % i,
                              fhir_headers("Observation", stable_id("e", str(i)), "test")) for i in range(20)]
        delivered = await asyncio.gather(*futs)
        assert len({d.partition for d in delivered}) == 1  # one patient, one partition: order kept

    asyncio.run(main())
    producer.close()
    records = topic_reader.read(topics.observation, at_least=20)
    assert [r.json()["n"] for r in records] == list(range(20))
    h = records[0].headers
    assert h["content-type"] == "application/fhir+json; fhirVersion=4.0"
    assert h["resource-type"] == "Observation" and h["source"] == "test"
    assert h["event-id"] == stable_id("e", "0") and h["traceparent"].startswith("00-")
    assert records[0].key == "Patient/p1"


def test_stable_ids_are_deterministic() -> None:
    assert stable_id("a", "b") == stable_id("a", "b") != stable_id("a", "c")


def test_stable_ids_are_uuid5_of_the_joined_parts() -> None:
    """Ids already on the topics were made with uuid.uuid5: the fast path must give the same."""
    import uuid

    from carepulse.shared.kafka.headers import EVENT_NAMESPACE

    for parts in [("Observation", "hr-1", "h", "ab" * 32), ("Patient", "ünïcødé", "v", "3"), ("",), ("a", "")]:
        assert stable_id(*parts) == str(uuid.uuid5(EVENT_NAMESPACE, "\x1f".join(parts)))


def test_key_partitioner_places_keys_where_kafkas_default_partitioner_does() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    ours, kafkas = KeyPartitioner(remembered=16), DefaultPartitioner()
    for n in (1, 3, 12):
        parts = list(range(n))
        for i in range(200):  # more keys than it remembers: hits and misses both checked
            key = f"Patient/{i % 40}-{i}".encode() if i % 2 else f"Patient/{i % 7}".encode()
            assert ours(key, parts, parts) == kafkas(key, parts, parts)
    assert ours(None, [0, 1, 2], [2]) == 2  # keyless: an available partition
