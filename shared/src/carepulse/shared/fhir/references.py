"""References between resources, and the patient a resource is about (the Kafka key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Elements that point at the patient, in the order FHIR resources use them.
_PATIENT_ELEMENTS = ("subject", "patient", "beneficiary")


def resolve_reference(ref: str, local: Mapping[str, str] | None = None) -> str:
    """Turn ``urn:uuid:…`` (Bundle-local) or absolute URLs into ``Type/id`` where possible."""
    if local and ref in local:
        return local[ref]
    if ref.startswith("http://") or ref.startswith("https://"):
        parts = ref.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
    return ref


def patient_key(resource: Mapping[str, Any], local: Mapping[str, str] | None = None) -> str | None:
    """``Patient/<id>`` of the patient this resource is about, or None.

    ``local`` maps Bundle ``fullUrl`` values to ``Type/id`` so a transaction's
    ``urn:uuid`` references resolve to the patient entry they name.
    """
    if resource.get("resourceType") == "Patient" and resource.get("id"):
        return f"Patient/{resource['id']}"
    for element in _PATIENT_ELEMENTS:
        value = resource.get(element)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            ref = resolve_reference(value["reference"], local)
            if ref.startswith("Patient/"):
                return ref
    return None


def own_reference(resource: Mapping[str, Any]) -> str:
    """``Type/id`` of the resource itself, the key of records that name no patient."""
    return f"{resource.get('resourceType')}/{resource.get('id', '')}"


def rewrite_references(node: Any, local: Mapping[str, str]) -> int:
    """Replace, in place, every ``reference`` naming a Bundle-local ``fullUrl`` by its ``Type/id``.

    A transaction's entries point at each other by ``urn:uuid:…``; once ids are
    assigned those references must name the resources as the server knows them.
    Returns how many references were rewritten.
    """
    count = 0
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("reference")
            if isinstance(ref, str) and ref in local:
                cur["reference"] = local[ref]
                count += 1
            stack.extend(v for v in cur.values() if isinstance(v, dict | list))
        elif isinstance(cur, list):
            stack.extend(v for v in cur if isinstance(v, dict | list))
    return count
