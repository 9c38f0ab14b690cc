"""The demo scenario: three adult patients, hourly vital-sign rounds, as an EHR sends them.

Each round is one FHIR transaction Bundle per patient (Observations coded as in
US Core / Synthea). Patient "stable" stays well; "deteriorating" develops sepsis-like
physiology over four hours; "watch" is well but for one alarming parameter.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from carepulse.shared.kafka.headers import stable_id

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ACVPU = {"A": ("248234008", "Mentally alert"), "C": ("130987000", "Acute confusion"),
         "V": ("300202002", "Responds to voice"), "P": ("450847001", "Responds to pain"),
         "U": ("422768004", "Unresponsive")}


@dataclass(frozen=True)
class Round:
    """One set of observations: RR, SpO2, O2 flow (L/min, 0 = air), SBP, DBP, HR, ACVPU, temp °C."""

    rr: int
    spo2: int
    o2_flow: float
    sbp: int
    dbp: int
    hr: int
    acvpu: str
    temp: float


# Expected NEWS2 per round is in the comments; the tests compute it independently.
PROFILES: dict[str, list[Round]] = {
    "stable": [Round(16, 97, 0, 124, 78, 72, "A", 36.8)] * 5,  # 0 every hour
    "deteriorating": [
        Round(16, 97, 0, 124, 80, 78, "A", 37.0),  # 0 low
        Round(20, 96, 0, 116, 74, 92, "A", 37.8),  # 1 low
        Round(22, 95, 0, 108, 68, 104, "A", 38.3),  # 6 medium -> alert
        Round(25, 93, 2, 96, 60, 118, "A", 38.9),  # 12 high -> alert
        Round(28, 91, 4, 86, 52, 132, "C", 39.4),  # 19 high (already alerted)
    ],
    "watch": [
        Round(18, 96, 0, 132, 84, 84, "A", 36.9),  # 0 low
        Round(18, 96, 0, 130, 82, 80, "A", 36.9),  # 0 low
        Round(26, 96, 0, 128, 80, 82, "A", 37.0),  # 3 low-medium (RR alone scores 3) -> alert
        Round(18, 96, 0, 128, 80, 80, "A", 36.9),  # 0 low
        Round(18, 96, 0, 126, 80, 80, "A", 36.8),  # 0 low
    ],
}
ROLES = {"stable": "6a4160eb-a793-2f86-2302-378626f46cce",
         "deteriorating": "8e1a0a7c-e308-444b-075a-3c2b1f60f881",
         "watch": "a5cb8ce9-cec6-6b23-0990-cbaf753578a4"}


def patients() -> dict[str, dict[str, Any]]:
    """The demo Patient resources by role."""
    folder = resources.files("carepulse.shared.demo") / "patients"
    return {role: json.loads((folder / f"{pid}.json").read_text()) for role, pid in ROLES.items()}


def _qty(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _obs(pid: str, when: str, key: str, code: str, display: str, **body: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": stable_id("demo", pid, when, key),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs", "display": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        **body,
    }


def round_observations(pid: str, r: Round, at: datetime) -> list[dict[str, Any]]:
    when = at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    acvpu_code, acvpu_display = ACVPU[r.acvpu]
    return [
        _obs(pid, when, "rr", "9279-1", "Respiratory rate", valueQuantity=_qty(r.rr, "/min", "/min")),
        _obs(pid, when, "hr", "8867-4", "Heart rate", valueQuantity=_qty(r.hr, "/min", "/min")),
        _obs(pid, when, "spo2", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry",
             valueQuantity=_qty(r.spo2, "%", "%"),
             component=[{"code": {"coding": [{"system": LOINC, "code": "3151-8",
                                              "display": "Inhaled oxygen flow rate"}]},
                         "valueQuantity": _qty(r.o2_flow, "L/min", "L/min")}]),
        _obs(pid, when, "bp", "85354-9", "Blood pressure panel with all children optional", component=[
            {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]},
             "valueQuantity": _qty(r.sbp, "mm[Hg]", "mm[Hg]")},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}]},
             "valueQuantity": _qty(r.dbp, "mm[Hg]", "mm[Hg]")}]),
        _obs(pid, when, "temp", "8310-5", "Body temperature", valueQuantity=_qty(r.temp, "Cel", "Cel")),
        _obs(pid, when, "acvpu", "67775-7", "Level of responsiveness",
             valueCodeableConcept={"coding": [{"system": SNOMED, "code": acvpu_code, "display": acvpu_display}]}),
    ]


ADMISSION_NOTE = """Chief complaint: cough and fever for three days.
History of present illness: productive cough, fever and shortness of breath since Monday. No chest pain.
No recent travel.
Past medical history: hypertension.
Family history: mother had type 2 diabetes.
Assessment: community acquired pneumonia. Rule out sepsis.
"""


def admission_documents(pid: str, at: datetime) -> list[dict[str, Any]]:
    """The deteriorating patient's admission note (for nlp) and chest X-ray (DICOM, for imaging)."""
    when = at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    xray = (resources.files("carepulse.shared.demo") / "chest-xray-pneumonia.dcm").read_bytes()

    def doc(key: str, content_type: str, data: bytes, title: str) -> dict[str, Any]:
        return {
            "resourceType": "DocumentReference",
            "id": stable_id("demo", pid, when, key),
            "status": "current",
            "type": {"text": title},
            "subject": {"reference": f"Patient/{pid}"},
            "date": when,
            "content": [{"attachment": {"contentType": content_type, "data": base64.b64encode(data).decode(),
                                        "title": title}}],
        }

    return [doc("note", "text/plain", ADMISSION_NOTE.encode(), "Admission note"),
            doc("xray", "application/dicom", xray, "Chest X-ray")]


def transaction(resources_: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
                   "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources_],
    }


def rounds(start: datetime | None = None, profiles: dict[str, list[Round]] | None = None,
           roles: dict[str, str] | None = None) -> list[list[dict[str, Any]]]:
    """Per hour, one transaction Bundle per patient (``roles``: profile name -> Patient id);
    the last round is about now unless ``start`` is given."""
    profiles = profiles or PROFILES
    roles = roles or ROLES
    n = max(len(p) for p in profiles.values())
    start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=n - 1)
    out = []
    for h in range(n):
        at = start + timedelta(hours=h)
        out.append([transaction(round_observations(roles[role], rs[h], at))
                    for role, rs in profiles.items() if h < len(rs)])
    return out
