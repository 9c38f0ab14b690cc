"""Note identifiers blanked before the NLP reads a note, checked against the real patients of the
Synthea bulk export: every name, identifier, birth date and phone number of a note's own patient."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from carepulse.nlp.deidentify import deidentify

BULK = Path(__file__).resolve().parents[2] / "data" / "fhir" / "synthea-bulk-10-patients-ndjson"


def ndjson(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (BULK / name).read_text().splitlines() if line.strip()]


def identifiers(patient: dict[str, Any]) -> set[str]:
    """What identifies a patient: names, identifier values, birth date, phone numbers, address lines."""
    out: set[str] = set()
    for n in patient.get("name", []):
        out |= {*n.get("given", []), n.get("family", "")}
    out |= {i["value"] for i in patient.get("identifier", [])}
    out |= {t["value"] for t in patient.get("telecom", [])}
    out |= {line for a in patient.get("address", []) for line in a.get("line", [])}
    out.add(patient.get("birthDate", ""))
    return {s for s in out if s}


@pytest.fixture(scope="module")
def patients() -> dict[str, dict[str, Any]]:
    return {f"Patient/{p['id']}": p for p in ndjson("Patient.000.ndjson")}


@pytest.fixture(scope="module")
def notes() -> list[tuple[str, str]]:
    """(patient reference, note text) of every DocumentReference of the export."""
    return [(d["subject"]["reference"], base64.b64decode(d["content"][0]["attachment"]["data"]).decode())
            for d in ndjson("DocumentReference.000.ndjson")]


def assert_only_blanked(original: str, blanked: str) -> None:
    """Same length, every character either kept or replaced by 'X' (offsets still point at the note)."""
    assert len(blanked) == len(original)
    assert all(b == o or b == "X" for o, b in zip(original, blanked, strict=True))


def test_every_synthea_note_loses_its_patients_names_and_nothing_else(patients, notes) -> None:
    assert len(notes) == 1215
    named = 0
    for ref, text in notes:
        secrets = identifiers(patients[ref])
        blanked = deidentify(text)
        assert_only_blanked(text, blanked)
        named += any(s in text for s in secrets)
        assert [s for s in secrets if s in blanked] == [], ref
        # What was blanked is the patient's names, nothing clinical.
        for m in re.finditer(r"X+", blanked):
            assert text[m.start():m.end()] in secrets or set(text[m.start():m.end()]) == {"X"}, text[m.start():m.end()]
    assert named == len(notes)  # every note names its patient: the test has something to find


def test_single_names_and_one_digit_suffixes_are_blanked(notes) -> None:
    """Synthea subject lines with one name ("Karena692") or a 1-digit suffix ("Donetta1")."""
    text = next(t for _, t in notes if "\nKarena692\n" in t)
    assert "Karena692" not in deidentify(text)
    text = next(t for _, t in notes if "Elisa944 Donetta1" in t)
    assert "Donetta1" not in deidentify(text) and "Elisa944" not in deidentify(text)


def test_a_labelled_header_from_real_patient_data_is_blanked(patients, notes) -> None:
    ref, body = next((r, t) for r, t in notes if "O'Keefe" not in t and "History of Present Illness" in t)
    p = patients[ref]
    name = p["name"][0]
    mrn = next(i["value"] for i in p["identifier"] if i.get("type", {}).get("coding", [{}])[0].get("code") == "MR")
    ssn = next(i["value"] for i in p["identifier"] if i["system"].endswith("us-ssn"))
    passport = next(i["value"] for i in p["identifier"] if "passport" in i["system"])
    address = p["address"][0]
    header = (f"Patient: {' '.join(name.get('prefix', []))} {' '.join(name['given'])} {name['family']}\n"
              f"MRN: {mrn}\nDOB: {p['birthDate']}\nSSN: {ssn}\nPassport: {passport}\n"
              f"Phone: {p['telecom'][0]['value']}\nAddress: {address['line'][0]}, {address['city']}\n")
    text = header + body
    blanked = deidentify(text)
    assert_only_blanked(text, blanked)
    leaked = [s for s in identifiers(p) | {address["city"]} if s in blanked]
    assert leaked == []
    assert blanked.startswith("Patient: ") and "\nMRN: X" in blanked and "\nDOB: X" in blanked
    assert blanked[len(header):] == deidentify(body)  # the body is blanked on its own terms


@pytest.mark.parametrize(("text", "secret"), [
    ("Seen today with Mrs. O'Keefe54 for follow-up.", "O'Keefe54"),
    ("Mr. Smith reports chest pain.", "Smith"),
    ("Dr. Houston reviewed the film.", "Houston"),
    ("She was born on 1927-05-21 in Kansas.", "1927-05-21"),
    ("Birth date: 05/21/1927", "05/21/1927"),
    ("Call back on (555) 810-7203 or 555.810.7203.", "810-7203"),
    ("SSN 999-94-5397 on file.", "999-94-5397"),
    ("Patient ID: 129c6ac7-8d06-89de-ad63-0204a93e76c3", "129c6ac7"),
    ("E-mail: sumiko@example.org", "sumiko@example.org"),
])
def test_identifier_shapes_are_blanked(text: str, secret: str) -> None:
    blanked = deidentify(text)
    assert_only_blanked(text, blanked)
    assert secret not in blanked


@pytest.mark.parametrize("text", [
    "Patient received Ad26.COV2.S vaccine and vitamin B12; COVID-19 PCR negative.",
    "Hemoglobin A1c 7.2%. Vitamin D3 supplementation. Td (adult) 5 Lf/2 Lf.",
    "Patient is a 28 year-old female. Patient has a history of stress (finding).",
    "\n".join(["line"] * 20) + "\nPatient: denies chest pain, tolerating diet.",
])
def test_clinical_text_is_kept(text: str) -> None:
    assert deidentify(text) == text
