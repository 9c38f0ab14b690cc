"""One ONNX Runtime session: graph inputs/outputs as TensorSpecs, and a thread-safe ``run``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from carepulse.inference.config import TensorSpec
from carepulse.inference.errors import InferenceFailed, InvalidInput, ModelLoadError
from carepulse.inference.providers import TENSORRT

log = logging.getLogger(__name__)

# ONNX Runtime type strings -> protocol datatypes.
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: Any, path: Path) -> TensorSpec:
    datatype = _ORT_TYPES.get(arg.type)
    if datatype is None:
        raise ModelLoadError(f"{path}: tensor '{arg.name}' has type {arg.type}, which the protocol cannot carry")
    # Symbolic ("batch") and unknown (None) dimensions are variable: -1.
    dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, datatype, dims)


def as_onnx_strings(name: str, array: np.ndarray) -> np.ndarray:
    """BYTES elements -> str: ONNX Runtime would feed ``str(b"..")`` ("b'..'") for bytes objects."""
    flat = array.reshape(-1)
    out = np.empty(flat.shape, dtype=np.object_)
    for i, item in enumerate(flat):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"input '{name}': element {i} is not UTF-8; ONNX string tensors hold text") from None
        out[i] = item
    return out.reshape(array.shape)


class OnnxRunner:
    """Owns an InferenceSession; ``run`` is called from executor threads, never the event loop."""

    def __init__(self, path: Path, providers: Sequence[str], *, intra_op_threads: int = 0,
                 cache_dir: Path | None = None) -> None:
        options = ort.SessionOptions()
        # Warnings (e.g. "some nodes were not assigned to the preferred provider") are noise per load.
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        # ORT's worker threads busy-wait between runs by default; here they would steal the
        # CPU the event loop needs to decode the next requests (measured: batches shrink).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider_args: list[Any] = []
        for p in providers:
            if p == TENSORRT and cache_dir is not None:
                # Building a TensorRT engine takes minutes; keep it across restarts.
                provider_args.append((p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir)}))
            else:
                provider_args.append(p)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=provider_args)
        except Exception as e:  # ORT raises several pybind types (Fail, InvalidGraph, NoSuchFile…)
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load it: {e}") from None
        self.path = path
        self.inputs = tuple(_spec(a, path) for a in self._session.get_inputs())
        self.outputs = tuple(_spec(a, path) for a in self._session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        self.provider: str = self._session.get_providers()[0]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self._session.run(self._output_names, feeds)
        except ort.capi.onnxruntime_pybind11_state.InvalidArgument as e:
            raise InvalidInput(str(e)) from None
        except Exception as e:
            log.exception("session.run failed", extra={"fields": {"model": str(self.path)}})
            raise InferenceFailed(f"inference failed: {type(e).__name__}") from None
        return dict(zip(self._output_names, results, strict=True))
