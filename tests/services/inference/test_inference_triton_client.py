"""Acceptance: the server driven by tritonclient.grpc, a client nobody here wrote."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as triton
from inference_fixtures import affine_reference
from tritonclient.utils import InferenceServerException

from carepulse.inference.testing import ServerThread
from carepulse.shared.inference.tensors import CONTENTS_FIELD

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(server: ServerThread) -> triton.InferenceServerClient:
    c = triton.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


def _input(name: str, array: np.ndarray, datatype: str, raw: bool = True) -> triton.InferInput:
    t = triton.InferInput(name, list(array.shape), datatype)
    if raw:
        t.set_data_from_numpy(array)  # tritonclient's gRPC client always sends raw_input_contents
        return t
    # Typed `contents`: tritonclient has no public call for it, so fill its request tensor.
    field = CONTENTS_FIELD[datatype]
    values = [v.encode() if isinstance(v, str) else v for v in array.reshape(-1).tolist()]
    getattr(t._get_tensor().contents, field).extend(values)
    return t


def _status(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return exc.value.status()


def test_health_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta.name == "carepulse-inference"
    assert "model_repository" in meta.extensions


def test_model_ready_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_model_ready("affine")
    assert client.is_model_ready("affine", "1")
    assert not client.is_model_ready("affine", "7")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("affine")
    assert meta.platform == "onnxruntime_onnx"
    assert list(meta.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("x", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("logits", "FP32", [-1, 3]), ("probs", "FP32", [-1, 3])]
    # No config.pbtxt at all: everything comes from the ONNX graph, no batch dimension.
    meta = client.get_model_metadata("uint8_mean")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("pixels", "UINT8", [-1, 4])]


def test_model_config(client: triton.InferenceServerClient) -> None:
    config = client.get_model_config("affine").config
    assert config.name == "affine"
    assert config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 20000
    assert list(config.dynamic_batching.preferred_batch_size) == [8]
    assert config.parameters["execution_provider"].string_value == "CPUExecutionProvider"
    # A config listing no tensors is completed from the graph (Triton's auto-complete).
    completed = client.get_model_config("int64_add").config
    assert [(t.name, list(t.dims)) for t in completed.input] == [("a", [3])]
    assert [(t.name, list(t.dims)) for t in completed.output] == [("sum", [3])]


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_infer_fp32(client: triton.InferenceServerClient, raw: bool) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    result = client.infer("affine", [_input("x", x, "FP32", raw)], request_id="req-1")
    logits, probs = affine_reference(x, version=2)
    np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("probs"), probs, rtol=1e-5, atol=1e-6)
    response = result.get_response()
    assert response.model_version == "2" and response.id == "req-1"


def test_infer_requested_version_and_output(client: triton.InferenceServerClient) -> None:
    x = np.ones((1, 4), dtype=np.float32)
    result = client.infer("affine", [_input("x", x, "FP32")], model_version="1",
                          outputs=[triton.InferRequestedOutput("logits")])
    np.testing.assert_allclose(result.as_numpy("logits"), affine_reference(x, version=1)[0], rtol=1e-5)
    assert result.as_numpy("probs") is None


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_infer_int64_uint8_bytes(client: triton.InferenceServerClient, raw: bool) -> None:
    a = np.array([[10, 20, 30], [-1, -2, 2**40]], dtype=np.int64)
    out = client.infer("int64_add", [_input("a", a, "INT64", raw)]).as_numpy("sum")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, a + [1, 2, 3])

    pixels = np.array([[0, 255, 255, 2], [1, 2, 3, 4], [9, 9, 9, 9]], dtype=np.uint8)
    mean = client.infer("uint8_mean", [_input("pixels", pixels, "UINT8", raw)]).as_numpy("mean")
    np.testing.assert_allclose(mean, pixels.astype(np.float32).mean(axis=1, keepdims=True))

    text = np.array(["crackles", "no acute process", "ünïcode", ""], dtype=object)
    echo = client.infer("strings", [_input("text", text, "BYTES", raw)]).as_numpy("echo")
    assert [e.decode() for e in echo] == list(text)


def test_concurrent_requests_are_batched_and_correct(server: ServerThread,
                                                     client: triton.InferenceServerClient) -> None:
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1 + i % 2, 4)).astype(np.float32) for i in range(24)]

    def one(x: np.ndarray) -> np.ndarray:
        c = triton.InferenceServerClient(server.grpc_url)
        try:
            return c.infer("affine", [_input("x", x, "FP32")]).as_numpy("logits")
        finally:
            c.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, xs))
    for x, got in zip(xs, results, strict=True):
        np.testing.assert_allclose(got, affine_reference(x, version=2)[0], rtol=1e-5, atol=1e-5)
    # Requests were merged: some session.run saw more than one request's rows.
    body = urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5).read().decode()
    counts = {}
    for line in body.splitlines():
        if line.startswith('carepulse_inference_batch_size_bucket{le="1.0",model="affine"}'):
            counts["le1"] = float(line.rsplit(" ", 1)[1])
        if line.startswith('carepulse_inference_batch_size_count{model="affine"}'):
            counts["all"] = float(line.rsplit(" ", 1)[1])
    assert counts["all"] > 0
    assert counts["le1"] < counts["all"], "no batch ever held more than one sample"


def test_repository_index_load_unload(server: ServerThread, client: triton.InferenceServerClient) -> None:
    index = {(m["name"], m.get("version", "")): m for m in
             client.get_model_repository_index(as_json=True)["models"]}
    assert index[("affine", "1")]["state"] == "READY" and index[("affine", "2")]["state"] == "READY"
    assert index[("broken", "")]["state"] == "UNAVAILABLE"
    assert "dims" in index[("broken", "")]["reason"]

    client.unload_model("int64_add")
    assert not client.is_model_ready("int64_add")
    with pytest.raises(InferenceServerException) as exc:
        client.infer("int64_add", [_input("a", np.zeros((1, 3), np.int64), "INT64")])
    assert _status(exc) == "StatusCode.NOT_FOUND"
    index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index["int64_add"]["state"] == "UNAVAILABLE"

    client.load_model("int64_add")
    assert client.is_model_ready("int64_add")
    out = client.infer("int64_add", [_input("a", np.zeros((1, 3), np.int64), "INT64")]).as_numpy("sum")
    np.testing.assert_array_equal(out, [[1, 2, 3]])
    ready = client.get_model_repository_index(as_json=True)
    assert "broken" not in {m["name"] for m in ready["models"] if m.get("state") == "READY"}


def test_load_errors(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("broken")
    assert _status(exc) == "StatusCode.FAILED_PRECONDITION"
    assert "'x'" in exc.value.message()
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("does-not-exist")
    assert _status(exc) == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("../affine")
    assert _status(exc) == "StatusCode.NOT_FOUND"


BAD_REQUESTS = [
    # (case, model, version, inputs, wanted status, text the message must contain)
    ("wrong dtype", "affine", "", [("x", np.zeros((1, 4), np.float64), "FP64")], "INVALID_ARGUMENT", "'x'"),
    ("wrong shape", "affine", "", [("x", np.zeros((1, 5), np.float32), "FP32")], "INVALID_ARGUMENT", "'x'"),
    ("no batch dim", "affine", "", [("x", np.zeros((4,), np.float32), "FP32")], "INVALID_ARGUMENT", "'x'"),
    ("wrong name", "affine", "", [("y", np.zeros((1, 4), np.float32), "FP32")], "INVALID_ARGUMENT", "'y'"),
    ("missing input", "affine", "", [], "INVALID_ARGUMENT", "'x'"),
    ("oversize batch", "affine", "", [("x", np.zeros((9, 4), np.float32), "FP32")], "INVALID_ARGUMENT", "batch"),
    ("oversize batch, no batcher", "int64_add", "", [("a", np.zeros((5, 3), np.int64), "INT64")],
     "INVALID_ARGUMENT", "'a'"),
    ("unknown model", "nope", "", [("x", np.zeros((1, 4), np.float32), "FP32")], "NOT_FOUND", "nope"),
    ("unknown version", "affine", "9", [("x", np.zeros((1, 4), np.float32), "FP32")], "NOT_FOUND", "9"),
    ("failed model", "broken", "", [("x", np.zeros((1, 5), np.float32), "FP32")], "NOT_FOUND", "broken"),
]


@pytest.mark.parametrize(("case", "model", "version", "inputs", "status", "text"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests(client: triton.InferenceServerClient, case: str, model: str, version: str,
                      inputs: list[tuple[str, np.ndarray, str]], status: str, text: str) -> None:
    with pytest.raises(InferenceServerException) as exc:
        client.infer(model, [_input(n, a, d) for n, a, d in inputs], model_version=version)
    assert _status(exc) == f"StatusCode.{status}", exc.value.message()
    assert text in exc.value.message()
    # ...and the server keeps serving.
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(client.infer("affine", [_input("x", x, "FP32")]).as_numpy("logits"),
                               affine_reference(x, 2)[0], rtol=1e-5)


def test_malformed_tensors(client: triton.InferenceServerClient) -> None:
    # Raw bytes that do not match the declared shape, and a datatype the protocol lacks.
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(client._channel._channel.target().decode()) as channel:  # type: ignore[attr-defined]
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="affine")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(b"\x00" * 15)
        with pytest.raises(grpc.RpcError) as exc:
            stub.ModelInfer(request)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'x'" in exc.value.details()
        request.inputs[0].datatype = "FP33"
        with pytest.raises(grpc.RpcError) as exc:
            stub.ModelInfer(request)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "FP33" in exc.value.details()
        request.raw_input_contents[0] = b"\x00" * 16
        request.inputs[0].datatype = "FP32"
        request.raw_input_contents.append(b"")
        with pytest.raises(grpc.RpcError) as exc:
            stub.ModelInfer(request)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stub.ServerReady(service_pb2.ServerReadyRequest()).ready


def test_http_probes_and_metrics(server: ServerThread) -> None:
    assert json.loads(urllib.request.urlopen(f"{server.http_url}/livez", timeout=5).read())["status"] == "ok"
    ready = json.loads(urllib.request.urlopen(f"{server.http_url}/readyz", timeout=5).read())
    assert ready["status"] == "ok" and "affine/2" in ready["models"] and "broken" in ready["failed"]
    body = urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5).read().decode()
    for name in ("carepulse_inference_requests_total", "carepulse_inference_queue_seconds",
                 "carepulse_inference_compute_seconds", "carepulse_inference_batch_size",
                 "carepulse_inference_model_ready"):
        assert name in body


def test_grpc_health_service(server: ServerThread) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING


def test_requests_over_the_size_limit_are_refused_and_the_server_goes_on(make_server) -> None:  # noqa: ANN001
    limit = 4 * 1024 * 1024
    with make_server(inference_max_request_bytes=limit) as small:
        c = triton.InferenceServerClient(small.grpc_url)
        try:
            big = np.ones((1, limit // 4 + 1024), np.float32)  # one tensor just over the limit
            with pytest.raises(InferenceServerException) as exc:
                c.infer("affine", [_input("x", big, "FP32")])
            assert _status(exc) == "StatusCode.RESOURCE_EXHAUSTED"
            x = np.ones((1, 4), np.float32)
            np.testing.assert_allclose(c.infer("affine", [_input("x", x, "FP32")]).as_numpy("logits"),
                                       affine_reference(x, 2)[0], rtol=1e-5)
        finally:
            c.close()
