"""The NLP processor without Kafka: note in, validated Conditions / FamilyMemberHistory out."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import numpy as np
import pytest

from carepulse.nlp.embeddings import EmbeddingIndex
from carepulse.nlp.normalise import Method, Normaliser
from carepulse.nlp.pipeline import ClinicalPipeline
from carepulse.nlp.processor import EmbeddingUnavailable, NlpProcessor
from carepulse.nlp.terminology import CodeDescriptions, Lexicon
from carepulse.shared.fhir import parse_resource
from carepulse.shared.inference.client import InferenceError
from carepulse.shared.kafka.headers import header
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.topics import Topics

NOTE = ("PATIENT NAME: John Smith   MRN: 998877\n"
        "HISTORY OF PRESENT ILLNESS: Fever and productive cough. Findings consistent with pneumonia.\n"
        "No evidence of urinary tract infection. Possible sepsis. Patient reports a tummy bug.\n"
        "PAST MEDICAL HISTORY: HTN.\n"
        "FAMILY HISTORY: Mother had breast cancer.\n")


class FakeEmbedder:
    """Maps the phrase it knows to a fixed unit vector, everything else to a far one."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        if self.fail:
            raise InferenceError(grpc.StatusCode.UNAVAILABLE, "down")
        return np.array([[1.0, 0.0] if "tummy" in t else [0.0, 1.0] for t in texts], dtype=np.float32)


def note_record(text: str = NOTE, doc_id: str = "doc-1") -> bytes:
    return json.dumps({
        "resourceType": "DocumentReference", "id": doc_id, "status": "current",
        "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}}],
    }).encode()


def make(pipeline: ClinicalPipeline, lexicon: Lexicon, descriptions: CodeDescriptions,
         embedder: FakeEmbedder) -> tuple[NlpProcessor, list[Outgoing]]:
    index = EmbeddingIndex(np.array(["A08.4"]), np.array(["viral intestinal infection"]),
                           np.array([[1.0, 0.0]], dtype=np.float32), "test")
    normaliser = Normaliser(lexicon, descriptions, embedder, index, min_similarity=0.6)
    out: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        out.append(rec)

    return NlpProcessor(Topics.with_prefix("t."), publish, pipeline, normaliser, source_name="test",
                        max_note_bytes=100_000, clock=lambda: 1_700_000_000.0), out


