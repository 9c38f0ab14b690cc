"""Settings of the care worker (``CAREPULSE_CARE_*`` plus the common ones)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from carepulse.shared.settings import Settings


class CareSettings(Settings):
    care_port: int = Field(8090, description="Health and metrics port of the care worker")
    care_group: str = Field("carepulse-care", description="Kafka consumer group of the care worker")
    care_news2_window_s: float = Field(
        1800.0, description="Readings within this many seconds of each other form one NEWS2 set; older ones are "
                            "too old to count")
    care_realert_after_s: float = Field(
        4 * 3600.0, description="The same patient at the same alert level alerts again only after this long")
    care_lab_window_s: float = Field(24 * 3600.0, description="Labs (lactate, WBC) older than this are not used")
    care_finding_window_s: float = Field(
        72 * 3600.0, description="AI findings (imaging, notes) older than this are not an infection signal")
    care_context_ttl_s: int = Field(7 * 24 * 3600, description="TTL of patient-context keys in Redis")
    webhook_urls: str = Field("", description="Comma-separated URLs the alert relay POSTs every alert Bundle to")
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key signing webhook bodies")
    webhook_max_attempts: int = Field(5, description="Delivery attempts before an alert goes to the retry topic")
    care_audit_enabled: bool = Field(
        True, description="Publish one AuditEvent per alert delivery outcome (delivered, parked) on carepulse.audit"
    )
