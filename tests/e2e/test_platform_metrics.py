"""The whole embedded platform, as `make demo` starts it: every service ready, every /metrics scraped."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from carepulse.shared.platform.catalogue import CATALOGUE
from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings

pytestmark = pytest.mark.e2e

# A metric family each service must declare (beyond the process defaults) once it is up.
EXPECTED = {
    "ingestion": "# TYPE carepulse_processing_seconds histogram",
    "care": "# TYPE carepulse_records_total counter",
    "nlp": "# TYPE carepulse_records_total counter",
    "imaging": "# TYPE carepulse_records_total counter",
    "inference": "# TYPE carepulse_inference_",
}


@pytest.fixture(scope="module")
def full_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = Platform(Settings(), tmp_path_factory.mktemp("platform"), free_ports=True)
    try:
        p.start(progress=lambda m: None, ready_timeout=180)
        yield p
    finally:
        p.stop(progress=lambda m: None)


def test_every_service_of_the_catalogue_starts_and_is_ready(full_platform: Platform) -> None:
    assert sorted(r.spec.name for r in full_platform.services) == sorted(s.name for s in CATALOGUE)


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_metrics_are_scraped(full_platform: Platform, service: str) -> None:
    running = next(r for r in full_platform.services if r.spec.name == service)
    with urllib.request.urlopen(running.health_url + "/metrics", timeout=5) as r:
        body = r.read().decode()
        assert r.headers["Content-Type"].startswith("text/plain")
    assert EXPECTED[service] in body
    assert "# TYPE" in body
