"""Execution provider choice: GPU providers only when their libraries load; CPU always."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from carepulse.inference import providers


def test_cpu_is_always_last_and_present() -> None:
    chosen = providers.select_providers()
    assert chosen[-1] == providers.CPU
    assert providers.select_providers(["cpu"]) == [providers.CPU]
    assert providers.select_providers(cpu_only=True) == [providers.CPU]


def test_gpu_providers_follow_the_library_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers.ort, "get_available_providers",
                        lambda: [providers.TENSORRT, providers.CUDA, providers.CPU])
    monkeypatch.setattr(providers, "_gpu_libraries", lambda: {providers.CUDA: True, providers.TENSORRT: False})
    assert providers.select_providers() == [providers.CUDA, providers.CPU]
    monkeypatch.setattr(providers, "_gpu_libraries", lambda: {providers.CUDA: True, providers.TENSORRT: True})
    assert providers.select_providers() == [providers.TENSORRT, providers.CUDA, providers.CPU]
    assert providers.select_providers(["cuda"]) == [providers.CUDA, providers.CPU]
    monkeypatch.setattr(providers, "_gpu_libraries", lambda: {providers.CUDA: False, providers.TENSORRT: False})
    assert providers.select_providers() == [providers.CPU]


def test_unknown_provider_name_is_refused() -> None:
    with pytest.raises(ValueError, match="rocm"):
        providers.select_providers(["rocm"])


def test_probe_matches_this_machine(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        probe = providers._gpu_libraries()
    cuda_loads = providers._loads("libcublasLt.so." + providers._cuda_major())
    assert probe[providers.CUDA] is (cuda_loads and providers._loads("libcuda.so.1")
                                     and providers._loads("libcudnn.so.9"))


def test_loading_a_model_prints_no_cuda_errors(tmp_path) -> None:  # noqa: ANN001
    # The whole point: on a machine without CUDA, a session opens silently on CPU.
    code = (
        "import onnx, sys\n"
        "from onnx import helper, TensorProto\n"
        "g = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',"
        " [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],"
        " [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])\n"
        "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]); m.ir_version = 8\n"
        f"onnx.save(m, {str(tmp_path / 'm.onnx')!r})\n"
        "from carepulse.inference.providers import select_providers\n"
        "from carepulse.inference.runtime import OnnxRunner\n"
        f"r = OnnxRunner(__import__('pathlib').Path({str(tmp_path / 'm.onnx')!r}), select_providers())\n"
        "print(r.provider)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    provider = result.stdout.strip()
    assert provider in (providers.CPU, providers.CUDA, providers.TENSORRT)
    if provider == providers.CPU:
        assert "libcublas" not in result.stderr and "Error" not in result.stderr, result.stderr
