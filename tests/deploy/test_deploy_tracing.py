"""W3C traceparent propagation through Kafka headers and gRPC metadata (carepulse.shared.tracing)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carepulse.shared.kafka.headers import fhir_headers, header, new_traceparent
from carepulse.shared.platform.processes import free_port
from carepulse.shared.tracing import (
    TracingSettings,
    consume_span,
    current_traceparent,
    extract_grpc,
    extract_kafka,
    inject_grpc,
    inject_kafka,
    server_span,
    setup_tracing,
)


def _ids(traceparent: str) -> tuple[str, str]:
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


@pytest.fixture
def recorded() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_without_exporter_tracing_is_off_but_trace_ids_pass_through() -> None:
    assert setup_tracing("care", TracingSettings(otlp_endpoint="")) is None
    incoming = fhir_headers("Observation", "e1", "test")
    in_trace, _ = _ids(header(incoming, "traceparent"))
    with consume_span("care.observation", incoming):
        out = inject_kafka(fhir_headers("Observation", "e2", "care"))
    assert [k for k, _ in out].count("traceparent") == 1
    assert _ids(header(out, "traceparent"))[0] == in_trace
    # The other headers are kept as they were.
    assert header(out, "event-id") == "e2" and header(out, "resource-type") == "Observation"


def test_consumer_span_is_a_child_of_the_record_and_outputs_carry_it(recorded) -> None:
    provider, exporter = recorded
    incoming_tp = new_traceparent()
    in_trace, in_span = _ids(incoming_tp)
    headers = [("event-id", b"e1"), ("traceparent", incoming_tp.encode())]
    with consume_span("care.observation", headers, tracer=provider.get_tracer("t"), attributes={"k": "v"}) as span:
        out = inject_kafka([("event-id", b"e2"), ("traceparent", b"00-stale")])
        grpc_md = inject_grpc([("x-request", "1")])
        tp_now = current_traceparent()
    (finished,) = exporter.get_finished_spans()
    assert finished.kind == trace.SpanKind.CONSUMER
    assert format(finished.context.trace_id, "032x") == in_trace
    assert format(finished.parent.span_id, "016x") == in_span
    out_trace, out_span = _ids(header(out, "traceparent"))
    assert (out_trace, out_span) == (in_trace, format(span.get_span_context().span_id, "016x"))
    assert out_span != in_span
    assert dict(grpc_md)["traceparent"] == tp_now == header(out, "traceparent")
    assert dict(grpc_md)["x-request"] == "1"


def test_missing_or_malformed_traceparent_starts_nothing_and_changes_nothing() -> None:
    for headers in ([("event-id", b"e")], [("traceparent", b"not-a-trace")], None):
        ctx = extract_kafka(headers)
        assert not trace.get_current_span(ctx).get_span_context().is_valid
        assert inject_kafka(headers, ctx) == list(headers or [])


def test_traceparent_crosses_a_real_grpc_call(recorded) -> None:
    provider, exporter = recorded
    seen: list[tuple[str, str]] = []

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        md = list(context.invocation_metadata())
        with server_span("inference.ModelInfer", md, tracer=provider.get_tracer("server")):
            seen.append((current_traceparent() or "", dict(md).get("traceparent", "")))
        return request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("t.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client_tp = new_traceparent()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/t.Echo/Call")
            ctx = extract_kafka([("traceparent", client_tp.encode())])
            assert call(b"x", metadata=inject_grpc(None, ctx), timeout=5) == b"x"
    finally:
        server.stop(None)
    (server_tp, received_tp) = seen[0]
    assert received_tp == client_tp
    assert _ids(server_tp)[0] == _ids(client_tp)[0] and _ids(server_tp)[1] != _ids(client_tp)[1]
    (span,) = exporter.get_finished_spans()
    assert span.kind == trace.SpanKind.SERVER
    assert trace.get_current_span(extract_grpc([("TraceParent", client_tp)])).get_span_context().is_valid


def test_otlp_exporter_posts_spans_to_the_configured_collector() -> None:
    bodies: list[tuple[str, str, int]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            n = int(self.headers.get("content-length", 0))
            self.rfile.read(n)
            bodies.append((self.path, self.headers.get("content-type", ""), n))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    httpd = HTTPServer(("127.0.0.1", port), Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        settings = TracingSettings(otlp_endpoint=f"http://127.0.0.1:{port}/")
        provider = setup_tracing("ingestion", settings, install_global=False)
        assert provider is not None
        with provider.get_tracer("t").start_as_current_span("POST /fhir"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert bodies and bodies[0][0] == "/v1/traces"
    assert bodies[0][1] == "application/x-protobuf" and bodies[0][2] > 0


def test_import_has_no_side_effects() -> None:
    code = (
        "import carepulse.shared.tracing\n"
        "from opentelemetry import trace\n"
        "print(type(trace.get_tracer_provider()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "ProxyTracerProvider"
