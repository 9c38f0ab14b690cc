"""Consumer lag per group and partition, as the Prometheus gauge ``carepulse_consumer_lag``.

Lag = end offset of a partition − the offset the group committed there. It is read
from the broker (committed offsets vs end offsets), not from inside a consumer, so
one monitor can watch every CarePulse group, including groups with no live member
(that is exactly when lag grows). Run it inside a worker (:meth:`LagMonitor.start`)
or on its own as a tiny exporter::

    python -m carepulse.shared.kafka.lag --port 9308

Scaling note: lag that keeps growing while every member is busy means more members,
but a group never has more active members than its topics have partitions.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from prometheus_client import REGISTRY, Gauge

from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings

log = logging.getLogger(__name__)

# Group ids of CarePulse workers start with this (faust app names: carepulse-care, …).
DEFAULT_GROUP_PREFIX = "carepulse-"


@cache
def consumer_lag() -> Gauge:
    """Records a group has not yet committed, by group, topic and partition."""
    return Gauge(
        "carepulse_consumer_lag",
        "Records behind the end of the partition (end offset minus committed offset)",
        ["group", "topic", "partition"],
        registry=REGISTRY,
    )


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class LagMonitor:
    """Computes lag of consumer groups every ``interval`` seconds and publishes the gauge.

    ``groups``: the group ids to watch; None discovers every group whose id starts
    with ``group_prefix`` on each round (new workers appear without a restart).
    """

    def __init__(
        self,
        settings: Settings,
        groups: Iterable[str] | None = None,
        *,
        group_prefix: str = DEFAULT_GROUP_PREFIX,
        interval: float = 15.0,
        client_id: str = "carepulse-lag",
    ) -> None:
        self._settings = settings
        self._groups = list(groups) if groups is not None else None
        self._prefix = group_prefix
        self._interval = interval
        self._client_id = client_id
        # Checked now: a bad security setup must stop the start, not the monitor thread later.
        self._security = kafka_client_security(settings)
        self._admin: KafkaAdminClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Label sets published last round: partitions that disappear are removed, not left stale.
        self._published: set[tuple[str, str, str]] = set()

    def _client(self) -> KafkaAdminClient:
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self._settings.kafka_servers, client_id=self._client_id, request_timeout_ms=10000,
                **self._security,
            )
        return self._admin

    def _group_ids(self, admin: KafkaAdminClient) -> list[str]:
        if self._groups is not None:
            return self._groups
        found = []
        for g in admin.list_groups():
            gid = g.get("group_id") if isinstance(g, dict) else g[0]
            if gid and gid.startswith(self._prefix):
                found.append(gid)
        return sorted(found)

    def measure(self) -> list[PartitionLag]:
        """One round: committed offsets of each group against the partitions' end offsets."""
        admin = self._client()
        committed: dict[str, dict[TopicPartition, int]] = {}
        for gid in self._group_ids(admin):
            # One group per call: older brokers (and Tansu) answer OffsetFetch for one group at a time.
            offsets = admin.list_group_offsets({gid: None}).get(gid, {})
            committed[gid] = {tp: om.offset for tp, om in offsets.items() if om.offset is not None and om.offset >= 0}
        partitions = {tp for per_group in committed.values() for tp in per_group}
        if not partitions:
            return []
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
        result = []
        for gid, per_group in committed.items():
            for tp, offset in per_group.items():
                end = ends.get(tp)
                if end is not None:
                    result.append(PartitionLag(gid, tp.topic, tp.partition, offset, end.offset))
        return sorted(result, key=lambda p: (p.group, p.topic, p.partition))

    def collect_once(self) -> list[PartitionLag]:
        """Measure and publish; partitions no longer committed by any group are removed from the gauge."""
        lags = self.measure()
        gauge = consumer_lag()
        current = set()
        for p in lags:
            labels = (p.group, p.topic, str(p.partition))
            gauge.labels(*labels).set(p.lag)
            current.add(labels)
        for gone in self._published - current:
            gauge.remove(*gone)
        self._published = current
        return lags

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.collect_once()
            except KafkaError as exc:
                # The broker being away is what lag monitoring must survive: keep the last values, retry.
                log.warning("consumer lag not measured", extra={"fields": {"error": type(exc).__name__}})
                self._reset_client()
            self._stop.wait(self._interval)

    def _reset_client(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # closing a broken client must not stop the loop
                log.debug("admin client close failed", exc_info=True)
            self._admin = None

    def start(self) -> None:
        """Measure in a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="carepulse-lag", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 15)
            self._thread = None
        self._reset_client()


def main(argv: list[str] | None = None) -> None:
    """Stand-alone exporter: ``/metrics`` with ``carepulse_consumer_lag`` on ``--port``."""
    from prometheus_client import start_http_server

    from carepulse.shared.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m carepulse.shared.kafka.lag", description=main.__doc__)
    parser.add_argument("--port", type=int, default=9308)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--group-prefix", default=DEFAULT_GROUP_PREFIX)
    parser.add_argument("--group", action="append", help="watch only these groups (repeatable)")
    args = parser.parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    consumer_lag()  # the gauge is on /metrics from the first scrape, even before a group commits
    start_http_server(args.port, addr=settings.bind_host)
    monitor = LagMonitor(settings, args.group, group_prefix=args.group_prefix, interval=args.interval)
    log.info("consumer lag exporter started", extra={"fields": {"port": args.port}})
    monitor._loop()


if __name__ == "__main__":
    main()
