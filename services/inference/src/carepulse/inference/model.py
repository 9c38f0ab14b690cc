"""One served model version: request validation against its spec, then its scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from carepulse.inference.batcher import DirectScheduler, DynamicBatcher, Scheduler
from carepulse.inference.config import ModelSpec, TensorSpec
from carepulse.inference.errors import InvalidInput
from carepulse.inference.runtime import OnnxRunner, as_onnx_strings
from carepulse.shared.inference import tensors
from carepulse.shared.inference.protocol import model_config_pb2 as mc


@dataclass(frozen=True, slots=True)
class InferRequest:
    """Transport-neutral inference request: decoded input arrays, wanted outputs."""

    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...] = ()  # empty: all outputs
    id: str = ""


@dataclass(frozen=True, slots=True)
class InferResponse:
    model: str
    version: str
    outputs: dict[str, np.ndarray]  # in the order requested (or the model's order)
    id: str = ""


def _shape_ok(expected: Sequence[int], actual: Sequence[int]) -> bool:
    return len(expected) == len(actual) and all(e in (-1, a) for e, a in zip(expected, actual, strict=True))


class ServedModel:
    def __init__(self, spec: ModelSpec, version: int, config: mc.ModelConfig, runner: OnnxRunner) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = version
        self.config = config
        self.runner = runner
        self._inputs = {t.name: t for t in spec.inputs}
        self._outputs = {t.name: t for t in spec.outputs}
        self._bytes_inputs = frozenset(t.name for t in spec.inputs if t.datatype == "BYTES")
        self._executor = ThreadPoolExecutor(max_workers=spec.instance_count,
                                            thread_name_prefix=f"ort-{spec.name}-{version}")
        self.scheduler: Scheduler
        if spec.dynamic_batching is not None:
            self.scheduler = DynamicBatcher(
                spec.name, runner.run, self._executor, max_batch_size=spec.max_batch_size,
                max_queue_delay_s=spec.dynamic_batching.max_queue_delay_s,
                preferred_batch_sizes=spec.dynamic_batching.preferred_batch_sizes,
            )
        else:
            self.scheduler = DirectScheduler(spec.name, runner.run, self._executor)

    @property
    def provider(self) -> str:
        return self.runner.provider

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        self._executor.shutdown(wait=False)

    def validate(self, request: InferRequest) -> int:
        """Check names, datatypes, shapes and batch size; return the batch size (1 if not batching)."""
        where = f"model '{self.name}'"
        for name in request.inputs:
            if name not in self._inputs:
                raise InvalidInput(f"{where}: unexpected input '{name}' (inputs: {sorted(self._inputs)})")
        missing = [n for n in self._inputs if n not in request.inputs]
        if missing:
            raise InvalidInput(f"{where}: missing input '{missing[0]}' (expected inputs: {sorted(self._inputs)})")
        for name in request.outputs:
            if name not in self._outputs:
                raise InvalidInput(f"{where}: unknown output '{name}' (outputs: {sorted(self._outputs)})")
        batch: int | None = None
        for name, array in request.inputs.items():
            spec: TensorSpec = self._inputs[name]
            datatype = tensors.datatype_of(array)
            if datatype != spec.datatype:
                raise InvalidInput(f"{where}: input '{name}' has datatype {datatype}, expected {spec.datatype}")
            shape = array.shape
            if self.spec.max_batch_size > 0:
                if len(shape) != len(spec.dims) + 1 or not _shape_ok(spec.dims, shape[1:]):
                    raise InvalidInput(
                        f"{where}: input '{name}' has shape {list(shape)}, expected {list(self.spec.full_shape(spec))}"
                    )
                n = shape[0]
                if n < 1 or n > self.spec.max_batch_size:
                    raise InvalidInput(
                        f"{where}: input '{name}' has batch size {n}, must be 1..{self.spec.max_batch_size}"
                    )
                if batch is not None and n != batch:
                    raise InvalidInput(f"{where}: input '{name}' has batch size {n}, other inputs have {batch}")
                batch = n
            elif not _shape_ok(spec.dims, shape):
                raise InvalidInput(f"{where}: input '{name}' has shape {list(shape)}, expected {list(spec.dims)}")
        return batch or 1

    async def infer(self, request: InferRequest) -> InferResponse:
        size = self.validate(request)
        inputs = request.inputs
        if self._bytes_inputs:
            inputs = {n: as_onnx_strings(n, a) if n in self._bytes_inputs else a for n, a in inputs.items()}
        outputs = await self.scheduler.submit(inputs, size)
        wanted = request.outputs or tuple(self._outputs)
        return InferResponse(self.name, str(self.version), {n: outputs[n] for n in wanted}, request.id)
