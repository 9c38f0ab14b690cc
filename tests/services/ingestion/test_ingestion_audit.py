"""The audit trail: exactly one valid FHIR AuditEvent per request at the edge, accepted or refused
(who, what, when, outcome, from where), on carepulse.audit; `carepulse audit` prints them per
patient or client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from carepulse.ingestion.audit import outcome_code
from carepulse.shared.cli.audit import app as audit_app
from carepulse.shared.fhir.codec import parse_resource
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
ISSUER, AUDIENCE = "https://auth.example.test", "https://carepulse.example.test/fhir"
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def signer() -> Iterator[Callable[[str], str]]:
    """A one-key authorisation server: its JWKS on 127.0.0.1, and a function minting tokens for a scope."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = json.dumps({"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())),
                                 "kid": "k1", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *_: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def mint(scope: str, client_id: str = "ehr-1") -> str:
        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": client_id, "client_id": client_id,
                           "scope": scope, "iat": now, "exp": now + 300}, key, algorithm="RS384",
                          headers={"kid": "k1"})

    mint.url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks"  # type: ignore[attr-defined]
    yield mint
    httpd.shutdown()
    httpd.server_close()


def official(fhir_data: Path, name: str) -> dict:
    return json.loads((fhir_data / "hl7-r4-official-examples" / name).read_bytes())


def test_outcome_codes() -> None:
    assert [outcome_code(s) for s in (200, 201, 400, 401, 403, 413, 500, 503)] == ["0", "0"] + ["4"] * 4 + ["8"] * 2


def test_one_audit_event_per_request_accepted_or_refused(make_client: Callable[..., TestClient],
                                                         signer: Callable[..., str], topics: Topics,
                                                         topic_reader: TopicReader, fhir_data: Path,
                                                         settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(auth_enabled=True, auth_issuer=ISSUER, auth_audience=AUDIENCE,
                         auth_jwks_url=signer.url)  # type: ignore[attr-defined]
    obs = official(fhir_data, "observation-example-heart-rate.json")
    patient = official(fhir_data, "patient-example.json")
    ok = {**FHIR, "Authorization": f"Bearer {signer('system/*.cu')}"}
    narrow = {**FHIR, "Authorization": f"Bearer {signer('system/Patient.c', 'ehr-2')}"}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**obs, "id": "bad", "status": ["final"]}, "request": {"method": "POST", "url": "Observation"}}]}
    sent = [  # (status, request)
        (201, lambda: client.post("/fhir/Observation", content=json.dumps(obs), headers=ok)),
        (401, lambda: client.post("/fhir/Observation", content=json.dumps(obs), headers=FHIR)),
        (401, lambda: client.post("/fhir/Observation", content=json.dumps(obs),
                                  headers={**FHIR, "Authorization": "Bearer x.y.z"})),
        (403, lambda: client.post("/fhir/Observation", content=json.dumps(obs), headers=narrow)),
        (400, lambda: client.post("/fhir/Observation", content=b"{oops", headers=ok)),
        (200, lambda: client.post("/fhir", content=json.dumps(batch), headers=ok)),
        (200, lambda: client.get("/fhir/metadata")),  # open, and not audited
        (200, lambda: client.get("/readyz")),
    ]
    for status, call in sent:
        r = call()
        assert r.status_code == status, r.text
    records = topic_reader.read(topics.audit, at_least=6, timeout=15, settle=1.0)
    assert len(records) == 6
    # Keyed by client, so in order per client only: find each request's event by what it says.
    events = [r.json() for r in records]
    for e in events:
        parse_resource(json.dumps(e).encode(), "AuditEvent")
        assert e["agent"][0]["network"] == {"address": "testclient", "type": "2"}
        assert e["type"]["code"] == "rest" and e["recorded"].endswith("Z")
    def one(pred: Callable[[dict], bool]) -> dict:
        [e] = [e for e in events if pred(e)]
        return e

    created = one(lambda e: e["outcome"] == "0")
    anon, bad_token = [e for e in events if e["outcomeDesc"].startswith("HTTP 401")]
    forbidden = one(lambda e: e["outcomeDesc"].startswith("HTTP 403"))
    invalid = one(lambda e: e["outcomeDesc"].startswith("HTTP 400"))
    mixed = one(lambda e: e["subtype"][0]["code"] == "batch")
    assert (created["outcome"], created["action"], created["agent"][0]["who"]["identifier"]["value"]) == (
        "0", "C", "ehr-1")
    refs = {(x["what"].get("reference"), x["role"]["code"]) for x in created["entity"]}
    assert refs == {("Observation/heart-rate", "4"), ("Patient/example", "1")}
    for e in (anon, bad_token):
        assert e["outcome"] == "4" and e["outcomeDesc"] == "HTTP 401 login"
        assert e["agent"][0]["who"]["identifier"]["value"] == "anonymous"
        assert [x["what"] for x in e["entity"]] == [{"type": "Observation"}]
    assert (forbidden["outcome"], forbidden["outcomeDesc"]) == ("4", "HTTP 403 forbidden")
    assert forbidden["agent"][0]["who"]["identifier"] == {"system": ISSUER, "value": "ehr-2"}
    assert invalid["outcome"] == "4" and invalid["outcomeDesc"].startswith("HTTP 400")
    assert mixed["subtype"][0]["code"] == "batch" and mixed["outcome"] == "4"
    assert mixed["outcomeDesc"] == "HTTP 200, 1 rejected"
    assert {x["what"].get("reference") for x in mixed["entity"]} == {"Patient/example"}
    assert all(r.key == f"Client/{r.json()['agent'][0]['who']['identifier']['value']}" for r in records)

    # `carepulse audit` over the same topic.
    monkeypatch.setenv("CAREPULSE_TOPIC_PREFIX", settings.topic_prefix)
    runner = CliRunner()
    kafka = ["--kafka", settings.kafka_bootstrap_servers]
    by_patient = runner.invoke(audit_app, ["--patient", "example", *kafka])
    assert by_patient.exit_code == 0, by_patient.output
    lines = [x for x in by_patient.stdout.splitlines() if x.strip()]
    assert len(lines) == 2 and all("patients=Patient/example" in x for x in lines)
    assert "client=ehr-1" in lines[0] and "ok" in lines[0] and "refused" in lines[1]
    by_client = runner.invoke(audit_app, ["--client", "anonymous", "--json", *kafka])
    assert by_client.exit_code == 0
    got = [json.loads(x) for x in by_client.stdout.splitlines() if x.strip()]
    assert sorted(g["id"] for g in got) == sorted([anon["id"], bad_token["id"]])


def test_audit_can_be_turned_off(make_client: Callable[..., TestClient], topics: Topics, topic_reader: TopicReader,
                                 fhir_data: Path) -> None:
    client = make_client(ingestion_audit_enabled=False)
    obs = official(fhir_data, "observation-example-heart-rate.json")
    assert client.post("/fhir/Observation", content=json.dumps(obs), headers=FHIR).status_code == 201
    assert topic_reader.read(topics.audit, settle=0.5) == []
