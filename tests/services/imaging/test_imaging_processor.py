"""The imaging core against the real inference service: DICOM in FHIR in, validated FHIR out."""

from __future__ import annotations

import numpy as np
import pytest
from imaging_fixtures import (
    MODEL,
    TOPICS,
    VARIANTS,
    InferenceThread,
    binary,
    by_type,
    document_reference,
    imaging_study,
    media,
    run,
)

from carepulse.imaging.classifier import InferenceUnavailable
from carepulse.imaging.dicom_files import radiograph_dicom as make_dicom
from carepulse.imaging.dicomweb import DicomWebClient, DicomWebRejected
from carepulse.imaging.operators import UnsupportedDicom
from carepulse.imaging.processor import Outcome
from carepulse.imaging.sources import UnsupportedInput
from carepulse.shared.fhir.codec import parse_resource


def test_probabilities_match_the_model_for_every_encoding(inference: InferenceThread, val_set, val_direct) -> None:
    images, _ = val_set
    idx = list(range(0, 40))
    records = []
    for n, i in enumerate(idx):
        _, photometric, rescale, window = VARIANTS[n % len(VARIANTS)]
        raw = make_dicom(images[i], photometric=photometric, rescale=rescale, window=window, patient_id=f"p{i}")
        maker = (document_reference, media, binary)[n % 3]
        records.append((None, maker(f"img-{i}", f"p{i}", raw)))
    outcomes, published = run(inference.url, records)
    assert all(isinstance(o, Outcome) for o in outcomes), outcomes
    got = np.array([o.probability for o in outcomes])  # type: ignore[union-attr]
    np.testing.assert_allclose(got, val_direct[idx], atol=1e-5)
    docs = by_type(published)
    assert len(docs["Observation"]) == len(docs["DiagnosticReport"]) == len(docs["Provenance"]) == len(idx)
    # Every record on fhir.derived is keyed by its patient and is valid R4.
    assert all(rec.topic == TOPICS.derived and rec.key.startswith("Patient/p") for rec in published)
    for rec in published:
        parse_resource(rec.value)


def test_report_observation_and_provenance_say_what_clinicians_and_care_need(inference, val_set, val_direct) -> None:
    images, labels = val_set
    pos = int(np.flatnonzero((labels == 1) & (val_direct > 0.9))[0])
    neg = int(np.flatnonzero((labels == 0) & (val_direct < 0.1))[0])
    records = [(None, media("m-pos", "pp", make_dicom(images[pos]))),
               (None, media("m-neg", "pn", make_dicom(images[neg])))]
    outcomes, published = run(inference.url, records)
    assert [o.positive for o in outcomes] == [True, False]  # type: ignore[union-attr]
    docs = by_type(published)
    reports = {d["subject"]["reference"]: d for d in docs["DiagnosticReport"]}
    obs = {d["subject"]["reference"]: d for d in docs["Observation"]}
    rp, rn = reports["Patient/pp"], reports["Patient/pn"]
    assert rp["status"] == "preliminary" and rp["code"]["coding"][0] == {
        "system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}
    assert "suggestive of pneumonia" in rp["conclusion"] and rp["conclusionCode"][0]["coding"][0]["code"] == "233604007"
    assert "No radiographic sign" in rn["conclusion"]
    assert rp["media"] == [{"link": {"reference": "Media/m-pos"}}]
    assert rp["result"] == [{"reference": f"Observation/{obs['Patient/pp']['id']}"}]
    o = obs["Patient/pp"]
    assert o["valueQuantity"]["value"] == pytest.approx(val_direct[pos], abs=1e-5)
    assert o["interpretation"][0]["coding"][0]["code"] == "POS"
    assert obs["Patient/pn"]["interpretation"][0]["coding"][0]["code"] == "NEG"
    assert o["derivedFrom"] == [{"reference": "Media/m-pos"}]
    prov = next(p for p in docs["Provenance"] if f"DiagnosticReport/{rp['id']}" in
                [t["reference"] for t in p["target"]])
    device = prov["contained"][0]
    assert device["resourceType"] == "Device" and device["deviceName"][0]["name"] == MODEL
    assert device["version"][0]["value"] == "1"
    assert prov["agent"][0]["who"]["reference"] == "#model"


def test_replay_gives_the_same_ids(inference, val_set) -> None:
    rec = (None, document_reference("d1", "px", make_dicom(val_set[0][3])))
    _, first = run(inference.url, [rec])
    _, second = run(inference.url, [rec])
    assert [r.value for r in first] == [r.value for r in second]


@pytest.mark.parametrize(("record", "error", "reason"), [
    (b"{not json", UnsupportedInput, "not JSON"),
    ({"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p"}}, UnsupportedInput,
     "carries no image"),
    ({"resourceType": "DocumentReference", "id": "d", "subject": {"reference": "Patient/p"},
      "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}]}, UnsupportedInput,
     "no application/dicom"),
    ({"resourceType": "Media", "id": "m", "subject": {"reference": "Patient/p"},
      "content": {"contentType": "application/dicom", "url": "http://pacs/x"}}, UnsupportedInput, "no inline data"),
    ({"resourceType": "Binary", "id": "b", "contentType": "application/dicom", "data": "AAAA"}, UnsupportedInput,
     "names no Patient"),
    ({"resourceType": "Media", "id": "m", "subject": {"reference": "Patient/p"},
      "content": {"contentType": "application/dicom", "data": "%%%"}}, UnsupportedInput, "base64"),
    ({"resourceType": "ImagingStudy", "id": "s", "subject": {"reference": "Patient/p"},
      "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}]}, UnsupportedInput, "no contained"),
])
def test_records_that_can_never_work_raise_value_errors(inference, record, error, reason) -> None:
    outcomes, published = run(inference.url, [(None, record)])
    assert isinstance(outcomes[0], error) and isinstance(outcomes[0], ValueError)
    assert reason in str(outcomes[0]) and not published


def test_non_image_dicom_is_dead_letter_material(inference) -> None:
    from imaging_fixtures import DICOM_DATA

    sr = (DICOM_DATA / "pydicom-test-files" / "test-SR.dcm").read_bytes()
    outcomes, published = run(inference.url, [(None, document_reference("sr", "p", sr))])
    assert isinstance(outcomes[0], UnsupportedDicom) and "not an image" in str(outcomes[0]) and not published


def test_a_study_endpoint_outside_the_allowed_list_is_refused(inference) -> None:
    study = imaging_study("s1", "p", "http://10.0.0.1/dicom-web", "1.2.3", {"1.2.3.4": ["1.2.3.4.5"]})
    outcomes, _ = run(inference.url, [(None, study)], DicomWebClient(allowed_prefixes=["http://127.0.0.1:1/dicom-web"]))
    assert isinstance(outcomes[0], DicomWebRejected)


def test_inference_down_is_transient_not_dead_letter(val_set) -> None:
    from carepulse.shared.platform.processes import free_port

    rec = (None, media("m", "p", make_dicom(val_set[0][0])))
    outcomes, published = run(f"127.0.0.1:{free_port()}", [rec])
    assert isinstance(outcomes[0], InferenceUnavailable) and isinstance(outcomes[0], ConnectionError)
    assert not published