def test_note_becomes_conditions_family_history_and_provenance(
    pipeline: ClinicalPipeline, lexicon: Lexicon, descriptions: CodeDescriptions,
) -> None:
    embedder = FakeEmbedder()
    proc, out = make(pipeline, lexicon, descriptions, embedder)
    outcome = asyncio.run(proc.on_document(b"Patient/p1", note_record(), [("traceparent", b"00-abc")]))
    assert {r.topic for r in out} == {"t.fhir.derived"} and {r.key for r in out} == {"Patient/p1"}
    resources = [parse_resource(r.value).resource for r in out]  # R4-valid, all of them
    conditions = {c["code"]["text"]: c for c in resources if c["resourceType"] == "Condition"}
    status = {t: c["verificationStatus"]["coding"][0]["code"] for t, c in conditions.items()}
    assert status == {"Fever": "provisional", "productive cough": "provisional", "pneumonia": "provisional",
                      "urinary tract infection": "refuted", "sepsis": "unconfirmed", "tummy bug": "provisional",
                      "HTN": "provisional"} or "cough" in status
    assert conditions["HTN"]["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert "clinicalStatus" not in conditions["urinary tract infection"]
    pna = conditions["pneumonia"]
    assert pna["code"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J18.9",
                                        "display": "Pneumonia, unspecified organism"}
    assert pna["meta"]["tag"][0]["code"] == "infection"
    assert pna["evidence"][0]["detail"] == [{"reference": "DocumentReference/doc-1"}]
    ext = {e["url"]: e for e in pna["evidence"][0]["extension"][0]["extension"]}
    start, end = ext["start"]["valueInteger"], ext["end"]["valueInteger"]
    assert NOTE[start:end] == "pneumonia" and ext["sentence"]["valueString"] == "Findings consistent with pneumonia."
    # The lay phrase was coded by the embedding step, with its similarity as confidence.
    bug = conditions["tummy bug"]
    assert bug["code"]["coding"][0]["code"] == "A08.4"
    assert {e["url"]: e for e in bug["evidence"][0]["extension"][0]["extension"]}["method"]["valueCode"] == "embedding"
    fmh = [r for r in resources if r["resourceType"] == "FamilyMemberHistory"]
    assert len(fmh) == 1 and fmh[0]["relationship"]["coding"][0]["code"] == "MTH"
    assert fmh[0]["condition"][0]["code"]["coding"][0]["code"] == "C50.919"
    provs = [r for r in resources if r["resourceType"] == "Provenance"]
    assert len(provs) == len(resources) // 2
    assert {p["target"][0]["reference"] for p in provs} == {
        f"{r['resourceType']}/{r['id']}" for r in resources if r["resourceType"] != "Provenance"}
    assert "medspaCy" in provs[0]["agent"][0]["who"]["display"]
    assert all(header(r.headers, "traceparent") == "00-abc" for r in out)
    assert outcome.refuted == 1 and outcome.family == 1
    # Only mention phrases went to inference: never the note, never the header's identifiers.
    sent = " ".join(t for call in embedder.calls for t in call)
    assert "Smith" not in sent and "998877" not in sent and "tummy bug" in sent


def test_replay_gives_the_same_ids(pipeline: ClinicalPipeline, lexicon: Lexicon,
                                   descriptions: CodeDescriptions) -> None:
    proc, out = make(pipeline, lexicon, descriptions, FakeEmbedder())
    asyncio.run(proc.on_document(None, note_record(), []))
    first = [json.loads(r.value)["id"] for r in out]
    out.clear()
    asyncio.run(proc.on_document(None, note_record(), []))
    assert [json.loads(r.value)["id"] for r in out] == first and len(set(first)) == len(first)
    out.clear()
    asyncio.run(proc.on_document(None, note_record(doc_id="doc-2"), []))
    assert not set(first) & {json.loads(r.value)["id"] for r in out}


def test_inference_down_is_transient(pipeline: ClinicalPipeline, lexicon: Lexicon,
                                     descriptions: CodeDescriptions) -> None:
    proc, out = make(pipeline, lexicon, descriptions, FakeEmbedder(fail=True))
    with pytest.raises(EmbeddingUnavailable):
        asyncio.run(proc.on_document(None, note_record(), []))
    assert out == [] and issubclass(EmbeddingUnavailable, ConnectionError)


def test_unreadable_note_raises_value_error(pipeline: ClinicalPipeline, lexicon: Lexicon,
                                            descriptions: CodeDescriptions) -> None:
    proc, _ = make(pipeline, lexicon, descriptions, FakeEmbedder())
    with pytest.raises(ValueError, match="no note text"):
        asyncio.run(proc.on_document(None, note_record(text="  "), []))


def test_normaliser_exact_then_threshold(lexicon: Lexicon, descriptions: CodeDescriptions) -> None:
    index = EmbeddingIndex(np.array(["A08.4"]), np.array(["x"]), np.array([[1.0, 0.0]], np.float32), "test")
    n = Normaliser(lexicon, descriptions, FakeEmbedder(), index, min_similarity=0.6)
    phrases = ["CHF", "Acute bronchitis, unspecified", "rapid heart beat", "tummy bug", "zebra"]
    r = asyncio.run(n.normalise_many(phrases))
    assert [(x.code, x.method) for x in r] == [
        ("I50.9", Method.LEXICON), ("J20.9", Method.DESCRIPTION), ("R00.0", Method.DESCRIPTION),
        ("A08.4", Method.EMBEDDING), (None, Method.NONE)]


def test_no_family_history_is_a_family_member_history_saying_no_history(
    pipeline: ClinicalPipeline, lexicon: Lexicon, descriptions: CodeDescriptions,
) -> None:
    proc, out = make(pipeline, lexicon, descriptions, FakeEmbedder())
    text = "HISTORY OF PRESENT ILLNESS: Cough.\nFAMILY HISTORY: No family history of diabetes.\n"
    outcome = asyncio.run(proc.on_document(None, note_record(text, doc_id="doc-fh"), []))
    resources = [parse_resource(r.value).resource for r in out]
    # Never a Condition about the patient: "no family history of diabetes" says nothing of theirs.
    assert [c["code"]["text"] for c in resources if c["resourceType"] == "Condition"] == ["Cough"]
    (fmh,) = [r for r in resources if r["resourceType"] == "FamilyMemberHistory"]
    assert fmh["status"] == "completed" and fmh["relationship"]["coding"][0]["code"] == "FAMMEMB"
    # As in FHIR's FamilyMemberHistory/negation example the condition is "no history of X";
    # ICD-10-CM has no such concept, so the code of X is kept apart, in the mention extension.
    assert fmh["condition"] == [{"code": {"text": "No history of diabetes"}}]
    ext = {e["url"]: e for e in fmh["extension"][0]["extension"]}
    assert ext["assertion"]["valueCode"] == "negated"
    assert ext["refutedCode"]["valueCoding"]["code"] == "E11.9"
    assert outcome.family == 1 and outcome.refuted == 0
