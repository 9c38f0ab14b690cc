"""FHIR resources the NLP service publishes: Condition, FamilyMemberHistory and Provenance.

Ids derive from (document, finding key, status), so a replayed note yields the same ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from carepulse.nlp.documents import Note
from carepulse.nlp.findings import Finding, Status, relative_of
from carepulse.nlp.terminology import ICD10CM_SYSTEM
from carepulse.shared.kafka.headers import stable_id

MENTION_EXT = "urn:carepulse:fhir:StructureDefinition:nlp-mention"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CLINICAL_CS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_CS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ROLE_CODE_CS = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
INFECTION_TAG = {"system": "urn:carepulse:tag", "code": "infection", "display": "Infection finding"}

VERIFICATION = {Status.AFFIRMED: "provisional", Status.REFUTED: "refuted", Status.UNCONFIRMED: "unconfirmed",
                Status.HISTORICAL: "provisional"}
CLINICAL = {Status.AFFIRMED: "active", Status.UNCONFIRMED: "active", Status.HISTORICAL: "resolved"}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def finding_id(note: Note, finding: Finding) -> str:
    return stable_id("nlp-finding", note.reference, finding.key, finding.status.value)


def _code(finding: Finding) -> dict[str, Any]:
    cc: dict[str, Any] = {"text": finding.mentions[0].text}
    c = finding.concept
    if c.code:
        cc["coding"] = [{"system": ICD10CM_SYSTEM, "code": c.code, "display": c.display}]
    return cc


def _mention_extension(finding: Finding) -> list[dict[str, Any]]:
    out = []
    c = finding.concept
    for m in finding.mentions:
        parts: list[dict[str, Any]] = [
            {"url": "sentence", "valueString": m.sentence},
            {"url": "start", "valueInteger": m.start},
            {"url": "end", "valueInteger": m.end},
            {"url": "method", "valueCode": finding.concept.method.value},
            {"url": "confidence", "valueDecimal": finding.concept.confidence},
        ]
        if m.section:
            parts.append({"url": "section", "valueString": m.section})
        if finding.status is Status.FAMILY_REFUTED:
            # The code of what was ruled out lives here, not in condition.code (see family_member_history).
            parts.append({"url": "assertion", "valueCode": "negated"})
            if c.code:
                parts.append({"url": "refutedCode",
                              "valueCoding": {"system": ICD10CM_SYSTEM, "code": c.code, "display": c.display}})
        out.append({"url": MENTION_EXT, "extension": parts})
    return out


def condition(note: Note, finding: Finding, recorded: float) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": finding_id(note, finding),
        "verificationStatus": {"coding": [{"system": VERIFICATION_CS, "code": VERIFICATION[finding.status]}]},
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": "encounter-diagnosis",
                                  "display": "Encounter Diagnosis"}]}],
        "code": _code(finding),
        "subject": {"reference": note.patient_ref},
        "recordedDate": iso(recorded),
        "evidence": [{"detail": [{"reference": note.reference}], "extension": _mention_extension(finding)}],
    }
    if finding.status in CLINICAL:
        res["clinicalStatus"] = {"coding": [{"system": CLINICAL_CS, "code": CLINICAL[finding.status]}]}
    if note.encounter_ref:
        res["encounter"] = {"reference": note.encounter_ref}
    if finding.infection:
        res["meta"] = {"tag": [INFECTION_TAG]}
    return res


def family_member_history(note: Note, finding: Finding, recorded: float) -> dict[str, Any]:
    """A FamilyMemberHistory: the relative named in the sentence (FAMMEMB if none) had the condition.

    "No family history of X" follows FHIR's own negation example (FamilyMemberHistory/negation:
    ``condition.code`` is a "No history of X" concept, status completed). ICD-10-CM has no
    negated concepts, so ``condition.code`` carries only the text "No history of X"; the ICD-10-CM
    code of X sits in the mention extension as ``refutedCode``. Putting X's code in
    ``condition.code`` would make every consumer that reads codings see a positive history.
    """
    relative = relative_of(finding.mentions[0].sentence)
    code = _code(finding)
    if finding.status is Status.FAMILY_REFUTED:
        code = {"text": f"No history of {finding.mentions[0].text}"}
    return {
        "resourceType": "FamilyMemberHistory",
        "id": finding_id(note, finding),
        "extension": _mention_extension(finding),
        "status": "completed",
        "patient": {"reference": note.patient_ref},
        "date": iso(recorded),
        "relationship": {"coding": [{"system": ROLE_CODE_CS, "code": relative}]},
        "condition": [{"code": code}],
        "reasonReference": [{"reference": note.reference}],
    }


def provenance(target: dict[str, Any], note: Note, agent: str, recorded: float) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "id": str(uuid.uuid5(uuid.UUID(target["id"]), "provenance")),
        "target": [{"reference": f"{target['resourceType']}/{target['id']}"}],
        "recorded": iso(recorded),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "DERIVE", "display": "derive"}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": "assembler", "display": "Assembler"}]},
            "who": {"display": agent},
        }],
        "entity": [{"role": "source", "what": {"reference": note.reference}}],
    }
