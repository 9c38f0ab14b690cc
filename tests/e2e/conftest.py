from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The embedded platform as `carepulse up` runs it: own broker, own Redis, services as processes."""
    run_dir: Path = tmp_path_factory.mktemp("platform")
    p = Platform(Settings(log_format="json"), run_dir, free_ports=True, only=["ingestion", "care"])
    try:
        p.start(progress=lambda m: None)
        yield p
    finally:
        p.stop(progress=lambda m: None)


@pytest.fixture
def platform_settings(platform: Platform) -> Settings:
    return Settings(kafka_bootstrap_servers=platform.kafka or "", redis_url=platform.redis or "")
