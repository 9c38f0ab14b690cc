"""``python -m carepulse.ingestion``: serve the FHIR REST API and consume ``fhir.inbound``
until SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn

from carepulse.ingestion.api import create_app
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.kafka.producer import AsyncFhirProducer
from carepulse.shared.logs import setup_logging
from carepulse.shared.tracing import setup_tracing


def main() -> None:
    settings = IngestionSettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing("ingestion")  # exports spans only when CAREPULSE_OTLP_ENDPOINT is set
    compression = None if settings.ingestion_compression == "none" else settings.ingestion_compression
    # aiokafka on the API's own event loop (see AsyncFhirProducer for why not kafka-python here).
    producer = AsyncFhirProducer(settings, "carepulse-ingestion", compression=compression)
    app = create_app(settings, producer)
    try:
        uvicorn.run(app, host=settings.bind_host, port=settings.ingestion_port,
                    log_config=None, access_log=False, lifespan="on")
    finally:
        producer.close()


if __name__ == "__main__":
    main()
