"""``python -m carepulse.ingestion``: serve the FHIR REST API and consume ``fhir.inbound``
until SIGTERM/SIGINT."""

from __future__ import annotations

from carepulse.ingestion.server import serve
from carepulse.ingestion.settings import IngestionSettings


def main() -> None:
    serve(IngestionSettings())


if __name__ == "__main__":
    main()
