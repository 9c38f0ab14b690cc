"""Helpers of the imaging tests: DICOM files built from real images, and a live inference server.

DICOM objects are built with pydicom from the PneumoniaMNIST validation images (so the model's
direct output on the same pixels is known) in the encodings a PACS sends: MONOCHROME1 and 2,
with and without Rescale Slope/Intercept, with and without a window, multi-frame, and JPEG.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnxruntime as ort
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from carepulse.imaging.classifier import Classifier
from carepulse.imaging.dicom_files import CR_IMAGE_STORAGE, base_dataset, to_bytes
from carepulse.imaging.dicomweb import DicomWebClient
from carepulse.imaging.processor import ImagingProcessor, Outcome
from carepulse.inference.testing import ServerThread, local_settings
from carepulse.shared.inference.client import InferenceClient
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.topics import Topics

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "models"
MODEL = "pneumonia-cxr"
DATA = ROOT / "services" / "imaging" / "data" / "pneumoniamnist_trainval.npz"
DICOM_DATA = ROOT / "tests" / "data" / "dicom"
TOPICS = Topics.with_prefix("")

# (name, photometric, rescale (slope, intercept) or None, window?) -- every way the tests encode an image.
VARIANTS: list[tuple[str, str, tuple[float, float] | None, bool]] = [
    ("mono2", "MONOCHROME2", None, False),
    ("mono2-window", "MONOCHROME2", None, True),
    ("mono1", "MONOCHROME1", None, True),
    ("mono2-rescale", "MONOCHROME2", (0.5, -100.0), True),
    ("mono1-rescale", "MONOCHROME1", (0.5, -100.0), True),
]


def validation_set() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DATA) as npz:
        return np.asarray(npz["val_images"]), np.asarray(npz["val_labels"]).reshape(-1)


def direct_probabilities(images_u8: np.ndarray) -> np.ndarray:
    """The model's own output on the raw pixels (ONNX Runtime in the test, never in the service)."""
    path = next(iter(sorted((MODELS / MODEL).glob("[0-9]*/model.onnx"), key=lambda p: int(p.parent.name))[-1:]))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = (images_u8.astype(np.float32) / 255.0)[:, None, :, :]
    return np.concatenate([session.run(["probability"], {"image": x[i:i + 64]})[0]
                           for i in range(0, len(x), 64)]).reshape(-1)


def jpeg_dicom(jpeg: bytes, *, patient_id: str = "p1") -> bytes:
    """A JPEG baseline secondary capture, the JPEG stream encapsulated as is (what a PACS export holds)."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as img:
        width, height, mode = img.width, img.height, img.mode
    ds = base_dataset(patient_id, generate_uid(), generate_uid(), generate_uid(), SecondaryCaptureImageStorage)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Modality = "OT"
    ds.Rows, ds.Columns = height, width
    ds.SamplesPerPixel = 1 if mode == "L" else 3
    ds.PhotometricInterpretation = "MONOCHROME2" if mode == "L" else "YBR_FULL_422"
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([jpeg])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return to_bytes(ds)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def document_reference(rid: str, patient: str, raw: bytes) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "id": rid, "status": "current",
            "subject": {"reference": f"Patient/{patient}"},
            "content": [{"attachment": {"contentType": "application/dicom", "data": b64(raw)}}]}


def media(rid: str, patient: str, raw: bytes) -> dict[str, Any]:
    return {"resourceType": "Media", "id": rid, "status": "completed", "subject": {"reference": f"Patient/{patient}"},
            "content": {"contentType": "application/dicom", "data": b64(raw)}}


def binary(rid: str, patient: str, raw: bytes) -> dict[str, Any]:
    return {"resourceType": "Binary", "id": rid, "contentType": "application/dicom",
            "securityContext": {"reference": f"Patient/{patient}"}, "data": b64(raw)}


def imaging_study(rid: str, patient: str, base_url: str, study_uid: str,
                  series: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy", "id": rid, "status": "available",
        "subject": {"reference": f"Patient/{patient}"},
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}],
        "started": "2024-01-02T10:15:00Z",
        "basedOn": [{"reference": "ServiceRequest/cxr-order-1"}],
        "contained": [{"resourceType": "Endpoint", "id": "pacs", "status": "active",
                       "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                                          "code": "dicom-wado-rs"},
                       "payloadType": [{"text": "DICOM"}], "address": base_url}],
        "endpoint": [{"reference": "#pacs"}],
        "series": [{"uid": s, "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CR"},
                    "instance": [{"uid": i, "sopClass": {"system": "urn:ietf:rfc:3986",
                                                         "code": f"urn:oid:{CR_IMAGE_STORAGE}"}} for i in inst]}
                   for s, inst in (series or {}).items()],
    }


class InferenceThread(ServerThread):
    """The real inference service, in-process on its own loop, serving the committed model repository."""

    def __init__(self, repository: Path = MODELS, **overrides: Any) -> None:
        super().__init__(local_settings(repository, **{"inference_models": MODEL, **overrides}))

    @property
    def url(self) -> str:
        return self.grpc_url


def run(url: str, records: list[tuple[bytes | None, dict[str, Any] | bytes]],
        fetcher: Any = None) -> tuple[list[Outcome | Exception], list[Outgoing]]:
    """Process ``records`` concurrently (as several partitions would); outcomes or the error raised."""
    published: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        published.append(rec)

    async def main() -> list[Outcome | Exception]:
        async with InferenceClient(url, deadline_s=5, retries=0) as client:
            proc = ImagingProcessor(TOPICS, publish, Classifier(client, MODEL), fetcher or DicomWebClient(),
                                    source_name="test", clock=lambda: 1_700_000_000.0)
            coros = [proc.on_record(k, v if isinstance(v, bytes) else json.dumps(v).encode(), [])
                     for k, v in records]
            return list(await asyncio.gather(*coros, return_exceptions=True))

    return asyncio.run(main()), published


def by_type(published: list[Outgoing]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in published:
        doc = json.loads(rec.value)
        out.setdefault(doc["resourceType"], []).append(doc)
    return out
