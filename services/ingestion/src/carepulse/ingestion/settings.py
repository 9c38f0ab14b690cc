"""Settings of the ingestion service."""

from __future__ import annotations

from pydantic import Field

from carepulse.shared.settings import Settings


class IngestionSettings(Settings):
    ingestion_port: int = Field(8080, description="Port of the FHIR REST API")
    ingestion_max_body_bytes: int = Field(
        16 * 1024 * 1024, description="Largest accepted request body (413 beyond it)"
    )
    ingestion_max_bundle_entries: int = Field(10_000, description="Most entries accepted in one Bundle")
    ingestion_public_base: str = Field("", description="Public base URL (for Location headers); default relative")
