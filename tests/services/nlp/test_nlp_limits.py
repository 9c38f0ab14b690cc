"""Input limits of the NLP worker (over: a ValueError with the reason, which the stream loop dead-letters;
under: processed), and what reaches the inference service: phrases of the de-identified note only."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import numpy as np
import pytest

from carepulse.nlp.documents import UnreadableDocument
from carepulse.nlp.embeddings import EmbeddingIndex
from carepulse.nlp.normalise import Normaliser
from carepulse.nlp.pipeline import ClinicalPipeline
from carepulse.nlp.processor import NlpProcessor, Outcome
from carepulse.nlp.settings import NlpSettings
from carepulse.nlp.terminology import CodeDescriptions, Lexicon
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.topics import Topics

BULK = Path(__file__).resolve().parents[2] / "data" / "fhir" / "synthea-bulk-10-patients-ndjson"
NOTE = "HISTORY: Fever and productive cough. Findings consistent with pneumonia. Patient reports a tummy bug.\n"


class RecordingEmbedder:
    """Stands in for the inference service: remembers every text it is sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return np.array([[0.0, 1.0]] * len(texts), dtype=np.float32)


def record(text: str, patient: str = "Patient/p1", doc_id: str = "d1") -> bytes:
    return json.dumps({"resourceType": "DocumentReference", "id": doc_id, "status": "current",
                       "subject": {"reference": patient},
                       "content": [{"attachment": {"contentType": "text/plain",
                                                   "data": base64.b64encode(text.encode()).decode()}}]}).encode()


def processor(pipeline: ClinicalPipeline, lexicon: Lexicon, descriptions: CodeDescriptions, max_note_bytes: int,
              embedder: RecordingEmbedder | None = None) -> tuple[NlpProcessor, list[Outgoing]]:
    index = EmbeddingIndex(np.array(["A08.4"]), np.array(["viral intestinal infection"]),
                           np.array([[1.0, 0.0]], dtype=np.float32), "test")
    normaliser = Normaliser(lexicon, descriptions, embedder or RecordingEmbedder(), index)
    out: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        out.append(rec)

    return NlpProcessor(Topics.with_prefix(), publish, pipeline, normaliser, source_name="test",
                        max_note_bytes=max_note_bytes, clock=lambda: 1_700_000_000.0), out


def test_the_default_note_limit() -> None:
    assert NlpSettings().nlp_max_note_bytes == 256 * 1024


@pytest.mark.parametrize("extra", [0, 1])
def test_a_note_over_the_limit_is_refused_at_it_processed(pipeline, lexicon, descriptions, extra: int) -> None:
    limit = len(NOTE.encode()) - extra
    proc, out = processor(pipeline, lexicon, descriptions, limit)
    if extra:
        with pytest.raises(UnreadableDocument, match=f"more than the {limit} allowed"):
            asyncio.run(proc.on_document(b"Patient/p1", record(NOTE), []))
        assert out == []
    else:
        outcome = asyncio.run(proc.on_document(b"Patient/p1", record(NOTE), []))
        assert isinstance(outcome, Outcome) and outcome.findings >= 3 and out


def test_a_record_far_over_the_note_limit_is_refused_before_decoding(pipeline, lexicon, descriptions) -> None:
    proc, out = processor(pipeline, lexicon, descriptions, 1000)
    big = record(NOTE * 200)
    with pytest.raises(UnreadableDocument, match=f"record is {len(big)} bytes"):
        asyncio.run(proc.on_document(None, big, []))
    assert out == []


def test_json_nested_too_deep_is_refused_not_a_crash(pipeline, lexicon, descriptions) -> None:
    proc, _ = processor(pipeline, lexicon, descriptions, 256 * 1024)
    with pytest.raises(UnreadableDocument, match="nests JSON"):
        asyncio.run(proc.on_document(None, b"[" * 200_000 + b"]" * 200_000, []))


def test_no_patient_identifier_reaches_the_inference_service_or_the_outputs(pipeline, lexicon, descriptions) -> None:
    """Two real Synthea notes per patient, through the processor: every text sent for embeddings and every
    published resource is free of the note's patient names and identifiers."""
    lines = (BULK / "Patient.000.ndjson").read_text().splitlines()
    patients = {f"Patient/{p['id']}": p for p in map(json.loads, lines)}
    per_patient: dict[str, int] = {}
    embedder = RecordingEmbedder()
    proc, out = processor(pipeline, lexicon, descriptions, 256 * 1024, embedder)
    checked = embedded = 0
    for line in (BULK / "DocumentReference.000.ndjson").read_text().splitlines():
        doc = json.loads(line)
        ref = doc["subject"]["reference"]
        if per_patient.get(ref, 0) >= 2:
            continue
        per_patient[ref] = per_patient.get(ref, 0) + 1
        p = patients[ref]
        names = {s for n in p["name"] for s in [*n["given"], n["family"]]}
        # The names with and without Synthea's digits; identifiers but the resource id (Synthea's MRN is the
        # id, and outputs name their patient by reference on purpose).
        secrets = names | {s.rstrip("0123456789") for s in names if len(s.rstrip("0123456789")) > 2}
        secrets |= {i["value"] for i in p["identifier"] if i["value"] != p["id"]} | {p["birthDate"]}
        embedder.texts.clear()
        out.clear()
        note = base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()
        assert any(s in note for s in secrets)
        asyncio.run(proc.on_document(ref.encode(), line.encode(), []))
        sent = " | ".join(embedder.texts) + " | " + " | ".join(r.value.decode() for r in out)
        assert [s for s in secrets if s in sent] == [], ref
        checked += 1
        embedded += len(embedder.texts)
    assert checked == 2 * len(patients) and embedded > 0  # phrases did go to "inference"
