"""Settings of the ingestion service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from carepulse.shared.settings import Settings


class IngestionSettings(Settings):
    ingestion_port: int = Field(8080, description="Port of the FHIR REST API")
    ingestion_validation_processes: int = Field(
        0, ge=0, le=64,
        description="Processes validating Bundles and NDJSON chunks off the event loop (one per core uses them all; "
        "0: inline)",
    )
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
    ingestion_audit_enabled: bool = Field(True, description="Publish one AuditEvent per request on carepulse.audit")
    ingestion_audit_max_entities: int = Field(
        200, description="Resources named one by one in an AuditEvent; beyond it they are counted"
    )
    # Authentication at the edge (SMART Backend Services). Off in the embedded platform by default,
    # to be turned on in production (Helm: services.ingestion.auth; compose: CAREPULSE_AUTH_* in .env).
    auth_enabled: bool = Field(False, description="Require OAuth 2.0 bearer JWTs with SMART system scopes")
    auth_issuer: str = Field("", description="Expected `iss` of tokens: the authorisation server")
    auth_audience: str = Field("", description="Expected `aud` of tokens: this server's FHIR base URL")
    auth_jwks_url: str = Field("", description="The authorisation server's JWKS (public signing keys)")
    auth_token_url: str = Field("", description="Token endpoint advertised in the CapabilityStatement "
                                                "(default: <issuer>/token)")
    auth_leeway_s: float = Field(30.0, description="Clock skew tolerated on exp/nbf/iat")
    auth_jwks_ttl_s: float = Field(3600.0, description="JWKS kept this long before it is fetched again")
    auth_jwks_min_refetch_s: float = Field(
        30.0, description="Least time between two JWKS fetches (an unknown kid fetches at most this often)"
    )
    auth_algorithms: str = Field("RS256,RS384,ES256,ES384", description="Accepted JWS algorithms (asymmetric only)")
    # HTTPS at the edge, optionally mutual: with a client CA every connection must present a
    # certificate it signed (the TLS handshake refuses the rest, before any HTTP is read).
    ingestion_tls_cert: Path | None = Field(
        None, description="PEM certificate chain of the FHIR API; with the key set, the API serves HTTPS only"
    )
    ingestion_tls_key: Path | None = Field(None, description="PEM private key of the API certificate")
    ingestion_tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle of client certificates; set: mutual TLS (clients without one refused)"
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> IngestionSettings:
        # A half-configured TLS must stop the start, never fall back to plain HTTP.
        if (self.ingestion_tls_cert is None) != (self.ingestion_tls_key is None):
            raise ValueError("CAREPULSE_INGESTION_TLS_CERT and _KEY must be set together")
        if self.ingestion_tls_client_ca is not None and self.ingestion_tls_cert is None:
            raise ValueError("CAREPULSE_INGESTION_TLS_CLIENT_CA needs CAREPULSE_INGESTION_TLS_CERT and _KEY")
        return self

    @model_validator(mode="after")
    def _auth_complete(self) -> IngestionSettings:
        if self.auth_enabled:
            missing = [n for n in ("auth_issuer", "auth_audience", "auth_jwks_url") if not getattr(self, n)]
            if missing:
                raise ValueError("CAREPULSE_AUTH_ENABLED needs " + ", ".join(f"CAREPULSE_{m.upper()}" for m in missing))
        return self
