"""FHIR resources the care service publishes: the NEWS2 Observation and alert Bundles.

Ids are derived from the inputs, so reprocessing the same readings after a restart
yields byte-for-byte the same resource ids (consumers de-duplicate on them).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from carepulse.care.codes import (
    EVENT_CS,
    NEWS2_BAND_CS,
    NEWS2_PARAMETER_CS,
    NEWS2_TOTAL,
    PARAMETER_DISPLAY,
)
from carepulse.care.news2 import Band, News2Score
from carepulse.care.observation_set import ObservationSet

RESPONSE = {
    Band.LOW: "ward-based response: continue routine monitoring",
    Band.LOW_MEDIUM: "urgent ward-based response: a single parameter scores 3",
    Band.MEDIUM: "key threshold: urgent response, review by a clinician with acute-illness competencies",
    Band.HIGH: "urgent or emergency response: review by a critical-care team",
}
SEVERITY = {Band.LOW_MEDIUM: "moderate", Band.MEDIUM: "moderate", Band.HIGH: "high"}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def news2_observation(
    obs_id: str, patient_ref: str, oset: ObservationSet, score: News2Score, issued: float
) -> dict[str, Any]:
    notes = [] if oset.oxygen_recorded else ["air/oxygen not recorded in this set: scored as air"]
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey", "display": "Survey"}]}],
        "code": {"coding": [NEWS2_TOTAL], "text": "NEWS2 total score"},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": iso(oset.effective),
        "issued": iso(issued),
        "valueInteger": score.total,
        "interpretation": [{"coding": [{"system": NEWS2_BAND_CS, "code": score.band.value}],
                            "text": f"{score.band.value} clinical risk"}],
        "derivedFrom": [{"reference": ref} for ref in oset.sources],
        "component": [
            {"code": {"coding": [{"system": NEWS2_PARAMETER_CS, "code": p, "display": PARAMETER_DISPLAY[p]}],
                      "text": f"NEWS2 {PARAMETER_DISPLAY[p]} score"},
             "valueInteger": s}
            for p, s in score.subscores.items()
        ],
    }
    if notes:
        obs["note"] = [{"text": n} for n in notes]
    return obs


def describe(oset: ObservationSet, score: News2Score) -> str:
    """Plain-text detail for clinicians: the score, what drove it and what to do."""
    v = oset.vitals
    values = {
        "respiratory_rate": f"RR {v.respiratory_rate:g}/min",
        "spo2": f"SpO2 {v.spo2:g}%",
        "air_or_oxygen": "on oxygen" if v.on_oxygen else "on air",
        "systolic_bp": f"SBP {v.systolic_bp:g} mmHg",
        "pulse": f"pulse {v.pulse:g}/min",
        "consciousness": f"ACVPU {v.consciousness.value}",
        "temperature": f"temp {v.temperature:.1f} °C",
    }
    drivers = ", ".join(f"{values[p]} (+{s})" for p, s in score.subscores.items() if s > 0) or "no parameter scoring"
    return f"NEWS2 {score.total} ({score.band.value} risk): {drivers}. Action: {RESPONSE[score.band]}."


def alert_bundle(
    bundle_id: str, patient_ref: str, observation: dict[str, Any], oset: ObservationSet,
    score: News2Score, source_name: str, now: float,
) -> dict[str, Any]:
    """A FHIR message Bundle: MessageHeader -> DetectedIssue, with the NEWS2 Observation."""
    issue_id = str(uuid.uuid5(uuid.UUID(bundle_id), "detected-issue"))
    header_id = str(uuid.uuid5(uuid.UUID(bundle_id), "message-header"))
    obs_url = f"urn:uuid:{observation['id']}"
    issue_url = f"urn:uuid:{issue_id}"
    header = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventCoding": {"system": EVENT_CS, "code": "news2-alert", "display": "NEWS2 early-warning alert"},
        "source": {"name": source_name, "endpoint": f"urn:carepulse:{source_name}:care"},
        "focus": [{"reference": issue_url}, {"reference": obs_url}],
    }
    issue = {
        "resourceType": "DetectedIssue",
        "id": issue_id,
        "status": "final",
        "code": {"coding": [{"system": EVENT_CS, "code": "early-warning-score",
                             "display": "Early warning score above threshold"}]},
        "severity": SEVERITY.get(score.band, "low"),
        "patient": {"reference": patient_ref},
        "identifiedDateTime": iso(oset.effective),
        "implicated": [{"reference": obs_url}],
        "detail": describe(oset, score),
    }
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "message",
        "timestamp": iso(now),
        "entry": [
            {"fullUrl": f"urn:uuid:{header['id']}", "resource": header},
            {"fullUrl": issue_url, "resource": issue},
            {"fullUrl": obs_url, "resource": observation},
        ],
    }


def provenance(target: dict[str, Any], source_name: str, recorded: float) -> dict[str, Any]:
    """Provenance of a derived resource: which algorithm made it from which inputs."""
    ref = f"{target['resourceType']}/{target['id']}"
    return {
        "resourceType": "Provenance",
        "id": str(uuid.uuid5(uuid.UUID(target["id"]), "provenance")),
        "target": [{"reference": ref}],
        "recorded": iso(recorded),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "DERIVE", "display": "derive"}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": "assembler", "display": "Assembler"}]},
            "who": {"display": f"{source_name} care: NEWS2 (Royal College of Physicians, 2017)"},
        }],
        "entity": [{"role": "source", "what": d} for d in target.get("derivedFrom", [])],
    }
