"""A stream worker (care, as a process) refuses records it must not handle without stopping:
one over the size limit and one nested too deep are dead-lettered with the reason, and the
next record is handled as usual."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.e2e
TOPICS = Topics.with_prefix("")
LIMIT = 4096


@pytest.fixture(scope="module")
def care_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    run_dir: Path = tmp_path_factory.mktemp("limits")
    p = Platform(Settings(log_format="json"), run_dir, free_ports=True, only=["care"],
                 extra_env={"CAREPULSE_KAFKA_MAX_RECORD_BYTES": str(LIMIT)})
    try:
        p.start(progress=lambda m: None)
        yield p
    finally:
        p.stop(progress=lambda m: None)


def _heart_rate(patient: str, value: int, note: str = "") -> dict:
    obs = {"resourceType": "Observation", "id": str(uuid.uuid4()), "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "vital-signs"}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": "2026-11-26T10:00:00Z",
           "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}
    if note:
        obs["note"] = [{"text": note}]
    return obs


def test_oversize_and_too_deep_records_are_dead_lettered_and_the_worker_goes_on(care_platform: Platform) -> None:
    settings = Settings(kafka_bootstrap_servers=care_platform.kafka or "", redis_url=care_platform.redis or "")
    patient = str(uuid.uuid4())
    big = json.dumps(_heart_rate(patient, 80, note="x" * (80 * 1024))).encode()  # more than a dead letter keeps
    deep = b"[" * 2000 + b"]" * 2000  # within the size limit, deeper than the JSON decoder's recursion limit
    assert len(big) > LIMIT >= len(deep)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    for value in (big, deep, json.dumps(_heart_rate(patient, 75)).encode()):
        producer.send(TOPICS.observation, key=f"Patient/{patient}".encode(), value=value,
                      headers=[("event-id", str(uuid.uuid4()).encode())]).get(10)
    producer.close()

    dead = [r for r in TopicReader(settings).read(TOPICS.deadletter, at_least=2, timeout=30, settle=1.0)
            if r.key == f"Patient/{patient}"]
    assert len(dead) == 2
    by_size = {r.headers.get("deadletter-truncated-from"): r for r in dead}
    oversize = by_size[str(len(big))]
    assert oversize.value == big[:len(oversize.value)] and len(oversize.value) < len(big)  # only its start
    assert "more than the 4096 allowed" in oversize.headers["deadletter-outcome"]
    nested = next(r for r in dead if r is not oversize)
    assert nested.value == deep and "RecursionError" in nested.headers["deadletter-outcome"]
    # Care still works: the next reading of the same patient reaches its context.
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + 15
    while not (vitals := client.hgetall(f"carepulse:patient:{patient}:vitals")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert json.loads(vitals[b"pulse"])["value"] == 75
