"""The CapabilityStatement served at ``GET /fhir/metadata``: what this server really does."""

from __future__ import annotations

from typing import Any

from carepulse.shared.topics import Topics

SOFTWARE_VERSION = "0.1.0"


def capability_statement(base_url: str, date: str) -> dict[str, Any]:
    resources = [
        {
            "type": t,
            "interaction": [{"code": "create"}, {"code": "update"}],
            "versioning": "no-version",
            "updateCreate": True,
        }
        for t in Topics.routed_types()
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "CarePulse ingestion", "version": SOFTWARE_VERSION},
        "implementation": {"description": "CarePulse FHIR ingestion endpoint", "url": base_url or "/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Accepts FHIR R4 resources and batch/transaction Bundles; each accepted resource "
                             "is validated once and published to Kafka keyed by its patient.",
            "resource": resources,
            "interaction": [{"code": "batch"}, {"code": "transaction"}],
        }],
    }
