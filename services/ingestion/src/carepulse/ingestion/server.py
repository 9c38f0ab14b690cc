"""Serving the ingestion API: one process, or several worker processes sharing one port.

Validating FHIR is CPU-bound Python, so one process uses one core at most. With
``CAREPULSE_INGESTION_WORKERS`` > 1, uvicorn starts that many processes on one listening
socket (the kernel spreads connections); each builds its own app, Kafka producer and
Redis client through :func:`build_app`. Nothing is shared in memory: publish-once is
decided in Redis and ordering per patient by the Kafka partitioner, as with replicas.
Metrics are summed over the workers (see :mod:`carepulse.shared.metrics`).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any

import uvicorn
from fastapi import FastAPI

from carepulse.ingestion.api import create_app
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.kafka.producer import AsyncFhirProducer
from carepulse.shared.logs import setup_logging
from carepulse.shared.tracing import setup_tracing

FACTORY = "carepulse.ingestion.server:build_app"


def build_app() -> FastAPI:
    """One process's app (uvicorn calls this in each worker): settings, logging, producer, API."""
    settings = IngestionSettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing("ingestion")  # exports spans only when CAREPULSE_OTLP_ENDPOINT is set
    compression = None if settings.ingestion_compression == "none" else settings.ingestion_compression
    # aiokafka on the API's own event loop (see AsyncFhirProducer for why not kafka-python here).
    producer = AsyncFhirProducer(settings, "carepulse-ingestion", compression=compression)
    return create_app(settings, producer)


def tls_options(settings: IngestionSettings) -> dict[str, Any]:
    """uvicorn's TLS options: none (HTTP), HTTPS, or HTTPS requiring a client certificate from
    ``ingestion_tls_client_ca`` (mutual TLS). uvicorn loads the files at start: a bad one stops it."""
    if settings.ingestion_tls_cert is None or settings.ingestion_tls_key is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(settings.ingestion_tls_cert),
                               "ssl_keyfile": str(settings.ingestion_tls_key)}
    if settings.ingestion_tls_client_ca is not None:
        options |= {"ssl_ca_certs": str(settings.ingestion_tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def serve(settings: IngestionSettings) -> None:
    """Serve until SIGTERM/SIGINT: in this process, or in ``ingestion_workers`` processes."""
    options: dict[str, Any] = {"host": settings.bind_host, "port": settings.ingestion_port, "log_config": None,
                               "access_log": False, "lifespan": "on", **tls_options(settings)}
    if settings.ingestion_workers <= 1:
        uvicorn.run(build_app(), **options)
        return
    # Each worker writes its samples to files here; any worker's /metrics sums them.
    with tempfile.TemporaryDirectory(prefix="carepulse-ingestion-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run(FACTORY, factory=True, workers=settings.ingestion_workers, **options)
