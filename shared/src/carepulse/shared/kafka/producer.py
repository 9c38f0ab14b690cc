"""The one Kafka producer configuration, with an asyncio-friendly send.

kafka-python's producer runs its own I/O thread; :meth:`FhirProducer.send` bridges
its delivery future into asyncio so request handlers can await the broker's ack
without blocking the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kafka import KafkaProducer

from carepulse.shared.kafka.headers import Headers
from carepulse.shared.settings import Settings


class PublishError(RuntimeError):
    """The broker did not acknowledge a record."""


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


def make_producer(settings: Settings, client_id: str) -> KafkaProducer:
    """Producer with acks=all and idempotence: a retried send is written once."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        batch_size=256 * 1024,
        max_request_size=16 * 1024 * 1024,
        compression_type="gzip",
        retries=2147483647,
        request_timeout_ms=15000,
        max_block_ms=5000,
    )


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

    async def ready(self, probe_topic: str) -> bool:
        """True when the cluster answers metadata requests for ``probe_topic``."""
        parts = await asyncio.to_thread(self._producer.partitions_for, probe_topic)
        return bool(parts)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._producer.close(timeout)
