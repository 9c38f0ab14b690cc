from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from carepulse.ingestion.api import create_app
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.kafka.producer import AsyncFhirProducer
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics


def _client(settings: Settings, **extra: object) -> Iterator[TestClient]:
    s = IngestionSettings(**{**settings.model_dump(), "ingestion_max_body_bytes": 2 * 1024 * 1024,
                             "ingestion_consume_inbound": False, **extra})
    producer = AsyncFhirProducer(s, "test-ingestion")
    with TestClient(create_app(s, producer)) as c:
        yield c
    producer.close()


@pytest.fixture
def validation_processes() -> int:
    """Validation worker processes of ``client`` (a module overrides this to run its tests with a pool)."""
    return 0


@pytest.fixture
def client(settings: Settings, validation_processes: int) -> Iterator[TestClient]:
    """The ingestion API in-process (no inbound consumer), publishing to the real broker under this test's topics."""
    yield from _client(settings, ingestion_validation_processes=validation_processes)


@pytest.fixture
def make_client(settings: Settings):  # type: ignore[no-untyped-def]
    """Factory for an ingestion app with extra settings (inbound consumer, FHIR server URL)."""
    made: list[Iterator[TestClient]] = []

    def make(**extra: object) -> TestClient:
        gen = _client(settings, **extra)
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        for _ in gen:
            pass



@pytest.fixture
def send_inbound(settings: Settings, topics: Topics) -> Callable[..., None]:
    """Put values on this test's inbound topic (one patient's key), then wait until the given
    ingestion client is ready, i.e. its inbound consumer has joined and reads them."""

    def send(client: TestClient, values: Iterable[bytes], headers: list[tuple[str, bytes]] | None = None) -> None:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
        for value in values:
            producer.send(topics.inbound, key=b"Patient/example", value=value, headers=headers or [])
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.2)

    return send
