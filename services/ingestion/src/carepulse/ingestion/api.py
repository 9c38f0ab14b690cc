"""HTTP wiring of ingestion: FHIR REST on ``/fhir``, health and metrics.

Only translation happens here (HTTP <-> :class:`Intake`); ``_problem`` is the one
place that maps domain errors to HTTP status codes.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from carepulse.ingestion.capability import capability_statement
from carepulse.ingestion.intake import Accepted, Intake, TransactionRejected, UnsupportedBundle
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.fhir.codec import FHIR_JSON, FhirValidationError, Issue, decode_json
from carepulse.shared.fhir.outcome import operation_outcome
from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.producer import FhirProducer
from carepulse.shared.metrics import processing_seconds, records_total, render_metrics
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
SERVICE = "ingestion"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


class PayloadTooLarge(Exception):
    pass


class UnsupportedMediaType(Exception):
    pass


class PublishFailed(Exception):
    pass


def _fhir(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status_code=status, media_type=FHIR_JSON if body is not None else None, headers=headers)


def _problem(exc: Exception) -> Response:
    """The single mapping from domain errors to HTTP statuses with an OperationOutcome."""
    if isinstance(exc, PayloadTooLarge):
        return _fhir(operation_outcome([Issue("too-long", str(exc))]), 413)
    if isinstance(exc, UnsupportedMediaType):
        return _fhir(operation_outcome([Issue("not-supported", str(exc))]), 415)
    if isinstance(exc, UnsupportedBundle):
        return _fhir(operation_outcome(exc.issues), 422)
    if isinstance(exc, FhirValidationError):
        return _fhir(operation_outcome(exc.issues), 400)
    if isinstance(exc, PublishFailed):
        return _fhir(operation_outcome([Issue("transient", str(exc))]), 503, {"Retry-After": "1"})
    log.exception("unexpected error")
    return _fhir(operation_outcome([Issue("exception", "internal error")]), 500)


def _prefer_return(request: Request) -> str:
    for part in request.headers.get("prefer", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k.strip() == "return":
            return v.strip().strip('"')
    return "representation"


async def _read_body(request: Request, limit: int) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _JSON_TYPES:
        raise UnsupportedMediaType(f"content type {ctype or '(none)'!r}: send application/fhir+json")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: IngestionSettings, producer: FhirProducer) -> FastAPI:
    topics = Topics.with_prefix(settings.topic_prefix)
    intake = Intake(topics, producer, settings.source_name, settings.ingestion_max_bundle_entries)
    health = HealthChecks()
    health.add("kafka", lambda: producer.ready(topics.observation))
    app = FastAPI(title="CarePulse ingestion", version="0.1.0", docs_url=None, redoc_url=None)
    base = settings.ingestion_public_base.rstrip("/")
    timer = processing_seconds()

    def count(outcome: str, n: int = 1, topic: str = "-") -> None:
        records_total().labels(SERVICE, topic, outcome).inc(n)

    async def publish_or_fail(accepted: list[Accepted]) -> None:
        errors = [e for e in await intake.publish(accepted) if e is not None]
        if errors:
            count("error", len(errors))
            raise PublishFailed(f"{len(errors)} record(s) not acknowledged by Kafka: {errors[0]}")
        for a in accepted:
            count("ok" if a.route else "not-routed", topic=a.route.topic if a.route else "-")

    def created_response(a: Accepted, prefer: str, updated: bool) -> Response:
        headers = {"ETag": 'W/"1"', "Last-Modified": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")}
        status = 200 if (updated or a.route is None) else 201
        if a.route is not None:
            headers["Location"] = f"{base}/fhir/{a.reference}/_history/1"
        if prefer == "minimal":
            return _fhir(None, status, headers)
        if prefer == "OperationOutcome" or a.route is None:
            return _fhir(operation_outcome(a.issues), status, headers)
        return Response(a.raw, status_code=status, media_type=FHIR_JSON, headers=headers)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        ok, detail = await health.readiness()
        return Response(json.dumps({"status": "ok" if ok else "unavailable", "checks": detail}),
                        status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        return _fhir(capability_statement(f"{base}/fhir", datetime.now(UTC).date().isoformat()))

    @app.post("/fhir")
    async def post_bundle(request: Request) -> Response:
        started = time.perf_counter()
        try:
            raw = await _read_body(request, settings.ingestion_max_body_bytes)
            doc = decode_json(raw)
            if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
                raise FhirValidationError([Issue("invalid", "POST to the base URL takes a Bundle", "resourceType")])
            btype, results = intake.bundle_entries(doc)
            bad = [r for r in results if r.accepted is None]
            if btype == "transaction" and bad:
                count("invalid")
                raise TransactionRejected([i for r in bad for i in r.issues])
            accepted = [r.accepted for r in results if r.accepted is not None]
            if btype == "transaction":
                await publish_or_fail(accepted)
            else:
                errors = await intake.publish(accepted)
                it = iter(errors)
                for r in results:
                    if r.accepted is not None and (err := next(it)) is not None:
                        r.issues, r.accepted, r.status = [Issue("transient", str(err))], None, "503 Service Unavailable"
                for r in results:
                    if r.accepted is not None:
                        count("ok" if r.accepted.route else "not-routed",
                              topic=r.accepted.route.topic if r.accepted.route else "-")
                count("invalid", len(bad))
            entries = []
            for r in results:
                if r.accepted is not None:
                    resp: dict[str, Any] = {"status": r.accepted.status, "etag": 'W/"1"'}
                    if r.accepted.route:
                        resp["location"] = f"{r.accepted.reference}/_history/1"
                    else:
                        resp["outcome"] = operation_outcome(r.accepted.issues)
                else:
                    resp = {"status": r.status, "outcome": operation_outcome(r.issues)}
                entries.append({"response": resp})
            return _fhir({"resourceType": "Bundle", "type": f"{btype}-response", "entry": entries})
        except Exception as exc:  # noqa: BLE001 - one mapping point for every error
            return _problem(exc)
        finally:
            timer.labels(SERVICE, "bundle").observe(time.perf_counter() - started)

    async def create_or_update(request: Request, rtype: str, rid: str | None) -> Response:
        started = time.perf_counter()
        try:
            raw = await _read_body(request, settings.ingestion_max_body_bytes)
            try:
                accepted = intake.accept(raw, rtype, rid)
            except FhirValidationError:
                count("invalid")
                raise
            await publish_or_fail([accepted])
            log.info("accepted", extra={"fields": {"ref": accepted.reference,
                                                   "topic": accepted.route.topic if accepted.route else None}})
            return created_response(accepted, _prefer_return(request), updated=rid is not None)
        except Exception as exc:  # noqa: BLE001
            return _problem(exc)
        finally:
            timer.labels(SERVICE, "resource").observe(time.perf_counter() - started)

    @app.post("/fhir/{rtype}")
    async def create(rtype: str, request: Request) -> Response:
        return await create_or_update(request, rtype, None)

    @app.put("/fhir/{rtype}/{rid}")
    async def update(rtype: str, rid: str, request: Request) -> Response:
        return await create_or_update(request, rtype, rid)

    return app
