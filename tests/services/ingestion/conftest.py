from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from carepulse.ingestion.api import create_app
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.kafka.producer import FhirProducer, make_producer
from carepulse.shared.settings import Settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The ingestion API in-process, publishing to the real broker under this test's topics."""
    s = IngestionSettings(**settings.model_dump(), ingestion_max_body_bytes=2 * 1024 * 1024)
    producer = FhirProducer(make_producer(s, "test-ingestion"))
    with TestClient(create_app(s, producer)) as c:
        yield c
    producer.close()
