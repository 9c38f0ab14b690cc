"""The topic registry: the only place CarePulse topic names are written down.

Names follow ARCHITECTURE.md; one prefix (``CAREPULSE_TOPIC_PREFIX``) is put before
all of them so several sites or test runs can share one cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# Resource types and the topic (by registry attribute) that carries them. Types not
# listed are not routed; DocumentReference depends on its content (see ingestion).
_ROUTES: dict[str, str] = {
    "Patient": "patient",
    "Encounter": "patient",
    "Observation": "observation",
    "Condition": "clinical",
    "MedicationRequest": "clinical",
    "MedicationStatement": "clinical",
    "AllergyIntolerance": "clinical",
    "Procedure": "clinical",
    "DiagnosticReport": "document",
    "DocumentReference": "document",
    "ImagingStudy": "imaging",
    "Media": "imaging",
    "Binary": "imaging",
}


@dataclass(frozen=True)
class Topics:
    """Fully qualified topic names for one deployment."""

    inbound: str
    patient: str
    observation: str
    clinical: str
    document: str
    imaging: str
    derived: str
    alerts: str
    alerts_retry: str
    deadletter: str
    audit: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> Topics:
        base = {
            "inbound": "fhir.inbound",
            "patient": "fhir.patient",
            "observation": "fhir.observation",
            "clinical": "fhir.clinical",
            "document": "fhir.document",
            "imaging": "fhir.imaging",
            "derived": "fhir.derived",
            "alerts": "carepulse.alerts",
            "alerts_retry": "carepulse.alerts.retry",
            "deadletter": "fhir.deadletter",
            "audit": "carepulse.audit",
        }
        return cls(**{k: prefix + v for k, v in base.items()})

    def all(self) -> list[str]:
        return [getattr(self, f.name) for f in fields(self)]

    def for_resource_type(self, resource_type: str) -> str | None:
        """Topic of a resource type by default, or None when CarePulse does not route it."""
        attr = _ROUTES.get(resource_type)
        return getattr(self, attr) if attr else None

    @staticmethod
    def routed_types() -> list[str]:
        return sorted(_ROUTES)
