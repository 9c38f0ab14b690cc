"""Building blocks of the FHIR R4 AuditEvents every service publishes on the audit topic.

One shape for the whole trail, whoever records it (the ingestion edge for requests, the care
relay for alerts delivered), so ``carepulse audit`` reads every event the same way: the
requestor is ``agent[0]`` (who.identifier = client or service id), patients are entities with
object role 1, other resources role 4. No PHI goes in: references, codes, ids and host names only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"
DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
PATIENT_ROLE = "1"
NETWORK_MACHINE_NAME = "1"
NETWORK_IP_ADDRESS = "2"

# AuditEvent.outcome (R4): 0 success, 4 minor failure, 8 serious failure, 12 major failure.
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"

_PERSON = {"system": ENTITY_TYPE_SYSTEM, "code": "1", "display": "Person"}
_SYSTEM_OBJECT = {"system": ENTITY_TYPE_SYSTEM, "code": "2", "display": "System Object"}
_OTHER = {"system": ENTITY_TYPE_SYSTEM, "code": "4", "display": "Other"}
_PATIENT = {"system": ROLE_SYSTEM, "code": PATIENT_ROLE, "display": "Patient"}
_DOMAIN_RESOURCE = {"system": ROLE_SYSTEM, "code": "4", "display": "Domain Resource"}


def outcome_code(status: int) -> str:
    """AuditEvent.outcome from an HTTP status: 0 success, 4 minor failure (caller), 8 serious (server)."""
    return SUCCESS if status < 400 else MINOR_FAILURE if status < 500 else SERIOUS_FAILURE


def instant(at: datetime | float | None = None) -> str:
    """An R4 ``instant`` in UTC with milliseconds: ``at`` (a datetime or epoch seconds), else now."""
    if at is None:
        when = datetime.now(UTC)
    elif isinstance(at, datetime):
        when = at.astimezone(UTC)
    else:
        when = datetime.fromtimestamp(at, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def agent(system: str, value: str, *, requestor: bool, display: str | None = None,
          address: str | None = None, address_type: str = NETWORK_IP_ADDRESS,
          role: dict[str, str] | None = None) -> dict[str, Any]:
    """One AuditEvent.agent: identified by ``system|value``, optionally with its network address and role."""
    who: dict[str, Any] = {"identifier": {"system": system, "value": value}}
    if display:
        who["display"] = display
    out: dict[str, Any] = {"who": who, "requestor": requestor}
    if role is not None:
        out["type"] = {"coding": [role]}
    if address:
        out["network"] = {"address": address, "type": address_type}
    return out


def patient_entity(reference: str) -> dict[str, Any]:
    return {"what": {"reference": reference}, "type": _PERSON, "role": _PATIENT}


def resource_entity(reference: str) -> dict[str, Any]:
    return {"what": {"reference": reference}, "type": _SYSTEM_OBJECT, "role": _DOMAIN_RESOURCE}


def resource_type_entity(resource_type: str) -> dict[str, Any]:
    """A resource named by its type only (nothing was received, or its id is not known)."""
    return {"what": {"type": resource_type}, "type": _SYSTEM_OBJECT, "role": _DOMAIN_RESOURCE}


def counted_entity(text: str) -> dict[str, Any]:
    """Resources beyond those listed, counted in words (e.g. '1200 more resources')."""
    return {"what": {"display": text}, "type": _SYSTEM_OBJECT, "role": _DOMAIN_RESOURCE}


def named_entity(name: str) -> dict[str, Any]:
    """Something that is not a resource (an operation's name)."""
    return {"what": {"display": name}, "name": name, "type": _OTHER}


def source(site: str, observer: str) -> dict[str, Any]:
    return {"site": site, "observer": {"display": observer},
            "type": [{"system": SOURCE_TYPE_SYSTEM, "code": "4", "display": "Application Server"}]}


def audit_event(*, event_id: str, type_: dict[str, str], subtype: list[dict[str, str]], action: str,
                recorded: str, outcome: str, outcome_desc: str, agents: list[dict[str, Any]],
                source: dict[str, Any], entities: list[dict[str, Any]]) -> dict[str, Any]:
    """The AuditEvent (R4) itself; ``agents[0]`` is the requestor."""
    return {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": type_,
        "subtype": subtype,
        "action": action,
        "recorded": recorded,
        "outcome": outcome,
        "outcomeDesc": outcome_desc,
        "agent": agents,
        "source": source,
        "entity": entities,
    }
