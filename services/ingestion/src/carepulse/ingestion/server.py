"""Serving the ingestion API with uvicorn: the app of this process, over HTTP or HTTPS/mTLS.

One server process per replica: the CPU-bound part (validation) goes to worker processes
when ``CAREPULSE_INGESTION_VALIDATION_PROCESSES`` is set (see :mod:`carepulse.ingestion.offload`),
which spreads work per task rather than per connection; more replicas scale it further.
"""

from __future__ import annotations

import ssl
from typing import Any

import uvicorn
from fastapi import FastAPI

from carepulse.ingestion.api import create_app
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.heap import freeze_startup_heap
from carepulse.shared.kafka.producer import AsyncFhirProducer
from carepulse.shared.logs import setup_logging
from carepulse.shared.tracing import setup_tracing


def build_app(settings: IngestionSettings) -> FastAPI:
    """Logging, tracing, the Kafka producer and the API of this process."""
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
    """Serve until SIGTERM/SIGINT."""
    app = build_app(settings)
    freeze_startup_heap()
    uvicorn.run(app, host=settings.bind_host, port=settings.ingestion_port, log_config=None,
                access_log=False, lifespan="on", **tls_options(settings))
