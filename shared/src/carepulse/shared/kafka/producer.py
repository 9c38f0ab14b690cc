"""The one Kafka producer configuration, with asyncio-friendly sends.

kafka-python's producer runs its own I/O thread; :meth:`FhirProducer.send` bridges
its delivery future into asyncio so request handlers can await the broker's ack
without blocking the event loop. :meth:`FhirProducer.send_many` does the same for a
whole batch with one asyncio future, because a loop callback per record costs more
than the record itself at bulk rates.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from carepulse.shared.kafka.headers import Headers
from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings


class PublishError(RuntimeError):
    """The broker did not acknowledge a record."""


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class OutRecord:
    """One record to publish: topic, key (``Patient/<id>``), value bytes, headers."""

    topic: str
    key: str
    value: bytes
    headers: Headers


def make_producer(settings: Settings, client_id: str, *, compression: str | None = "gzip",
                  linger_ms: int = 2, batch_size: int = 256 * 1024) -> KafkaProducer:
    """Producer with acks=all and idempotence: a retried send is written once.

    ``compression`` must be one every consumer can decode (faust/aiokafka decode lz4,
    zstd and snappy only with ``cramjam``); ``None`` is cheapest on a local broker.
    """
    return KafkaProducer(
        bootstrap_servers=settings.kafka_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        batch_size=batch_size,
        max_request_size=16 * 1024 * 1024,
        compression_type=compression,
        retries=2147483647,
        request_timeout_ms=15000,
        max_block_ms=5000,
        **kafka_client_security(settings),
    )


class _BatchWaiter:
    """Counts acks of one batch in the producer's thread; wakes the loop once at the end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[list[BaseException | None]] = loop.create_future()
        self.errors: list[BaseException | None] = [None] * n
        self._left = n
        self._lock = threading.Lock()
        if n == 0:
            self.future.set_result(self.errors)

    def done(self, i: int, exc: BaseException | None) -> None:
        if exc is not None:
            self.errors[i] = exc
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(self.errors)


class FhirProducer:
    """Async facade over one :class:`KafkaProducer` (thread-safe, shared per process)."""

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer

    def send(self, topic: str, key: str, value: bytes, headers: Headers) -> asyncio.Future[Delivered]:
        """Queue one record; the returned future resolves once the broker acked it."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Delivered] = loop.create_future()

        def ok(md: object) -> None:
            d = Delivered(md.topic, md.partition, md.offset)  # type: ignore[attr-defined]
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(d))

        def failed(exc: BaseException) -> None:
            err = PublishError(f"{topic}: {exc}")
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_exception(err))

        try:
            pending = self._producer.send(topic, key=key.encode(), value=value, headers=headers)
            pending.add_callback(ok).add_errback(failed)
        except Exception as exc:  # buffer full, record too large, closed producer
            fut.set_exception(PublishError(f"{topic}: {exc}"))
        return fut

    async def send_many(self, records: Sequence[OutRecord]) -> list[BaseException | None]:
        """Publish ``records`` in order; returns, per record, None once acked or the error."""
        waiter = _BatchWaiter(asyncio.get_running_loop(), len(records))
        send = self._producer.send
        for i, r in enumerate(records):
            try:
                pending = send(r.topic, key=r.key.encode(), value=r.value, headers=r.headers)
            except Exception as exc:  # buffer full, record too large, closed producer
                waiter.done(i, PublishError(f"{r.topic}: {exc}"))
                continue
            pending.add_callback(lambda _md, i=i: waiter.done(i, None))
            pending.add_errback(lambda exc, i=i, t=r.topic: waiter.done(i, PublishError(f"{t}: {exc}")))
        return await waiter.future

    async def ready(self, probe_topic: str) -> bool:
        """True when the cluster answers metadata requests for ``probe_topic``."""
        parts = await asyncio.to_thread(self._producer.partitions_for, probe_topic)
        return bool(parts)

    async def start(self) -> None:
        """Nothing to start: kafka-python connects in its own thread (same interface as the async one)."""

    async def stop(self) -> None:
        """Closed by :meth:`close` (the owner closes it after the event loop is gone)."""

    def partitions(self, topic: str) -> list[int]:
        return sorted(self._producer.partitions_for(topic) or ())

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._producer.close(timeout)


# From this many records on, send_many builds its own per-partition batches.
_OWN_BATCH_MIN = 64


class KeyPartitioner:
    """Kafka's default partitioner (murmur2 of the key, as every client computes it), with the hash
    of recent keys remembered: murmur2 is pure Python in the clients (~5 % of ingestion's server at
    bulk rates), and a patient's key repeats across the records of a Bundle and of a stream."""

    def __init__(self, remembered: int = 8192) -> None:
        self._hash = functools.lru_cache(maxsize=remembered)(lambda key: murmur2(key) & 0x7FFFFFFF)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:  # no key: any partition, as the default partitioner does
            return random.choice(available or all_partitions)
        return all_partitions[self._hash(key) % len(all_partitions)]


