"""``python -m carepulse.ingestion``: serve the FHIR REST API until SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn

from carepulse.ingestion.api import create_app
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.kafka.producer import FhirProducer, make_producer
from carepulse.shared.logs import setup_logging


def main() -> None:
    settings = IngestionSettings()
    setup_logging(settings.log_level, settings.log_format)
    producer = FhirProducer(make_producer(settings, client_id="carepulse-ingestion"))
    app = create_app(settings, producer)
    try:
        uvicorn.run(app, host=settings.bind_host, port=settings.ingestion_port,
                    log_config=None, access_log=False, lifespan="off")
    finally:
        producer.close()


if __name__ == "__main__":
    main()
