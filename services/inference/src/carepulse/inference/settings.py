"""Settings of the inference service (``CAREPULSE_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

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

    @property
    def startup_models(self) -> list[str] | None:
        names = [n.strip() for n in self.inference_models.split(",") if n.strip()]
        return names or None

    @property
    def allowed_providers(self) -> list[str] | None:
        names = [n.strip().lower() for n in self.inference_providers.split(",") if n.strip()]
        return names or None
