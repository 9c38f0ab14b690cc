"""config.pbtxt parsing, auto-complete and the check against the ONNX graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from carepulse.inference.config import TensorSpec, build_spec, read_config, select_versions
from carepulse.inference.errors import ModelLoadError
from carepulse.shared.inference.protocol import model_config_pb2 as mc

GRAPH_IN = [TensorSpec("x", "FP32", (-1, 4))]
GRAPH_OUT = [TensorSpec("y", "FP32", (-1, 2))]


def _config(tmp_path: Path, text: str, name: str = "m") -> mc.ModelConfig:
    (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / name / "config.pbtxt").write_text(text)
    return read_config(tmp_path / name)


def test_full_triton_config_parses(tmp_path: Path) -> None:
    # A config as written for Triton, with fields CarePulse does not act on, must still parse.
    config = _config(tmp_path, """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "x" data_type: TYPE_FP32 format: FORMAT_NONE dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] label_filename: "labels.txt" } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 500 }
instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0 ] } ]
optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }
model_warmup [ { name: "w" batch_size: 1
  inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]
parameters { key: "k" value: { string_value: "v" } }
""")
    spec, completed = build_spec(config, GRAPH_IN, GRAPH_OUT)
    assert spec.max_batch_size == 16
    assert spec.inputs == (TensorSpec("x", "FP32", (4,)),)
    assert spec.dynamic_batching is not None
    assert spec.dynamic_batching.max_queue_delay_s == pytest.approx(0.0005)
    assert spec.dynamic_batching.preferred_batch_sizes == (4, 8)
    assert spec.instance_count == 2 and not spec.cpu_only
    assert spec.full_shape(spec.outputs[0]) == (-1, 2)
    assert completed.backend == "onnxruntime" and completed.default_model_filename == "model.onnx"


def test_missing_config_is_completed_from_graph(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    config = read_config(tmp_path / "m")
    spec, completed = build_spec(config, GRAPH_IN, GRAPH_OUT)
    assert config.name == "m" and spec.max_batch_size == 0
    assert spec.inputs == (TensorSpec("x", "FP32", (-1, 4)),)
    assert [(t.name, t.data_type, list(t.dims)) for t in completed.input] == [("x", mc.TYPE_FP32, [-1, 4])]
    assert spec.dynamic_batching is None


def test_config_dims_take_fixed_graph_dims(tmp_path: Path) -> None:
    config = _config(tmp_path, 'max_batch_size: 2 input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] } ]')
    spec, _ = build_spec(config, GRAPH_IN, GRAPH_OUT)
    assert spec.inputs[0].dims == (4,)


@pytest.mark.parametrize(("text", "message"), [
    ('max_batch_size: 2 input [ { name: "x" data_type: TYPE_FP32 dims: [ 5 ] } ]', "dims"),
    ('max_batch_size: 2 input [ { name: "x" data_type: TYPE_INT64 dims: [ 4 ] } ]', "INT64"),
    ('max_batch_size: 2 input [ { name: "z" data_type: TYPE_FP32 dims: [ 4 ] } ]', "'z'"),
    ('max_batch_size: 0 input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]', "dims"),
    ('max_batch_size: 0 dynamic_batching { }', "max_batch_size"),
    ('max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 8 ] }', "preferred"),
    ('platform: "tensorrt_plan"', "tensorrt_plan"),
    ('name: "other"', "other"),
    ('max_batch_size: "x"', "config.pbtxt"),
    ('no_such_field: 1', "config.pbtxt"),
])
def test_bad_configs_fail_to_load(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        build_spec(_config(tmp_path, text), GRAPH_IN, GRAPH_OUT)


def test_batching_needs_a_variable_first_dim(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="first dimension"):
        build_spec(_config(tmp_path, "max_batch_size: 4"), [TensorSpec("x", "FP32", (1, 4))], GRAPH_OUT)


def test_config_lacking_a_graph_input(tmp_path: Path) -> None:
    config = _config(tmp_path, 'max_batch_size: 2 input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]')
    with pytest.raises(ModelLoadError, match="'mask'"):
        build_spec(config, [*GRAPH_IN, TensorSpec("mask", "BOOL", (-1, 4))], GRAPH_OUT)


@pytest.mark.parametrize(("policy", "expected"), [
    ("", [3]),
    ("version_policy: { latest { num_versions: 2 } }", [2, 3]),
    ("version_policy: { all { } }", [1, 2, 3]),
    ("version_policy: { specific { versions: [ 1, 7 ] } }", [1]),
])
def test_version_policy(tmp_path: Path, policy: str, expected: list[int]) -> None:
    assert select_versions(_config(tmp_path, policy), [3, 1, 2]) == expected
