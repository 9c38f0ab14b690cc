"""Start, watch and stop the whole platform on one machine.

Order matters: broker and Redis first (topics created), then services, each
waited for on ``/readyz``; stopping goes the other way so services can flush.
State (ports, pids, log files) is written to ``<run>/state.json`` for
``carepulse status`` and for tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from carepulse.shared.kafka.admin import create_topics
from carepulse.shared.platform.catalogue import ServiceSpec, installed_services
from carepulse.shared.platform.processes import free_port, spawn, stop
from carepulse.shared.platform.servers import start_broker, start_redis
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready in time."""


@dataclass
class Running:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    log: Path

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[self.spec.health_port]}"


def probe(url: str, timeout: float = 1.0) -> tuple[int, dict[str, Any]]:
    """GET a health endpoint; (status, body) or (0, {}) when unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {}
    except (OSError, ValueError):
        return 0, {}


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Poll ``base_url``/readyz until it answers 200; fail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while probe(base_url + "/readyz")[0] != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ServiceFailed(f"{base_url} did not become ready; see {log}")
        time.sleep(0.2)


@dataclass
class Platform:
    """One run of the embedded platform."""

    settings: Settings
    run_dir: Path
    kafka: str | None = None  # external bootstrap servers; None = start Tansu
    redis: str | None = None  # external Redis URL; None = start Valkey
    free_ports: bool = False
    only: list[str] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    _servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    services: list[Running] = field(default_factory=list)

    def _port(self, default: int) -> int:
        return free_port() if self.free_ports else default

    def start(self, progress: Any = print, ready_timeout: float = 90.0) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if self.kafka is None:
            port = self._port(9092)
            progress(f"starting Kafka-protocol broker (Tansu) on 127.0.0.1:{port}")
            self._servers.append(start_broker(port, logs))
            self.kafka = f"127.0.0.1:{port}"
        if self.redis is None:
            port = self._port(6379)
            progress(f"starting Redis-protocol server (Valkey) on 127.0.0.1:{port}")
            self._servers.append(start_redis(port, self.run_dir / "redis", logs))
            self.redis = f"redis://127.0.0.1:{port}/0"
        base = self.settings.model_copy(update={"kafka_bootstrap_servers": self.kafka, "redis_url": self.redis})
        created = create_topics(base, Topics.with_prefix(base.topic_prefix))
        progress(f"topics ready ({len(created)} created)")

        for spec in installed_services(self.only):
            ports = {k: self._port(v) for k, v in spec.ports.items()}
            log = logs / f"{spec.name}.log"
            progress(f"starting {spec.name}")
            proc = spawn([sys.executable, "-m", spec.module], log, env=self._service_env(spec, ports))
            self.services.append(Running(spec, proc, ports, log))
            if spec.name == "inference":  # the stream workers that follow call it here
                self.extra_env["CAREPULSE_INFERENCE_URL"] = f"127.0.0.1:{ports['CAREPULSE_INFERENCE_GRPC_PORT']}"
        self.write_state()
        self.wait_ready(ready_timeout, progress)

    def _service_env(self, spec: ServiceSpec, ports: dict[str, int]) -> dict[str, str]:
        return {**os.environ, **self.extra_env,
                "CAREPULSE_KAFKA_BOOTSTRAP_SERVERS": self.kafka or "", "CAREPULSE_REDIS_URL": self.redis or "",
                "CAREPULSE_TOPIC_PREFIX": self.settings.topic_prefix,
                **{k: str(v) for k, v in ports.items()}}

    @property
    def ingestion_url(self) -> str:
        for r in self.services:
            if r.spec.name == "ingestion":
                return f"http://127.0.0.1:{r.ports['CAREPULSE_INGESTION_PORT']}"
        return self.settings.ingestion_url

    def wait_ready(self, timeout: float, progress: Any = print) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        while pending:
            for r in list(pending):
                if r.proc.poll() is not None:
                    raise ServiceFailed(f"{r.spec.name} exited with {r.proc.returncode}; see {r.log}")
                if probe(r.health_url + "/readyz")[0] == 200:
                    progress(f"{r.spec.name} ready")
                    pending.remove(r)
            if pending and time.monotonic() > deadline:
                names = ", ".join(r.spec.name for r in pending)
                raise ServiceFailed(f"not ready after {timeout:.0f}s: {names}; see {self.run_dir / 'logs'}")
            time.sleep(0.2)

    def state(self) -> dict[str, Any]:
        return {
            "started": datetime.now().isoformat(timespec="seconds"),
            "pid": os.getpid(),
            "kafka": self.kafka,
            "redis": self.redis,
            "topic_prefix": self.settings.topic_prefix,
            "ingestion_url": self.ingestion_url,
            "services": {r.spec.name: {"pid": r.proc.pid, "ports": r.ports, "health": r.health_url,
                                       "log": str(r.log)} for r in self.services},
        }

    def write_state(self) -> None:
        (self.run_dir / "state.json").write_text(json.dumps(self.state(), indent=2))

    def failed_services(self) -> list[Running]:
        return [r for r in self.services if r.proc.poll() is not None]

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start one service again with the same ports (used by crash-recovery tests)."""
        r = next(r for r in self.services if r.spec.name == name)
        stop(r.proc, 1.0)
        r.proc = spawn([sys.executable, "-m", r.spec.module], r.log, env=self._service_env(r.spec, r.ports))
        self.write_state()
        wait_ready(r.health_url, r.proc, timeout, r.log)

    def stop(self, progress: Any = print) -> None:
        for r in reversed(self.services):
            code = stop(r.proc)
            # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean stop too.
            progress(f"stopped {r.spec.name}" + ("" if code in (0, -15) else f" (exit {code})"))
        for proc in reversed(self._servers):
            stop(proc)
        self._servers.clear()
        progress("stopped broker and Redis")
