"""Prometheus metrics common to every service (names start with ``carepulse_``).

Metrics live in one process-wide registry (prometheus_client's default), created on
first use rather than at import time.
"""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, Counter, Histogram, generate_latest


@cache
def records_total() -> Counter:
    """Records handled, by service, topic and outcome (ok, invalid, error, duplicate)."""
    return Counter(
        "carepulse_records_total", "Records handled", ["service", "topic", "outcome"], registry=REGISTRY
    )


@cache
def processing_seconds() -> Histogram:
    """Time to handle one record or request, by service and stage."""
    return Histogram(
        "carepulse_processing_seconds",
        "Time to handle one record or request",
        ["service", "stage"],
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        registry=REGISTRY,
    )


@cache
def alerts_total() -> Counter:
    """Alert message Bundles published, by service, kind (event code) and level."""
    return Counter("carepulse_alerts_total", "Alerts published", ["service", "kind", "level"], registry=REGISTRY)


def render_metrics() -> bytes:
    return generate_latest(REGISTRY)
