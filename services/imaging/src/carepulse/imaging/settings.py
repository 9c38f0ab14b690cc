"""Settings of the imaging worker (``CAREPULSE_IMAGING_*``, the inference client's, and the common ones)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from carepulse.imaging.sources import InputLimits
from carepulse.shared.inference.settings import InferenceClientSettings

_LIMITS = InputLimits()


class ImagingSettings(InferenceClientSettings):
    imaging_port: int = Field(8092, description="Health and metrics port of the imaging worker")
    imaging_group: str = Field("carepulse-imaging", description="Kafka consumer group of the imaging worker")
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
    imaging_max_record_bytes: int = Field(
        _LIMITS.max_record_bytes, gt=0, description="Largest fhir.imaging record (inline DICOM in base64); "
                                                    "larger ones are dead-lettered")
    imaging_max_instance_bytes: int = Field(
        _LIMITS.max_instance_bytes, gt=0, description="Largest DICOM object (inline or fetched); larger ones are "
                                                      "skipped, and the record dead-lettered when none is left")
    imaging_max_frames: int = Field(_LIMITS.max_frames, gt=0, description="Most frames of one DICOM object")
    imaging_max_pixels: int = Field(_LIMITS.max_pixels, gt=0, description="Most rows x columns of one DICOM frame")
    imaging_max_fetch_bytes: int = Field(
        _LIMITS.max_fetch_bytes, gt=0, description="Most bytes fetched over DICOMweb for one record (dead letter "
                                                   "beyond)")

    @property
    def dicomweb_allowed(self) -> list[str]:
        return [u.strip() for u in self.imaging_dicomweb_allowed.split(",") if u.strip()]

    @property
    def input_limits(self) -> InputLimits:
        return InputLimits(max_record_bytes=self.imaging_max_record_bytes,
                           max_instance_bytes=self.imaging_max_instance_bytes, max_frames=self.imaging_max_frames,
                           max_pixels=self.imaging_max_pixels, max_fetch_bytes=self.imaging_max_fetch_bytes)
