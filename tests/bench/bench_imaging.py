"""Imaging throughput: images/s through the whole imaging path vs ONNX Runtime in-process.

Cases (PneumoniaMNIST validation images, encoded as DICOM the way a PACS sends them):
* ``ORT in-process, batch 1`` -- ``InferenceSession.run`` on one pre-scaled image at a time: the baseline;
* ``ORT in-process, batch 64`` -- the same session on batches of 64 (the compute ceiling);
* ``pre-processing only`` -- DICOM bytes -> model tensor (pydicom decode, rescale, VOI, invert, crop, resize);
* ``imaging path, N concurrent records`` -- ``ImagingProcessor.on_record`` on Media records carrying DICOM:
  JSON + base64, pre-processing on a thread, a gRPC call to the inference service (a subprocess,
  dynamic batching on), the FHIR Observation/DiagnosticReport/Provenance built and handed to publish
  (a no-op here: Kafka is measured by the ingestion bench);
* ``imaging path, studies of 16 images`` -- one record carrying 16 images: one batched inference call.
The ratio is images/s over the in-process batch-1 baseline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pathlib
import sys
import time

import numpy as np
import onnxruntime as ort

from carepulse.imaging.classifier import Classifier
from carepulse.imaging.dicom_files import radiograph_dicom
from carepulse.imaging.operators import prepare
from carepulse.imaging.processor import ImagingProcessor
from carepulse.shared.inference.client import InferenceClient
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.platform.processes import free_port, spawn, stop
from carepulse.shared.platform.supervisor import wait_ready
from carepulse.shared.topics import Topics

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
DATA = ROOT / "services" / "imaging" / "data" / "pneumoniamnist_trainval.npz"
DURATION_S = float(os.environ.get("CAREPULSE_BENCH_SECONDS", "3"))


def _row(case: str, count: int, elapsed: float, latencies: list[float], base: float | None, notes: str) -> dict:
    rate = count / elapsed
    lat = sorted(latencies)
    return {"bench": "imaging", "case": case, "throughput_per_s": round(rate, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
            "ratio_vs_inprocess": round(rate / base, 2) if base else 1.0, "notes": notes}


def _ort(images: np.ndarray, batch: int) -> tuple[int, float, list[float]]:
    opts = ort.SessionOptions()
    session = ort.InferenceSession(str(MODELS / "pneumonia-cxr" / "1" / "model.onnx"), opts,
                                   providers=["CPUExecutionProvider"])
    x = (images.astype(np.float32) / 255.0)[:, None]
    n, lat, start = 0, [], time.perf_counter()
    while time.perf_counter() - start < DURATION_S:
        i = (n % (len(x) - batch)) if len(x) > batch else 0
        t = time.perf_counter()
        session.run(["probability"], {"image": x[i:i + batch]})
        lat.append(time.perf_counter() - t)
        n += batch
    return n, time.perf_counter() - start, lat


def _preprocess(raws: list[bytes]) -> tuple[int, float, list[float]]:
    n, lat, start = 0, [], time.perf_counter()
    while time.perf_counter() - start < DURATION_S:
        t = time.perf_counter()
        prepare(raws[n % len(raws)])
        lat.append(time.perf_counter() - t)
        n += 1
    return n, time.perf_counter() - start, lat


def _start_inference(run_dir: pathlib.Path) -> tuple[object, str]:
    grpc_port, metrics_port = free_port(), free_port()
    env = {**os.environ, "CAREPULSE_MODEL_REPOSITORY": str(MODELS), "CAREPULSE_INFERENCE_MODELS": "pneumonia-cxr",
           "CAREPULSE_INFERENCE_GRPC_PORT": str(grpc_port), "CAREPULSE_INFERENCE_METRICS_PORT": str(metrics_port),
           "CAREPULSE_BIND_HOST": "127.0.0.1", "CAREPULSE_LOG_LEVEL": "WARNING"}
    proc = spawn([sys.executable, "-m", "carepulse.inference"], run_dir / "inference.log", env=env)
    wait_ready(f"http://127.0.0.1:{metrics_port}", proc, 60, run_dir / "inference.log")
    return proc, f"127.0.0.1:{grpc_port}"


def _records(raws: list[bytes], per_record: int) -> list[bytes]:
    out = []
    for r in range(len(raws) // per_record):
        chunk = raws[r * per_record:(r + 1) * per_record]
        out.append(json.dumps({
            "resourceType": "DocumentReference", "id": f"bench-{r}", "status": "current",
            "subject": {"reference": f"Patient/bench-{r}"},
            "content": [{"attachment": {"contentType": "application/dicom", "data": base64.b64encode(raw).decode()}}
                        for raw in chunk]}).encode())
    return out


async def _path(url: str, records: list[bytes], concurrency: int, per_record: int) -> tuple[int, float, list[float]]:
    async def publish(rec: Outgoing) -> None:
        return None

    async with InferenceClient(url, deadline_s=30) as client:
        proc = ImagingProcessor(Topics.with_prefix(""), publish, Classifier(client, "pneumonia-cxr"), None,  # type: ignore[arg-type]
                                source_name="bench", max_images=64)
        await proc.on_record(None, records[0], [])  # warm: channel, metadata, session
        lat: list[float] = []
        done = 0
        start = time.perf_counter()

        async def worker(w: int) -> None:
            nonlocal done
            i = w
            while time.perf_counter() - start < DURATION_S:
                t = time.perf_counter()
                await proc.on_record(None, records[i % len(records)], [])
                lat.append(time.perf_counter() - t)
                done += per_record
                i += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return done, time.perf_counter() - start, lat


def run(out_dir: pathlib.Path) -> list[dict]:
    with np.load(DATA) as npz:
        images = npz["val_images"]
    encodings = [("MONOCHROME2", None, False), ("MONOCHROME1", (0.5, -100.0), True)]
    raws = [radiograph_dicom(img, photometric=encodings[i % 2][0], rescale=encodings[i % 2][1],
                             window=encodings[i % 2][2]) for i, img in enumerate(images[:256])]
    rows = []
    n, el, lat = _ort(images, 1)
    base = n / el
    rows.append(_row("ORT in-process, batch 1", n, el, lat, None, "images/s; pre-scaled tensors; the baseline"))
    n, el, lat = _ort(images, 64)
    rows.append(_row("ORT in-process, batch 64", n, el, lat, base, "images/s; latency per batch"))
    n, el, lat = _preprocess(raws)
    rows.append(_row("pre-processing only (DICOM -> tensor)", n, el, lat, base, "images/s, one thread"))
    run_dir = out_dir / "imaging-run"
    run_dir.mkdir(parents=True, exist_ok=True)
    proc, url = _start_inference(run_dir)
    try:
        singles = _records(raws, 1)
        for c in (1, 16):
            n, el, lat = asyncio.run(_path(url, singles, c, 1))
            rows.append(_row(f"imaging path, {c} concurrent records", n, el, lat, base,
                             "images/s; 1 image per record; latency per record"))
        studies = _records(raws, 16)
        n, el, lat = asyncio.run(_path(url, studies, 2, 16))
        rows.append(_row("imaging path, studies of 16 images, 2 concurrent", n, el, lat, base,
                         "images/s; one batched inference call per record; latency per record"))
    finally:
        stop(proc)  # type: ignore[arg-type]
    return rows


if __name__ == "__main__":
    import tempfile

    for row in run(pathlib.Path(tempfile.mkdtemp())):
        print(row)
