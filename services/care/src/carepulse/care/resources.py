"""FHIR resources the care service publishes: scores, risk assessments, alert messages.

Ids are derived from the inputs, so reprocessing the same readings after a restart
yields the same resource ids (consumers de-duplicate on them).
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
from carepulse.care.sepsis import QSofa, SepsisRisk, SepsisScreen

# What the RCP chart asks of the ward for each band (paraphrased), and how fast.
RESPONSE = {
    Band.LOW: ("ward-based response; observations at least every 4-12 hours", "routine", "Ward nursing team"),
    Band.LOW_MEDIUM: ("urgent ward-based response: the nurse informs the medical team, who decide on escalation; "
                      "observations at least hourly", "urgent", "Medical team caring for the patient"),
    Band.MEDIUM: ("urgent response: the nurse informs the medical team at once; urgent assessment by a clinician "
                  "competent in acute illness; observations at least hourly", "urgent",
                  "Medical team caring for the patient"),
    Band.HIGH: ("emergency response: the nurse informs the medical team at once (registrar or above); emergency "
                "assessment by a critical-care competent team, consider a higher level of care; continuous "
                "monitoring", "stat", "Critical care outreach team"),
}
SEVERITY = {Band.LOW_MEDIUM: "moderate", Band.MEDIUM: "moderate", Band.HIGH: "high"}
SEPSIS_BAND = {SepsisRisk.LOW: Band.LOW, SepsisRisk.MODERATE: Band.MEDIUM, SepsisRisk.HIGH: Band.HIGH}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def derived_id(parent: str, role: str) -> str:
    return str(uuid.uuid5(uuid.UUID(parent), role))


def news2_observation(
    obs_id: str, patient_ref: str, oset: ObservationSet, score: News2Score, issued: float,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    notes = list(notes or [])
    if not oset.oxygen_recorded:
        notes.append("air/oxygen not recorded in this set: scored as air")
    if score.missing:
        notes.append("incomplete set, score is a lower bound; missing: "
                     + ", ".join(PARAMETER_DISPLAY[p] for p in score.missing))
    if score.spo2_scale == 2:
        notes.append("SpO2 scored on scale 2 (hypercapnic respiratory failure, target 88-92%)")
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final" if score.complete else "preliminary",
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


def risk_assessment(
    ra_id: str, patient_ref: str, score_obs: dict[str, Any], q: QSofa, sep: SepsisScreen,
    basis: list[str], when: float,
) -> dict[str, Any]:
    """qSOFA and the sepsis screen, with the evidence they rest on."""
    return {
        "resourceType": "RiskAssessment",
        "id": ra_id,
        "status": "final" if score_obs["status"] == "final" else "preliminary",
        "subject": {"reference": patient_ref},
        "occurrenceDateTime": score_obs["effectiveDateTime"],
        "method": {"coding": [{"system": f"{EVENT_CS}", "code": "sepsis-screen",
                               "display": "CarePulse sepsis screen (qSOFA, NEWS2, lactate, infection)"}]},
        "basis": [{"reference": f"Observation/{score_obs['id']}"}] + [{"reference": r} for r in sorted(set(basis))],
        "prediction": [
            {"outcome": {"coding": [{"system": "http://snomed.info/sct", "code": "91302008", "display": "Sepsis"}],
                         "text": "sepsis"},
             "qualitativeRisk": {"coding": [{
                 "system": "http://terminology.hl7.org/CodeSystem/risk-probability",
                 "code": sep.risk.value, "display": sep.risk.value}]},
             "rationale": "; ".join(sep.reasons)},
            {"outcome": {"text": f"qSOFA {q.score} of 3" + (" (positive)" if q.positive else "")},
             "rationale": (", ".join(k for k, v in q.criteria.items() if v) or "no qSOFA criterion met")
             + (f"; not measured: {', '.join(q.missing)}" if q.missing else "")},
        ],
        "note": [{"text": "Decision support for clinicians, not a diagnosis."}],
    }


def describe(oset: ObservationSet, score: News2Score) -> str:
    """Plain-text detail for clinicians: the score, what drove it and what to do."""
    v = oset.vitals
    values = {
        "respiratory_rate": f"RR {v.respiratory_rate:g}/min" if v.respiratory_rate is not None else "",
        "spo2": f"SpO2 {v.spo2:g}%" if v.spo2 is not None else "",
        "air_or_oxygen": "on oxygen" if v.on_oxygen else "on air",
        "systolic_bp": f"SBP {v.systolic_bp:g} mmHg" if v.systolic_bp is not None else "",
        "pulse": f"pulse {v.pulse:g}/min" if v.pulse is not None else "",
        "consciousness": f"ACVPU {v.consciousness.value}" if v.consciousness is not None else "",
        "temperature": f"temp {v.temperature:.1f} °C" if v.temperature is not None else "",
    }
    drivers = ", ".join(f"{values[p]} (+{s})" for p, s in score.subscores.items() if s > 0) or "no parameter scoring"
    missing = f" Not measured: {', '.join(PARAMETER_DISPLAY[p] for p in score.missing)}." if score.missing else ""
    return (f"NEWS2 {score.total} ({score.band.value} risk): {drivers}.{missing} "
            f"Action: {RESPONSE[score.band][0]}.")


def _header(bundle_id: str, event: tuple[str, str], source_name: str, focus: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "MessageHeader",
        "id": derived_id(bundle_id, "message-header"),
        "eventCoding": {"system": EVENT_CS, "code": event[0], "display": event[1]},
        "source": {"name": source_name, "endpoint": f"urn:carepulse:{source_name}:care"},
        "focus": [{"reference": f} for f in focus],
    }


def _bundle(bundle_id: str, now: float, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "message",
        "timestamp": iso(now),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def alert_bundle(
    bundle_id: str, patient_ref: str, evidence: list[dict[str, Any]], *, band: Band, title: str, detail: str,
    episode_id: str, at: float, source_name: str, now: float, event: tuple[str, str],
) -> dict[str, Any]:
    """A FHIR message Bundle: MessageHeader -> DetectedIssue, Flag, CommunicationRequest, evidence."""
    issue_id = derived_id(bundle_id, "detected-issue")
    response, priority, who = RESPONSE[band]
    issue = {
        "resourceType": "DetectedIssue",
        "id": issue_id,
        "status": "final",
        "code": {"coding": [{"system": EVENT_CS, "code": event[0], "display": title}]},
        "severity": SEVERITY.get(band, "low"),
        "patient": {"reference": patient_ref},
        "identifiedDateTime": iso(at),
        "evidence": [{"detail": [{"reference": f"urn:uuid:{r['id']}"}]} for r in evidence],
        "detail": detail,
    }
    flag = {
        "resourceType": "Flag",
        "id": episode_id,
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                  "code": "clinical", "display": "Clinical"}]}],
        "code": {"text": f"{title}: {band.value} risk"},
        "subject": {"reference": patient_ref},
        "period": {"start": iso(at)},
    }
    request = {
        "resourceType": "CommunicationRequest",
        "id": derived_id(bundle_id, "communication-request"),
        "status": "active",
        "priority": priority,
        "subject": {"reference": patient_ref},
        "about": [{"reference": f"urn:uuid:{issue_id}"}],
        "authoredOn": iso(now),
        "recipient": [{"display": who}],
        "payload": [{"contentString": f"{title}: {response}."}],
    }
    header = _header(bundle_id, event, source_name, [f"urn:uuid:{issue_id}", f"urn:uuid:{episode_id}"])
    return _bundle(bundle_id, now, [header, issue, flag, request, *evidence])


def resolution_bundle(
    bundle_id: str, patient_ref: str, evidence: list[dict[str, Any]], *, title: str, episode_id: str,
    previous: Band, current: Band, at: float, source_name: str, now: float, event: tuple[str, str],
) -> dict[str, Any]:
    """The episode's level has fallen: the Flag is closed (or lowered) and the evidence attached."""
    closed = current is Band.LOW
    flag = {
        "resourceType": "Flag",
        "id": episode_id,
        "status": "inactive" if closed else "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                  "code": "clinical", "display": "Clinical"}]}],
        "code": {"text": f"{title}: {current.value} risk (was {previous.value})"},
        "subject": {"reference": patient_ref},
        "period": {"end": iso(at)} if closed else {"start": iso(at)},
    }
    header = _header(bundle_id, event, source_name, [f"urn:uuid:{episode_id}"])
    return _bundle(bundle_id, now, [header, flag, *evidence])


def provenance(target: dict[str, Any], source_name: str, recorded: float, algorithm: str) -> dict[str, Any]:
    """Provenance of a derived resource: which algorithm made it from which inputs."""
    ref = f"{target['resourceType']}/{target['id']}"
    sources = target.get("derivedFrom") or target.get("basis") or []
    return {
        "resourceType": "Provenance",
        "id": derived_id(target["id"], "provenance"),
        "target": [{"reference": ref}],
        "recorded": iso(recorded),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "DERIVE", "display": "derive"}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": "assembler", "display": "Assembler"}]},
            "who": {"display": f"{source_name} care: {algorithm}"},
        }],
        "entity": [{"role": "source", "what": d} for d in sources],
    }
