"""Input limits of the imaging worker: over a limit the record raises a ValueError naming the limit (what
the stream loop dead-letters with that reason); under it, the record is processed."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from imaging_fixtures import MODEL, TOPICS, InferenceThread, document_reference, imaging_study, media

from carepulse.imaging.classifier import Classifier
from carepulse.imaging.dicom_files import base_dataset, to_bytes
from carepulse.imaging.dicom_files import radiograph_dicom as make_dicom
from carepulse.imaging.dicomweb import DicomWebClient, DicomWebTooLarge
from carepulse.imaging.operators import DicomTooLarge, UnsupportedDicom, prepare
from carepulse.imaging.processor import ImagingProcessor, Outcome
from carepulse.imaging.settings import ImagingSettings
from carepulse.imaging.sources import InputLimits, InputTooLarge, UnsupportedInput
from carepulse.shared.inference.client import InferenceClient
from carepulse.shared.kafka.streams import Outgoing


def process(url: str, record: dict[str, Any] | bytes, limits: InputLimits,
            fetcher: Any = None) -> tuple[Outcome | Exception, list[Outgoing]]:
    published: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        published.append(rec)

    async def main() -> Outcome | Exception:
        async with InferenceClient(url, deadline_s=5, retries=0) as client:
            proc = ImagingProcessor(TOPICS, publish, Classifier(client, MODEL), fetcher or DicomWebClient(),
                                    source_name="test", limits=limits, clock=lambda: 1_700_000_000.0)
            value = record if isinstance(record, bytes) else json.dumps(record).encode()
            try:
                return await proc.on_record(None, value, [])
            except Exception as exc:  # noqa: BLE001 - the test looks at what the stream loop would see
                return exc

    return asyncio.run(main()), published


def image(val_set: tuple[np.ndarray, np.ndarray], **kw: Any) -> bytes:
    return make_dicom(val_set[0][0], **kw)


def test_settings_defaults_are_the_limits_the_processor_uses_by_default() -> None:
    assert ImagingSettings().input_limits == InputLimits()
    assert ImagingSettings(imaging_max_frames=3).input_limits.max_frames == 3


def test_record_over_the_byte_limit_is_refused_under_it_processed(inference: InferenceThread, val_set) -> None:
    record = media("m1", "p1", image(val_set))
    size = len(json.dumps(record).encode())
    over, published = process(inference.url, record, InputLimits(max_record_bytes=size - 1))
    assert isinstance(over, InputTooLarge) and isinstance(over, ValueError) and not published
    assert f"record is {size} bytes" in str(over) and "CAREPULSE_IMAGING_MAX_RECORD_BYTES" in str(over)
    under, published = process(inference.url, record, InputLimits(max_record_bytes=size))
    assert isinstance(under, Outcome) and under.images == 1 and published


@pytest.mark.parametrize(("limits", "dicom", "reason"), [
    (InputLimits(max_instance_bytes=1000), {}, "CAREPULSE_IMAGING_MAX_INSTANCE_BYTES"),
    (InputLimits(max_frames=2), {"frames": 3}, "3 frames, more than the 2 allowed"),
    (InputLimits(max_pixels=28 * 28 - 1), {}, "28x28 = 784 pixels per frame"),
])
def test_dicom_over_a_limit_is_dead_letter_material(inference: InferenceThread, val_set, limits: InputLimits,
                                                     dicom: dict[str, Any], reason: str) -> None:
    raw = image(val_set, **dicom)
    over, published = process(inference.url, document_reference("d1", "p1", raw), limits)
    assert isinstance(over, UnsupportedDicom) and not published
    assert str(over).startswith("no usable image: object 1:") and reason in str(over)


def test_dicom_at_the_limits_is_processed(inference: InferenceThread, val_set) -> None:
    raw = image(val_set, frames=2)
    limits = InputLimits(max_instance_bytes=len(raw), max_frames=2, max_pixels=28 * 28)
    outcome, published = process(inference.url, document_reference("d1", "p1", raw), limits)
    assert isinstance(outcome, Outcome) and outcome.images == 1 and outcome.skipped == 0 and published


def test_one_object_over_the_limit_is_skipped_and_noted_while_others_are_classified(inference, val_set) -> None:
    small, big = image(val_set), image(val_set, frames=4)
    record = {"resourceType": "DocumentReference", "id": "d2", "status": "current",
              "subject": {"reference": "Patient/p2"},
              "content": [document_reference("x", "p2", raw)["content"][0] for raw in (small, big)]}
    outcome, published = process(inference.url, record, InputLimits(max_instance_bytes=len(small)))
    assert isinstance(outcome, Outcome) and (outcome.images, outcome.skipped) == (1, 1)
    report = next(json.loads(r.value) for r in published if b'"DiagnosticReport"' in r.value)
    assert "CAREPULSE_IMAGING_MAX_INSTANCE_BYTES" in json.dumps(report)


def test_a_header_claiming_a_huge_image_is_refused_before_decoding() -> None:
    """A few bytes of pixel data that claim 60000 x 60000: the default limits refuse it from the header."""
    ds = base_dataset("p1", "1.2.3", "1.2.3.4", "1.2.3.4.5", "1.2.840.10008.5.1.4.1.1.1")
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 60000, 60000, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = b"\0" * 64
    with pytest.raises(DicomTooLarge, match="CAREPULSE_IMAGING_MAX_PIXELS"):
        prepare(to_bytes(ds))


def test_json_nested_too_deep_is_refused_not_a_crash(inference: InferenceThread) -> None:
    over, _ = process(inference.url, b"[" * 200_000 + b"]" * 200_000, InputLimits())
    assert isinstance(over, UnsupportedInput) and "nests JSON" in str(over)


class Pacs:
    """A WADO-RS server on loopback answering every study with the same multipart body."""

    def __init__(self, parts: list[bytes], declare_length: bool) -> None:
        boundary = "cp-boundary"
        body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
                        for p in parts) + b"--" + boundary.encode() + b"--\r\n"
        self.size = len(body)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                self.send_response(200)
                self.send_header("Content-Type", f'multipart/related; type="application/dicom"; boundary={boundary}')
                if declare_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)  # without a length, the end of the body is the end of the connection

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(params=[True, False], ids=["content-length", "streamed"])
def pacs(request: pytest.FixtureRequest, val_set) -> Iterator[Pacs]:
    p = Pacs([image(val_set), image(val_set, photometric="MONOCHROME1")], declare_length=request.param)
    yield p
    p.server.shutdown()
    p.server.server_close()


def test_a_dicomweb_answer_over_the_fetch_limit_is_refused_under_it_classified(inference: InferenceThread,
                                                                               pacs: Pacs) -> None:
    study = imaging_study("s1", "p1", pacs.url, "1.2.3")
    over, published = process(inference.url, study, InputLimits(),
                              DicomWebClient(max_bytes=pacs.size - 1))
    assert isinstance(over, DicomWebTooLarge) and isinstance(over, ValueError) and not published
    assert "CAREPULSE_IMAGING_MAX_FETCH_BYTES" in str(over)
    under, published = process(inference.url, study, InputLimits(), DicomWebClient(max_bytes=pacs.size))
    assert isinstance(under, Outcome) and under.images == 2 and published
