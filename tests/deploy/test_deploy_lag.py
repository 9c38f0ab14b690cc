"""Consumer lag against the real (Tansu) broker: committed offsets vs end offsets."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from carepulse.shared.kafka.lag import LagMonitor
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration


def _produce(settings: Settings, topic: str, per_partition: dict[int, int]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    try:
        for partition, n in per_partition.items():
            for i in range(n):
                # One acknowledged send at a time: one record per batch keeps end offsets exact on every broker.
                producer.send(topic, key=b"Patient/p", value=b"%d" % i, partition=partition).get(timeout=10)
    finally:
        producer.close()


def _commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=group, enable_auto_commit=False)
    try:
        consumer.assign(list(offsets))
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    finally:
        consumer.close()


def _gauge(group: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "carepulse_consumer_lag", {"group": group, "topic": topic, "partition": str(partition)}
    )


def test_lag_per_partition_is_end_minus_committed(settings: Settings, topics: Topics) -> None:
    group = f"carepulse-lagtest-{uuid.uuid4().hex[:8]}"
    p0, p1 = TopicPartition(topics.observation, 0), TopicPartition(topics.observation, 1)
    _produce(settings, topics.observation, {0: 5, 1: 2})
    _commit(settings, group, {p0: 2, p1: 2})

    monitor = LagMonitor(settings, [group])
    try:
        lags = {(p.topic, p.partition): p for p in monitor.collect_once()}
        assert lags[(topics.observation, 0)].end == 5
        assert lags[(topics.observation, 0)].lag == 3
        assert lags[(topics.observation, 1)].lag == 0
        assert _gauge(group, topics.observation, 0) == 3.0
        assert _gauge(group, topics.observation, 1) == 0.0

        # The group catches up: the gauge follows on the next round.
        _produce(settings, topics.observation, {1: 4})
        _commit(settings, group, {p0: 5})
        monitor.collect_once()
        assert _gauge(group, topics.observation, 0) == 0.0
        assert _gauge(group, topics.observation, 1) == 4.0
    finally:
        monitor.stop()


def test_groups_are_discovered_by_prefix(settings: Settings, topics: Topics) -> None:
    prefix = f"carepulse-disc{uuid.uuid4().hex[:6]}-"
    mine, other = prefix + "care", f"other-{uuid.uuid4().hex[:6]}"
    tp = TopicPartition(topics.document, 2)
    _produce(settings, topics.document, {2: 3})
    _commit(settings, mine, {tp: 1})
    _commit(settings, other, {tp: 0})

    monitor = LagMonitor(settings, None, group_prefix=prefix)
    try:
        lags = monitor.collect_once()
        assert [(p.group, p.topic, p.partition, p.lag) for p in lags] == [(mine, topics.document, 2, 2)]
        assert _gauge(other, topics.document, 2) is None
    finally:
        monitor.stop()


def test_background_thread_publishes_and_stops(settings: Settings, topics: Topics) -> None:
    group = f"carepulse-lagthread-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition(topics.imaging, 0)
    _produce(settings, topics.imaging, {0: 2})
    _commit(settings, group, {tp: 0})
    monitor = LagMonitor(settings, [group], interval=0.2)
    monitor.start()
    try:
        deadline = time.monotonic() + 10
        while _gauge(group, topics.imaging, 0) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gauge(group, topics.imaging, 0) == 2.0
    finally:
        monitor.stop()
