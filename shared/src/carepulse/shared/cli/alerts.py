"""``carepulse alerts``: follow the alerts topic and print each alert for people or machines."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer

from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics


def follow(settings: Settings, from_beginning: bool, stop: threading.Event | None = None) -> Iterator[dict[str, Any]]:
    """Yield alert Bundles as they arrive until ``stop`` is set (no consumer group: watching commits nothing)."""
    stop = stop or threading.Event()
    consumer = KafkaConsumer(
        Topics.with_prefix(settings.topic_prefix).alerts,
        bootstrap_servers=settings.kafka_servers,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=300).values():
                for msg in records:
                    yield json.loads(msg.value)
    finally:
        consumer.close()


def summarise(bundle: dict[str, Any]) -> dict[str, str]:
    """The parts of an alert Bundle a person reads first."""
    resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
    issue = next((r for r in resources if r.get("resourceType") == "DetectedIssue"), {})
    obs = next((r for r in resources if r.get("resourceType") == "Observation"), {})
    band = ((obs.get("interpretation") or [{}])[0].get("coding") or [{}])[0].get("code", "")
    return {
        "time": str(issue.get("identifiedDateTime", bundle.get("timestamp", ""))),
        "patient": str((issue.get("patient") or {}).get("reference", "")),
        "severity": str(issue.get("severity", "")),
        "band": band,
        "score": str(obs.get("valueInteger", "")),
        "detail": str(issue.get("detail", "")),
    }
