"""Which topic a validated resource goes to, and under which key (ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carepulse.shared.fhir.references import own_reference, patient_key
from carepulse.shared.topics import Topics

DICOM = "application/dicom"


@dataclass(frozen=True)
class Route:
    topic: str
    key: str


def _carries_dicom(resource: Mapping[str, Any]) -> bool:
    rtype = resource.get("resourceType")
    if rtype == "DocumentReference":
        attachments = [c.get("attachment", {}) for c in resource.get("content", []) if isinstance(c, dict)]
    elif rtype == "Media":
        attachments = [resource.get("content", {})]
    else:
        return False
    return any(isinstance(a, dict) and str(a.get("contentType", "")).startswith(DICOM) for a in attachments)


def route(resource: Mapping[str, Any], topics: Topics, local: Mapping[str, str] | None = None) -> Route | None:
    """The topic and key of one resource, or None for types CarePulse does not consume.

    Records are keyed by ``Patient/<id>`` so one patient's events stay ordered; a
    resource naming no patient is keyed by its own reference.
    """
    rtype = str(resource.get("resourceType"))
    topic = topics.imaging if _carries_dicom(resource) else topics.for_resource_type(rtype)
    if topic is None:
        return None
    return Route(topic=topic, key=patient_key(resource, local) or own_reference(resource))
