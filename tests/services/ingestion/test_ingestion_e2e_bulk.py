"""End to end through processes: kill -9 ingestion in the middle of a bulk NDJSON send, restart it,
resend everything: every routed resource is on its topic exactly once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carepulse.shared.cli.send import SendReport, requests_for, send_one
from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.e2e
TOPICS = Topics.with_prefix("")
ROUTED = sorted({TOPICS.patient, TOPICS.observation, TOPICS.clinical, TOPICS.document, TOPICS.imaging})


@pytest.fixture(scope="module")
def ingestion_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = Platform(Settings(log_format="json"), tmp_path_factory.mktemp("platform"), free_ports=True,
                 only=["ingestion"])
    try:
        p.start(progress=lambda m: None)
        yield p
    finally:
        p.stop(progress=lambda m: None)


def send_files(base: str, files: list[Path], report: SendReport, retries: int = 0,
               after: tuple[int, threading.Event, threading.Event] | None = None) -> None:
    """Send every file; with ``after=(n, reached, resume)``, stop after ``n`` requests, say so,
    and go on only when told (so the test can kill the server at a known point of the send)."""
    sent = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        for f in files:
            for url_path, body in requests_for(f, chunk_lines=300):
                send_one(client, url_path, body, report, retries=retries)
                sent += 1
                if after is not None and sent == after[0]:
                    after[1].set()
                    after[2].wait(60)


def test_kill_during_bulk_send_then_resend_loses_and_duplicates_nothing(ingestion_platform: Platform,
                                                                        fhir_data: Path) -> None:
    folder = fhir_data / "synthea-bulk-10-patients-ndjson"
    files = sorted(p for p in folder.glob("*.ndjson") if p.name != "log.ndjson")
    expected: Counter[str] = Counter()
    for f in files:
        for line in f.read_bytes().splitlines():
            doc = json.loads(line)
            if TOPICS.for_resource_type(doc["resourceType"]):
                expected[f"{doc['resourceType']}/{doc['id']}"] += 1
    settings = Settings(kafka_bootstrap_servers=ingestion_platform.kafka or "",
                        redis_url=ingestion_platform.redis or "")
    reader = TopicReader(settings)
    ingestion = next(r for r in ingestion_platform.services if r.spec.name == "ingestion")
    try:
        first = SendReport()
        reached, resume = threading.Event(), threading.Event()
        sender = threading.Thread(target=send_files, args=(ingestion_platform.ingestion_url, files, first),
                                  kwargs={"after": (4, reached, resume)})
        sender.start()
        assert reached.wait(60), "the send did not start"
        assert sum(len(reader.read(t, timeout=0.5)) for t in ROUTED) > 0
        os.kill(ingestion.proc.pid, signal.SIGKILL)  # mid-send: the rest of the send meets a dead server
        ingestion.proc.wait(10)
        resume.set()
        sender.join(120)
        assert first.rejected > 0  # the kill really interrupted the send
        ingestion_platform.restart("ingestion")

        again = SendReport()
        send_files(ingestion_platform.ingestion_url, files, again, retries=3)
        assert again.rejected == 0, again.reasons[:5]
        assert again.duplicates > 0  # what got through before the kill is recognised

        total = sum(expected.values())
        deadline = time.monotonic() + 60
        while True:
            records = [r for t in ROUTED for r in reader.read(t, timeout=1)]
            if len(records) >= total or time.monotonic() > deadline:
                break
        records = [r for t in ROUTED for r in reader.read(t, timeout=2, settle=1.0)]
    finally:
        reader.close()
    got = Counter(f"{r.headers['resource-type']}/{r.json()['id']}" for r in records)
    assert got == expected  # nothing lost, nothing twice
    assert len({r.headers["event-id"] for r in records}) == len(records)
