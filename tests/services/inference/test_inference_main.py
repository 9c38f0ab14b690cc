"""``python -m carepulse.inference`` as the supervisor runs it: env settings, probes, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton

pytestmark = pytest.mark.timeout(90)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_module_entry_serves_and_stops_on_sigterm(model_repo: Path, tmp_path: Path) -> None:
    grpc_port, metrics_port = _free_port(), _free_port()
    env = {**os.environ, "CAREPULSE_MODEL_REPOSITORY": str(model_repo), "CAREPULSE_INFERENCE_HOST": "127.0.0.1",
           "CAREPULSE_INFERENCE_GRPC_PORT": str(grpc_port), "CAREPULSE_INFERENCE_METRICS_PORT": str(metrics_port),
           "CAREPULSE_INFERENCE_MODELS": "int64_add,uint8_mean", "CAREPULSE_INFERENCE_PROVIDERS": "cpu",
           "CAREPULSE_LOG_FORMAT": "json"}
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "carepulse.inference"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_server_ready()
        # Only the models named in CAREPULSE_INFERENCE_MODELS were loaded.
        ready = {m["name"] for m in client.get_model_repository_index(as_json=True)["models"]
                 if m.get("state") == "READY"}
        assert ready == {"int64_add", "uint8_mean"}
        inp = triton.InferInput("a", [1, 3], "INT64")
        inp.set_data_from_numpy(np.array([[5, 5, 5]], dtype=np.int64))
        np.testing.assert_array_equal(client.infer("int64_add", [inp]).as_numpy("sum"), [[6, 7, 8]])
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert "inference ready" in messages and "inference stopped" in messages
    assert not [line for line in lines if line["level"] == "error"]


def test_in_process_start_and_stop_twice(make_server) -> None:  # noqa: ANN001
    # Metrics are process-wide; a second server in the same process must not re-register them.
    for _ in range(2):
        with make_server(inference_models="uint8_mean") as s:
            assert s.server.ready
            assert [m.name for m in s.server.repository.loaded()] == ["uint8_mean"]
