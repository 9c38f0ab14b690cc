"""Where the inference service is, for its clients (services and the CLI)."""

from __future__ import annotations

from pydantic import Field

from carepulse.shared.settings import Settings


class InferenceClientSettings(Settings):
    """``CAREPULSE_INFERENCE_URL`` etc.; the same values work against NVIDIA Triton."""

    inference_url: str = Field("127.0.0.1:8001", description="host:port of the inference gRPC endpoint")
    inference_deadline_s: float = Field(10.0, gt=0, description="Deadline of one call, retries included")
    inference_retries: int = Field(3, ge=0, description="Retries of a call answered UNAVAILABLE")
