"""Rebuild the patient context in Redis by replaying the topics (the cache is disposable).

Inputs (patients, clinical records, observations, AI findings) are re-read into the
context without being re-assessed; care's own scores on ``fhir.derived`` are replayed
into the alert state, so alerting after a rebuild continues exactly where it was.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition

from carepulse.care.processor import CareProcessor
from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics


def _records(settings: Settings, topic: str, batch: int = 500) -> Iterator[list[bytes]]:
    """Every record of ``topic`` from the beginning up to its current end, in batches."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=None, enable_auto_commit=False,
                             **kafka_client_security(settings))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            out = []
            for tp, msgs in consumer.poll(timeout_ms=500, max_records=batch).items():
                out += [m.value for m in msgs if m.offset < ends[tp]]
                if consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            for tp in list(pending):
                if consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if out:
                yield out
    finally:
        consumer.close()


async def rebuild(processor: CareProcessor, settings: Settings, topics: Topics) -> dict[str, int]:
    """Replay inputs and care's own outputs into Redis; returns records read per topic."""
    counts: dict[str, int] = {}
    plan = [(topics.patient, False), (topics.clinical, False), (topics.observation, False), (topics.derived, True)]
    for topic, derived in plan:
        n = 0
        batches = _records(settings, topic)
        while (chunk := await asyncio.to_thread(next, batches, None)) is not None:
            for raw in chunk:
                doc = json.loads(raw)
                if not isinstance(doc, dict):
                    continue
                try:
                    await processor.remember(doc, derived=derived)
                except ValueError:
                    continue  # unreadable input: the live worker dead-lettered it too
                if derived:
                    await processor.restore(doc)
                n += 1
        counts[topic] = n
    return counts
