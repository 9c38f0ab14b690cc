"""``carepulse alerts``: follow the alerts topic and print each alert for people or machines."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer

from carepulse.shared.kafka.security import kafka_client_security
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
        **kafka_client_security(settings),
    )
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=300).values():
                for msg in records:
                    yield json.loads(msg.value)
    finally:
        consumer.close()


_SEVERITY_RANK = {"low": 0, "moderate": 1, "high": 2}


def summarise(bundle: dict[str, Any]) -> dict[str, str]:
    """The parts of an alert message Bundle a person reads first."""
    resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
    header = resources[0] if resources else {}
    issue = next((r for r in resources if r.get("resourceType") == "DetectedIssue"), {})
    flag = next((r for r in resources if r.get("resourceType") == "Flag"), {})
    risk = next((r for r in resources if r.get("resourceType") in ("RiskAssessment", "Observation")), {})
    band = ((risk.get("interpretation") or [{}])[0].get("coding") or [{}])[0].get("code", "")
    if risk.get("resourceType") == "RiskAssessment":
        band = risk["prediction"][0]["qualitativeRisk"]["coding"][0]["code"]
    event = header.get("eventCoding", {})
    return {
        "event": str(event.get("code", "")),
        "title": str(event.get("display", "")),
        "time": str(issue.get("identifiedDateTime") or bundle.get("timestamp", "")),
        "patient": str((flag.get("subject") or issue.get("patient") or {}).get("reference", "")),
        "severity": str(issue.get("severity", "low")),
        "band": band,
        "detail": str(issue.get("detail", (flag.get("code") or {}).get("text", ""))),
    }


def matches(summary: dict[str, str], patient: str | None, level: str | None) -> bool:
    """Filter of ``carepulse alerts``: one patient, and/or a severity at least ``level``."""
    if patient and summary["patient"] != f"Patient/{patient.removeprefix('Patient/')}":
        return False
    if level and not summary["event"].endswith("-resolved"):
        return _SEVERITY_RANK.get(summary["severity"], 0) >= _SEVERITY_RANK.get(level, 0)
    return True
