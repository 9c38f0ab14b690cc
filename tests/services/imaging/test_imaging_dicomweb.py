"""WADO-RS against a real PACS: Debian's Orthanc with its DICOMweb plugin, started by this test."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from imaging_fixtures import DICOM_DATA, InferenceThread, by_type, imaging_study, run
from pydicom.uid import generate_uid

from carepulse.imaging.dicom_files import radiograph_dicom as make_dicom
from carepulse.imaging.dicomweb import DicomWebClient, DicomWebRejected, DicomWebUnavailable, parse_multipart
from carepulse.imaging.processor import Outcome
from carepulse.shared.fhir.codec import parse_resource
from carepulse.shared.platform.processes import free_port

pytestmark = pytest.mark.integration
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Orthanc on a free loopback port with its own storage; the DICOMweb base URL."""
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    assert Path(binary).exists() and PLUGIN.exists(), "install orthanc + orthanc-dicomweb (tests/debian-packages.txt)"
    d = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "CAREPULSE-TEST", "StorageDirectory": str(d / "db"), "IndexDirectory": str(d / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpTimeout": 10,
    }
    (d / "orthanc.json").write_text(json.dumps(config))
    with open(d / "orthanc.log", "wb") as log:
        proc = subprocess.Popen([binary, str(d / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (d / "orthanc.log").read_text()[-2000:]
            try:
                if httpx.get(f"{base}/system", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Orthanc did not start"
            time.sleep(0.2)
        yield f"{base}/dicom-web"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def store(dicomweb: str, raw: bytes) -> None:
    r = httpx.post(dicomweb.removesuffix("/dicom-web") + "/instances", content=raw, timeout=10)
    assert r.status_code == 200, r.text


def test_imaging_study_instances_are_fetched_with_wado_rs(orthanc: str, inference: InferenceThread, val_set,
                                                          val_direct) -> None:
    images, _ = val_set
    study, cr_series, sr_series = generate_uid(), generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(3)]
    # One MONOCHROME1 with rescale, one MONOCHROME2, one multi-frame: all the PACS encodings at once.
    store(orthanc, make_dicom(images[10], photometric="MONOCHROME1", rescale=(0.5, -100.0), window=True,
                              patient_id="pacs-1", study_uid=study, series_uid=cr_series, sop_uid=sops[0]))
    store(orthanc, make_dicom(images[11], patient_id="pacs-1", study_uid=study, series_uid=cr_series, sop_uid=sops[1]))
    store(orthanc, make_dicom(images[12], frames=2, window=True, patient_id="pacs-1", study_uid=study,
                              series_uid=cr_series, sop_uid=sops[2]))
    resource = imaging_study("study-1", "pacs-1", orthanc, study, {cr_series: sops})
    resource["series"].append({"uid": sr_series, "modality": {"code": "SR"}})  # skipped: no image
    outcomes, published = run(inference.url, [(None, resource)])
    assert isinstance(outcomes[0], Outcome), outcomes[0]
    docs = by_type(published)
    probs = {o["identifier"][0]["value"].removeprefix("urn:oid:"): o["valueQuantity"]["value"]
             for o in docs["Observation"]}
    np.testing.assert_allclose([probs[s] for s in sops], val_direct[10:13], atol=1e-5)
    (report,) = docs["DiagnosticReport"]
    assert report["imagingStudy"] == [{"reference": "ImagingStudy/study-1"}]
    assert report["basedOn"] == [{"reference": "ServiceRequest/cxr-order-1"}]
    assert report["identifier"][0]["value"] == f"urn:oid:{study}"
    assert "holds no image" in report["conclusion"] and len(report["result"]) == 3
    assert all(o["partOf"] == [{"reference": "ImagingStudy/study-1"}] for o in docs["Observation"])
    for rec in published:
        parse_resource(rec.value)


def test_a_study_without_series_is_fetched_whole_and_skips_non_images(orthanc: str, inference, val_set,
                                                                      val_direct) -> None:
    study = generate_uid()
    store(orthanc, make_dicom(val_set[0][20], patient_id="pacs-2", study_uid=study))
    # A non-image object in the same study (a real SR, re-homed into this study) is skipped, not fatal.
    import io

    import pydicom

    sr = pydicom.dcmread(DICOM_DATA / "pydicom-test-files" / "test-SR.dcm")
    sr.StudyInstanceUID, sr.SOPInstanceUID, sr.PatientID = study, generate_uid(), "pacs-2"
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    buf = io.BytesIO()
    sr.save_as(buf)
    store(orthanc, buf.getvalue())
    outcomes, published = run(inference.url, [(None, imaging_study("study-2", "pacs-2", orthanc, study))])
    assert isinstance(outcomes[0], Outcome), outcomes[0]
    assert outcomes[0].images == 1 and outcomes[0].skipped == 1
    assert outcomes[0].probability == pytest.approx(val_direct[20], abs=1e-5)


def test_unknown_study_is_rejected_and_a_dead_pacs_is_transient(orthanc: str, inference) -> None:
    outcomes, _ = run(inference.url, [(None, imaging_study("s3", "p", orthanc, generate_uid()))])
    assert isinstance(outcomes[0], DicomWebRejected)
    dead = f"http://127.0.0.1:{free_port()}/dicom-web"
    outcomes, _ = run(inference.url, [(None, imaging_study("s4", "p", dead, generate_uid()))])
    assert isinstance(outcomes[0], DicomWebUnavailable) and isinstance(outcomes[0], ConnectionError)


def test_allowed_list_admits_the_configured_pacs(orthanc: str, inference, val_set) -> None:
    study = generate_uid()
    store(orthanc, make_dicom(val_set[0][30], patient_id="pacs-5", study_uid=study))
    outcomes, _ = run(inference.url, [(None, imaging_study("s5", "pacs-5", orthanc, study))],
                      DicomWebClient(allowed_prefixes=[orthanc]))
    assert isinstance(outcomes[0], Outcome)


def test_multipart_parser_handles_quoted_boundaries_and_preambles() -> None:
    body = (b"preamble\r\n--b0undary\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n"
            b"--b0undary\r\nContent-Type: application/dicom\r\n\r\nB\r\nB\r\n--b0undary--\r\n")
    assert parse_multipart(body, 'multipart/related; type="application/dicom"; boundary="b0undary"') == [
        b"AAA", b"B\r\nB"]
    with pytest.raises(DicomWebRejected):
        parse_multipart(body, "multipart/related")
