"""Reading NEWS2 inputs from Observations as real EHRs send them (HL7 examples, Synthea)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carepulse.care.readings import UnreadableObservation, extract_readings, parse_fhir_datetime


def load(fhir_data: Path, name: str) -> dict:
    return json.loads((fhir_data / "hl7-r4-official-examples" / name).read_text(encoding="utf-8-sig"))


def test_hl7_respiratory_rate_example(fhir_data: Path) -> None:
    [r] = extract_readings(load(fhir_data, "observation-example-respiratory-rate.json"))
    assert (r.parameter, r.value) == ("respiratory_rate", 26)
    assert r.source == "Observation/respiratory-rate"


def test_hl7_blood_pressure_panel_gives_systolic(fhir_data: Path) -> None:
    readings = extract_readings(load(fhir_data, "observation-example-bloodpressure.json"))
    assert [(r.parameter, r.value) for r in readings] == [("systolic_bp", 107)]


def test_hl7_temperature_and_heart_rate(fhir_data: Path) -> None:
    [t] = extract_readings(load(fhir_data, "observation-example-body-temperature.json"))
    [h] = extract_readings(load(fhir_data, "observation-example-heart-rate.json"))
    assert t.parameter == "temperature" and t.value == pytest.approx(36.5)
    assert (h.parameter, h.value) == ("pulse", 44)


def test_synthea_vitals_are_read(fhir_data: Path) -> None:
    bundle = json.loads(next((fhir_data / "synthea").glob("*.json")).read_text())
    params = {r.parameter for e in bundle["entry"] for r in extract_readings(e["resource"])}
    assert {"respiratory_rate", "pulse", "spo2", "systolic_bp", "temperature"} <= params


def obs(code: str, system: str = "http://loinc.org", **body: object) -> dict:
    return {"resourceType": "Observation", "id": "x", "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
            "effectiveDateTime": "2024-01-01T10:00:00Z", **body}


def test_fahrenheit_is_converted() -> None:
    [r] = extract_readings(obs("8310-5", valueQuantity={"value": 101.3, "code": "[degF]"}))
    assert r.value == pytest.approx(38.5)


def test_unknown_temperature_unit_is_rejected() -> None:
    with pytest.raises(UnreadableObservation):
        extract_readings(obs("8310-5", valueQuantity={"value": 310, "code": "K"}))


def test_acvpu_by_snomed_code_and_by_letter() -> None:
    [a] = extract_readings(obs("1104441000000107", "http://snomed.info/sct",
                               valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct",
                                                                 "code": "450847001"}]}))
    [b] = extract_readings(obs("67775-7", valueCodeableConcept={"text": "C"}))
    assert (a.value, b.value) == ("P", "C")


def test_oxygen_from_pulse_oximetry_components() -> None:
    readings = extract_readings(obs("59408-5", valueQuantity={"value": 94, "code": "%"}, component=[
        {"code": {"coding": [{"system": "http://loinc.org", "code": "3151-8"}]},
         "valueQuantity": {"value": 2, "code": "L/min"}}]))
    assert {(r.parameter, r.value) for r in readings} == {("spo2", 94.0), ("air_or_oxygen", True)}


def test_non_vital_and_cancelled_observations_are_ignored(fhir_data: Path) -> None:
    assert extract_readings(load(fhir_data, "observation-example-f001-glucose.json")) == []
    assert extract_readings(load(fhir_data, "observation-example-bloodpressure-cancel.json")) == []


def test_partial_dates() -> None:
    assert parse_fhir_datetime("2020-03-06") == parse_fhir_datetime("2020-03-06T00:00:00Z")
