"""Settings of the inference service (``CAREPULSE_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from carepulse.shared.settings import Settings


class InferenceSettings(Settings):
    model_repository: Path = Field(Path("models"), description="Triton-layout model repository")
    inference_grpc_port: int = Field(8001, ge=0, le=65535, description="gRPC port (0: any free port)")
    inference_metrics_port: int = Field(
        8002, ge=0, le=65535, description="HTTP port of /metrics, /livez, /readyz (0: any free port)"
    )
    inference_models: str = Field(
        "", description="Comma-separated models to load at start; empty loads every model in the repository"
    )
    inference_providers: str = Field(
        "", description="Comma-separated execution providers to allow (tensorrt, cuda, cpu); empty: auto"
    )
    inference_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads per session (0: one per core)")
    inference_shutdown_grace_s: float = Field(5.0, ge=0, description="Time in-flight calls get on shutdown")
    inference_max_request_bytes: int = Field(
        256 * 1024 * 1024, ge=4 * 1024 * 1024,
        description="Largest gRPC request accepted (RESOURCE_EXHAUSTED beyond); a batch of 64 224x224 RGB FP32 "
        "images is 38 MB",
    )
    # Server-side names carry SERVER so they never collide with the client's CLIENT_TLS_* in one environment.
    inference_server_tls_cert: Path | None = Field(
        None, description="PEM certificate chain of the gRPC server; with the key set, gRPC serves TLS only"
    )
    inference_server_tls_key: Path | None = Field(None, description="PEM private key of the gRPC server certificate")
    inference_server_tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle of client certificates; set: mutual TLS, clients without a valid cert refused"
    )

    @model_validator(mode="after")
    def _tls_complete(self) -> InferenceSettings:
        # A half-configured TLS must stop the start, never fall back to plaintext.
        if (self.inference_server_tls_cert is None) != (self.inference_server_tls_key is None):
            raise ValueError("CAREPULSE_INFERENCE_SERVER_TLS_CERT and _KEY must be set together")
        if self.inference_server_tls_client_ca is not None and self.inference_server_tls_cert is None:
            raise ValueError("CAREPULSE_INFERENCE_SERVER_TLS_CLIENT_CA needs the server's TLS_CERT and TLS_KEY")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.inference_server_tls_cert is not None

    @property
    def startup_models(self) -> list[str] | None:
        names = [n.strip() for n in self.inference_models.split(",") if n.strip()]
        return names or None

    @property
    def allowed_providers(self) -> list[str] | None:
        names = [n.strip().lower() for n in self.inference_providers.split(",") if n.strip()]
        return names or None
