"""Settings of the imaging worker (``CAREPULSE_IMAGING_*``, the inference client's, and the common ones)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from carepulse.shared.inference.settings import InferenceClientSettings


class ImagingSettings(InferenceClientSettings):
    imaging_port: int = Field(8092, description="Health and metrics port of the imaging worker")
    imaging_group: str = Field("carepulse-imaging", description="Kafka consumer group of the imaging worker")
    imaging_data_dir: Path = Field(Path(".run/imaging"), description="Working folder of the imaging worker")
    imaging_model: str = Field("pneumonia-cxr", description="Model name in the inference service")
    imaging_model_version: str = Field("", description="Pinned model version (empty: the highest served)")
    imaging_threshold: float = Field(0.5, ge=0, le=1, description="P(pneumonia) at or above which it is positive")
    imaging_input_size: int = Field(28, gt=0, description="Side of the square model input, pixels")
    imaging_max_images: int = Field(32, gt=0, description="Most images classified per record (study)")
    imaging_max_batch: int = Field(64, gt=0, description="Most images per inference call")
    imaging_dicomweb_timeout_s: float = Field(10.0, gt=0, description="Timeout of one WADO-RS request")
    imaging_dicomweb_allowed: str = Field(
        "", description="Comma-separated DICOMweb base URLs the worker may call (empty: any http(s) endpoint)"
    )
    imaging_dicomweb_token: SecretStr | None = Field(None, description="Bearer token sent to DICOMweb servers")

    @property
    def dicomweb_allowed(self) -> list[str]:
        return [u.strip() for u in self.imaging_dicomweb_allowed.split(",") if u.strip()]
