"""Which ONNX Runtime execution providers this machine can really use: TensorRT -> CUDA -> CPU.

onnxruntime-gpu lists the CUDA and TensorRT providers whether or not CUDA is installed,
and asking for one whose libraries are missing prints a long error on every session. So
each GPU provider is offered only when the shared libraries it links against load.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
from collections.abc import Sequence
from functools import cache

import onnxruntime as ort

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_SHORT = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}


def _cuda_major() -> str:
    try:
        from onnxruntime.capi import build_and_package_info as info

        return str(getattr(info, "cuda_version", "12") or "12").split(".")[0]
    except ImportError:
        return "12"


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


@cache
def _gpu_libraries() -> dict[str, bool]:
    """Probe once per process: {provider: its libraries load}."""
    # CUDA/cuDNN from pip wheels (nvidia-*-cu12) are not on the loader path; ORT knows where.
    if importlib.util.find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:  # a partial wheel set: fall through to the probe below
            log.debug("onnxruntime.preload_dlls failed", exc_info=True)
    major = _cuda_major()
    cuda_libs = ["libcuda.so.1", f"libcudart.so.{major}", f"libcublas.so.{major}", f"libcublasLt.so.{major}",
                 "libcudnn.so.9"]
    missing = [lib for lib in cuda_libs if not _loads(lib)]
    cuda_ok = not missing
    trt_missing = [lib for lib in ("libnvinfer.so.10", "libnvonnxparser.so.10") if not _loads(lib)]
    if missing:
        log.info("CUDA execution provider unavailable: %s not found", ", ".join(missing))
    elif trt_missing:
        log.info("TensorRT execution provider unavailable: %s not found", ", ".join(trt_missing))
    return {CUDA: cuda_ok, TENSORRT: cuda_ok and not trt_missing}


def select_providers(allowed: Sequence[str] | None = None, *, cpu_only: bool = False) -> list[str]:
    """Providers to ask ONNX Runtime for, best first; CPU is always last.

    ``allowed``: short names from settings (tensorrt, cuda, cpu); None allows all.
    """
    wanted = {CPU, CUDA, TENSORRT}
    if allowed is not None:
        unknown = [a for a in allowed if a not in _SHORT]
        if unknown:
            raise ValueError(f"unknown execution providers {unknown}; use tensorrt, cuda, cpu")
        wanted = {_SHORT[a] for a in allowed} | {CPU}
    if cpu_only:
        return [CPU]
    built = set(ort.get_available_providers())
    chosen = []
    for provider in (TENSORRT, CUDA):
        if provider in wanted and provider in built and _gpu_libraries()[provider]:
            chosen.append(provider)
    return [*chosen, CPU]
