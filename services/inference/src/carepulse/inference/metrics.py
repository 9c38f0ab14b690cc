"""Prometheus metrics of the inference service (process-wide registry, created on first use)."""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@cache
def requests_total() -> Counter:
    """Inference requests by model and outcome (success, invalid, not_found, failed)."""
    return Counter("carepulse_inference_requests_total", "Inference requests", ["model", "outcome"],
                   registry=REGISTRY)


@cache
def request_seconds() -> Histogram:
    """Server-side time of one ModelInfer call, decode to encode."""
    return Histogram("carepulse_inference_request_seconds", "Time to answer one inference request", ["model"],
                     buckets=_LATENCY_BUCKETS, registry=REGISTRY)


@cache
def queue_seconds() -> Histogram:
    """Time a request waited for its batch to start running."""
    return Histogram("carepulse_inference_queue_seconds", "Time a request waited in the batch queue", ["model"],
                     buckets=_LATENCY_BUCKETS, registry=REGISTRY)


@cache
def compute_seconds() -> Histogram:
    """Time of one session.run (one batch), including merging inputs and splitting outputs."""
    return Histogram("carepulse_inference_compute_seconds", "Time to run one batch", ["model"],
                     buckets=_LATENCY_BUCKETS, registry=REGISTRY)


@cache
def batch_size() -> Histogram:
    """Samples per session.run: how well dynamic batching merges requests."""
    return Histogram("carepulse_inference_batch_size", "Samples per executed batch", ["model"],
                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=REGISTRY)


@cache
def model_ready() -> Gauge:
    """1 for each model version being served, labelled with its execution provider."""
    return Gauge("carepulse_inference_model_ready", "Model versions being served", ["model", "version", "provider"],
                 registry=REGISTRY)
