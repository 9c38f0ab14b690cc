"""Contract tests: care reads the findings the imaging and NLP services really write.

The builders of those services make the inputs, so a change of their output that care
no longer understands fails here (care never imports them at run time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from carepulse.care.context import entries
from carepulse.imaging.resources import Finding, ModelRef, Source, diagnostic_report, observation

pytestmark = pytest.mark.integration
AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def imaging(probability: float) -> list[dict]:
    src = Source("ImagingStudy/s1", "Patient/p1", "1.2.3", AT.isoformat().replace("+00:00", "Z"))
    f = Finding("0d8a9a5e-6c3f-4c9e-9d5e-5b8f2f0b1a11", probability, "1.2.3.4", "1.2.3.5", ("decode",))
    model = ModelRef("pneumonia-cxr", "1", 0.5)
    return [observation(f, src, model, AT.timestamp()),
            diagnostic_report("6f1e4c2a-9b7d-4e8f-a3c5-2d1b0e9f8a77", [f], src, model, AT.timestamp())]


def test_a_positive_pneumonia_finding_is_an_infection_signal() -> None:
    found = [e for r in imaging(0.93) for e in entries(r, derived=True)]
    assert {e.section for e in found} == {"findings"}
    assert all(e.value["infection"] == "pneumonia" and e.value["active"] for e in found)
    assert all(e.effective == AT.timestamp() for e in found)


def test_a_negative_finding_is_remembered_but_is_no_infection_signal() -> None:
    found = [e for r in imaging(0.08) for e in entries(r, derived=True)]
    assert found and not any(e.value["active"] for e in found)


def test_nlp_conditions_are_findings_and_refuted_ones_do_not_count() -> None:
    base = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
            "recordedDate": (AT - timedelta(hours=1)).isoformat(),
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J18.9",
                                 "display": "Pneumonia, unspecified organism"}], "text": "pneumonia"}}
    affirmed = dict(base, id="c1", verificationStatus={"coding": [{"code": "provisional"}]})
    refuted = dict(base, id="c2", verificationStatus={"coding": [{"code": "refuted"}]})
    [a] = entries(json.loads(json.dumps(affirmed)), derived=True)
    [r] = entries(refuted, derived=True)
    assert a.section == r.section == "findings"
    assert a.value["infection"] and a.value["active"]
    assert not r.value["active"]
