"""Settings of the care worker (``CAREPULSE_CARE_*`` plus the common ones)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from carepulse.shared.settings import Settings


class CareSettings(Settings):
    care_port: int = Field(8090, description="Health and metrics port of the care worker")
    care_group: str = Field("carepulse-care", description="Kafka consumer group of the care worker")
    care_data_dir: Path = Field(Path(".run/care"), description="Working folder of the care worker")
    care_set_tolerance_s: float = Field(
        900.0, description="Readings at most this far apart (seconds) form one NEWS2 observation set"
    )
    care_context_ttl_s: int = Field(7 * 24 * 3600, description="TTL of patient-context keys in Redis")
