"""Inference service vs. ONNX Runtime in-process (issue 3's figure: >= 0.8 at 64 clients).

Models, served from a temp Triton-layout repository with ``max_batch_size: 64`` and dynamic batching:
* ``text-embedding`` — the repository's own all-MiniLM-L6-v2 (``models/text-embedding``, built at
  set-up), exactly as the NLP service calls it: one phrase per request, 32 tokens, INT64 ids + mask;
* ``cnn64`` / ``cnn224`` — a small image CNN built here with onnx helpers (no download): FP32
  [batch, 1, side, side] -> 3x (Conv 3x3 16/32/64 -> Relu -> MaxPool) -> GlobalAveragePool -> Gemm 2
  -> Softmax: models so cheap per sample that gRPC's fixed per-request cost shows plainly.

Cases, each a one-sample request as a CarePulse service sends it:
* ``in-process`` — ``InferenceSession.run`` on one sample at a time, in this process: the
  baseline every ratio is against (what a service loading the model itself would get);
* ``in-process batch 64`` — the same session on 64 samples per run: the ceiling batching can reach;
* ``grpc N clients`` — ``python -m carepulse.inference`` as a subprocess, driven by N concurrent
  asyncio callers through ``carepulse.shared.inference.client`` on one channel.
Throughput is samples per second; latency is per request, measured by the caller.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from carepulse.shared.platform.supervisor import wait_ready

CONV_CHANNELS, CLASSES, MAX_BATCH = (16, 32, 64), 2, 64
# Same network at two input sizes: 64x64 (one batch-64 run takes a few ms, so gRPC's fixed
# per-request cost dominates) and 224x224 (a chest X-ray classifier's usual input size).
SIDES = {"cnn64": 64, "cnn224": 224}
QUEUE_DELAY_US = int(os.environ.get("CAREPULSE_BENCH_QUEUE_DELAY_US", "500"))
DURATION_S = float(os.environ.get("CAREPULSE_BENCH_SECONDS", "3"))
CLIENTS = (1, 8, 64)
EMBEDDING = "text-embedding"
EMBEDDING_DIR = pathlib.Path(__file__).resolve().parents[2] / "models" / EMBEDDING
EMBEDDING_TOKENS = 32  # what the NLP service pads every phrase to (carepulse.nlp.embeddings)


def build_model(repo: pathlib.Path, name: str) -> pathlib.Path:
    """A small image CNN, the shape of CarePulse's imaging models, built with onnx helpers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    side = SIDES[name]
    rng = np.random.default_rng(0)
    nodes, inits, prev, channels = [], [], "image", 1
    for i, out in enumerate(CONV_CHANNELS):
        w = (rng.standard_normal((out, channels, 3, 3)) / np.sqrt(channels * 9)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"conv{i}.w"), numpy_helper.from_array(np.zeros(out, np.float32),
                                                                                   f"conv{i}.b")]
        nodes += [helper.make_node("Conv", [prev, f"conv{i}.w", f"conv{i}.b"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
                  helper.make_node("MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2])]
        prev, channels = f"p{i}", out
    inits += [numpy_helper.from_array((rng.standard_normal((channels, CLASSES)) / 8).astype(np.float32), "fc.w"),
              numpy_helper.from_array(np.zeros(CLASSES, np.float32), "fc.b")]
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, side, side])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repo / name / "1").mkdir(parents=True)
    onnx.save(model, str(repo / name / "1" / "model.onnx"))
    (repo / name / "config.pbtxt").write_text(
        f'platform: "onnxruntime_onnx"\nmax_batch_size: {MAX_BATCH}\n'
        f'input [ {{ name: "image", data_type: TYPE_FP32, dims: [ 1, {side}, {side} ] }} ]\n'
        f'output [ {{ name: "probs", data_type: TYPE_FP32, dims: [ {CLASSES} ] }} ]\n'
        f"dynamic_batching {{ max_queue_delay_microseconds: {QUEUE_DELAY_US} }}\n"
    )
    return repo / name / "1" / "model.onnx"


def _row(case: str, count: int, elapsed: float, latencies: list[float], base: float | None, notes: str) -> dict:
    lat = np.array(latencies) * 1000
    tput = count / elapsed
    return {"bench": "inference", "case": case, "throughput_per_s": round(tput, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 3), "p99_ms": round(float(np.percentile(lat, 99)), 3),
            "ratio_vs_inprocess": round(tput / base, 3) if base else 1.0, "notes": notes}


def cnn_inputs(name: str, batch: int, seed: int) -> dict[str, np.ndarray]:
    side = SIDES[name]
    return {"image": np.random.default_rng(seed).standard_normal((batch, 1, side, side)).astype(np.float32)}


def embedding_inputs(batch: int) -> dict[str, np.ndarray]:
    """A real condition phrase, tokenised and padded as the NLP service sends it."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(EMBEDDING_DIR / "tokenizer.json"))
    tok.enable_truncation(max_length=EMBEDDING_TOKENS)
    tok.enable_padding(length=EMBEDDING_TOKENS, pad_id=0, pad_token="[PAD]")
    enc = tok.encode("community acquired pneumonia of the right lower lobe")
    ids = np.array([enc.ids] * batch, dtype=np.int64)
    mask = np.array([enc.attention_mask] * batch, dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask}


def inputs_for(name: str, batch: int, seed: int = 1) -> dict[str, np.ndarray]:
    return embedding_inputs(batch) if name == EMBEDDING else cnn_inputs(name, batch, seed)


def bench_in_process(path: pathlib.Path, name: str, batch: int) -> tuple[int, float, list[float]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    x = inputs_for(name, batch)
    for _ in range(10):
        session.run(None, x)
    latencies, count = [], 0
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < DURATION_S:
        session.run(None, x)
        latencies.append(time.perf_counter() - now)
        count += batch
    return count, time.perf_counter() - start, latencies


async def bench_grpc(url: str, name: str, clients: int) -> tuple[int, float, list[float]]:
    from carepulse.shared.inference.client import InferenceClient

    x = inputs_for(name, 1, seed=2)
    async with InferenceClient(url, deadline_s=30) as client:
        for _ in range(10):
            await client.infer(name, x)
        latencies: list[float] = []
        stop_at = time.perf_counter() + DURATION_S

        async def caller() -> None:
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                await client.infer(name, x)
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(clients)))
        return len(latencies), time.perf_counter() - start, latencies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch_sums(metrics_url: str, name: str) -> tuple[float, float]:
    """(samples, runs) so far from the server's batch-size histogram."""
    body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    values = {"sum": 0.0, "count": 0.0}
    for line in body.splitlines():
        for key in values:
            if line.startswith(f'carepulse_inference_batch_size_{key}{{model="{name}"}}'):
                values[key] = float(line.rsplit(" ", 1)[1])
    return values["sum"], values["count"]


def _note(name: str) -> str:
    if name == EMBEDDING:
        return f"{name}: the repository's all-MiniLM-L6-v2, {EMBEDDING_TOKENS} tokens per phrase, CPU"
    side = SIDES[name]
    return f"{name}: CNN 1x{side}x{side} -> conv{list(CONV_CHANNELS)} -> {CLASSES}, FP32, CPU"


def add_embedding_model(repo: pathlib.Path) -> pathlib.Path:
    """The repository's text-embedding model as served (its own config.pbtxt), linked into ``repo``."""
    model = EMBEDDING_DIR / "1" / "model.onnx"
    if not model.exists():
        raise SystemExit(f"{model} is missing: `make setup` builds it (carepulse train nlp-index)")
    (repo / EMBEDDING / "1").mkdir(parents=True)
    (repo / EMBEDDING / "config.pbtxt").write_text((EMBEDDING_DIR / "config.pbtxt").read_text())
    (repo / EMBEDDING / "1" / "model.onnx").symlink_to(model.resolve())
    return repo / EMBEDDING / "1" / "model.onnx"


def run(out_dir: pathlib.Path) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="carepulse-bench-") as tmp:
        repo = pathlib.Path(tmp)
        base: dict[str, float] = {}
        paths = {EMBEDDING: add_embedding_model(repo)} | {name: build_model(repo, name) for name in SIDES}
        for name, path in paths.items():
            count, elapsed, lat = bench_in_process(path, name, 1)
            base[name] = count / elapsed
            rows.append(_row(f"{name} in-process batch 1", count, elapsed, lat, None, _note(name) + "; baseline"))
            count, elapsed, lat = bench_in_process(path, name, MAX_BATCH)
            rows.append(_row(f"{name} in-process batch {MAX_BATCH}", count, elapsed, lat, base[name],
                             "ceiling: 64 samples per run (latency per run)"))

        grpc_port, metrics_port = _free_port(), _free_port()
        env = {**os.environ, "CAREPULSE_MODEL_REPOSITORY": tmp, "CAREPULSE_BIND_HOST": "127.0.0.1",
               "CAREPULSE_INFERENCE_GRPC_PORT": str(grpc_port), "CAREPULSE_INFERENCE_METRICS_PORT": str(metrics_port),
               "CAREPULSE_LOG_LEVEL": "WARNING"}
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "inference-server.log").open("w") as log:
            server = subprocess.Popen([sys.executable, "-m", "carepulse.inference"], env=env, stdout=log, stderr=log)
            try:
                wait_ready(f"http://127.0.0.1:{metrics_port}", server, 60, out_dir / "inference-server.log")
                metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
                for name in paths:
                    for clients in CLIENTS:
                        before = _batch_sums(metrics_url, name)
                        count, elapsed, lat = asyncio.run(bench_grpc(f"127.0.0.1:{grpc_port}", name, clients))
                        after = _batch_sums(metrics_url, name)
                        runs = max(after[1] - before[1], 1)
                        rows.append(_row(f"{name} grpc {clients} client{'s' if clients > 1 else ''}", count, elapsed,
                                         lat, base[name], f"mean batch {(after[0] - before[0]) / runs:.1f}; "
                                         "server subprocess + asyncio client share the 2 cores"))
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(20)
                except subprocess.TimeoutExpired:
                    server.kill()
        # The same in-process run again, after the gRPC cases: the machine's load drifts during a
        # run (other processes), so every ratio is against the faster of the two measurements.
        for name, path in paths.items():
            count, elapsed, _ = bench_in_process(path, name, 1)
            base[name] = max(base[name], count / elapsed)
        for row in rows:
            name = row["case"].split(" ", 1)[0]
            row["ratio_vs_inprocess"] = round(row["throughput_per_s"] / base[name], 3)
        for name in paths:
            first = next(r for r in rows if r["case"] == f"{name} in-process batch 1")
            first["notes"] += f" (best of two runs, before and after the gRPC cases: {base[name]:.1f}/s)"
            first["throughput_per_s"] = round(base[name], 1)
            first["ratio_vs_inprocess"] = 1.0
    return rows


if __name__ == "__main__":
    for r in run(pathlib.Path("bench-results")):
        print(r)
