"""Transport-security wiring of compose (deploy/compose/tls.yml) and Helm against what the code reads.

Every CAREPULSE_* the deployments set is a setting; every TLS path they set is a file they mount;
every secret is referenced, never inlined; Redis' ACL in compose is the code's ``ACL_RULES``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from carepulse.shared.platform.catalogue import CATALOGUE
from carepulse.shared.redis_client import ACL_RULES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "carepulse"
TLS_OVERLAY = ROOT / "deploy" / "compose" / "tls.yml"
KUBE_VERSION = "1.30.0"


def compose(tmp_path: Path, *files: Path, profiles: tuple[str, ...] = ("cpu",)) -> dict[str, Any]:
    env_file = tmp_path / "compose.env"
    env_file.write_text((ROOT / ".env.example").read_text())
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package, listed in tests/debian-packages.txt) is not installed"
    args = [binary, "--project-directory", str(ROOT), "--env-file", str(env_file)]
    for f in (ROOT / "docker-compose.yml", *files):
        args += ["-f", str(f)]
    for p in profiles:
        args += ["--profile", p]
    out = subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_base_passes_secrets_from_env_and_keeps_security_off(tmp_path: Path) -> None:
    env = compose(tmp_path)["services"]["care"]["environment"]
    assert env["CAREPULSE_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    # Empty values (from .env) leave the features off; no TLS path is set without the overlay.
    assert env["CAREPULSE_CONTEXT_KEYS"] == "" and env["CAREPULSE_KAFKA_SASL_PASSWORD"] == ""
    assert not any("_TLS_" in k for k in env)


@pytest.mark.parametrize("profiles", [("cpu",), ("gpu", "kafka-cluster", "observability")])
def test_compose_tls_overlay_mounts_every_file_it_names(
    tmp_path: Path, settings_env: Callable[[str], set[str]], profiles: tuple[str, ...]
) -> None:
    cfg = compose(tmp_path, TLS_OVERLAY, profiles=profiles)
    declared = set(cfg["secrets"])
    services = cfg["services"]
    for name, svc in services.items():
        env = svc.get("environment") or {}
        mounted = {s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])}
        assert mounted <= declared, name
        for key, value in env.items():
            if isinstance(value, str) and value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in mounted, (name, key)
    for spec in CATALOGUE:
        svc = services.get(spec.name) or services.get(f"{spec.name}-cpu")
        if svc is None:
            continue
        env = svc["environment"]
        unknown = {k for k in env if k.startswith("CAREPULSE_")} - settings_env(spec.name)
        assert not unknown, f"{spec.name}: the TLS overlay sets variables no setting reads: {sorted(unknown)}"
        assert env["CAREPULSE_REDIS_URL"].startswith("rediss://") and env["CAREPULSE_KAFKA_SECURITY_PROTOCOL"] == "SSL"
        assert env["CAREPULSE_REDIS_USERNAME"] == "carepulse"
        assert {"CAREPULSE_KAFKA_TLS_CERT", "CAREPULSE_REDIS_TLS_CERT",
                "CAREPULSE_INFERENCE_CLIENT_TLS_CERT"} <= set(env)
    assert "CAREPULSE_INGESTION_TLS_CERT" in services["ingestion"]["environment"]
    inference = services.get("inference") or services["inference-cpu"]
    assert "CAREPULSE_INFERENCE_SERVER_TLS_CLIENT_CA" in inference["environment"]
    for broker in [b for b in ("kafka", "kafka-2", "kafka-3") if b in services]:
        env = services[broker]["environment"]
        assert env["KAFKA_SSL_CLIENT_AUTH"] == "required" and env["KAFKA_ADVERTISED_LISTENERS"].startswith("SSL://")
        assert "PLAINTEXT://" not in env["KAFKA_LISTENERS"].replace("CONTROLLER://", "")


def test_compose_redis_is_tls_only_with_the_code_acl(tmp_path: Path) -> None:
    redis = compose(tmp_path, TLS_OVERLAY)["services"]["redis"]
    cmd = " ".join(" ".join(redis["command"]).replace('"', "").split())
    assert "--port 0 --tls-port 6379 --tls-auth-clients yes" in cmd and "--user default off" in cmd
    assert re.search(r"--user carepulse on >\$+REDIS_PASSWORD " + re.escape(ACL_RULES) + "$", cmd), cmd
    assert "--requirepass" not in cmd  # the default user is off: no shared password login
    assert "--tls" in " ".join(redis["healthcheck"]["test"])


def helm_render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values=values, name="cp", namespace="carepulse")
    return [d for text in out.values() for d in yaml.safe_load_all(text) if d]


FULL_TLS: dict[str, Any] = {
    "kafka": {"securityProtocol": "SASL_SSL", "tls": {"caSecret": {"name": "kafka-ca"},
                                                      "clientSecret": {"name": "kafka-user"}},
              "sasl": {"username": "carepulse", "passwordSecret": {"name": "kafka-user"}}},
    "redis": {"url": "rediss://redis-master.redis.svc:6379/0", "auth": {"username": "carepulse"},
              "tls": {"caSecret": {"name": "redis-ca"}, "clientSecret": {"name": "redis-client"}}},
    "contextKeys": {"secret": {"name": "context-keys"}},
    "inferenceClientTls": {"caSecret": {"name": "inference-ca"}, "clientSecret": {"name": "inference-client"}},
    "services": {"ingestion": {"tls": {"secret": {"name": "edge-tls"}, "clientCASecret": {"name": "ehr-ca"}}},
                 "inference": {"tls": {"secret": {"name": "inference-tls"},
                                       "clientCASecret": {"name": "inference-ca"}}}},
}


def _pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].removeprefix("cp-carepulse-"): d["spec"]["template"]["spec"]
            for d in docs if d["kind"] in ("Deployment", "Job")}


def test_helm_full_transport_security_is_valid_and_complete(settings_env: Callable[[str], set[str]]) -> None:
    docs = helm_render(FULL_TLS)
    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    assert not [d for d in docs if d["kind"] == "Secret"]  # referenced, never created
    pods = _pods(docs)
    for name, pod in pods.items():
        (c,) = pod["containers"]
        env = {e["name"]: e for e in c["env"]}
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for var, e in env.items():
            if e.get("value", "").startswith("/etc/carepulse/tls/"):
                folder, file = e["value"].rsplit("/", 1)
                vol = volumes[mounts[folder]]["secret"]
                assert file in {i["path"] for i in vol["items"]}, (name, var)
        if name == "topics":
            assert not any(k.startswith(("CAREPULSE_REDIS", "CAREPULSE_CONTEXT")) for k in env)
        else:
            assert env["CAREPULSE_CONTEXT_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "context-keys"
            assert env["CAREPULSE_REDIS_TLS_CERT"]["value"].startswith("/etc/carepulse/tls/redis-client/")
        assert env["CAREPULSE_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "kafka-user",
                                                                                    "key": "password"}
        assert "value" not in env["CAREPULSE_KAFKA_SASL_PASSWORD"]
    for spec in CATALOGUE:
        (c,) = pods[spec.name]["containers"]
        unknown = {e["name"] for e in c["env"] if e["name"].startswith("CAREPULSE_")} - settings_env(spec.name)
        assert not unknown, f"{spec.name}: chart sets variables no setting reads: {sorted(unknown)}"
    (ing,) = pods["ingestion"]["containers"]
    assert ing["readinessProbe"]["exec"]["command"] == ["python", "/opt/carepulse/healthcheck.py"]
    assert ing["livenessProbe"]["exec"]["command"][-1] == "--live"
    (inf,) = pods["inference"]["containers"]
    assert "CAREPULSE_INFERENCE_SERVER_TLS_CLIENT_CA" in {e["name"] for e in inf["env"]}
    assert inf["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}  # metrics port stays HTTP


def test_helm_https_without_client_ca_probes_over_https() -> None:
    pods = _pods(helm_render({"services": {"ingestion": {"tls": {"secret": {"name": "edge-tls"}}}}}))
    (c,) = pods["ingestion"]["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTPS"}
    assert "CAREPULSE_INGESTION_TLS_CLIENT_CA" not in {e["name"] for e in c["env"]}


@pytest.mark.parametrize(("values", "message"), [
    ({"kafka": {"securityProtocol": "SASL_SSL"}}, "kafka.sasl.username"),
    ({"kafka": {"securityProtocol": "TLS"}}, "kafka.securityProtocol must be one of"),
    ({"kafka": {"tls": {"caSecret": {"name": "x"}}}}, "not SSL or SASL_SSL"),
    ({"redis": {"tls": {"caSecret": {"name": "x"}}}}, "not rediss://"),
    ({"services": {"ingestion": {"tls": {"clientCASecret": {"name": "x"}}}}}, "needs services.ingestion.tls.secret"),
    ({"services": {"ingestion": {"auth": {"enabled": True, "issuer": "https://as"}}}}, "needs issuer, audience"),
])
def test_helm_refuses_half_configured_security(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        helm_render(values)


def test_helm_edge_auth_sets_what_the_ingestion_settings_read() -> None:
    from carepulse.ingestion.settings import IngestionSettings

    auth = {"enabled": True, "issuer": "https://as.example", "audience": "https://fhir.example/fhir",
            "jwksUrl": "https://as.example/jwks"}
    (c,) = _pods(helm_render({"services": {"ingestion": {"auth": auth}}}))["ingestion"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"] if "value" in e}
    settings = IngestionSettings(**{k.removeprefix("CAREPULSE_").lower(): v for k, v in env.items()
                                    if k.startswith("CAREPULSE_AUTH_")})
    assert settings.auth_enabled and settings.auth_issuer == auth["issuer"]
    assert settings.auth_audience == auth["audience"] and settings.auth_jwks_url == auth["jwksUrl"]
    (off,) = _pods(helm_render({}))["ingestion"]["containers"]
    assert "CAREPULSE_AUTH_ENABLED" not in {e["name"] for e in off["env"]}
