"""HTTP wiring of ingestion: FHIR REST on ``/fhir``, Subscription notifications, bulk NDJSON,
health and metrics.

Only translation happens here (HTTP <-> :class:`Intake`); ``_problem`` is the one
place that maps domain errors to HTTP status codes. Every endpoint that accepts data
goes through ``at_edge``: the caller is authenticated (when ``CAREPULSE_AUTH_ENABLED``),
scopes are checked before anything is published, and one AuditEvent is published per
request after the answer is sent. Health, metrics and ``GET /fhir/metadata`` stay open.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from carepulse.ingestion import jsonio
from carepulse.ingestion.audit import AuditPublisher, AuditTrail, audit_event
from carepulse.ingestion.auth import (
    Authenticator,
    AuthUnavailable,
    Forbidden,
    JwksCache,
    Principal,
    Unauthenticated,
    unrestricted,
)
from carepulse.ingestion.capability import capability_statement
from carepulse.ingestion.dedupe import DedupeUnavailable, SeenStore, StillPending
from carepulse.ingestion.inbound import InboundConsumer
from carepulse.ingestion.intake import Accepted, EntryResult, Intake, TransactionRejected, UnsupportedBundle
from carepulse.ingestion.notifications import FetchFailed, ResourceFetcher, parse_notification, resource_type_of
from carepulse.ingestion.offload import Validation
from carepulse.ingestion.probe import TopicProbe
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.fhir.codec import FHIR_JSON, FhirValidationError, Issue
from carepulse.shared.fhir.outcome import operation_outcome
from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.producer import Publisher
from carepulse.shared.metrics import processing_seconds, records_total, render_metrics
from carepulse.shared.redis_client import make_redis
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
SERVICE = "ingestion"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_NDJSON_TYPES = ("application/fhir+ndjson", "application/ndjson", "application/x-ndjson")
_MAX_REPORTED = 1000  # rejected lines named one by one in an import's OperationOutcome
REALM = "carepulse"


class PayloadTooLarge(Exception):
    pass


class UnsupportedMediaType(Exception):
    pass


class PublishFailed(Exception):
    pass


def _fhir(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else jsonio.dumps(body)
    return Response(content, status_code=status, media_type=FHIR_JSON if body is not None else None, headers=headers)


def _problem(exc: Exception) -> Response:
    """The single mapping from domain errors to HTTP statuses with an OperationOutcome."""
    if isinstance(exc, Unauthenticated):
        return _fhir(operation_outcome([Issue("login", str(exc))]), 401,
                     {"WWW-Authenticate": exc.www_authenticate(REALM)})
    if isinstance(exc, Forbidden):
        return _fhir(operation_outcome([Issue("forbidden", str(exc))]), 403,
                     {"WWW-Authenticate": exc.www_authenticate(REALM)})
    if isinstance(exc, AuthUnavailable):
        return _fhir(operation_outcome([Issue("transient", str(exc))]), 503, {"Retry-After": "5"})
    if isinstance(exc, PayloadTooLarge):
        return _fhir(operation_outcome([Issue("too-long", str(exc))]), 413)
    if isinstance(exc, UnsupportedMediaType):
        return _fhir(operation_outcome([Issue("not-supported", str(exc))]), 415)
    if isinstance(exc, UnsupportedBundle):
        return _fhir(operation_outcome(exc.issues), 422)
    if isinstance(exc, FhirValidationError):
        return _fhir(operation_outcome(exc.issues), 400)
    if isinstance(exc, PublishFailed | DedupeUnavailable | StillPending | FetchFailed):
        return _fhir(operation_outcome([Issue("transient", str(exc))]), 503, {"Retry-After": "1"})
    log.exception("unexpected error")
    return _fhir(operation_outcome([Issue("exception", "internal error")]), 500)


def _prefer_return(request: Request, default: str) -> str:
    for part in request.headers.get("prefer", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k.strip() == "return":
            return v.strip().strip('"')
    return default


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    ctype = _media_type(request)
    if ctype not in _JSON_TYPES:
        raise UnsupportedMediaType(f"content type {ctype[:60] or '(none)'!r}: send application/fhir+json")
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


def _event_id(request: Request) -> str | None:
    """A sender-chosen idempotency key: the same key is published once."""
    value = request.headers.get("event-id") or request.headers.get("idempotency-key")
    return value.strip()[:200] if value and value.strip() else None


def _http_date(a: Accepted) -> str:
    meta = a.resource.get("meta")
    last = meta.get("lastUpdated") if isinstance(meta, dict) else None
    when = datetime.now(UTC)
    if isinstance(last, str):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(last.replace("Z", "+00:00")).astimezone(UTC)
    return when.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _first_issue_code(response: Response) -> str | None:
    """Code of the first issue of an error response's OperationOutcome (for the audit trail)."""
    if response.status_code < 400 or not isinstance(response.body, bytes | memoryview) or not response.body:
        return None
    try:
        doc = jsonio.loads(bytes(response.body))
        return str(doc["issue"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _authenticator(settings: IngestionSettings) -> Authenticator | None:
    if not settings.auth_enabled:
        return None
    jwks = JwksCache(settings.auth_jwks_url, ttl_s=settings.auth_jwks_ttl_s,
                     min_refetch_s=settings.auth_jwks_min_refetch_s)
    return Authenticator(issuer=settings.auth_issuer, audience=settings.auth_audience, jwks=jwks,
                         leeway_s=settings.auth_leeway_s,
                         algorithms=[a.strip() for a in settings.auth_algorithms.split(",") if a.strip()])


def create_app(settings: IngestionSettings, producer: Publisher) -> FastAPI:
    topics = Topics.with_prefix(settings.topic_prefix)
    authn = _authenticator(settings)
    auditor = AuditPublisher(producer, topics.audit, settings.source_name) if settings.ingestion_audit_enabled \
        else None
    seen = SeenStore(make_redis(settings, socket_timeout=5, socket_connect_timeout=2), settings.ingestion_dedupe_ttl_s)
    probe = TopicProbe(settings)
    intake = Intake(topics, producer, settings.source_name, settings.ingestion_max_bundle_entries, seen, probe)
    validation = Validation(intake, settings.ingestion_validation_processes, topic_prefix=settings.topic_prefix,
                            source_name=settings.source_name, max_entries=settings.ingestion_max_bundle_entries)
    fetcher = ResourceFetcher(settings.ingestion_fhir_server_url, settings.ingestion_fhir_server_timeout_s)
    inbound = InboundConsumer(settings, settings.ingestion_consumer_group, topics, intake, producer, seen, probe,
                              settings.source_name) if settings.ingestion_consume_inbound else None
    health = HealthChecks()
    health.add("kafka", lambda: producer.ready(topics.observation))
    health.add("redis", seen.ping)
    if inbound is not None:
        health.add("inbound-consumer", inbound.ready)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await producer.start()
        await seen.start()
        await validation.start()
        if inbound is not None:
            inbound.start()
        try:
            yield
        finally:
            if inbound is not None:
                await inbound.stop()
            await fetcher.close()
            if authn is not None:
                await authn.close()
            await seen.stop()
            await producer.stop()
            validation.stop()

    app = FastAPI(title="CarePulse ingestion", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    base = settings.ingestion_public_base.rstrip("/")
    token_url = (settings.auth_token_url or f"{settings.auth_issuer.rstrip('/')}/token") if authn else None
    timer = processing_seconds()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = "not-found" if exc.status_code == 404 else "not-supported"
        return _fhir(operation_outcome([Issue(code, str(exc.detail))]), exc.status_code)

    async def at_edge(request: Request, trail: AuditTrail,
                      work: Callable[[Principal, AuditTrail], Awaitable[Response]]) -> Response:
        """Authenticate, run the endpoint, and publish its AuditEvent once the answer is sent."""
        try:
            principal = unrestricted() if authn is None else await authn.authenticate(
                request.headers.get("authorization"))
            trail.principal = principal
            response = await work(principal, trail)
        except Exception as exc:  # noqa: BLE001 - one mapping point for every error
            response = _problem(exc)
        if auditor is not None:
            event = audit_event(trail, status=response.status_code, issue_code=_first_issue_code(response),
                                client_ip=request.client.host if request.client else None,
                                source_name=settings.source_name)
            # After the response: the audit publish adds no latency to the sender.
            response.background = BackgroundTask(auditor.publish, event)
        return response

    def trail(interaction: str, resource_type: str | None = None, operation: str | None = None) -> AuditTrail:
        return AuditTrail(interaction, resource_type, operation, max_entities=settings.ingestion_audit_max_entities)

    def note_accepted(t: AuditTrail, accepted: list[Accepted]) -> None:
        for a in accepted:
            t.add(a.reference, a.patient_ref())

    def count(outcome: str, n: int = 1, topic: str = "-") -> None:
        if n:
            records_total().labels(SERVICE, topic, outcome).inc(n)

    def count_accepted(accepted: list[Accepted]) -> None:
        for a in accepted:
            outcome = "duplicate" if a.duplicate else "ok" if a.route else "not-routed"
            count(outcome, topic=a.route.topic if a.route else "-")

    async def publish_all(accepted: list[Accepted]) -> None:
        """Publish all or fail the request (the sender retries; dedupe keeps retries single)."""
        errors = [e for e in await intake.publish(accepted) if e is not None]
        if errors:
            count("error", len(errors))
            raise PublishFailed(f"{len(errors)} record(s) not acknowledged by Kafka: {errors[0]}")
        count_accepted(accepted)

    def single_response(a: Accepted, prefer: str, updated: bool) -> Response:
        headers = {"ETag": f'W/"{a.version}"', "Last-Modified": _http_date(a),
                   "Location": f"{base}/fhir/{a.reference}/_history/{a.version}"}
        status = 200 if (updated or a.route is None or a.duplicate) else 201
        if prefer == "minimal":
            return _fhir(None, status, headers)
        if prefer == "OperationOutcome" or a.route is None:
            issues = a.issues or ([Issue("informational", "already received: not published again", None,
                                         "information")] if a.duplicate else [])
            return _fhir(operation_outcome(issues), status, headers)
        return Response(a.raw, status_code=status, media_type=FHIR_JSON, headers=headers)

    def entry_response(r: EntryResult, prefer: str) -> dict[str, Any]:
        a = r.accepted
        if a is None:
            return {"response": {"status": r.status, "outcome": operation_outcome(r.issues)}}
        resp: dict[str, Any] = {"status": a.status, "location": f"{a.reference}/_history/{a.version}",
                                "etag": f'W/"{a.version}"'}
        if prefer == "OperationOutcome" or (a.route is None and prefer != "representation"):
            resp["outcome"] = operation_outcome(a.issues)
        entry: dict[str, Any] = {"response": resp}
        if prefer == "representation":
            entry["resource"] = a.document()
        return entry

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        ok, detail = await health.readiness()
        return Response(jsonio.dumps({"status": "ok" if ok else "unavailable", "checks": detail}),
                        status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        return _fhir(capability_statement(f"{base}/fhir", datetime.now(UTC).date().isoformat(),
                                          notifications=True, bulk_import=True, token_url=token_url))

    @app.post("/fhir")
    async def post_bundle(request: Request) -> Response:
        return await at_edge(request, trail("batch"), lambda p, t: bundle_work(request, p, t))

    async def bundle_work(request: Request, principal: Principal, t: AuditTrail) -> Response:
        started = time.perf_counter()
        try:
            raw = await _read_body(request, settings.ingestion_max_body_bytes)
            work = await validation.bundle(raw, _event_id(request), request.headers.get("traceparent"))
            if work.type == "transaction":
                t.interaction = "transaction"
            # Every entry's type and method against the scopes, before any result is used or published.
            principal.require_all(work.interactions)
            if work.error is not None:
                raise work.error
            btype, results = str(work.type), work.results
            bad = [r for r in results if r.accepted is None]
            count("invalid", len(bad))
            t.rejected = len(bad)
            accepted = [r.accepted for r in results if r.accepted is not None]
            if btype == "transaction":
                if bad:
                    raise TransactionRejected([i for r in bad for i in r.issues])
                await publish_all(accepted)
            else:
                errors = await intake.publish(accepted)
                it = iter(errors)
                for r in results:
                    if r.accepted is not None and (err := next(it)) is not None:
                        r.issues, r.accepted, r.status = [Issue("transient", str(err))], None, "503 Service Unavailable"
                count("error", sum(e is not None for e in errors))
                count_accepted([r.accepted for r in results if r.accepted is not None])
                t.rejected = sum(r.accepted is None for r in results)
            note_accepted(t, [r.accepted for r in results if r.accepted is not None])
            prefer = _prefer_return(request, "minimal")
            return _fhir({"resourceType": "Bundle", "type": f"{btype}-response",
                          "entry": [entry_response(r, prefer) for r in results]})
        except Exception as exc:  # noqa: BLE001 - one mapping point for every error
            return _problem(exc)
        finally:
            timer.labels(SERVICE, "bundle").observe(time.perf_counter() - started)

    @app.post("/fhir/$import")
    async def bulk_import(request: Request) -> Response:
        """NDJSON upload (Bulk Data format): lines validated and published in chunks as they stream in."""
        return await at_edge(request, trail("operation", operation="import"),
                             lambda p, t: import_work(request, p, t))

    async def import_work(request: Request, principal: Principal, t: AuditTrail) -> Response:
        started = time.perf_counter()
        report = ImportReport()
        try:
            if not principal.allows_any("c"):
                raise Forbidden("$import needs a scope that allows create", "system/*.c")
            ctype = _media_type(request)
            if ctype not in _NDJSON_TYPES:
                raise UnsupportedMediaType(f"content type {ctype[:60] or '(none)'!r}: send application/fhir+ndjson")
            supplied = _event_id(request)
            pending: list[bytes] = []
            async for line in _lines(request, settings.ingestion_max_import_bytes, settings.ingestion_max_body_bytes):
                pending.append(line)
                if len(pending) >= settings.ingestion_import_chunk_lines:
                    await import_chunk(pending, report, supplied, principal, t)
                    pending = []
            await import_chunk(pending, report, supplied, principal, t)
            t.rejected = report.rejected_lines
            if report.lines == 0:
                raise FhirValidationError([Issue("required", "no NDJSON lines in the body")])
            if report.accepted == 0 and report.forbidden and report.forbidden == report.rejected_lines:
                raise Forbidden(f"scope allows create of none of the {report.lines} line(s)",
                                " ".join(sorted(f"system/{x}.c" for x in report.forbidden_types)))
            status = 400 if report.accepted == 0 else 200
            return _fhir(operation_outcome(report.issues()), status)
        except (PublishFailed, DedupeUnavailable, StillPending) as exc:
            # What went through is remembered: resending the whole file publishes only the rest.
            return _fhir(operation_outcome([Issue("transient", f"{exc}; resend the file")] + report.issues()), 503,
                         {"Retry-After": "1"})
        except Exception as exc:  # noqa: BLE001
            return _problem(exc)
        finally:
            timer.labels(SERVICE, "import").observe(time.perf_counter() - started)

    async def import_chunk(lines: list[bytes], report: ImportReport, supplied: str | None, principal: Principal,
                           t: AuditTrail) -> None:
        if not lines:
            return
        first = report.lines + 1
        report.lines += len(lines)
        eids = [None if supplied is None else f"{supplied}:{n}" for n in range(first, report.lines + 1)]
        results = []
        for n, r in enumerate(await validation.accept_lines(lines, eids), start=first):
            if r.accepted is not None and not principal.allows(r.accepted.resource["resourceType"], "c"):
                rtype = str(r.accepted.resource["resourceType"])
                r = EntryResult(issues=[Issue("forbidden", f"scope does not allow create of {rtype}")])
                report.forbidden += 1
                report.forbidden_types.add(rtype)
            results.append((n, r))
        accepted = [r.accepted for _, r in results if r.accepted is not None]
        for n, r in results:
            if r.accepted is None:
                report.reject(n, r.issues)
        count("invalid", len(results) - len(accepted))
        await publish_all(accepted)
        note_accepted(t, accepted)
        report.accepted += len(accepted)
        report.duplicates += sum(a.duplicate for a in accepted)
        report.not_routed += sum(a.route is None for a in accepted)

    @app.post("/fhir/subscription-notification")
    async def notification(request: Request) -> Response:
        """Rest-hook endpoint of a FHIR Subscription (R4B/R5 or the R4 backport)."""
        return await at_edge(request, trail("create", operation="subscription-notification"),
                             lambda p, t: notification_work(request, p, t))

    async def notification_work(request: Request, principal: Principal, t: AuditTrail) -> Response:
        started = time.perf_counter()
        try:
            raw = await _read_body(request, settings.ingestion_max_body_bytes)
            note = parse_notification(jsonio.loads(raw))
            # Checked before any id-only resource is fetched: a client may not make us fetch what it may not send.
            principal.require_all((f"Bundle.entry[{i}]", resource_type_of(res, url), "c")
                                  for i, res, url in note.items)
            accepted: list[Accepted] = []
            issues: list[Issue] = []
            for i, res, url in note.items:
                where = f"Bundle.entry[{i}].resource"
                try:
                    if res is not None:
                        body = jsonio.dumps(res)
                    else:
                        assert url is not None
                        body = await fetcher.fetch(url)
                        where = f"{url[:120]}"
                    accepted.append(intake.accept(body, None, None, None, request.headers.get("traceparent")))
                except FhirValidationError as e:
                    issues += [Issue(x.code, x.diagnostics, f"{where}" + (
                        x.expression[len(x.expression.split('.')[0]):] if x.expression else ""), x.severity)
                        for x in e.issues]
            if issues:
                count("invalid", len(issues))
                raise FhirValidationError(issues)  # all or nothing: the server sees the error and can resend
            await publish_all(accepted)
            note_accepted(t, accepted)
            done = [Issue("informational", f"{note.kind}: {len(accepted)} resource(s) received", None,
                          "information")]
            return _fhir(operation_outcome(done), 200)
        except Exception as exc:  # noqa: BLE001
            return _problem(exc)
        finally:
            timer.labels(SERVICE, "notification").observe(time.perf_counter() - started)

    async def create_or_update(request: Request, rtype: str, rid: str | None, principal: Principal,
                               t: AuditTrail) -> Response:
        started = time.perf_counter()
        try:
            principal.require(rtype, "c" if rid is None else "u")
            raw = await _read_body(request, settings.ingestion_max_body_bytes)
            try:
                accepted = intake.accept(raw, rtype, rid, _event_id(request), request.headers.get("traceparent"))
            except FhirValidationError:
                count("invalid")
                raise
            await publish_all([accepted])
            note_accepted(t, [accepted])
            log.info("accepted", extra={"fields": {"ref": accepted.reference, "duplicate": accepted.duplicate,
                                                   "topic": accepted.route.topic if accepted.route else None}})
            return single_response(accepted, _prefer_return(request, "representation"), updated=rid is not None)
        except Exception as exc:  # noqa: BLE001
            return _problem(exc)
        finally:
            timer.labels(SERVICE, "resource").observe(time.perf_counter() - started)

    @app.post("/fhir/{rtype}")
    async def create(rtype: str, request: Request) -> Response:
        return await at_edge(request, trail("create", rtype[:64]),
                             lambda p, t: create_or_update(request, rtype, None, p, t))

    @app.put("/fhir/{rtype}/{rid}")
    async def update(rtype: str, rid: str, request: Request) -> Response:
        return await at_edge(request, trail("update", rtype[:64]),
                             lambda p, t: create_or_update(request, rtype, rid, p, t))

    return app


async def _lines(request: Request, limit: int, max_line: int) -> AsyncIterator[bytes]:
    """Non-empty lines of a streamed body, without holding the whole upload in memory."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    size, rest = 0, b""
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        if len(rest) > max_line:
            raise PayloadTooLarge(f"an NDJSON line exceeds the limit of {max_line} bytes")
        for p in parts:
            if p.strip():
                yield p
    if rest.strip():
        yield rest


class ImportReport:
    """What an NDJSON import did: counts, and each rejected line with its FHIRPath issues."""

    def __init__(self) -> None:
        self.lines = self.accepted = self.duplicates = self.not_routed = 0
        self.rejected: list[Issue] = []
        self.rejected_lines = 0
        self.forbidden = 0  # lines of a type the caller's scopes do not allow
        self.forbidden_types: set[str] = set()

    def reject(self, line: int, issues: list[Issue]) -> None:
        self.rejected_lines += 1
        if len(self.rejected) < _MAX_REPORTED:
            self.rejected += [Issue(i.code, f"line {line}: {i.diagnostics}", i.expression) for i in issues]

    def issues(self) -> list[Issue]:
        summary = Issue("informational", f"lines {self.lines}, accepted {self.accepted} (already received "
                                         f"{self.duplicates}, not routed {self.not_routed}), rejected "
                                         f"{self.rejected_lines}", None, "information")
        return [summary, *self.rejected]
