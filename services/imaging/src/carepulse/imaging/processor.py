"""The imaging worker's core: one ``fhir.imaging`` record in, findings on ``fhir.derived`` out.

Transport-neutral: it gets a ``publish`` coroutine, a classifier and a DICOMweb client, so tests
drive it without Kafka. The order of effects makes a replay safe: every output id is derived
from the input reference, the image UIDs and the model version, and the input's offset is
committed by the caller only after all outputs were acknowledged.

What care must read (sepsis screen): Observations on ``fhir.derived`` keyed ``Patient/<id>`` whose
``code`` is ``https://carepulse.dev/fhir/CodeSystem/imaging-finding#pneumonia-probability``;
``interpretation`` POS marks a positive finding, ``valueQuantity.value`` is the probability and
``effectiveDateTime`` the study time. The DiagnosticReport carries the same conclusion in words.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from carepulse.imaging.classifier import Classifier
from carepulse.imaging.operators import Operator, Prepared, UnsupportedDicom, default_chain, prepare
from carepulse.imaging.resources import Finding, ModelRef, diagnostic_report, observation, provenance
from carepulse.imaging.sources import (
    ImagingInput,
    InputLimits,
    InputTooLarge,
    UnsupportedInput,
    WadoRequest,
    parse_input,
)
from carepulse.shared.kafka.headers import Headers, fhir_headers, header, stable_id
from carepulse.shared.kafka.streams import Outgoing, Publish
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    async def fetch(self, req: WadoRequest) -> list[bytes]: ...


@dataclass(frozen=True)
class Outcome:
    """What one record led to (for metrics, tests and the bench)."""

    images: int
    skipped: int
    probability: float
    positive: bool
    report_id: str


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def prepare_all(payloads: Sequence[bytes], chain: Sequence[Operator],
                limits: InputLimits | None = None) -> tuple[list[Prepared], list[str]]:
    """Pre-process every payload; unusable ones (over the limits too) are reported, not fatal, while one
    image remains."""
    prepared: list[Prepared] = []
    skipped: list[str] = []
    for i, raw in enumerate(payloads):
        try:
            prepared.append(prepare(raw, chain, limits))
        except UnsupportedDicom as e:
            skipped.append(f"object {i + 1}: {e}")
    return prepared, skipped


class ImagingProcessor:
    def __init__(
        self,
        topics: Topics,
        publish: Publish,
        classifier: Classifier,
        fetcher: Fetcher,
        *,
        source_name: str,
        threshold: float = 0.5,
        input_size: int = 28,
        max_images: int = 32,
        limits: InputLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topics = topics
        self._publish = publish
        self._classifier = classifier
        self._fetcher = fetcher
        self._source = source_name
        self._threshold = threshold
        self._chain = default_chain(input_size)
        self._max_images = max_images
        self._limits = limits or InputLimits()
        self._clock = clock

    async def on_record(self, key: bytes | None, value: bytes, headers: Headers | None) -> Outcome:
        """Handle one record of ``fhir.imaging``.

        Raises ``ValueError`` subclasses (``UnsupportedInput``, ``UnsupportedDicom``, ``DicomWebRejected``,
        ``InferenceRejected``) for input that can never be processed; ``ConnectionError`` subclasses when a
        dependency (DICOMweb server, inference service) is down, so the caller retries.
        """
        limit = self._limits.max_record_bytes
        if len(value) > limit:
            raise InputTooLarge(f"record is {len(value)} bytes, more than the {limit} allowed "
                                "(CAREPULSE_IMAGING_MAX_RECORD_BYTES); send large images as an ImagingStudy "
                                "fetched over DICOMweb")
        try:
            resource = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UnsupportedInput(f"record is not JSON: {e}") from None
        except RecursionError:
            # Not a ValueError: uncaught it would stop the worker instead of dead-lettering the record.
            raise UnsupportedInput("record nests JSON deeper than the decoder allows") from None
        if not isinstance(resource, dict):
            raise UnsupportedInput("record is not a JSON object")
        request = parse_input(resource, key)
        payloads = await self._payloads(request)
        prepared, skipped = await asyncio.to_thread(prepare_all, payloads[: self._max_images], self._chain,
                                                   self._limits)
        if len(payloads) > self._max_images:
            skipped.append(f"{len(payloads) - self._max_images} more objects beyond the limit of {self._max_images}")
        if not prepared:
            raise UnsupportedDicom("no usable image: " + "; ".join(skipped or ["nothing to classify"]))

        version = await self._classifier.version()
        probs = await self._classifier.probabilities([p.tensor for p in prepared], version)
        model = ModelRef(self._classifier.model, version, self._threshold)
        src = request.source
        if not src.study_instance_uid and prepared[0].study_instance_uid:
            src = type(src)(src.reference, src.patient_ref, prepared[0].study_instance_uid,
                            src.effective or prepared[0].study_datetime, src.based_on)
        findings = [
            Finding(stable_id("imaging-observation", src.reference, p.sop_instance_uid or str(i), model.name, version),
                    prob, p.sop_instance_uid, p.series_instance_uid, p.steps)
            for i, (p, prob) in enumerate(zip(prepared, probs, strict=True))
        ]
        now = self._clock()
        report_id = stable_id("imaging-report", src.reference, model.name, version)
        observations = [observation(f, src, model, now) for f in findings]
        report = diagnostic_report(report_id, findings, src, model, now, [*request.notes, *skipped])
        trace = header(headers, "traceparent")
        for obs in observations:
            await self._emit(src.patient_ref, obs, trace)
        await self._emit(src.patient_ref, report, trace)
        await self._emit(src.patient_ref, provenance([report, *observations], src, model, self._source, now), trace)

        top = max(probs)
        positive = top >= self._threshold
        fields = {"input": src.reference, "images": len(findings), "skipped": len(skipped),
                  "probability": round(top, 4), "positive": positive, "model_version": version}
        log.info("imaging finding published", extra={"fields": fields})
        return Outcome(len(findings), len(skipped), top, positive, report_id)

    async def _payloads(self, request: ImagingInput) -> list[bytes]:
        if request.wado is not None:
            return await self._fetcher.fetch(request.wado)
        return list(request.inline)

    async def _emit(self, key: str, resource: dict[str, Any], trace: str | None) -> None:
        headers = fhir_headers(resource["resourceType"], resource["id"], self._source, trace)
        await self._publish(Outgoing(self._topics.derived, key, _dumps(resource), headers))
