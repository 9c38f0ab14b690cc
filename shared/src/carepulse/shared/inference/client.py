"""A small typed asyncio client for the inference service (or NVIDIA Triton).

One gRPC channel is opened on first use and reused by every call; each call has a
deadline, and a call answered UNAVAILABLE (server restarting, model reloading, connection
refused) is retried with backoff while the deadline allows. Tensors travel as
``raw_input_contents`` (no per-element protobuf encoding)::

    async with InferenceClient.from_settings(InferenceClientSettings()) as client:
        out = await client.infer("pneumonia-cxr", {"image": batch})
        probs = out["probs"]
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import grpc
import numpy as np

from carepulse.shared.inference import tensors
from carepulse.shared.inference.protocol import grpc_service_pb2 as pb
from carepulse.shared.inference.protocol import grpc_service_pb2_grpc as pb_grpc
from carepulse.shared.inference.protocol import model_config_pb2
from carepulse.shared.inference.settings import InferenceClientSettings

T = TypeVar("T")

# Triton accepts messages of any size; so must we, for batches of images.
_CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)


class InferenceTlsConfigError(ValueError):
    """A TLS file named in the settings cannot be read; nothing may start without it."""


def read_pem(path: Path, what: str) -> bytes:
    """A PEM file named in the TLS settings (client's or server's), checked to be PEM."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InferenceTlsConfigError(f"cannot read the {what} at {path}: {e.strerror}") from None
    if b"-----BEGIN" not in data:
        raise InferenceTlsConfigError(f"the {what} at {path} is not PEM")
    return data


def channel_credentials(settings: InferenceClientSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials from the settings' files (read once, here); None: plaintext channel."""
    if settings.inference_client_tls_ca is None:
        return None
    ca = read_pem(settings.inference_client_tls_ca, "inference CA bundle")
    key = cert = None
    if settings.inference_client_tls_cert is not None and settings.inference_client_tls_key is not None:
        key = read_pem(settings.inference_client_tls_key, "inference client key")
        cert = read_pem(settings.inference_client_tls_cert, "inference client certificate")
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class InferenceError(Exception):
    """A call failed; ``code`` is the gRPC status (NOT_FOUND, INVALID_ARGUMENT, …)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]


@dataclass(frozen=True, slots=True)
class ModelIndexEntry:
    name: str
    version: str
    state: str
    reason: str


class InferenceClient:
    """Async client of ``inference.GRPCInferenceService``; use as an async context manager."""

    def __init__(
        self,
        url: str,
        *,
        deadline_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.05,
        credentials: grpc.ChannelCredentials | None = None,
        tls_server_name: str = "",
    ) -> None:
        """``credentials``: a TLS channel (see :func:`channel_credentials`); None: plaintext.

        ``tls_server_name`` overrides the name checked against the server certificate.
        """
        self._url = url
        self._credentials = credentials
        self._options: tuple[tuple[str, Any], ...] = _CHANNEL_OPTIONS
        if tls_server_name:
            self._options += (("grpc.ssl_target_name_override", tls_server_name),)
        self._deadline_s = deadline_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.GRPCInferenceServiceStub | None = None

    @classmethod
    def from_settings(cls, settings: InferenceClientSettings) -> Self:
        return cls(settings.inference_url, deadline_s=settings.inference_deadline_s, retries=settings.inference_retries,
                   credentials=channel_credentials(settings), tls_server_name=settings.inference_client_tls_server_name)

    @property
    def url(self) -> str:
        return self._url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None

    def _get_stub(self) -> pb_grpc.GRPCInferenceServiceStub:
        # Created lazily so the channel binds to the event loop that uses it.
        if self._stub is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._url, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(self._url, self._credentials, options=self._options)
            self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        return self._stub

    async def _call(self, method: Callable[[pb_grpc.GRPCInferenceServiceStub], Callable[..., Awaitable[T]]],
                    request: Any, deadline_s: float | None = None) -> T:
        budget = self._deadline_s if deadline_s is None else deadline_s
        end = time.monotonic() + budget
        attempt = 0
        while True:
            remaining = end - time.monotonic()
            try:
                if remaining <= 0:
                    raise InferenceError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer from {self._url} in {budget}s")
                return await method(self._get_stub())(request, timeout=remaining)
            except grpc.aio.AioRpcError as e:
                code = e.code()
                if code != grpc.StatusCode.UNAVAILABLE or attempt >= self._retries:
                    raise InferenceError(code, e.details() or code.name) from None
            attempt += 1
            # Exponential backoff with jitter, never past the deadline.
            delay = self._backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
            await asyncio.sleep(max(0.0, min(delay, end - time.monotonic())))

    # ---- health and metadata ----

    async def server_live(self) -> bool:
        resp = await self._call(lambda s: s.ServerLive, pb.ServerLiveRequest())
        return resp.live

    async def server_ready(self) -> bool:
        resp = await self._call(lambda s: s.ServerReady, pb.ServerReadyRequest())
        return resp.ready

    async def model_ready(self, name: str, version: str = "") -> bool:
        resp = await self._call(lambda s: s.ModelReady, pb.ModelReadyRequest(name=name, version=version))
        return resp.ready

    async def model_metadata(self, name: str, version: str = "") -> ModelMetadata:
        resp = await self._call(lambda s: s.ModelMetadata, pb.ModelMetadataRequest(name=name, version=version))

        def tensors_of(items: Any) -> tuple[TensorMetadata, ...]:
            return tuple(TensorMetadata(t.name, t.datatype, tuple(t.shape)) for t in items)

        return ModelMetadata(resp.name, tuple(resp.versions), resp.platform, tensors_of(resp.inputs),
                             tensors_of(resp.outputs))

    async def model_config(self, name: str, version: str = "") -> model_config_pb2.ModelConfig:
        resp = await self._call(lambda s: s.ModelConfig, pb.ModelConfigRequest(name=name, version=version))
        return resp.config

    # ---- inference ----

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        outputs: Sequence[str] | None = None,
        version: str = "",
        request_id: str = "",
        deadline_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs`` (name -> array, batch dimension included if the model batches)."""
        request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
        for name, array in inputs.items():
            array = np.asarray(array)
            request.inputs.add(name=name, datatype=tensors.datatype_of(array), shape=array.shape)
            request.raw_input_contents.append(tensors.encode_raw(array))
        for name in outputs or ():
            request.outputs.add(name=name)
        resp = await self._call(lambda s: s.ModelInfer, request, deadline_s)
        return decode_outputs(resp)

    # ---- model repository ----

    async def repository_index(self, *, ready_only: bool = False) -> list[ModelIndexEntry]:
        resp = await self._call(lambda s: s.RepositoryIndex, pb.RepositoryIndexRequest(ready=ready_only))
        return [ModelIndexEntry(m.name, m.version, m.state, m.reason) for m in resp.models]

    async def load_model(self, name: str, *, deadline_s: float | None = None) -> None:
        await self._call(lambda s: s.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name=name), deadline_s)

    async def unload_model(self, name: str, *, deadline_s: float | None = None) -> None:
        await self._call(lambda s: s.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name=name),
                         deadline_s)


def decode_outputs(resp: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Output tensors of a response, from raw_output_contents or typed contents."""
    result: dict[str, np.ndarray] = {}
    raw = resp.raw_output_contents
    for i, out in enumerate(resp.outputs):
        if i < len(raw):
            result[out.name] = tensors.decode_raw(out.datatype, out.shape, raw[i])
        else:
            result[out.name] = tensors.decode_contents(out.datatype, out.shape, out.contents)
    return result
