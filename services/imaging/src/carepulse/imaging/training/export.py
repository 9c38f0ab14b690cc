"""ONNX export into the Triton-layout model repository, checked against PyTorch."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from carepulse.imaging.training.model import ServedModel

INPUT, OUTPUT = "image", "probability"
OPSET = 17
MAX_BATCH = 64

CONFIG_TEMPLATE = """\
# Served by carepulse-inference (or NVIDIA Triton) from this repository; written by `carepulse train imaging`.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [ {{ name: "{input}", data_type: TYPE_FP32, dims: [ 1, 28, 28 ] }} ]
output [ {{ name: "{output}", data_type: TYPE_FP32, dims: [ 1 ] }} ]
# Requests from several imaging workers (and studies with several images) merge into one run.
dynamic_batching {{ max_queue_delay_microseconds: 2000 preferred_batch_size: [ 16, {max_batch} ] }}
"""


@dataclass(frozen=True)
class Exported:
    path: Path
    config: Path
    max_abs_diff: float
    onnx_probabilities: np.ndarray
    size_bytes: int


def export(model: ServedModel, repository: Path, name: str, version: int, check_images: np.ndarray,
           torch_probabilities: np.ndarray) -> Exported:
    """Write ``<repository>/<name>/<version>/model.onnx`` and ``config.pbtxt``; compare with PyTorch."""
    cpu_model = copy.deepcopy(model).cpu().eval()
    target = repository / name / str(version) / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 1, 28, 28)
    torch.onnx.export(
        cpu_model, (example,), str(target), dynamo=False, opset_version=OPSET,
        input_names=[INPUT], output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, do_constant_folding=True,
    )
    graph = onnx.load(str(target))
    onnx.checker.check_model(graph)
    config = repository / name / "config.pbtxt"
    config.write_text(CONFIG_TEMPLATE.format(name=name, max_batch=MAX_BATCH, input=INPUT, output=OUTPUT))

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(target), opts, providers=["CPUExecutionProvider"])
    probs = np.concatenate([session.run([OUTPUT], {INPUT: check_images[i:i + MAX_BATCH]})[0]
                            for i in range(0, len(check_images), MAX_BATCH)]).reshape(-1)
    diff = float(np.max(np.abs(probs - torch_probabilities)))
    return Exported(target, config, diff, probs, target.stat().st_size)
