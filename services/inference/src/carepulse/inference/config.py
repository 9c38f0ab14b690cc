"""``config.pbtxt`` (Triton's model configuration, protobuf text format) -> a checked ModelSpec.

Triton semantics kept here: with ``max_batch_size > 0`` the first dimension of every input
and output is the batch dimension and ``dims`` leave it out; ``-1`` is a variable
dimension. A config that lists no inputs/outputs is completed from the ONNX graph (Triton's
auto-complete); one that lists them is checked against the graph, so a mismatch fails at
load time instead of on the first request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from carepulse.inference.errors import ModelLoadError
from carepulse.shared.inference.protocol import model_config_pb2 as mc

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
DEFAULT_MODEL_FILENAME = "model.onnx"

# TYPE_FP32 (config) <-> FP32 (protocol); Triton's TYPE_STRING is the protocol's BYTES.
_CONFIG_TO_DATATYPE = {
    name: ("BYTES" if name == "TYPE_STRING" else name.removeprefix("TYPE_"))
    for name, _ in mc.DataType.items()
    if name != "TYPE_INVALID"
}
_DATATYPE_TO_CONFIG = {v: k for k, v in _CONFIG_TO_DATATYPE.items()}


def config_datatype(data_type: int) -> str:
    """Protocol datatype name of a config ``DataType`` enum value."""
    return _CONFIG_TO_DATATYPE.get(mc.DataType.Name(data_type), "INVALID")


def to_config_datatype(datatype: str) -> int:
    return mc.DataType.Value(_DATATYPE_TO_CONFIG[datatype])


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: protocol datatype and dims (without the batch dim if batching)."""

    name: str
    datatype: str
    dims: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BatchingSpec:
    max_queue_delay_s: float
    preferred_batch_sizes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the core needs to know about a model, checked against its ONNX graph."""

    name: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dynamic_batching: BatchingSpec | None
    instance_count: int
    cpu_only: bool

    def full_shape(self, tensor: TensorSpec) -> tuple[int, ...]:
        """Shape as clients see it in ModelMetadata (batch dimension as -1)."""
        return ((-1,) if self.max_batch_size > 0 else ()) + tensor.dims


def read_config(model_dir: Path) -> mc.ModelConfig:
    """Parse ``<model_dir>/config.pbtxt``; a missing file gives an empty config (auto-complete)."""
    path = model_dir / "config.pbtxt"
    config = mc.ModelConfig()
    if path.exists():
        try:
            text_format.Parse(path.read_text(), config)
        except (text_format.ParseError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"model '{model_dir.name}': config.pbtxt: {e}") from None
    if config.name and config.name != model_dir.name:
        raise ModelLoadError(f"model '{model_dir.name}': config.pbtxt names it '{config.name}'")
    config.name = model_dir.name
    if config.platform not in ("", PLATFORM) or config.backend not in ("", BACKEND):
        raise ModelLoadError(
            f"model '{config.name}': platform '{config.platform or config.backend}' is not served here "
            f"(only {PLATFORM})"
        )
    if config.max_batch_size < 0:
        raise ModelLoadError(f"model '{config.name}': max_batch_size must be >= 0")
    if config.WhichOneof("scheduling_choice") not in (None, "dynamic_batching"):
        raise ModelLoadError(f"model '{config.name}': only dynamic_batching scheduling is supported")
    return config


def cpu_only(config: mc.ModelConfig) -> bool:
    """``instance_group [{ kind: KIND_CPU }]``: keep the model off the GPU, as Triton does."""
    groups = list(config.instance_group)
    return bool(groups) and all(g.kind == mc.ModelInstanceGroup.KIND_CPU for g in groups)


def select_versions(config: mc.ModelConfig, available: Sequence[int]) -> list[int]:
    """Versions to serve under the config's version_policy (Triton's default: the latest one)."""
    ordered = sorted(available)
    choice = config.version_policy.WhichOneof("policy_choice")
    if choice == "all":
        return ordered
    if choice == "specific":
        wanted = set(config.version_policy.specific.versions)
        return [v for v in ordered if v in wanted]
    count = config.version_policy.latest.num_versions if choice == "latest" else 1
    return ordered[-max(count, 1) :]


def _merge_dims(where: str, config_dims: Sequence[int], graph_dims: Sequence[int]) -> tuple[int, ...]:
    if len(config_dims) != len(graph_dims):
        raise ModelLoadError(f"{where}: config dims {list(config_dims)} but the ONNX graph has {list(graph_dims)}")
    merged = []
    for c, g in zip(config_dims, graph_dims, strict=True):
        if c != -1 and g != -1 and c != g:
            raise ModelLoadError(f"{where}: config dims {list(config_dims)} but the ONNX graph has {list(graph_dims)}")
        # The stricter of the two: a dim fixed by the graph is fixed for clients too.
        merged.append(g if c == -1 else c)
    return tuple(merged)


def _complete(
    config: mc.ModelConfig,
    kind: str,
    declared: Sequence[mc.ModelInput] | Sequence[mc.ModelOutput],
    graph: Sequence[TensorSpec],
) -> tuple[TensorSpec, ...]:
    batching = config.max_batch_size > 0
    by_name = {t.name: t for t in graph}
    result: list[TensorSpec] = []
    if not declared:
        # Auto-complete from the graph.
        for g in graph:
            if batching and (not g.dims or g.dims[0] != -1):
                raise ModelLoadError(
                    f"model '{config.name}': {kind} '{g.name}' has no variable first dimension to batch on "
                    f"(graph shape {list(g.dims)}); set max_batch_size: 0"
                )
            result.append(TensorSpec(g.name, g.datatype, g.dims[1:] if batching else g.dims))
        return tuple(result)
    for d in declared:
        where = f"model '{config.name}' {kind} '{d.name}'"
        g = by_name.get(d.name)
        if g is None:
            raise ModelLoadError(f"{where}: not in the ONNX graph (graph {kind}s: {sorted(by_name)})")
        datatype = config_datatype(d.data_type)
        if datatype != g.datatype:
            raise ModelLoadError(f"{where}: config says {datatype}, the ONNX graph says {g.datatype}")
        graph_dims = g.dims
        if batching:
            if not graph_dims or graph_dims[0] != -1:
                raise ModelLoadError(
                    f"{where}: max_batch_size {config.max_batch_size} but the graph's first dimension is "
                    f"fixed (graph shape {list(graph_dims)})"
                )
            graph_dims = graph_dims[1:]
        result.append(TensorSpec(d.name, datatype, _merge_dims(where, tuple(d.dims), graph_dims)))
    if kind == "input":
        missing = sorted(set(by_name) - {d.name for d in declared})
        if missing:
            raise ModelLoadError(f"model '{config.name}': the ONNX graph needs inputs the config lacks: {missing}")
    return tuple(result)


def build_spec(config: mc.ModelConfig, graph_inputs: Sequence[TensorSpec],
               graph_outputs: Sequence[TensorSpec]) -> tuple[ModelSpec, mc.ModelConfig]:
    """Check the config against the graph; return the spec and the completed config.

    ``graph_*`` carry full ONNX shapes (batch dim included, -1 for symbolic dims).
    """
    inputs = _complete(config, "input", config.input, graph_inputs)
    outputs = _complete(config, "output", config.output, graph_outputs)
    batching: BatchingSpec | None = None
    if config.HasField("dynamic_batching"):
        if config.max_batch_size == 0:
            raise ModelLoadError(f"model '{config.name}': dynamic_batching needs max_batch_size > 0")
        db = config.dynamic_batching
        preferred = tuple(sorted(set(db.preferred_batch_size)))
        if any(p <= 0 or p > config.max_batch_size for p in preferred):
            raise ModelLoadError(
                f"model '{config.name}': preferred_batch_size {list(preferred)} outside 1..{config.max_batch_size}"
            )
        batching = BatchingSpec(db.max_queue_delay_microseconds / 1e6, preferred)
    groups = list(config.instance_group)
    count = sum(max(g.count, 1) for g in groups) if groups else 1
    spec = ModelSpec(config.name, config.max_batch_size, inputs, outputs, batching, count, cpu_only(config))

    completed = mc.ModelConfig()
    completed.CopyFrom(config)
    completed.platform = PLATFORM
    completed.backend = BACKEND
    if not completed.default_model_filename:
        completed.default_model_filename = DEFAULT_MODEL_FILENAME
    if not config.input:
        for t in inputs:
            completed.input.add(name=t.name, data_type=to_config_datatype(t.datatype), dims=t.dims)
    if not config.output:
        for t in outputs:
            completed.output.add(name=t.name, data_type=to_config_datatype(t.datatype), dims=t.dims)
    return spec, completed