class AsyncFhirProducer:
    """The same contract on aiokafka, for processes whose hot path is the event loop (ingestion).

    Records are grouped per partition into explicit batches (``create_batch`` /
    ``send_batch``): one future per batch instead of per record, and no lock contention
    with a producer thread, which at bulk rates cost more than validation itself.
    Partitions are chosen with Kafka's default murmur2 partitioner, so keys land where
    every other client would put them.
    """

    def __init__(self, settings: Settings, client_id: str, *, compression: str | None = None,
                 linger_ms: int = 5) -> None:
        self._config = {
            "bootstrap_servers": settings.kafka_servers, "client_id": client_id, "acks": "all",
            "enable_idempotence": True, "linger_ms": linger_ms, "max_batch_size": 1024 * 1024,
            "max_request_size": 16 * 1024 * 1024, "compression_type": compression, "request_timeout_ms": 15000,
            **kafka_client_security(settings)}
        self._producer: Any = None
        self._partitioner = KeyPartitioner()
        self._partitions: dict[str, list[int]] = {}

    async def start(self) -> None:
        """Connect; aiokafka binds to the running event loop, so this happens inside it."""
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(**self._config)
        try:
            await self._producer.start()
        except Exception:  # noqa: BLE001 - broker without InitProducerId for aiokafka (Tansu)
            # Without idempotence a lost ack can still be retried into a broker-side twin; the
            # publisher's own dedupe (event ids) is then what keeps consumers single.
            logging.getLogger(__name__).warning("idempotent producer refused by the broker; continuing without")
            await self._producer.stop()
            self._producer = AIOKafkaProducer(**{**self._config, "enable_idempotence": False})
            await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def close(self, timeout: float = 10.0) -> None:
        """Stopped in :meth:`stop` inside the event loop."""

    async def _partitions_of(self, topic: str) -> list[int]:
        parts = self._partitions.get(topic)
        if parts is None:
            parts = sorted(await self._producer.partitions_for(topic))
            self._partitions[topic] = parts
        return parts

    async def ready(self, probe_topic: str) -> bool:
        return bool(await self._producer.partitions_for(probe_topic))

    async def _send_small(self, records: Sequence[OutRecord],
                          errors: list[BaseException | None]) -> list[BaseException | None]:
        """Few records: through the shared accumulator, so concurrent requests share one batch
        (an explicit batch per request would queue one broker round trip each)."""
        futs: list[tuple[int, asyncio.Future[object]]] = []
        for i, r in enumerate(records):
            try:
                futs.append((i, await self._producer.send(r.topic, value=r.value, key=r.key.encode(),
                                                          headers=r.headers)))
            except Exception as exc:  # noqa: BLE001
                errors[i] = PublishError(f"{r.topic}: {exc}")
        for i, fut in futs:
            try:
                await fut
            except Exception as exc:  # noqa: BLE001
                errors[i] = PublishError(f"{records[i].topic}: {exc}")
        return errors

    async def send_many(self, records: Sequence[OutRecord]) -> list[BaseException | None]:
        """Publish ``records`` (order kept per key); returns, per record, None once acked or the error."""
        errors: list[BaseException | None] = [None] * len(records)
        if len(records) < _OWN_BATCH_MIN:
            return await self._send_small(records, errors)
        groups: dict[tuple[str, int], list[int]] = {}
        for i, r in enumerate(records):
            try:
                parts = await self._partitions_of(r.topic)
            except Exception as exc:  # noqa: BLE001 - unknown topic, broker down
                errors[i] = PublishError(f"{r.topic}: {exc}")
                continue
            key = r.key.encode()
            p = self._partitioner(key, parts, parts)
            groups.setdefault((r.topic, p), []).append(i)
        waits: list[tuple[list[int], asyncio.Future[object]]] = []
        for (topic, partition), idx in groups.items():
            pos = 0
            while pos < len(idx):
                batch = self._producer.create_batch()
                start = pos
                while pos < len(idx):
                    r = records[idx[pos]]
                    if batch.append(key=r.key.encode(), value=r.value, timestamp=None, headers=r.headers) is None:
                        break
                    pos += 1
                if pos == start:  # a single record larger than a batch
                    errors[idx[pos]] = PublishError(f"{topic}: record of {len(records[idx[pos]].value)} bytes "
                                                    "is larger than a batch")
                    pos += 1
                    continue
                batch.close()
                try:
                    fut = await self._producer.send_batch(batch, topic, partition=partition)
                    waits.append((idx[start:pos], fut))
                except Exception as exc:  # noqa: BLE001
                    for i in idx[start:pos]:
                        errors[i] = PublishError(f"{topic}: {exc}")
        for idx_part, fut in waits:
            try:
                await fut
            except Exception as exc:  # noqa: BLE001 - reported per record
                for i in idx_part:
                    errors[i] = PublishError(str(exc))
        return errors


# What ingestion publishes through: either producer offers start/stop/ready/send_many.
Publisher = AsyncFhirProducer | FhirProducer
