"""HTTPS and mutual TLS at the edge: ``python -m carepulse.ingestion`` started as a process with
certificates from a throw-away CA minted here, on 127.0.0.1, against the session's broker and Redis."""

from __future__ import annotations

import importlib.util
import json
import os
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from carepulse.ingestion.server import tls_options
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.platform.processes import free_port, spawn, stop
from carepulse.shared.settings import Settings
from carepulse.shared.testing.tls import Issued, Pki, make_pki
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
FHIR = {"Content-Type": "application/fhir+json"}
HEALTHCHECK = Path(__file__).resolve().parents[3] / "deploy" / "docker" / "healthcheck.py"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    # The server certificate is also issued for client auth: the container health check presents it.
    return make_pki(tmp_path_factory.mktemp("edge-pki"), "ingestion", "ehr", server_is_client=True)


def _context(ca: Path, client: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


@pytest.fixture
def serve(settings: Settings, pki: Pki, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Start the real ingestion process with TLS env; yields its base URL (stopped after the test)."""
    procs = []

    def start(*, mutual: bool) -> str:
        port = free_port()
        env = {**os.environ,
               "CAREPULSE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
               "CAREPULSE_REDIS_URL": settings.redis_url, "CAREPULSE_TOPIC_PREFIX": settings.topic_prefix,
               "CAREPULSE_BIND_HOST": "127.0.0.1", "CAREPULSE_INGESTION_PORT": str(port),
               "CAREPULSE_INGESTION_CONSUME_INBOUND": "false", "CAREPULSE_AUTH_ENABLED": "false",
               "CAREPULSE_INGESTION_TLS_CERT": str(pki.server.cert), "CAREPULSE_INGESTION_TLS_KEY": str(pki.server.key)}
        if mutual:
            env["CAREPULSE_INGESTION_TLS_CLIENT_CA"] = str(pki.ca.ca_file)
        proc = spawn([sys.executable, "-m", "carepulse.ingestion"], tmp_path / f"ingestion-{port}.log", env=env)
        procs.append(proc)
        url = f"https://127.0.0.1:{port}"
        ready = _context(pki.ca.ca_file, pki.client)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / f"ingestion-{port}.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/readyz", verify=ready, timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError((tmp_path / f"ingestion-{port}.log").read_text()[-2000:])

    yield start
    for p in procs:
        stop(p)


def _healthcheck(monkeypatch: pytest.MonkeyPatch, url: str, pki: Pki, *, mutual: bool) -> list[int]:
    """The image's health check (deploy/docker/healthcheck.py) against the running server."""
    spec = importlib.util.spec_from_file_location("deploy_healthcheck_mtls", HEALTHCHECK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("SERVICE", "ingestion")
    monkeypatch.setenv("CAREPULSE_INGESTION_PORT", url.rsplit(":", 1)[1])
    monkeypatch.setenv("CAREPULSE_INGESTION_TLS_CERT", str(pki.server.cert))
    monkeypatch.setenv("CAREPULSE_INGESTION_TLS_KEY", str(pki.server.key))
    if mutual:
        monkeypatch.setenv("CAREPULSE_INGESTION_TLS_CLIENT_CA", str(pki.ca.ca_file))
    else:
        monkeypatch.delenv("CAREPULSE_INGESTION_TLS_CLIENT_CA", raising=False)
    return [module.main([]), module.main(["--live"])]


def test_https_serves_the_api_and_plain_http_and_untrusted_servers_get_nothing(  # type: ignore[no-untyped-def]
    serve, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = serve(mutual=False)
    assert _healthcheck(monkeypatch, url, pki, mutual=False) == [0, 0]
    ok = httpx.get(f"{url}/fhir/metadata", verify=_context(pki.ca.ca_file), timeout=5)  # no client cert needed
    assert ok.status_code == 200 and ok.json()["resourceType"] == "CapabilityStatement"
    with pytest.raises(httpx.TransportError):
        httpx.get(url.replace("https://", "http://") + "/livez", timeout=5)
    with pytest.raises(httpx.ConnectError, match="(?i)certificate verify failed"):
        httpx.get(f"{url}/livez", verify=_context(pki.stranger.ca_file), timeout=5)


def test_mutual_tls_refuses_clients_without_a_certificate_from_the_ca(  # type: ignore[no-untyped-def]
    serve, pki: Pki, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = serve(mutual=True)
    assert _healthcheck(monkeypatch, url, pki, mutual=True) == [0, 0]  # presents the server's own pair
    for who, ctx in [("no certificate", _context(pki.ca.ca_file)),
                     ("stranger's certificate", _context(pki.ca.ca_file, pki.stranger_client))]:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/livez", verify=ctx, timeout=5)
            pytest.fail(who)
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "heart rate"},
           "subject": {"reference": "Patient/mtls-1"}}
    accepted = httpx.post(f"{url}/fhir/Observation", content=json.dumps(obs), headers=FHIR,
                          verify=_context(pki.ca.ca_file, pki.client), timeout=10)
    assert accepted.status_code == 201, accepted.text
    reader = TopicReader(settings)
    try:
        [rec] = reader.read(Topics.with_prefix(settings.topic_prefix).observation, at_least=1)
    finally:
        reader.close()
    assert rec.key == "Patient/mtls-1"


def test_tls_options_and_half_configured_tls(pki: Pki) -> None:
    assert tls_options(IngestionSettings()) == {}
    https = IngestionSettings(ingestion_tls_cert=pki.server.cert, ingestion_tls_key=pki.server.key)
    assert tls_options(https) == {"ssl_certfile": str(pki.server.cert), "ssl_keyfile": str(pki.server.key)}
    mutual = tls_options(https.model_copy(update={"ingestion_tls_client_ca": pki.ca.ca_file}))
    assert mutual["ssl_cert_reqs"] == ssl.CERT_REQUIRED and mutual["ssl_ca_certs"] == str(pki.ca.ca_file)
    for bad in [{"ingestion_tls_cert": pki.server.cert}, {"ingestion_tls_key": pki.server.key},
                {"ingestion_tls_client_ca": pki.ca.ca_file}]:
        with pytest.raises(ValidationError):
            IngestionSettings(**bad)
