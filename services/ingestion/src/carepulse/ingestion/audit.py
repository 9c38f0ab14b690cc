"""One FHIR AuditEvent per request at the ingestion edge, accepted or rejected.

Who: the client id of the token (``anonymous`` when authentication is off or the request
carried no valid token); what: references of the resources received (and their patients),
or only the resource type when nothing was accepted; when; outcome (0 success, 4 the
caller's error, 8 ours); from where: the client's IP address. Published to the audit
topic keyed by client, so one client's trail stays in order. No PHI: references and
codes only, and the outcome text is the HTTP status with the first issue code.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carepulse.ingestion import jsonio
from carepulse.ingestion.auth import ANONYMOUS, Principal
from carepulse.shared import audit as fhir_audit
from carepulse.shared.audit import outcome_code
from carepulse.shared.kafka.headers import fhir_headers
from carepulse.shared.kafka.producer import OutRecord, Publisher

__all__ = ["AuditPublisher", "AuditTrail", "audit_event", "outcome_code"]

log = logging.getLogger(__name__)

EVENT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ANONYMOUS_SYSTEM = "urn:carepulse:client"
_ACTIONS = {"create": "C", "update": "U", "batch": "E", "transaction": "E", "operation": "E"}


@dataclass
class AuditTrail:
    """What one request did, gathered while it is handled."""

    interaction: str  # restful-interaction code: create, update, batch, transaction, operation
    resource_type: str | None = None  # from the URL, when there is one
    operation: str | None = None  # e.g. "import", "subscription-notification"
    principal: Principal | None = None
    references: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    types: set[str] = field(default_factory=set)
    more: int = 0  # references not listed (over the limit)
    rejected: int = 0  # entries or lines refused while the request as a whole succeeded
    max_entities: int = 200

    def add(self, reference: str, patient: str | None) -> None:
        self.types.add(reference.split("/", 1)[0])
        if patient and patient not in self.patients and len(self.patients) < self.max_entities:
            self.patients.append(patient)
        if len(self.references) < self.max_entities:
            self.references.append(reference)
        else:
            self.more += 1


def audit_event(trail: AuditTrail, *, status: int, issue_code: str | None, client_ip: str | None,
                source_name: str, recorded: datetime | None = None) -> dict[str, Any]:
    """The AuditEvent (R4) of one request."""
    p = trail.principal
    anonymous = p is None or p.client_id == ANONYMOUS
    requestor = fhir_audit.agent(p.issuer if p and p.issuer else ANONYMOUS_SYSTEM, p.client_id if p else ANONYMOUS,
                                 requestor=True, display=ANONYMOUS if anonymous else None, address=client_ip)
    entities = [fhir_audit.patient_entity(ref) for ref in trail.patients]
    entities += [fhir_audit.resource_entity(ref) for ref in trail.references]
    if trail.more:
        entities.append(fhir_audit.counted_entity(f"{trail.more} more resources"))
    if not trail.references and not trail.more:
        # Nothing received: say at least what kind of thing the request was about.
        for t in sorted(trail.types | ({trail.resource_type} if trail.resource_type else set())) or ["Bundle"]:
            entities.append(fhir_audit.resource_type_entity(t))
    if trail.operation:
        entities.append(fhir_audit.named_entity(trail.operation))
    return fhir_audit.audit_event(
        event_id=str(uuid.uuid4()),
        type_=EVENT_TYPE,
        subtype=[{"system": INTERACTION_SYSTEM, "code": trail.interaction}],
        action=_ACTIONS.get(trail.interaction, "E"),
        recorded=fhir_audit.instant(recorded),
        outcome=fhir_audit.MINOR_FAILURE if status < 400 and trail.rejected else outcome_code(status),
        outcome_desc=f"HTTP {status}" + (f" {issue_code}" if issue_code and status >= 400 else "")
        + (f", {trail.rejected} rejected" if trail.rejected else ""),
        agents=[requestor],
        source=fhir_audit.source("carepulse-ingestion", source_name),
        entities=entities,
    )


class AuditPublisher:
    """Publishes AuditEvents on the audit topic; a failure is logged and counted, never raised to the caller
    (the request has been answered by then)."""

    def __init__(self, producer: Publisher, topic: str, source_name: str) -> None:
        self._producer = producer
        self._topic = topic
        self._source = source_name
        self.failures = 0

    def record(self, event: dict[str, Any]) -> OutRecord:
        who = event["agent"][0]["who"]["identifier"]["value"]
        return OutRecord(self._topic, f"Client/{who}", jsonio.dumps(event),
                         fhir_headers("AuditEvent", event["id"], self._source))

    async def publish(self, event: dict[str, Any]) -> bool:
        try:
            [error] = await self._producer.send_many([self.record(event)])
        except Exception as exc:  # noqa: BLE001 - the audit trail must not take the request down with it
            error = exc
        if error is not None:
            self.failures += 1
            log.error("audit event not published", extra={"fields": {"event_id": event["id"],
                                                                     "error": type(error).__name__}})
            return False
        return True
