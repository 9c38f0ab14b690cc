"""Where the inference service is, for its clients (services and the CLI)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from carepulse.shared.settings import Settings


class InferenceClientSettings(Settings):
    """``CAREPULSE_INFERENCE_URL`` etc.; the same values work against NVIDIA Triton."""

    inference_url: str = Field("127.0.0.1:8001", description="host:port of the inference gRPC endpoint")
    inference_deadline_s: float = Field(10.0, gt=0, description="Deadline of one call, retries included")
    inference_retries: int = Field(3, ge=0, description="Retries of a call answered UNAVAILABLE")
    # Client-side names carry CLIENT so they never collide with the server's SERVER_TLS_* in one environment.
    inference_client_tls_ca: Path | None = Field(
        None, description="PEM CA bundle that signed the inference server's certificate; set: TLS channel"
    )
    inference_client_tls_cert: Path | None = Field(
        None, description="PEM client certificate chain, for a server that requires mutual TLS"
    )
    inference_client_tls_key: Path | None = Field(None, description="PEM private key of the client certificate")
    inference_client_tls_server_name: str = Field(
        "", description="Name checked against the server certificate instead of the URL's host (empty: the host)"
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> InferenceClientSettings:
        # A half-configured TLS must fail at start, never fall back to plaintext.
        if (self.inference_client_tls_cert is None) != (self.inference_client_tls_key is None):
            raise ValueError("CAREPULSE_INFERENCE_CLIENT_TLS_CERT and _KEY must be set together")
        if self.inference_client_tls_cert is not None and self.inference_client_tls_ca is None:
            raise ValueError("CAREPULSE_INFERENCE_CLIENT_TLS_CERT needs CAREPULSE_INFERENCE_CLIENT_TLS_CA")
        return self
