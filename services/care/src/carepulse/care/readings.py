"""Read NEWS2 inputs out of FHIR Observations as EHRs send them.

Pure functions over the JSON ``dict``: LOINC / SNOMED codes, blood pressure as a
panel or alone, oxygen as pulse-oximetry components or its own Observation, °F or °C.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carepulse.care.codes import ACVPU_SNOMED, ACVPU_WORDS, PANEL_COMPONENTS, VITAL_CODES

# Statuses whose values are usable (preliminary readings are what a ward sees first).
_USABLE_STATUS = {"final", "amended", "corrected", "preliminary"}


class UnreadableObservation(ValueError):
    """A vital-sign Observation whose value cannot be read (wrong unit, no value, …)."""


@dataclass(frozen=True)
class Reading:
    parameter: str
    value: float | str | bool
    effective: float  # epoch seconds
    source: str  # "Observation/<id>"


def parse_fhir_datetime(text: str) -> float:
    """FHIR dateTime/instant (possibly partial, e.g. '2020-03-06') to epoch seconds."""
    t = text.strip()
    if len(t) == 4:
        t += "-01-01"
    elif len(t) == 7:
        t += "-01"
    dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def effective_time(obs: dict[str, Any]) -> float | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if isinstance(obs.get(key), str):
            return parse_fhir_datetime(obs[key])
    period = obs.get("effectivePeriod")
    if isinstance(period, dict):
        end = period.get("end") or period.get("start")
        if isinstance(end, str):
            return parse_fhir_datetime(end)
    if isinstance(obs.get("issued"), str):
        return parse_fhir_datetime(obs["issued"])
    return None


def _codings(concept: Any) -> list[tuple[str, str]]:
    if not isinstance(concept, dict):
        return []
    return [
        (str(c.get("system", "")), str(c.get("code", "")))
        for c in concept.get("coding", [])
        if isinstance(c, dict)
    ]


def _quantity(q: Any, parameter: str) -> float:
    if not isinstance(q, dict) or not isinstance(q.get("value"), int | float):
        raise UnreadableObservation(f"{parameter}: no numeric valueQuantity")
    value = float(q["value"])
    unit = str(q.get("code") or q.get("unit") or "")
    if parameter == "temperature":
        if unit in ("[degF]", "degF", "°F", "F"):
            return (value - 32.0) * 5.0 / 9.0
        if unit not in ("Cel", "°C", "C", "cel", ""):
            raise UnreadableObservation(f"temperature: unsupported unit {unit!r}")
    if parameter == "spo2" and unit not in ("%", ""):
        raise UnreadableObservation(f"spo2: unsupported unit {unit!r}")
    return value


def _oxygen_flag(code: str, value: float) -> bool:
    # 3151-8 is a flow rate (L/min): any flow means supplemental oxygen.
    # 3150-0 is an inspired concentration (%): room air is about 21 %.
    return value > 0 if code == "3151-8" else value > 21.0


def _consciousness(obs: dict[str, Any]) -> str:
    concept = obs.get("valueCodeableConcept")
    for system, code in _codings(concept):
        if system.endswith("snomed.info/sct") and code in ACVPU_SNOMED:
            return ACVPU_SNOMED[code]
    texts = []
    if isinstance(concept, dict):
        texts.append(concept.get("text"))
        texts += [c.get("display") for c in concept.get("coding", []) if isinstance(c, dict)]
    texts.append(obs.get("valueString"))
    for t in texts:
        if isinstance(t, str) and t.strip().lower() in ACVPU_WORDS:
            return ACVPU_WORDS[t.strip().lower()]
    raise UnreadableObservation("consciousness: value is not an ACVPU level")


def extract_readings(obs: dict[str, Any]) -> list[Reading]:
    """The NEWS2 readings one Observation carries (empty if it carries none)."""
    if obs.get("resourceType") != "Observation" or obs.get("status") not in _USABLE_STATUS:
        return []
    codes = _codings(obs.get("code"))
    parameter = next((VITAL_CODES[c] for c in codes if c in VITAL_CODES), None)
    panel_parts = [
        (PANEL_COMPONENTS[c], c[1], comp)
        for comp in obs.get("component", []) or []
        if isinstance(comp, dict)
        for c in _codings(comp.get("code"))
        if c in PANEL_COMPONENTS
    ]
    if parameter is None and not panel_parts:
        return []
    when = effective_time(obs)
    if when is None:
        raise UnreadableObservation("no effective time")
    source = f"Observation/{obs.get('id', '')}"
    out: list[Reading] = []
    if parameter == "consciousness":
        out.append(Reading(parameter, _consciousness(obs), when, source))
    elif parameter == "air_or_oxygen":
        code = next(c for s, c in codes if (s, c) in VITAL_CODES and VITAL_CODES[(s, c)] == "air_or_oxygen")
        out.append(Reading(parameter, _oxygen_flag(code, _quantity(obs.get("valueQuantity"), parameter)), when, source))
    elif parameter is not None and "valueQuantity" in obs:
        out.append(Reading(parameter, _quantity(obs["valueQuantity"], parameter), when, source))
    for part, code, comp in panel_parts:
        if "valueQuantity" not in comp:
            continue  # a component may be absent with a dataAbsentReason
        value = _quantity(comp["valueQuantity"], part)
        out.append(Reading(part, _oxygen_flag(code, value) if part == "air_or_oxygen" else value, when, source))
    if parameter is not None and not out:
        raise UnreadableObservation(f"{parameter}: no value")
    return out
