"""The Helm chart, rendered in-process by Helm's own engine (helm-python-sdk) and validated
against Kubernetes schemas (kubernetes-validate), plus what the code expects of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from carepulse.shared.platform.catalogue import CATALOGUE

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "carepulse"
KUBE_VERSION = "1.30.0"


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values=values or {}, name="cp", namespace="carepulse")
    return [d for text in out.values() for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].removeprefix("cp-carepulse-"): d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render()


VARIANTS: list[dict[str, Any]] = [
    {},
    {"serviceMonitor": {"enabled": True}, "networkPolicy": {"ingestionFrom": [{"namespaceSelector": {}}],
                                                            "metricsFrom": [{"podSelector": {}}]}},
    {"services": {"inference": {"gpu": {"enabled": False}, "modelRepository": {"existingClaim": "models"}},
                  "imaging": {"dicomweb": {"allowed": "http://pacs/dicom-web", "cidrs": ["10.0.0.0/24"]}}},
     "kafka": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}},
     "lagExporter": {"enabled": False}, "inferenceUrl": "triton:8001"},
]


@pytest.mark.parametrize("values", VARIANTS, ids=["default", "monitoring", "cpu-external"])
def test_every_manifest_is_valid_for_kubernetes(values: dict[str, Any]) -> None:
    rendered = render(values)
    assert len(rendered) > 20
    for doc in rendered:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            # A CRD (Prometheus Operator): not in the Kubernetes schemas; check its shape.
            assert doc["kind"] == "ServiceMonitor"
            assert doc["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "30s"}
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_deployments_run_what_the_code_expects(
    docs: list[dict[str, Any]], settings_env: Callable[[str], set[str]]
) -> None:
    deployments = by_kind(docs, "Deployment")
    for spec in CATALOGUE:
        (c,) = deployments[spec.name]["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["python", "-m", spec.module]
        env = {e["name"]: e for e in c["env"]}
        for var, port in spec.ports.items():
            assert env[var]["value"] == str(port)
        unknown = {k for k in env if k.startswith("CAREPULSE_")} - settings_env(spec.name)
        assert not unknown, f"{spec.name}: chart sets variables no setting reads: {sorted(unknown)}"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["http"] == spec.ports[spec.health_port]
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        # Secrets are referenced, never inlined.
        assert "value" not in env["CAREPULSE_REDIS_PASSWORD"]
        assert env["CAREPULSE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "carepulse-redis"
    assert not by_kind(docs, "Secret")


def test_inference_gets_a_gpu_node_and_the_model_repository_from_a_configmap(docs: list[dict[str, Any]]) -> None:
    pod = by_kind(docs, "Deployment")["inference"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["image"].endswith("-gpu")
    env = {e["name"]: e for e in c["env"]}
    ref = env["CAREPULSE_MODEL_REPOSITORY"]["valueFrom"]["configMapKeyRef"]
    cm = by_kind(docs, "ConfigMap")["model-repository"]
    assert ref["name"] == cm["metadata"]["name"] and cm["data"][ref["key"]] == "/models"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]
    cpu = by_kind(render({"services": {"inference": {"gpu": {"enabled": False}}}}), "Deployment")["inference"]
    assert "nodeSelector" not in cpu["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_stream_worker_autoscaling_is_bounded_by_partitions(docs: list[dict[str, Any]]) -> None:
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    partitions = values["kafka"]["topics"]["partitions"]
    for worker in ("care", "nlp", "imaging"):
        assert hpas[worker]["spec"]["maxReplicas"] <= partitions
    assert "partitions" in (CHART / "values.yaml").read_text().split("care:")[1].split("nlp:")[0]
    with pytest.raises(helm.HelmError, match="exceeds kafka.topics.partitions"):
        render({"services": {"care": {"autoscaling": {"maxReplicas": partitions + 1}}}})
    assert set(by_kind(docs, "PodDisruptionBudget")) >= {s.name for s in CATALOGUE}


def test_only_ingestion_is_reachable_from_outside(docs: list[dict[str, Any]]) -> None:
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny
    open_rules = {name: [r for r in p["spec"].get("ingress", []) if "from" not in r]
                  for name, p in policies.items()}
    assert [r["ports"] for r in open_rules["ingestion"]] == [[{"port": "http", "protocol": "TCP"}]]
    inference = policies["inference"]["spec"]["ingress"][0]
    assert inference["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert inference["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "cp"
    # Other services open only their health/metrics port (kubelet probes, scrapers); never grpc or the API.
    for name, rules in open_rules.items():
        if name != "ingestion":
            assert all(r["ports"] == [{"port": "http", "protocol": "TCP"}] for r in rules), name
    assert by_kind(docs, "Service")["ingestion"]["spec"]["type"] == "ClusterIP"
