"""Test helpers: a tmp Triton-layout model repository of small ONNX models, and a live server.

The models are built with onnx's helper API (no downloads) and chosen to cover the
datatypes and config features: FP32 with dynamic batching and two versions, INT64 with a
config that lists no tensors (auto-complete), UINT8 with no config.pbtxt at all, BYTES,
and a model whose config disagrees with its graph (must fail to load, not crash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

T = TypeVar("T")

OPSET = [helper.make_opsetid("", 17)]


def save_model(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any],
               initializers: list[Any] | None = None) -> None:
    graph = helper.make_graph(nodes, path.parent.parent.name, inputs, outputs, initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8  # readable by any ONNX Runtime of the last years
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def affine_weights(version: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(version)
    return rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)


def affine_reference(x: np.ndarray, version: int) -> tuple[np.ndarray, np.ndarray]:
    w, b = affine_weights(version)
    logits = x @ w + b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return logits, e / e.sum(axis=1, keepdims=True)


def build_repository(root: Path) -> Path:
    # affine: FP32 [-1,4] -> logits, probs [-1,3]; versions 1 and 2 both served; batching.
    for version in (1, 2):
        w, b = affine_weights(version)
        save_model(
            root / "affine" / str(version) / "model.onnx",
            [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
             helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
            [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
        )
    (root / "affine" / "config.pbtxt").write_text(
        """
name: "affine"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { all {} }
input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [
  { name: "logits", data_type: TYPE_FP32, dims: [ 3 ] },
  { name: "probs", data_type: TYPE_FP32, dims: [ 3 ] }
]
dynamic_batching { max_queue_delay_microseconds: 20000 preferred_batch_size: [ 8 ] }
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""
    )
    # int64_add: INT64 [-1,3] + [1,2,3]; config names no tensors (completed from the graph).
    save_model(
        root / "int64_add" / "1" / "model.onnx",
        [helper.make_node("Add", ["a", "k"], ["sum"])],
        [helper.make_tensor_value_info("a", TensorProto.INT64, [None, 3])],
        [helper.make_tensor_value_info("sum", TensorProto.INT64, [None, 3])],
        [numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "k")],
    )
    (root / "int64_add" / "config.pbtxt").write_text('backend: "onnxruntime"\nmax_batch_size: 4\n')
    # uint8_mean: UINT8 [-1,4] -> FP32 [-1,1]; no config.pbtxt, no batching (max_batch_size 0).
    save_model(
        root / "uint8_mean" / "3" / "model.onnx",
        [helper.make_node("Cast", ["pixels"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1], keepdims=1)],
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["n", 4])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["n", 1])],
    )
    # strings: BYTES [-1] echoed back.
    save_model(
        root / "strings" / "1" / "model.onnx",
        [helper.make_node("Identity", ["text"], ["echo"])],
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["n"])],
    )
    (root / "strings" / "config.pbtxt").write_text(
        'max_batch_size: 0\ninput [ { name: "text", data_type: TYPE_STRING, dims: [ -1 ] } ]\n'
        'output [ { name: "echo", data_type: TYPE_STRING, dims: [ -1 ] } ]\n'
    )
    # broken: the config says 5 features, the graph takes 4.
    save_model(
        root / "broken" / "1" / "model.onnx",
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    (root / "broken" / "config.pbtxt").write_text(
        'max_batch_size: 2\ninput [ { name: "x", data_type: TYPE_FP32, dims: [ 5 ] } ]\n'
    )
    return root


