"""Read what landed on a topic, for assertions (from the beginning, no consumer group)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings


@dataclass(frozen=True)
class Record:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int

    def json(self) -> Any:
        return json.loads(self.value)


class TopicReader:
    def __init__(self, settings: Settings) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=None,
                                       enable_auto_commit=False, fetch_max_wait_ms=50,
                                       **kafka_client_security(settings))

    def read(self, topic: str, *, at_least: int = 0, timeout: float = 10.0, settle: float = 0.0) -> list[Record]:
        """Every record of ``topic`` up to its current end; waits until ``at_least`` are
        there (or ``timeout``), then ``settle`` seconds more so unwanted extra records show too."""
        parts = self._consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            for batch in self._consumer.poll(timeout_ms=100).values():
                for m in batch:
                    out.append(Record(m.topic, m.key.decode() if m.key else None, m.value,
                                      {k: v.decode() for k, v in m.headers or []}, m.partition, m.offset))
            now = time.monotonic()
            ends = self._consumer.end_offsets(tps)
            caught_up = all(self._consumer.position(tp) >= ends[tp] for tp in tps)
            if caught_up and len(out) >= at_least and settle_until is None:
                settle_until = now + settle
            if (settle_until is not None and now >= settle_until) or now > deadline:
                return out

    def close(self) -> None:
        self._consumer.close()
