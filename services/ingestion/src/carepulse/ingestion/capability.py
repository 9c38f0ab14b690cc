"""The CapabilityStatement served at ``GET /fhir/metadata``: what this server really does.

Ingestion is a write-only front door: it validates, routes and publishes; it keeps no
store, so it declares create/update (and batch/transaction) but no read or search.
"""

from __future__ import annotations

from typing import Any

from carepulse.shared.topics import Topics

SOFTWARE_VERSION = "0.2.0"


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def smart_security(token_url: str) -> dict[str, Any]:
    """``rest.security`` of a server protected by SMART Backend Services (client-credentials tokens)."""
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
        "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR",
                                 "display": "SMART-on-FHIR"}],
                     "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}],
        "description": "Bearer JWTs from the SMART Backend Services token endpoint. Writes need system scopes: "
                       "v2 system/<Type>.c (create), .u (update), e.g. system/Observation.c or system/*.cu; v1 "
                       "system/<Type>.write or system/*.* also. $import needs create of each line's type; "
                       "GET metadata is open.",
    }


def capability_statement(base_url: str, date: str, *, notifications: bool = True,
                         bulk_import: bool = True, token_url: str | None = None) -> dict[str, Any]:
    """``token_url`` set: authentication is on and the SMART security is advertised."""
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
    if token_url:
        rest["security"] = smart_security(token_url)
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
