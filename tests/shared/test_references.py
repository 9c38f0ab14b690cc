from __future__ import annotations

from carepulse.shared.fhir.references import own_reference, patient_key, resolve_reference


def test_patient_itself() -> None:
    assert patient_key({"resourceType": "Patient", "id": "p1"}) == "Patient/p1"


def test_subject_and_patient_elements() -> None:
    assert patient_key({"resourceType": "Observation", "subject": {"reference": "Patient/p2"}}) == "Patient/p2"
    assert patient_key({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p3"}}) == "Patient/p3"


def test_bundle_local_and_absolute_references() -> None:
    local = {"urn:uuid:abc": "Patient/abc"}
    assert patient_key({"resourceType": "Condition", "subject": {"reference": "urn:uuid:abc"}}, local) == "Patient/abc"
    assert resolve_reference("https://ehr.example/fhir/Patient/9/_history/2") == "Patient/9"


def test_no_patient() -> None:
    r = {"resourceType": "Observation", "id": "o", "subject": {"reference": "Group/g"}}
    assert patient_key(r) is None
    assert own_reference(r) == "Observation/o"
