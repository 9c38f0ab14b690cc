"""The PHI filter that setup_logging installs: a Synthea patient logged every careless way there is
(message, arguments, structured fields, exception text, a library's logger) leaves no name,
identifier, birth date, address or phone number in the output; ids, codes and counts survive."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carepulse.shared.logs import REDACTED, redact_fields, redact_text, setup_logging

SYNTHEA = Path(__file__).parents[1] / "data" / "fhir" / "synthea"


def synthea_patient() -> dict[str, Any]:
    f = next(SYNTHEA.glob("Pablo44_*.json"))
    return next(e["resource"] for e in json.loads(f.read_text())["entry"]
                if e["resource"]["resourceType"] == "Patient")


def phi_of(patient: dict[str, Any]) -> list[str]:
    """The strings of a Patient that must never be logged (its logical id may be)."""
    out = [n for name in patient["name"] for n in [name["family"], *name.get("given", [])]]
    out += [i["value"] for i in patient.get("identifier", []) if i["value"] != patient["id"]]
    out += [patient["birthDate"]]
    out += [a["line"][0] for a in patient.get("address", [])] + [t["value"] for t in patient.get("telecom", [])]
    return out


@pytest.fixture
def logged(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level

    def setup(fmt: str) -> None:
        setup_logging("DEBUG", fmt)

    yield setup
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_patient_logged_carelessly_leaks_nothing(logged: Any, capsys: pytest.CaptureFixture[str],
                                                   fmt: str) -> None:
    logged(fmt)
    patient = synthea_patient()
    phi = phi_of(patient)
    assert len(phi) >= 6 and "999-20-7466" in phi and "2015-10-20" in phi
    log = logging.getLogger("carepulse.test")
    log.info("received %s", json.dumps(patient))
    log.info("received %r", patient)
    log.warning("patient %s %s born %s at %s, phone %s", patient["name"][0]["given"][0],
                patient["name"][0]["family"], patient["birthDate"], patient["address"][0]["line"][0],
                patient["telecom"][0]["value"])
    log.info("accepted", extra={"fields": {"ref": f"Patient/{patient['id']}", "count": 3,
                                           "family": patient["name"][0]["family"], "resource": patient,
                                           "ssn": patient["identifier"][-1]["value"], "birth_date": "2015-10-20"}})
    try:
        raise ValueError(f"cannot route {json.dumps(patient)}")
    except ValueError:
        log.exception("unexpected error")
    logging.getLogger("aiokafka.consumer").warning("record value %s", json.dumps(patient))
    out = capsys.readouterr().err
    assert out.count("\n") == 6 if fmt == "json" else out.count("carepulse.test:") == 5
    leaked = [p for p in phi if p in out]
    assert leaked == []
    assert f"Patient/{patient['id']}" in out and "ValueError" in out
    if fmt == "json":
        lines = [json.loads(x) for x in out.splitlines()]
        fields = next(x for x in lines if x["msg"] == "accepted")
        assert fields["count"] == 3 and fields["ref"] == f"Patient/{patient['id']}"
        assert fields["family"] == fields["resource"] == fields["ssn"] == REDACTED
        assert "exc" in lines[4] and "Traceback" in lines[4]["exc"]


def test_ids_codes_counts_and_durations_pass() -> None:
    fields = {"ref": "Observation/heart-rate", "event_id": "5f0c3a52-3b7e-4a51-9d0e-6c1f8f6f2a10",
              "topic": "fhir.observation", "offset": 1234, "partition": 2, "duration_ms": 12.5, "code": "8867-4",
              "records": 10, "model": "pneumonia-cxr", "retry_in_s": 2.0, "patient": "Patient/p1",
              "name": "Pablo44", "note": "pt seen today", "dob": "2015-10-20"}
    out = redact_fields(fields)
    assert {k: out[k] for k in ("name", "note", "dob")} == {"name": REDACTED, "note": REDACTED, "dob": REDACTED}
    assert {k: v for k, v in out.items() if v != REDACTED} == {k: v for k, v in fields.items()
                                                               if k not in ("name", "note", "dob")}
    plain = "consumer fhir.observation[2] at offset 1234 after 12.5 ms from 127.0.0.1:9092 (Patient/p1)"
    assert redact_text(plain) == plain


@pytest.mark.parametrize(("text", "gone"), [
    ("lives at 990 Dare Rue Unit 50, North Attleborough", "990 Dare Rue Unit 50"),
    ("call (555) 266-1181 now", "266-1181"),
    ("SSN 999-72-9981", "999-72-9981"),
    ("MRN: A1234567", "A1234567"),
    ("born 12/12/2011", "12/12/2011"),
    ("mail jane.doe@example.org", "jane.doe@example.org"),
    ("pydantic: input_value='Keeling57', input_type=str", "Keeling57"),
])
def test_patterns(text: str, gone: str) -> None:
    assert gone not in redact_text(text)
