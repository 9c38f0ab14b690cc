"""NLP benchmark: assertion vs baselines, ICD-10-CM coding, and notes/s through the processor.

* ``assertion dev <system>`` — negation accuracy/P/R/F1 on the NegEx development set for
  CarePulse's rules, medspaCy's default ConText rules and classic NegEx, in this process.
* ``icd10cm gold|dev <setting>`` — top-1 ICD-10-CM category accuracy on the gold phrase list
  (evaluation) and the development list (what retrieval was tuned on), exact/synonym
  matching alone and with the embedding step (inference service).
* ``notes 2KB ...`` — ~2 KB Synthea notes through ``NlpProcessor`` (publish is a no-op):
  rules only in-process (the baseline), then with the embedding step calling
  ``python -m carepulse.inference`` as a subprocess; the share of time in inference vs
  rules is in ``notes``. Needs ``carepulse train nlp-index`` (model + index) first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import time

from carepulse.nlp.assertion_eval import evaluate, load_examples
from carepulse.nlp.gold_eval import evaluate_gold, load_gold
from carepulse.nlp.processor import NlpProcessor
from carepulse.nlp.service import build_normaliser, build_pipeline, quiet_pyrush
from carepulse.nlp.settings import NlpSettings
from carepulse.nlp.terminology import Lexicon
from carepulse.shared.inference.client import InferenceClient
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.platform.supervisor import wait_ready
from carepulse.shared.topics import Topics

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "notes"
NOTES = 40


def _row(case: str, rate: float, lat: list[float], ratio: float | None, notes: str) -> dict:
    lat = sorted(lat) or [0.0]
    return {"bench": "nlp", "case": case, "throughput_per_s": round(rate, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 1),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
            "ratio_vs_inprocess": None if ratio is None else round(ratio, 2), "notes": notes}


def _notes_2kb() -> list[bytes]:
    texts = [json.loads(line)["text"] for line in (DATA / "synthea_notes_sample.jsonl").read_text().splitlines()]
    out = []
    for i in range(NOTES):
        text = texts[i % len(texts)]
        while len(text) < 2048:
            text += "\n" + texts[(i + len(text)) % len(texts)]
        out.append(json.dumps({
            "resourceType": "DocumentReference", "id": f"bench-{i}", "status": "current",
            "subject": {"reference": "Patient/bench"},
            "content": [{"attachment": {"contentType": "text/plain",
                                        "data": base64.b64encode(text[:2048].encode()).decode()}}]}).encode())
    return out


async def _through(processor: NlpProcessor, notes: list[bytes]) -> tuple[float, list[float], float, float]:
    lat: list[float] = []
    rules = inference = 0.0
    started = time.perf_counter()
    for value in notes:
        t = time.perf_counter()
        outcome = await processor.on_document(None, value, [])
        lat.append(time.perf_counter() - t)
        rules += outcome.rules_s
        inference += outcome.inference_s
    return len(notes) / (time.perf_counter() - started), lat, rules, inference


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _noop(rec: Outgoing) -> None:
    return None


def run(out_dir: pathlib.Path) -> list[dict]:
    rows: list[dict] = []
    quiet_pyrush()
    examples, _ = load_examples(DATA / "negex_dev.tsv")
    for s in evaluate(examples):
        rows.append(_row(f"assertion dev {s.system}", s.n / s.seconds, [], None, s.line()))

    lexicon = Lexicon.load()
    pipeline = build_pipeline(lexicon)
    notes = _notes_2kb()
    grpc_port, metrics_port = _free_port(), _free_port()
    env = {**os.environ, "CAREPULSE_MODEL_REPOSITORY": "models", "CAREPULSE_BIND_HOST": "127.0.0.1",
           "CAREPULSE_INFERENCE_MODELS": "text-embedding", "CAREPULSE_INFERENCE_GRPC_PORT": str(grpc_port),
           "CAREPULSE_INFERENCE_METRICS_PORT": str(metrics_port), "CAREPULSE_LOG_LEVEL": "WARNING"}
    settings = NlpSettings(inference_url=f"127.0.0.1:{grpc_port}")
    lists = {name: load_gold(DATA / f"icd10cm_{name}.tsv") for name in ("gold", "dev")}
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "nlp-inference-server.log").open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "carepulse.inference"], env=env, stdout=log, stderr=log)
        try:
            wait_ready(f"http://127.0.0.1:{metrics_port}", server, 90, out_dir / "nlp-inference-server.log")

            async def with_service() -> list[dict]:
                out: list[dict] = []
                plain = build_normaliser(settings, lexicon, None)
                for name, phrases in lists.items():
                    for setting, with_client in (("exact/synonym", False), ("exact + embedding", True)):
                        async with InferenceClient.from_settings(settings) as client:
                            n = build_normaliser(settings, lexicon, client if with_client else None)
                            started = time.perf_counter()
                            s = await evaluate_gold(phrases, n, setting)
                            out.append(_row(f"icd10cm {name} {setting}", s.n / (time.perf_counter() - started), [],
                                            None, f"top-1 category accuracy={s.accuracy:.3f} on {s.n} phrases; "
                                            f"by method {s.by_method}"))
                base_rate, lat, rules, _ = await _through(
                    NlpProcessor(Topics.with_prefix(""), _noop, pipeline, plain, source_name="bench",
                                 max_note_bytes=settings.nlp_max_note_bytes), notes)
                out.append(_row("notes 2KB rules only, in-process", base_rate, lat, 1.0,
                                f"{len(notes)} notes; lexicon + exact match, no inference"))
                async with InferenceClient.from_settings(settings) as client:
                    full = NlpProcessor(Topics.with_prefix(""), _noop, pipeline,
                                        build_normaliser(settings, lexicon, client), source_name="bench",
                                        max_note_bytes=settings.nlp_max_note_bytes)
                    rate, lat, rules, inference = await _through(full, notes)
                share = inference / (rules + inference) if rules + inference else 0.0
                out.append(_row("notes 2KB with embeddings via gRPC", rate, lat, rate / base_rate,
                                f"time in inference {share:.0%}, rules {1 - share:.0%}; "
                                "inference subprocess shares the 2 cores"))
                return out

            rows += asyncio.run(with_service())
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
    return rows


if __name__ == "__main__":
    for r in run(pathlib.Path("bench-results")):
        print(r)
