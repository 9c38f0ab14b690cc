"""docker-compose.yml, rendered by Debian's docker-compose (no engine needed) for every profile.

Checks the structure an operator relies on and that compose starts what the code expects:
the module, ports and CAREPULSE_* variables of each service in the platform catalogue.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from carepulse.shared.platform.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
CLUSTER_ENV = ROOT / "deploy" / "compose" / "kafka-cluster.env"


def volume_source(v: str | dict[str, Any]) -> str:
    return v.split(":", 1)[0] if isinstance(v, str) else v["source"]


def render(tmp_path: Path, *profiles: str, extra_env: Path | None = None) -> dict[str, Any]:
    env_file = tmp_path / "compose.env"
    env_file.write_text(ENV_EXAMPLE.read_text() + (extra_env.read_text() if extra_env else ""))
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package, listed in tests/debian-packages.txt) is not installed"
    args = [binary, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
            "--env-file", str(env_file)]
    for p in profiles:
        args += ["--profile", p]
    out = subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def active(cfg: dict[str, Any], *profiles: str) -> dict[str, Any]:
    return {n: s for n, s in cfg["services"].items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)}


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return render(tmp_path_factory.mktemp("compose"))


def test_every_catalogue_service_runs_its_module_on_its_ports_with_known_env(
    default: dict[str, Any], settings_env: Callable[[str], set[str]]
) -> None:
    services = default["services"]
    for spec in CATALOGUE:
        name = spec.name if spec.name != "inference" else "inference-cpu"
        svc = services[name]
        assert svc["command"] == ["python", "-m", spec.module], name
        env = svc["environment"]
        for var, port in spec.ports.items():
            assert int(env[var]) == port, (name, var)
        unknown = {k for k in env if k.startswith("CAREPULSE_")} - settings_env(spec.name)
        assert not unknown, f"{name}: compose sets variables no setting reads: {sorted(unknown)}"
        assert env["CAREPULSE_BIND_HOST"] == "0.0.0.0"
        assert svc["healthcheck"]["test"] == ["CMD", "python", "/opt/carepulse/healthcheck.py"]
        if spec.name != "inference":
            deps = svc["depends_on"]
            assert deps["kafka"]["condition"] == deps["redis"]["condition"] == "service_healthy"
            assert deps["topics"]["condition"] == "service_completed_successfully"
            assert svc["build"]["args"]["SERVICE"] == spec.name


def test_infrastructure_kafka_kraft_redis_password_orthanc(default: dict[str, Any]) -> None:
    s = default["services"]
    kafka = s["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "healthcheck" in kafka and "healthcheck" in s["redis"] and "healthcheck" in s["orthanc"]
    redis_cmd = " ".join(s["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--requirepass" in redis_cmd
    assert s["redis"]["environment"]["REDIS_PASSWORD"] == s["care"]["environment"]["CAREPULSE_REDIS_PASSWORD"]
    assert "redis://redis:6379" in s["care"]["environment"]["CAREPULSE_REDIS_URL"]
    assert s["orthanc"]["environment"]["DICOM_WEB_PLUGIN_ENABLED"] == "true"
    assert s["imaging"]["depends_on"]["orthanc"]["condition"] == "service_healthy"
    assert s["topics"]["command"][:2] == ["python", "/opt/carepulse/create_topics.py"]
    # Named volumes only for state (the model repository is a read-only bind mount).
    declared = set(default["volumes"])
    for name, svc in s.items():
        for v in svc.get("volumes", []):
            source = volume_source(v)
            if not source.startswith(("/", ".")):
                assert source in declared, (name, v)


def test_gpu_profile_reserves_a_gpu_and_cpu_profile_falls_back(tmp_path: Path) -> None:
    cfg = render(tmp_path, "gpu")
    gpu = active(cfg, "gpu")
    assert "inference" in gpu and "inference-cpu" not in gpu
    (device,) = gpu["inference"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert gpu["inference"]["build"]["dockerfile"] == "deploy/docker/Dockerfile.inference-gpu"
    cpu = active(render(tmp_path, "cpu"), "cpu")
    assert "inference" not in cpu
    assert cpu["inference-cpu"]["networks"]["default"]["aliases"] == ["inference"]
    assert cpu["inference-cpu"]["environment"]["CAREPULSE_INFERENCE_PROVIDERS"] == "cpu"
    assert "deploy" not in cpu["inference-cpu"]


def test_three_broker_profile_replicates_three_ways_with_min_isr_two(tmp_path: Path) -> None:
    cfg = render(tmp_path, "kafka-cluster", "cpu", extra_env=CLUSTER_ENV)
    s = active(cfg, "kafka-cluster", "cpu")
    brokers = [s[n] for n in ("kafka", "kafka-2", "kafka-3")]
    assert sorted(int(b["environment"]["KAFKA_NODE_ID"]) for b in brokers) == [1, 2, 3]
    for b in brokers:
        env = b["environment"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3 and int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    assert "--replication-factor=3" in s["topics"]["command"] and "--min-insync-replicas=2" in s["topics"]["command"]
    assert s["care"]["environment"]["CAREPULSE_KAFKA_BOOTSTRAP_SERVERS"].count(":9092") == 3
    assert len({volume_source(v) for b in brokers for v in b["volumes"]}) == 3


def test_observability_profile_scrapes_every_service(tmp_path: Path) -> None:
    s = active(render(tmp_path, "observability", "cpu"), "observability", "cpu")
    assert {"prometheus", "grafana", "lag-exporter"} <= set(s)
    assert s["lag-exporter"]["command"][:3] == ["python", "-m", "carepulse.shared.kafka.lag"]
    prom = yaml.safe_load((ROOT / "deploy/observability/prometheus.yml").read_text())
    targets = {t for sc in prom["scrape_configs"] for sc_ in sc["static_configs"] for t in sc_["targets"]}
    for spec in CATALOGUE:
        assert f"{spec.name}:{spec.ports[spec.health_port]}" in targets
    assert "lag-exporter:9308" in targets
