"""Settings of the ingestion service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from carepulse.shared.settings import Settings


class IngestionSettings(Settings):
    ingestion_port: int = Field(8080, description="Port of the FHIR REST API")
    ingestion_max_body_bytes: int = Field(
        16 * 1024 * 1024, description="Largest accepted request body (413 beyond it)"
    )
    ingestion_max_import_bytes: int = Field(
        2 * 1024 * 1024 * 1024, description="Largest accepted NDJSON upload to /fhir/$import (413 beyond it)"
    )
    ingestion_max_bundle_entries: int = Field(10_000, description="Most entries accepted in one Bundle")
    ingestion_public_base: str = Field("", description="Public base URL (for Location headers); default relative")
    ingestion_fhir_server_url: str = Field(
        "", description="FHIR server that id-only Subscription notifications are fetched from (e.g. HAPI)"
    )
    ingestion_fhir_server_timeout_s: float = Field(10.0, description="Timeout of one fetch from that server")
    ingestion_dedupe_ttl_s: int = Field(
        7 * 24 * 3600, description="How long a published event id is remembered (retries within it publish once)"
    )
    ingestion_consume_inbound: bool = Field(True, description="Consume the fhir.inbound topic in this process")
    ingestion_consumer_group: str = Field("carepulse-ingestion", description="Consumer group on fhir.inbound")
    ingestion_compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = Field(
        "none", description="Producer compression; every consumer must decode it (faust needs cramjam for lz4)"
    )
    ingestion_import_chunk_lines: int = Field(1000, description="NDJSON lines validated and published per batch")
