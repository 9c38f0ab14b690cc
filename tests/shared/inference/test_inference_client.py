"""InferenceClient against a scripted in-process gRPC server: encoding, errors, retries, deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
import pytest

from carepulse.shared.inference import tensors
from carepulse.shared.inference.client import InferenceClient, InferenceError
from carepulse.shared.inference.protocol import grpc_service_pb2 as pb
from carepulse.shared.inference.protocol import grpc_service_pb2_grpc as pb_grpc
from carepulse.shared.inference.settings import InferenceClientSettings

pytestmark = pytest.mark.timeout(60)


class ScriptedServer(pb_grpc.GRPCInferenceServiceServicer):
    """Doubles every FP32/INT64 input; fails the first ``unavailable`` calls; can stall."""

    def __init__(self) -> None:
        self.unavailable = 0
        self.stall_s = 0.0
        self.calls = 0
        self.peers: set[str] = set()
        self.last: pb.ModelInferRequest | None = None

    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ModelInferResponse:
        self.calls += 1
        self.peers.add(context.peer())
        self.last = request
        if self.unavailable:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        if request.model_name != "double":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{request.model_name}'")
        resp = pb.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
        for t, raw in zip(request.inputs, request.raw_input_contents, strict=True):
            array = tensors.decode_raw(t.datatype, t.shape, raw)
            out = array if t.datatype == "BYTES" else array * 2
            resp.outputs.add(name=f"{t.name}_out", datatype=t.datatype, shape=out.shape)
            resp.raw_output_contents.append(tensors.encode_raw(out))
        # One typed output too: clients must read both encodings.
        resp.outputs.add(name="typed", datatype="INT64", shape=[2],
                         contents=pb.InferTensorContents(int64_contents=[7, 8]))
        return resp

    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ModelMetadataResponse:
        resp = pb.ModelMetadataResponse(name=request.name, versions=["1"], platform="onnxruntime_onnx")
        resp.inputs.add(name="x", datatype="FP32", shape=[-1, 4])
        return resp

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
                              ) -> pb.RepositoryIndexResponse:
        resp = pb.RepositoryIndexResponse()
        resp.models.add(name="double", version="1", state="READY")
        resp.models.add(name="old", state="UNAVAILABLE", reason="unloaded")
        return resp

    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
                                  ) -> pb.RepositoryModelLoadResponse:
        if request.model_name != "double":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such model")
        return pb.RepositoryModelLoadResponse()


@asynccontextmanager
async def serving(servicer: ScriptedServer) -> AsyncIterator[str]:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def run(scenario: Callable[[ScriptedServer, str], Any]) -> Any:
    async def main() -> Any:
        servicer = ScriptedServer()
        async with serving(servicer) as url:
            return await scenario(servicer, url)

    return asyncio.run(main())


def test_infer_roundtrip_and_one_reused_connection() -> None:
    async def scenario(servicer: ScriptedServer, url: str) -> None:
        async with InferenceClient(url) as client:
            x = np.arange(8, dtype=np.float32).reshape(2, 4)
            ids = np.array([[1, 2**40]], dtype=np.int64)
            for i in range(5):
                out = await client.infer("double", {"x": x, "ids": ids, "note": np.array(["hé"], dtype=object)},
                                         request_id=f"r{i}")
                np.testing.assert_array_equal(out["x_out"], x * 2)
                assert out["x_out"].dtype == np.float32
                np.testing.assert_array_equal(out["ids_out"], ids * 2)
                assert out["note_out"].tolist() == ["hé".encode()]
                np.testing.assert_array_equal(out["typed"], [7, 8])
            assert servicer.last is not None and servicer.last.id == "r4"
            assert [t.datatype for t in servicer.last.inputs] == ["FP32", "INT64", "BYTES"]
            assert await client.server_ready()
        assert len(servicer.peers) == 1  # every call on the same connection

    run(scenario)


def test_requested_outputs_are_sent() -> None:
    async def scenario(servicer: ScriptedServer, url: str) -> None:
        async with InferenceClient(url) as client:
            await client.infer("double", {"x": np.ones((1, 4), np.float32)}, outputs=["x_out"])
        assert servicer.last is not None and [o.name for o in servicer.last.outputs] == ["x_out"]

    run(scenario)


def test_errors_carry_the_status_code() -> None:
    async def scenario(servicer: ScriptedServer, url: str) -> None:
        async with InferenceClient(url) as client:
            with pytest.raises(InferenceError) as exc:
                await client.infer("missing", {"x": np.ones((1, 4), np.float32)})
            assert exc.value.code == grpc.StatusCode.NOT_FOUND and "missing" in exc.value.message
            assert servicer.calls == 1  # NOT_FOUND is not retried

    run(scenario)


def test_unavailable_is_retried() -> None:
    async def scenario(servicer: ScriptedServer, url: str) -> None:
        servicer.unavailable = 2
        async with InferenceClient(url, retries=3, backoff_s=0.01) as client:
            out = await client.infer("double", {"x": np.ones((1, 4), np.float32)})
        assert out["x_out"].tolist() == [[2, 2, 2, 2]]
        assert servicer.calls == 3

    run(scenario)


def test_retries_are_bounded() -> None:
    async def scenario(servicer: ScriptedServer, url: str) -> None:
        servicer.unavailable = 10
        async with InferenceClient(url, retries=2, backoff_s=0.01) as client:
            with pytest.raises(InferenceError) as exc:
                await client.infer("double", {"x": np.ones((1, 4), np.float32)})
        assert exc.value.code == grpc.StatusCode.UNAVAILABLE
        assert servicer.calls == 3

    run(scenario)


def test_deadline() -> None:
    async def scenario(servicer: ScriptedServer, url: str) -> None:
        servicer.stall_s = 2.0
        async with InferenceClient(url, deadline_s=0.2) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(InferenceError) as exc:
                await client.infer("double", {"x": np.ones((1, 4), np.float32)})
            assert exc.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert loop.time() - start < 1.5

    run(scenario)


def test_server_down_is_unavailable_after_retries() -> None:
    async def main() -> None:
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")  # bound, then closed: nothing listens
        await server.start()
        await server.stop(0)
        async with InferenceClient(f"127.0.0.1:{port}", retries=1, backoff_s=0.01, deadline_s=3) as client:
            with pytest.raises(InferenceError) as exc:
                await client.server_ready()
        assert exc.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    asyncio.run(main())


def test_metadata_and_repository() -> None:
    async def scenario(servicer: ScriptedServer, url: str) -> None:
        async with InferenceClient(url) as client:
            meta = await client.model_metadata("double")
            assert meta.inputs[0].shape == (-1, 4) and meta.versions == ("1",)
            index = await client.repository_index()
            assert [(m.name, m.state) for m in index] == [("double", "READY"), ("old", "UNAVAILABLE")]
            await client.load_model("double")
            with pytest.raises(InferenceError) as exc:
                await client.load_model("other")
            assert exc.value.code == grpc.StatusCode.NOT_FOUND

    run(scenario)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPULSE_INFERENCE_URL", "triton.example:8001")
    monkeypatch.setenv("CAREPULSE_INFERENCE_DEADLINE_S", "2.5")
    client = InferenceClient.from_settings(InferenceClientSettings())
    assert client.url == "triton.example:8001"
