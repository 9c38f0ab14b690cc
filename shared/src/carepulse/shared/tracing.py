"""W3C ``traceparent`` propagation through Kafka headers and gRPC metadata (OpenTelemetry).

Every CarePulse record carries a ``traceparent`` header (ARCHITECTURE.md, "Wire format").
A stage that consumes a record continues that trace: it extracts the context from the
input's headers, does its work inside a span, and injects the (child) context into the
headers of what it publishes and into the metadata of the gRPC calls it makes. One
event can so be followed from the POST to the derived result and the alert.

Without an exporter configured (``CAREPULSE_OTLP_ENDPOINT`` empty) nothing is recorded
and nothing is sent, yet propagation still works: OpenTelemetry's no-op tracer passes
the incoming span context through, so outputs keep the input's trace id. Nothing here
runs at import time; :func:`setup_tracing` is called once by a process's entry point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import Field

from carepulse.shared.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

KafkaHeaders = list[tuple[str, bytes]]
GrpcMetadata = list[tuple[str, str]]

# W3C Trace Context only (traceparent + tracestate): the format fixed by the wire contract,
# whatever OTEL_PROPAGATORS says in the environment.
_W3C = TraceContextTextMapPropagator()
TRACE_FIELDS: frozenset[str] = frozenset(_W3C.fields)
TRACER_NAME = "carepulse"


class TracingSettings(Settings):
    """``CAREPULSE_OTLP_*``: where spans go. Empty endpoint: no export (propagation only)."""

    otlp_endpoint: str = Field(
        "", description="OTLP/HTTP collector base URL, e.g. http://otel-collector:4318 (empty: tracing off)"
    )
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0, description="Share of new traces recorded")


class TracingUnavailable(RuntimeError):
    """An exporter is configured but the OpenTelemetry SDK/exporter packages are not installed."""


def setup_tracing(
    service: str,
    settings: TracingSettings | None = None,
    *,
    exporter: SpanExporter | None = None,
    install_global: bool = True,
) -> TracerProvider | None:
    """Configure span export for this process; returns the provider, or None when tracing is off.

    ``exporter`` overrides the OTLP exporter built from ``settings`` (tests pass an
    in-memory one). With ``install_global`` the provider becomes OpenTelemetry's global
    one, which the helpers below use by default.
    """
    settings = settings or TracingSettings()
    if exporter is None and not settings.otlp_endpoint:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as e:
        raise TracingUnavailable("install carepulse-shared[tracing] to export spans") from e
    if exporter is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as e:
            raise TracingUnavailable("install carepulse-shared[tracing] for the OTLP exporter") from e
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"carepulse-{service}", "service.namespace": "carepulse"}),
        # Follow the caller's sampling decision; sample new traces by ratio.
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if install_global:
        trace.set_tracer_provider(provider)
    return provider


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)


def _carrier(items: Iterable[tuple[str, Any]] | None) -> dict[str, str]:
    # Header names are case-insensitive in gRPC metadata and W3C; Kafka header names are used as sent.
    return {k.lower(): _text(v) for k, v in items or () if k.lower() in TRACE_FIELDS}


def extract_kafka(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    """The trace context carried by a Kafka record's headers (empty context when absent or malformed)."""
    return _W3C.extract(_carrier(headers))


def extract_grpc(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The trace context carried by gRPC invocation metadata."""
    return _W3C.extract(_carrier(metadata))


def _injected(context: Context | None) -> dict[str, str]:
    out: dict[str, str] = {}
    _W3C.inject(out, context=context)
    return out


def inject_kafka(headers: Sequence[tuple[str, bytes]] | None, context: Context | None = None) -> KafkaHeaders:
    """``headers`` with ``traceparent``/``tracestate`` set from ``context`` (default: the current span).

    Existing trace headers are replaced; when there is no valid span they are kept as they were.
    """
    fields = _injected(context)
    if not fields:
        return list(headers or [])
    kept = [(k, v) for k, v in headers or () if k.lower() not in TRACE_FIELDS]
    return kept + [(k, v.encode("ascii")) for k, v in fields.items()]


def inject_grpc(metadata: Sequence[tuple[str, str]] | None = None, context: Context | None = None) -> GrpcMetadata:
    """gRPC call metadata with the current (or given) trace context added."""
    fields = _injected(context)
    kept = [(k, v) for k, v in metadata or () if not fields or k.lower() not in TRACE_FIELDS]
    return kept + list(fields.items())


def current_traceparent(context: Context | None = None) -> str | None:
    """The ``traceparent`` of the current (or given) span, e.g. for ``fhir_headers(traceparent=...)``."""
    return _injected(context).get("traceparent")


@contextmanager
def _continued_span(
    name: str, context: Context, kind: trace.SpanKind, attributes: dict[str, str | int] | None,
    tracer: trace.Tracer | None,
) -> Iterator[trace.Span]:
    tracer = tracer or trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes) as span:
        yield span


def consume_span(
    name: str,
    headers: Iterable[tuple[str, bytes]] | None,
    *,
    attributes: dict[str, str | int] | None = None,
    tracer: trace.Tracer | None = None,
) -> AbstractContextManager[trace.Span]:
    """A CONSUMER span continuing the trace of one Kafka record; outputs injected inside it join that trace."""
    return _continued_span(name, extract_kafka(headers), trace.SpanKind.CONSUMER, attributes, tracer)


def server_span(
    name: str,
    metadata: Iterable[tuple[str, str | bytes]] | None,
    *,
    attributes: dict[str, str | int] | None = None,
    tracer: trace.Tracer | None = None,
) -> AbstractContextManager[trace.Span]:
    """A SERVER span continuing the trace of one gRPC call (metadata from ``context.invocation_metadata()``)."""
    return _continued_span(name, extract_grpc(metadata), trace.SpanKind.SERVER, attributes, tracer)
