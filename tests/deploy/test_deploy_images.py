"""Image recipes (structural lint: no Docker engine here), the health check and the topic job."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from kafka import KafkaAdminClient

from carepulse.shared.platform.catalogue import CATALOGUE
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

DOCKER = Path(__file__).resolve().parents[2] / "deploy" / "docker"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def final_stage(ins: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    return ins[last:]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DOCKER / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("recipe", ["Dockerfile", "Dockerfile.inference-gpu"])
def test_recipe_is_multistage_slim_nonroot_with_healthcheck(recipe: str) -> None:
    ins = instructions(DOCKER / recipe)
    assert sum(op == "FROM" for op, _ in ins) >= 2
    last = final_stage(ins)
    ops = dict(last)
    users = [a for op, a in last if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "--from=build /opt/carepulse /opt/carepulse" in " ".join(a for op, a in last if op == "COPY")
    assert "/opt/carepulse/healthcheck.py" in ops["HEALTHCHECK"]
    assert re.search(r'"python", "-m", "carepulse\.(inference|\$\{SERVICE\})"|exec python -m carepulse\.\$\{SERVICE\}',
                     ops["CMD"])
    # Nothing but the runtime venv in the final stage: no compilers, no sources.
    assert not any(op == "COPY" and "--from" not in a for op, a in last)


def test_generic_recipe_installs_only_shared_and_the_one_service() -> None:
    ins = instructions(DOCKER / "Dockerfile")
    copies = [a for op, a in ins if op == "COPY" and "--from" not in a]
    assert copies[:2] == ["shared/ shared/", "services/${SERVICE}/ services/${SERVICE}/"]
    (install,) = [a for op, a in ins if op == "RUN" and "pip install" in a]
    assert '"./shared[cli,tracing]" "./services/${SERVICE}"' in install
    assert ins[0][1].startswith("PYTHON_IMAGE=python:3.11-slim")


def test_gpu_recipe_is_cuda_with_the_inference_project() -> None:
    ins = instructions(DOCKER / "Dockerfile.inference-gpu")
    assert ins[0][1].startswith("CUDA_IMAGE=nvidia/cuda:") and "cudnn-runtime" in ins[0][1]
    assert "services/inference/ services/inference/" in [a for op, a in ins if op == "COPY"]
    # onnxruntime-gpu comes from the inference project's own dependencies.
    pyproject = (DOCKER.parents[1] / "services" / "inference" / "pyproject.toml").read_text()
    assert "onnxruntime-gpu" in pyproject


def test_healthcheck_targets_each_service_health_port() -> None:
    hc = load("healthcheck")
    for spec in CATALOGUE:
        port = spec.ports[spec.health_port]
        assert hc.health_url(spec.name, {}) == f"http://127.0.0.1:{port}/readyz"
        assert hc.health_url(spec.name, {spec.health_port: "9999"}) == "http://127.0.0.1:9999/readyz"
    with pytest.raises(SystemExit):
        hc.health_url("nope", {})


@pytest.mark.integration
def test_topic_job_creates_the_registry_topics_idempotently(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = settings.topic_prefix + "job."
    monkeypatch.setenv("CAREPULSE_KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("CAREPULSE_TOPIC_PREFIX", prefix)
    job = load("create_topics")
    assert job.main(["--partitions", "4", "--timeout", "20"]) == 0
    assert job.main(["--partitions", "4", "--timeout", "20"]) == 0
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    try:
        wanted = Topics.with_prefix(prefix).all()
        described = {t["name"]: t for t in admin.describe_topics(wanted)}
        assert set(described) == set(wanted)
        assert all(len(t["partitions"]) == 4 for t in described.values())
    finally:
        admin.close()
