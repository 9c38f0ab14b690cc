"""The NLP worker's core: one ``fhir.document`` record in, Conditions / FamilyMemberHistory out.

Transport-neutral: it gets a ``publish`` coroutine, so tests drive it without Kafka.
Identifiers (the note header's names, MRN, birth date; Synthea's generated names) are blanked
by :func:`carepulse.nlp.deidentify.deidentify` before anything reads the text, and only mention
phrases of the blanked text (never the note) go to the inference service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from carepulse.nlp.deidentify import deidentify
from carepulse.nlp.documents import Note, read_note
from carepulse.nlp.findings import Finding, Status, group
from carepulse.nlp.normalise import Normaliser
from carepulse.nlp.pipeline import ClinicalPipeline
from carepulse.nlp.resources import condition, family_member_history, provenance
from carepulse.shared.inference.client import InferenceError
from carepulse.shared.kafka.headers import Headers, fhir_headers, header
from carepulse.shared.kafka.streams import Outgoing, Publish
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)


class EmbeddingUnavailable(ConnectionError):
    """The inference service did not answer: a dependency is down, so the record is retried."""


@dataclass(frozen=True)
class Outcome:
    findings: int = 0
    refuted: int = 0
    family: int = 0
    rules_s: float = 0.0
    inference_s: float = 0.0


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def pipeline_versions(embeddings: bool) -> str:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"
    parts = [f"carepulse-nlp {v('carepulse-nlp')}", f"medspaCy {v('medspacy')} ConText (carepulse rules)",
             f"ICD-10-CM via simple-icd-10-cm {v('simple-icd-10-cm')}"]
    if embeddings:
        parts.append("all-MiniLM-L6-v2 (ONNX, text-embedding)")
    return "; ".join(parts)


class NlpProcessor:
    def __init__(
        self,
        topics: Topics,
        publish: Publish,
        pipeline: ClinicalPipeline,
        normaliser: Normaliser,
        *,
        source_name: str,
        max_note_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topics = topics
        self._publish = publish
        self._pipeline = pipeline
        self._normaliser = normaliser
        self._source = source_name
        self._max = max_note_bytes
        self._clock = clock
        self._agent = f"{source_name} nlp: {pipeline_versions(normaliser.uses_embeddings)}"

    async def analyse(self, note: Note) -> tuple[list[Finding], float, float]:
        """Findings of a note, the seconds spent in rules and in the embedding step."""
        started = time.perf_counter()
        # Everything downstream (rules, the phrases sent for embeddings, offsets) reads the blanked text.
        text = deidentify(note.text)
        mentions = await asyncio.to_thread(self._pipeline.extract, text)
        rules_s = time.perf_counter() - started
        started = time.perf_counter()
        try:
            concepts = await self._normaliser.normalise_many([m.text for m in mentions])
        except InferenceError as exc:
            raise EmbeddingUnavailable(str(exc)) from exc
        return group(mentions, concepts), rules_s, time.perf_counter() - started

    async def on_document(self, key: bytes | None, value: bytes, headers: Headers | None) -> Outcome:
        """Handle one record of the document topic; ``ValueError`` for notes never readable."""
        note = read_note(value, key, self._max)
        if note is None:
            return Outcome()
        findings, rules_s, inference_s = await self.analyse(note)
        now = self._clock()
        trace = header(headers, "traceparent")
        for f in findings:
            res = family_member_history(note, f, now) if f.status.family_history else condition(note, f, now)
            await self._emit(note.patient_ref, res, trace)
            await self._emit(note.patient_ref, provenance(res, note, self._agent, now), trace)
        log.info("note analysed", extra={"fields": {"document": note.reference, "findings": len(findings)}})
        return Outcome(
            findings=len(findings),
            refuted=sum(f.status is Status.REFUTED for f in findings),
            family=sum(f.status.family_history for f in findings),
            rules_s=rules_s, inference_s=inference_s,
        )

    async def _emit(self, key: str, resource: dict[str, Any], trace: str | None) -> None:
        headers = fhir_headers(resource["resourceType"], resource["id"], self._source, trace)
        await self._publish(Outgoing(self._topics.derived, key, _dumps(resource), headers))
