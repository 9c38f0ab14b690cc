"""``inference.GRPCInferenceService``: protobuf <-> core types, nothing else.

This is the one place where core errors become gRPC status codes (``STATUS_CODES``);
anything unexpected becomes INTERNAL with the details in the log, never a dead server.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any, TypeVar

import grpc

from carepulse.inference import metrics
from carepulse.inference.errors import (
    InferenceFailed,
    InferenceServiceError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
)
from carepulse.inference.model import InferRequest
from carepulse.inference.repository import ModelRepository
from carepulse.shared.inference import tensors
from carepulse.shared.inference.protocol import grpc_service_pb2 as pb
from carepulse.shared.inference.protocol import grpc_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[InferenceServiceError], grpc.StatusCode] = {
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotReady: grpc.StatusCode.UNAVAILABLE,
    ModelLoadError: grpc.StatusCode.FAILED_PRECONDITION,
    InferenceFailed: grpc.StatusCode.INTERNAL,
}

SERVER_NAME = "carepulse-inference"
EXTENSIONS = ("model_repository", "model_configuration", "schedule_policy", "binary_tensor_data")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


def status_code(error: InferenceServiceError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def _translate_errors(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await handler(self, request, context)
        except InferenceServiceError as e:
            await context.abort(status_code(e), str(e))
        except Exception:
            log.exception("unexpected error", extra={"fields": {"rpc": handler.__name__}})
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (see the inference service log)")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


def _decode_inputs(request: pb.ModelInferRequest) -> InferRequest:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; give one per input")
    inputs = {}
    for i, t in enumerate(request.inputs):
        if t.name in inputs:
            raise InvalidInput(f"input '{t.name}' given twice")
        try:
            if raw:
                inputs[t.name] = tensors.decode_raw(t.datatype, t.shape, raw[i])
            else:
                inputs[t.name] = tensors.decode_contents(t.datatype, t.shape, t.contents)
        except tensors.TensorFormatError as e:
            raise InvalidInput(f"input '{t.name}': {e}") from None
    return InferRequest(inputs, tuple(o.name for o in request.outputs), request.id)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repository: ModelRepository, is_ready: Callable[[], bool]) -> None:
        self._repository = repository
        self._is_ready = is_ready
        try:
            self._version = package_version("carepulse-inference")
        except PackageNotFoundError:
            self._version = "0"

    # ---- health and metadata ----

    @_translate_errors
    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_translate_errors
    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._is_ready())

    @_translate_errors
    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._repository.is_ready(request.name, request.version))

    @_translate_errors
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=self._version, extensions=EXTENSIONS)

    @_translate_errors
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ModelMetadataResponse:
        model = self._repository.get(request.name, request.version)
        spec = model.spec
        versions = [str(m.version) for m in self._repository.loaded() if m.name == model.name]
        resp = pb.ModelMetadataResponse(name=model.name, versions=sorted(versions, key=int),
                                        platform=model.config.platform)
        for t in spec.inputs:
            resp.inputs.add(name=t.name, datatype=t.datatype, shape=spec.full_shape(t))
        for t in spec.outputs:
            resp.outputs.add(name=t.name, datatype=t.datatype, shape=spec.full_shape(t))
        return resp

    @_translate_errors
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ModelConfigResponse:
        model = self._repository.get(request.name, request.version)
        return pb.ModelConfigResponse(config=model.config)

    # ---- inference ----

    @_translate_errors
    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ModelInferResponse:
        start = time.perf_counter()
        try:
            model = self._repository.get(request.model_name, request.model_version)
        except ModelNotFound:
            metrics.requests_total().labels("", "not_found").inc()
            raise
        try:
            result = await model.infer(_decode_inputs(request))
        except InvalidInput:
            metrics.requests_total().labels(model.name, "invalid").inc()
            raise
        except BaseException:
            metrics.requests_total().labels(model.name, "failed").inc()
            raise
        resp = pb.ModelInferResponse(model_name=result.model, model_version=result.version, id=result.id)
        for name, array in result.outputs.items():
            resp.outputs.add(name=name, datatype=tensors.datatype_of(array), shape=array.shape)
            resp.raw_output_contents.append(tensors.encode_raw(array))
        metrics.requests_total().labels(model.name, "success").inc()
        metrics.request_seconds().labels(model.name).observe(time.perf_counter() - start)
        return resp

    # ---- model repository ----

    @_translate_errors
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
                              ) -> pb.RepositoryIndexResponse:
        resp = pb.RepositoryIndexResponse()
        for e in self._repository.index(ready_only=request.ready):
            resp.models.add(name=e.name, version=e.version, state=e.state, reason=e.reason)
        return resp

    @_translate_errors
    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest,
                                  context: grpc.aio.ServicerContext) -> pb.RepositoryModelLoadResponse:
        if request.parameters:
            # Triton's "config"/"file:" overrides would load a model not in the repository.
            raise InvalidInput(f"load parameters are not supported: {sorted(request.parameters)}")
        await self._repository.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @_translate_errors
    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,
                                    context: grpc.aio.ServicerContext) -> pb.RepositoryModelUnloadResponse:
        await self._repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()
