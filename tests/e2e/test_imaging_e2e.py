"""End to end, through processes: DICOM posted as FHIR -> ingestion -> imaging -> inference -> fhir.derived."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from carepulse.imaging.dicom_files import radiograph_dicom
from carepulse.shared.fhir.codec import parse_resource
from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
DATA = ROOT / "services" / "imaging" / "data" / "pneumoniamnist_trainval.npz"
SR = ROOT / "tests" / "data" / "dicom" / "pydicom-test-files" / "test-SR.dcm"
TOPICS = Topics.with_prefix("")
FHIR = {"Content-Type": "application/fhir+json"}
# (photometric, rescale, window): both photometric interpretations, with and without rescale.
ENCODINGS = [("MONOCHROME2", None, False), ("MONOCHROME1", None, True), ("MONOCHROME2", (0.5, -100.0), True),
             ("MONOCHROME1", (0.5, -100.0), True), ("MONOCHROME2", None, True)]


@pytest.fixture(scope="module")
def imaging_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Inference (serving the committed model repository), ingestion and imaging as processes."""
    env = {"CAREPULSE_MODEL_REPOSITORY": str(MODELS), "CAREPULSE_INFERENCE_MODELS": "pneumonia-cxr",
           "CAREPULSE_INFERENCE_PROVIDERS": "cpu"}
    p = Platform(Settings(log_format="json"), tmp_path_factory.mktemp("imaging-platform"), free_ports=True,
                 only=["inference", "ingestion", "imaging"], extra_env=env)
    try:
        p.start(progress=lambda m: None)
        yield p
    finally:
        p.stop(progress=lambda m: None)


def direct(images_u8: np.ndarray) -> np.ndarray:
    """The model's output on the raw pixels, computed by the test itself."""
    session = ort.InferenceSession(str(MODELS / "pneumonia-cxr" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = (images_u8.astype(np.float32) / 255.0)[:, None]
    return session.run(["probability"], {"image": x})[0].reshape(-1)


def carrier(n: int, rid: str, patient: str, raw: bytes) -> dict[str, Any]:
    data = base64.b64encode(raw).decode()
    if n % 3 == 0:
        return {"resourceType": "DocumentReference", "id": rid, "status": "current",
                "subject": {"reference": f"Patient/{patient}"},
                "content": [{"attachment": {"contentType": "application/dicom", "data": data}}]}
    if n % 3 == 1:
        return {"resourceType": "Media", "id": rid, "status": "completed",
                "subject": {"reference": f"Patient/{patient}"},
                "content": {"contentType": "application/dicom", "data": data}}
    return {"resourceType": "Binary", "id": rid, "contentType": "application/dicom",
            "securityContext": {"reference": f"Patient/{patient}"}, "data": data}


def post_batch(platform: Platform, resources: list[dict[str, Any]]) -> None:
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                        for r in resources]}
    with httpx.Client(base_url=platform.ingestion_url, timeout=60) as c:
        r = c.post("/fhir", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    assert all(e["response"]["status"].startswith("2") for e in r.json()["entry"]), r.text


def test_dicom_through_ingestion_becomes_diagnostic_reports_matching_the_model(imaging_platform: Platform) -> None:
    with np.load(DATA) as npz:
        images, labels = npz["val_images"], npz["val_labels"].reshape(-1)
    # Five pneumonia and five normal validation images, each in another DICOM encoding and FHIR carrier.
    idx = [*np.flatnonzero(labels == 1)[:5], *np.flatnonzero(labels == 0)[:5]]
    expected = direct(images[idx])
    resources = []
    for n, i in enumerate(idx):
        photometric, rescale, window = ENCODINGS[n % len(ENCODINGS)]
        raw = radiograph_dicom(images[i], photometric=photometric, rescale=rescale, window=window,
                               patient_id=f"e2e-{i}")
        resources.append(carrier(n, f"cxr-{i}", f"e2e-{i}", raw))
    post_batch(imaging_platform, resources)

    reader = TopicReader(Settings(kafka_bootstrap_servers=imaging_platform.kafka or ""))
    try:
        derived = reader.read(TOPICS.derived, at_least=3 * len(idx), timeout=90, settle=1.0)
    finally:
        reader.close()
    docs = [r.json() for r in derived]
    observations = {d["id"]: d for d in docs if d["resourceType"] == "Observation"}
    reports = [d for d in docs if d["resourceType"] == "DiagnosticReport"]
    assert len(reports) == len(idx)
    got: dict[str, float] = {}
    for rep in reports:
        (ref,) = rep["result"]
        obs = observations[ref["reference"].split("/", 1)[1]]
        assert rep["status"] == "preliminary" and rep["subject"] == obs["subject"]
        got[rep["subject"]["reference"]] = obs["valueQuantity"]["value"]
        positive = obs["interpretation"][0]["coding"][0]["code"] == "POS"
        assert positive == ("suggestive of pneumonia" in rep["conclusion"])
    np.testing.assert_allclose([got[f"Patient/e2e-{i}"] for i in idx], expected, atol=1e-5)
    assert {r.key for r in derived} == {f"Patient/e2e-{i}" for i in idx}
    provenances = [d for d in docs if d["resourceType"] == "Provenance"]
    assert len(provenances) == len(idx)
    assert all(p["contained"][0]["deviceName"][0]["name"] == "pneumonia-cxr" for p in provenances)
    for r in derived:
        parse_resource(r.value)


def test_non_image_dicom_is_dead_lettered_with_its_reason(imaging_platform: Platform) -> None:
    post_batch(imaging_platform, [carrier(0, "sr-report", "e2e-sr", SR.read_bytes())])
    reader = TopicReader(Settings(kafka_bootstrap_servers=imaging_platform.kafka or ""))
    try:
        dead = reader.read(TOPICS.deadletter, at_least=1, timeout=60, settle=0.5)
    finally:
        reader.close()
    mine = [d for d in dead if json.loads(d.value).get("id") == "sr-report"]
    assert len(mine) == 1
    assert "not an image" in json.dumps(mine[0].headers)
    assert imaging_platform.failed_services() == []
