"""P(pneumonia) for prepared images, through the inference service (never a local ONNX session).

All images of one record go in as few calls as possible (up to the model's batch limit); the
server's dynamic batching merges calls from several workers and partitions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc
import numpy as np

from carepulse.shared.inference.client import InferenceClient, InferenceError

INPUT, OUTPUT = "image", "probability"
# Not the record's fault: the server restarts, reloads, or the model is still loading.
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED}
# Everything else (INVALID_ARGUMENT, INTERNAL, …) would fail again on replay: dead-letter it, with
# its bytes, rather than hold the partition forever.


class InferenceUnavailable(ConnectionError):
    """The inference service cannot answer now: the worker retries and keeps the record."""


class InferenceRejected(ValueError):
    """The inference service refused the request itself (e.g. shape): dead-letter with the reason."""


class Classifier:
    def __init__(self, client: InferenceClient, model: str, *, version: str = "", max_batch: int = 64,
                 version_ttl_s: float = 30.0) -> None:
        self._client = client
        self._model = model
        self._pinned = version
        self._max_batch = max_batch
        self._ttl = version_ttl_s
        self._version: tuple[str, float] | None = None

    @property
    def model(self) -> str:
        return self._model

    async def ready(self) -> bool:
        return await self._client.model_ready(self._model, self._pinned)

    async def version(self) -> str:
        """The version that answers requests: the pinned one, else the highest served (cached briefly)."""
        if self._pinned:
            return self._pinned
        now = time.monotonic()
        if self._version is None or now - self._version[1] > self._ttl:
            try:
                meta = await self._client.model_metadata(self._model)
            except InferenceError as e:
                raise InferenceUnavailable(f"model metadata: {e}") from None
            if not meta.versions:
                raise InferenceUnavailable(f"model {self._model} has no served version")
            self._version = (max(meta.versions, key=lambda v: int(v) if v.isdigit() else -1), now)
        return self._version[0]

    async def probabilities(self, images: Sequence[np.ndarray], version: str = "") -> list[float]:
        """P(pneumonia) for each FP32 [1,28,28] image, in order."""
        out: list[float] = []
        for start in range(0, len(images), self._max_batch):
            batch = np.stack(images[start:start + self._max_batch]).astype(np.float32, copy=False)
            try:
                result = await self._client.infer(self._model, {INPUT: batch}, outputs=[OUTPUT], version=version)
            except InferenceError as e:
                if e.code in _RETRYABLE:
                    raise InferenceUnavailable(str(e)) from None
                raise InferenceRejected(f"inference refused the request: {e}") from None
            probs = np.asarray(result[OUTPUT], dtype=np.float64).reshape(-1)
            if len(probs) != len(batch):
                raise InferenceRejected(f"{len(probs)} probabilities for {len(batch)} images")
            out += [float(p) for p in probs]
        return out
