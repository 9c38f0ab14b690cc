"""The CapabilityStatement served at ``GET /fhir/metadata``: what this server really does.

Ingestion is a write-only front door: it validates, routes and publishes; it keeps no
store, so it declares create/update (and batch/transaction) but no read or search.
"""

from __future__ import annotations

from typing import Any

from carepulse.shared.topics import Topics

SOFTWARE_VERSION = "0.2.0"


def capability_statement(base_url: str, date: str, *, notifications: bool = True,
                         bulk_import: bool = True) -> dict[str, Any]:
    resources = [
        {
            "type": t,
            "documentation": "Routed to Kafka keyed by its patient",
            "interaction": [{"code": "create"}, {"code": "update"}],
            "versioning": "versioned",  # meta.versionId is kept and reported in ETag/Location
            "updateCreate": True,
            "conditionalCreate": False,
            "conditionalUpdate": False,
        }
        for t in Topics.routed_types()
    ]
    docs = ("Accepts FHIR R4 resources and batch/transaction Bundles; each accepted resource is validated once "
            "and published to Kafka keyed by its patient. Other valid R4 resource types are acknowledged "
            "(200 with an informational OperationOutcome) but not routed. The same event (id + meta.versionId, "
            "content, or an event-id / Idempotency-Key header) is published once. Prefer return=minimal | "
            "representation | OperationOutcome is honoured.")
    if notifications:
        docs += (" Subscription notifications (R4B/R5 subscription-notification Bundles, or the R4 backport's "
                 "history Bundles; full-resource or id-only) are received at POST [base]/subscription-notification.")
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": docs,
        "resource": resources,
        "interaction": [{"code": "batch"}, {"code": "transaction"}],
    }
    if bulk_import:
        rest["operation"] = [{
            "name": "import",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/import",
            "documentation": "POST [base]/$import with an application/fhir+ndjson body (Bulk Data format); "
                             "answers with an OperationOutcome counting accepted lines and naming rejected ones.",
        }]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "CarePulse ingestion", "version": SOFTWARE_VERSION},
        "implementation": {"description": "CarePulse FHIR ingestion endpoint", "url": base_url or "/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
