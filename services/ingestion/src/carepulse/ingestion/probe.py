"""Ask a topic whether records with given ``event-id`` headers are on it (crash recovery).

Only the tail written since the stale claim is read: ``offsets_for_times`` finds where
it starts, so the cost is the few seconds of traffic around the crash, not the topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from kafka import KafkaConsumer, TopicPartition

from carepulse.ingestion.dedupe import StaleClaim
from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings

log = logging.getLogger(__name__)
# Producer and broker clocks differ; read a little before the claim was taken.
_CLOCK_SLACK_MS = 10_000


class TopicProbe:
    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self._servers = settings.kafka_servers
        self._security = kafka_client_security(settings)
        self._timeout_s = timeout_s

    async def __call__(self, stale: Sequence[StaleClaim]) -> set[str]:
        return await asyncio.to_thread(self._scan, list(stale))

    def _scan(self, stale: list[StaleClaim]) -> set[str]:
        wanted = {s.event_id for s in stale}
        since: dict[str, int] = {}
        for s in stale:
            since[s.topic] = min(since.get(s.topic, s.since_ms), s.since_ms)
        found: set[str] = set()
        consumer = KafkaConsumer(bootstrap_servers=self._servers, group_id=None, enable_auto_commit=False,
                                 fetch_max_wait_ms=50, client_id="carepulse-ingestion-probe", **self._security)
        try:
            for topic, ms in since.items():
                found |= self._scan_topic(consumer, topic, ms - _CLOCK_SLACK_MS, wanted)
        finally:
            consumer.close()
        log.info("probed topics for crashed publishes",
                 extra={"fields": {"wanted": len(wanted), "found": len(found)}})
        return found

    def _scan_topic(self, consumer: KafkaConsumer, topic: str, since_ms: int, wanted: set[str]) -> set[str]:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return set()
        consumer.assign(tps)
        try:
            starts = consumer.offsets_for_times({tp: max(since_ms, 0) for tp in tps})
        except Exception:  # noqa: BLE001 - a broker without timestamp lookup: read it all
            starts = None
        ends = consumer.end_offsets(tps)
        for tp in tps:
            if starts is None:
                consumer.seek_to_beginning(tp)
            elif starts.get(tp) is None:
                consumer.seek(tp, ends[tp])  # nothing written since: nothing to find
            else:
                consumer.seek(tp, starts[tp].offset)
        found: set[str] = set()
        deadline = time.monotonic() + self._timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"probing {topic} took longer than {self._timeout_s}s")
            for batch in consumer.poll(timeout_ms=200).values():
                for m in batch:
                    for k, v in m.headers or ():
                        if k == "event-id" and v.decode() in wanted:
                            found.add(v.decode())
        return found
