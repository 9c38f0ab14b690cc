"""What the care service remembers about a patient, read out of FHIR resources.

Pure functions: each resource becomes zero or more context entries (section, field,
effective time, value). The worker writes them to Redis (only newer overwrites
older); replaying the topics through the same functions rebuilds the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carepulse.care.codes import (
    HYPERCAPNIC_ICD10,
    HYPERCAPNIC_SNOMED,
    INFECTION_ICD10_PREFIXES,
    INFECTION_SNOMED,
    LAB_CODES,
    NEWS2_TOTAL,
    POSITIVE_INTERPRETATIONS,
    SNOMED,
    SPO2_SCALE2_EXTENSION,
)
from carepulse.care.readings import effective_time, extract_readings, parse_fhir_datetime

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SECTIONS = ("demographics", "conditions", "medications", "allergies", "vitals", "labs", "findings")


@dataclass(frozen=True)
class Entry:
    section: str
    field: str
    effective: float
    value: dict[str, Any]


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in (concept or {}).get("coding", []) if isinstance(c, dict)] if isinstance(concept, dict) else []


def _label(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    return str(concept.get("text") or next((c.get("display") for c in _codings(concept) if c.get("display")), ""))


def _updated(resource: dict[str, Any]) -> float:
    last = (resource.get("meta") or {}).get("lastUpdated")
    return parse_fhir_datetime(last) if isinstance(last, str) else 0.0


def _flagged_scale2(resource: dict[str, Any]) -> bool:
    return any(e.get("url") == SPO2_SCALE2_EXTENSION and e.get("valueBoolean") is True
               for e in resource.get("extension", []) if isinstance(e, dict))


def is_infection(concept: Any) -> str | None:
    """The infection a code names (for the sepsis screen), or None."""
    for c in _codings(concept):
        system, code = str(c.get("system", "")), str(c.get("code", ""))
        if system == SNOMED and code in INFECTION_SNOMED:
            return INFECTION_SNOMED[code]
        if system.endswith(("icd-10-cm", "icd-10")) and code.startswith(INFECTION_ICD10_PREFIXES):
            return str(c.get("display") or code)
    return None


def _hypercapnic(concept: Any) -> bool:
    for c in _codings(concept):
        system, code = str(c.get("system", "")), str(c.get("code", ""))
        if (system == SNOMED and code in HYPERCAPNIC_SNOMED) or (
                system.endswith("icd-10-cm") and code in HYPERCAPNIC_ICD10):
            return True
    return False


def _status(concept: Any) -> str:
    codes = [str(c.get("code", "")) for c in _codings(concept)]
    return codes[0] if codes else ""


def _condition(res: dict[str, Any], derived: bool) -> list[Entry]:
    clinical = _status(res.get("clinicalStatus"))
    verification = _status(res.get("verificationStatus"))
    active = clinical in ("active", "recurrence", "relapse", "") and verification not in (
        "refuted", "entered-in-error")
    onset = res.get("onsetDateTime") or res.get("recordedDate")
    t = parse_fhir_datetime(onset) if isinstance(onset, str) else _updated(res)
    value = {"code": _label(res.get("code")), "active": active, "verification": verification,
             "infection": is_infection(res.get("code")), "hypercapnic": _hypercapnic(res.get("code")),
             "spo2_scale2": _flagged_scale2(res), "source": f"Condition/{res.get('id', '')}"}
    section = "findings" if derived else "conditions"
    return [Entry(section, f"Condition/{res.get('id', '')}", t, value)]


def _lab(obs: dict[str, Any]) -> list[Entry]:
    codes = [(str(c.get("system", "")), str(c.get("code", ""))) for c in _codings(obs.get("code"))]
    lab = next((LAB_CODES[c] for c in codes if c in LAB_CODES), None)
    q = obs.get("valueQuantity")
    when = effective_time(obs)
    if lab is None or not isinstance(q, dict) or not isinstance(q.get("value"), int | float) or when is None:
        return []
    value, unit = float(q["value"]), str(q.get("code") or q.get("unit") or "")
    if lab == "lactate" and unit.lower() in ("mg/dl",):
        value, unit = value * 0.111, "mmol/L"  # 1 mg/dL lactate = 0.111 mmol/L
    if lab == "creatinine" and unit.lower() in ("umol/l", "µmol/l"):
        value, unit = value / 88.42, "mg/dL"
    return [Entry("labs", lab, when, {"value": value, "unit": unit, "source": f"Observation/{obs.get('id', '')}"})]


def _imaging_finding(res: dict[str, Any]) -> list[Entry]:
    """A positive pneumonia Observation/DiagnosticReport from the imaging service."""
    rtype = res.get("resourceType")
    if rtype == "Observation":
        text = _label(res.get("code")).lower() + " " + " ".join(
            str(c.get("display", "")).lower() for c in _codings(res.get("code")))
        positive = any(str(c.get("code")) in POSITIVE_INTERPRETATIONS
                       for i in res.get("interpretation", []) for c in _codings(i))
    elif rtype == "DiagnosticReport":
        concepts = res.get("conclusionCode", [])
        text = " ".join(_label(c).lower() for c in concepts)
        positive = any(is_infection(c) for c in concepts)
    else:
        return []
    when = effective_time(res) or _updated(res)
    if "pneumonia" not in text or not when:
        return []
    return [Entry("findings", f"{rtype}/{res.get('id', '')}", when,
                  {"code": "pneumonia (imaging)", "active": positive, "infection": "pneumonia" if positive else None,
                   "source": f"{rtype}/{res.get('id', '')}"})]


def entries(resource: dict[str, Any], derived: bool = False) -> list[Entry]:
    """Context entries one resource yields; ``derived``: it came from fhir.derived (AI findings)."""
    rtype = resource.get("resourceType")
    rid = resource.get("id", "")
    if rtype == "Patient":
        return [Entry("demographics", "patient", _updated(resource),
                      {"birthDate": resource.get("birthDate"), "gender": resource.get("gender"),
                       "spo2_scale2": _flagged_scale2(resource), "deceased": bool(
                           resource.get("deceasedBoolean") or resource.get("deceasedDateTime"))})]
    if rtype == "Condition":
        return _condition(resource, derived)
    if rtype in ("MedicationRequest", "MedicationStatement"):
        concept = resource.get("medicationCodeableConcept")
        authored = resource.get("authoredOn") or resource.get("dateAsserted")
        t = parse_fhir_datetime(authored) if isinstance(authored, str) else _updated(resource)
        return [Entry("medications", f"{rtype}/{rid}", t,
                      {"code": _label(concept), "active": resource.get("status") in ("active", "on-hold")})]
    if rtype == "AllergyIntolerance":
        recorded = resource.get("recordedDate")
        t = parse_fhir_datetime(recorded) if isinstance(recorded, str) else _updated(resource)
        return [Entry("allergies", f"AllergyIntolerance/{rid}", t,
                      {"code": _label(resource.get("code")),
                       "active": _status(resource.get("clinicalStatus")) in ("active", "")})]
    if rtype == "Observation" and not derived:
        out = [Entry("vitals", r.parameter, r.effective, {"value": r.value, "source": r.source})
               for r in extract_readings(resource)]
        return out + _lab(resource)
    if derived and rtype in ("Observation", "DiagnosticReport"):
        if any(c.get("code") == NEWS2_TOTAL["code"] for c in _codings(resource.get("code"))):
            return []  # our own score: the care state, not an input
        return _imaging_finding(resource)
    return []


def age_years(birth_date: str | None, at: float) -> int | None:
    if not birth_date:
        return None
    born = datetime.fromtimestamp(parse_fhir_datetime(birth_date), UTC)
    now = datetime.fromtimestamp(at, UTC)
    return now.year - born.year - ((now.month, now.day) < (born.month, born.day))

