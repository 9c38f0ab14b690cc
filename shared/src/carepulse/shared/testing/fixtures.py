"""pytest fixtures: a real Tansu broker and Valkey server per session, isolated topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from carepulse.shared.kafka.admin import create_topics
from carepulse.shared.platform.processes import free_port, stop
from carepulse.shared.platform.servers import start_broker, start_redis
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu, in memory) for the whole session."""
    port = free_port()
    proc = start_broker(port, tmp_path_factory.mktemp("kafka"))
    yield f"127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis-protocol server (Valkey) for the whole session."""
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = start_redis(port, d, d)
    yield f"redis://127.0.0.1:{port}/0"
    stop(proc)


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str) -> Settings:
    """Settings pointing at the session servers, with a topic prefix of this test's own."""
    s = Settings(kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url,
                 topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    create_topics(s, Topics.with_prefix(s.topic_prefix), partitions=3)
    # Topics are isolated by prefix; the patient context is shared, so each test starts empty.
    redis.Redis.from_url(redis_url).flushdb()
    return s


@pytest.fixture
def topics(settings: Settings) -> Topics:
    return Topics.with_prefix(settings.topic_prefix)


@pytest.fixture
def topic_reader(settings: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(settings)
    yield reader
    reader.close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
