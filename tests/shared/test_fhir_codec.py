"""Parsing and validating real FHIR R4 JSON, and locating what is wrong in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carepulse.shared.fhir import FhirValidationError, operation_outcome, parse_resource

# Files of Microsoft's test set that are not valid R4: STU3-shaped elements (a single
# interpretation), an instant without time zone, a narrative without div, and an
# ImagingStudy/Appointment missing required elements. Each must be rejected at the element.
NOT_R4 = {
    "Observation-For-Patient-f001.json": "Observation.interpretation",
    "ObservationWithBloodPressure.json": "Observation.interpretation",
    "ObservationWithTemperature.json": "Observation.interpretation",
    "Patient.json": "Patient.meta.lastUpdated",
    "SmartPatientA.json": "Bundle.entry[11].resource.series[0].modality",
    "WeightInGrams.json": "Observation.text.div",
}


def real_resources(fhir_data: Path) -> list[Path]:
    return sorted((fhir_data / "hl7-r4-official-examples").glob("*.json")) + sorted(
        f for f in (fhir_data / "msfhir-valid").glob("*.json") if f.name not in NOT_R4)


@pytest.mark.parametrize(("name", "element"), sorted(NOT_R4.items()))
def test_non_r4_files_are_rejected_at_the_element(fhir_data: Path, name: str, element: str) -> None:
    with pytest.raises(FhirValidationError) as e:
        parse_resource((fhir_data / "msfhir-valid" / name).read_bytes())
    assert element in [i.expression for i in e.value.issues]


def test_every_official_and_msfhir_r4_example_validates(fhir_data: Path) -> None:
    failures = []
    files = real_resources(fhir_data)
    assert len(files) > 100
    for f in files:
        raw = f.read_bytes()
        try:
            parsed = parse_resource(raw)
        except FhirValidationError as e:
            failures.append(f"{f.name}: {e}")
            continue
        assert parsed.raw is raw
    assert not failures, failures


def test_byte_order_mark_is_accepted(fhir_data: Path) -> None:
    raw = (fhir_data / "msfhir-valid" / "Patient-f001.json").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert parse_resource(raw).resource_type == "Patient"


def test_wrong_type_names_the_element() -> None:
    raw = json.dumps({"resourceType": "Observation", "status": "final",
                      "code": {"coding": [{"system": 3}]}}).encode()
    with pytest.raises(FhirValidationError) as e:
        parse_resource(raw)
    assert [i.expression for i in e.value.issues] == ["Observation.code.coding[0].system"]


def test_missing_required_element() -> None:
    with pytest.raises(FhirValidationError) as e:
        parse_resource(b'{"resourceType": "Observation", "status": "final"}')
    assert any(i.code == "required" and i.expression == "Observation.code" for i in e.value.issues)


def test_unknown_element_is_a_structure_error() -> None:
    with pytest.raises(FhirValidationError) as e:
        parse_resource(b'{"resourceType": "Patient", "nmae": []}')
    assert [(i.code, i.expression) for i in e.value.issues] == [("structure", "Patient.nmae")]


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'{"id": "x"}', b'{"resourceType": "Nonsense"}',
                                 b"\xff\xfe"])
def test_garbage_is_rejected_with_an_issue(raw: bytes) -> None:
    with pytest.raises(FhirValidationError) as e:
        parse_resource(raw)
    assert e.value.issues


def test_url_type_must_match() -> None:
    with pytest.raises(FhirValidationError) as e:
        parse_resource(b'{"resourceType": "Patient"}', expected_type="Observation")
    assert e.value.issues[0].expression == "resourceType"


def test_operation_outcome_is_valid_fhir() -> None:
    try:
        parse_resource(b'{"resourceType": "Observation", "status": "final"}')
    except FhirValidationError as e:
        oo = operation_outcome(e.issues)
    parsed = parse_resource(json.dumps(oo).encode())
    assert parsed.resource["issue"][0]["expression"] == ["Observation.code"]
