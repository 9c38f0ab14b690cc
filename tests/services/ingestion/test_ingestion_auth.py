"""Authentication and authorisation at the edge: SMART Backend Services bearer JWTs verified against a
JWKS served here on 127.0.0.1 from keys made here; each bad token is refused with 401, each missing
scope with 403, and nothing refused is published."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from carepulse.ingestion.auth import Principal, parse_scope, principal_from_claims
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
ISSUER = "https://auth.example.test"
AUDIENCE = "https://carepulse.example.test/fhir"
FHIR = {"Content-Type": "application/fhir+json"}
NDJSON = {"Content-Type": "application/fhir+ndjson"}


class KeyServer:
    """An authorisation server's JWKS endpoint on 127.0.0.1, with keys that can be rotated."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.published: list[str] = []  # kids in the served JWKS
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.hits += 1
                body = json.dumps(server.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def new_key(self, kind: str = "RSA", publish: bool = True) -> str:
        kid = uuid.uuid4().hex[:12]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "RSA" \
            else ec.generate_private_key(ec.SECP384R1())
        if publish:
            self.published.append(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            pub = self.keys[kid].public_key()
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pub) if isinstance(pub, rsa.RSAPublicKey)
                             else jwt.algorithms.ECAlgorithm.to_jwk(pub))
            out.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": out}

    def token(self, kid: str, scope: str = "system/*.cu", *, alg: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ehr-client", "client_id": "ehr-client", "scope": scope,
                "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, **claims}
        key = self.keys[kid]
        alg = alg or ("RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384")
        return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg,
                          headers={"kid": kid})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    k = KeyServer()
    yield k
    k.close()


@pytest.fixture
def secured(make_client: Callable[..., TestClient], keys: KeyServer) -> Callable[..., TestClient]:
    def make(**extra: object) -> TestClient:
        return make_client(auth_enabled=True, auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_url=keys.url,
                           auth_leeway_s=5, **extra)
    return make


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(keys: KeyServer, kid: str, now: int) -> str:
    """The classic confusion attack: an HMAC token whose secret is the server's public key."""
    pem = keys.keys[kid].public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = ".".join([b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()),
                              b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60,
                                              "scope": "system/*.*"}).encode())])
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def bearer(token: str, headers: dict[str, str] = FHIR) -> dict[str, str]:
    return {**headers, "Authorization": f"Bearer {token}"}


def official(fhir_data: Path, name: str) -> bytes:
    return (fhir_data / "hl7-r4-official-examples" / name).read_bytes()


# --- scopes, without servers -------------------------------------------------------------

@pytest.mark.parametrize(("scope", "rtype", "interaction", "allowed"), [
    ("system/Observation.c", "Observation", "c", True),
    ("system/Observation.c", "Observation", "u", False),
    ("system/Observation.c", "Patient", "c", False),
    ("system/*.cu", "Patient", "u", True),
    ("system/*.cruds", "Encounter", "c", True),
    ("system/*.rs", "Observation", "c", False),
    ("system/*.write", "Condition", "u", True),
    ("system/Observation.write", "Observation", "c", True),
    ("system/Observation.read", "Observation", "c", False),
    ("system/*.*", "Observation", "u", True),
    ("patient/Observation.c", "Observation", "c", False),  # not a backend service's context
    ("user/*.write", "Observation", "c", False),
    ("system/Observation.c?category=vital-signs", "Observation", "c", False),  # granular: not enforceable here
    ("system/Observation.uc", "Observation", "c", False),  # v2 letters out of order: not a scope
    ("launch/patient", "Observation", "c", False),
])
def test_smart_scopes(scope: str, rtype: str, interaction: str, allowed: bool) -> None:
    p = principal_from_claims({"scope": scope, "sub": "c1"})
    assert p.allows(rtype, interaction) is allowed


def test_scope_parsing_and_client_id() -> None:
    assert parse_scope("system/Observation.cu") is not None
    assert parse_scope("system/Obs-ervation.c") is None
    p = principal_from_claims({"sub": "s", "client_id": "c", "scope": "system/Observation.c system/Patient.u"})
    assert p.client_id == "c" and p.allows("Patient", "u") and not p.allows("Patient", "c")
    assert principal_from_claims({"sub": "only-sub", "scope": ""}).client_id == "only-sub"
    assert not Principal("x").allows_any("c")


def test_enabling_auth_needs_issuer_audience_and_jwks() -> None:
    with pytest.raises(ValueError, match="CAREPULSE_AUTH_ISSUER"):
        IngestionSettings(auth_enabled=True, auth_audience=AUDIENCE, auth_jwks_url="http://127.0.0.1:1/jwks")


# --- the API with authentication on ---------------------------------------------------------

def test_valid_token_is_accepted_and_bad_ones_are_401_publishing_nothing(
        secured: Callable[..., TestClient], keys: KeyServer, topics: Topics, topic_reader: TopicReader,
        fhir_data: Path) -> None:
    client = secured()
    kid = keys.new_key()
    ec_kid = keys.new_key("EC")  # published before the first fetch: a later one waits for the refetch floor
    raw = official(fhir_data, "observation-example-heart-rate.json")
    now = int(time.time())
    other = keys.new_key(publish=False)
    good = keys.token(kid, "system/Observation.c")
    header, payload, sig = good.split(".")
    tampered_payload = b64(json.dumps({**jwt.decode(good, options={"verify_signature": False}),
                                       "scope": "system/*.*"}).encode())
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, "scope": "system/*.*"},
                          None, algorithm="none")
    bad = {
        "expired": keys.token(kid, iat=now - 600, exp=now - 120),
        "not yet valid": keys.token(kid, nbf=now + 120),
        "wrong audience": keys.token(kid, aud="https://elsewhere.example.test/fhir"),
        "wrong issuer": keys.token(kid, iss="https://evil.example.test"),
        "no exp": keys.token(kid, exp=None),
        "tampered": f"{header}.{tampered_payload}.{sig}",
        "alg none": unsigned,
        "HS256 keyed with the public key": hs256_with_public_key(keys, kid, now),
        "unknown kid": keys.token(other),
        "garbage": "not-a-jwt",
    }
    for why, token in bad.items():
        r = client.post("/fhir/Observation", content=raw, headers=bearer(token))
        assert r.status_code == 401, (why, r.text)
        assert r.headers["www-authenticate"].startswith('Bearer realm="carepulse", error="invalid_token"'), why
        assert r.json()["issue"][0]["code"] == "login", why
    r = client.post("/fhir/Observation", content=raw, headers=FHIR)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="carepulse"'
    r = client.post("/fhir/Observation", content=raw, headers={**FHIR, "Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401 and 'error="invalid_request"' in r.headers["www-authenticate"]
    assert topic_reader.read(topics.observation, settle=0.5) == []

    r = client.post("/fhir/Observation", content=raw, headers=bearer(good))
    assert r.status_code == 201, r.text
    # An EC key (ES384) works the same way.
    assert client.put("/fhir/Observation/heart-rate", content=raw,
                      headers=bearer(keys.token(ec_kid, "system/Observation.u"))).status_code == 200
    assert len(topic_reader.read(topics.observation, at_least=1, settle=0.3)) == 1  # the PUT is the same event


def test_scope_decides_per_type_and_interaction(secured: Callable[..., TestClient], keys: KeyServer, topics: Topics,
                                                topic_reader: TopicReader, fhir_data: Path) -> None:
    client = secured()
    kid = keys.new_key()
    obs = official(fhir_data, "observation-example-heart-rate.json")
    patient = official(fhir_data, "patient-example.json")
    cases = [  # (scope, method, path, body, status)
        ("system/Patient.c", "POST", "/fhir/Observation", obs, 403),
        ("system/Observation.c", "PUT", "/fhir/Observation/heart-rate", obs, 403),
        ("system/Observation.rs", "POST", "/fhir/Observation", obs, 403),
        ("patient/*.write", "POST", "/fhir/Observation", obs, 403),
        ("system/Observation.c", "POST", "/fhir/Patient", patient, 403),
    ]
    for scope, method, path, body, status in cases:
        r = client.request(method, path, content=body, headers=bearer(keys.token(kid, scope)))
        assert r.status_code == status, (scope, path, r.text)
        oo = r.json()
        assert oo["resourceType"] == "OperationOutcome" and oo["issue"][0]["code"] == "forbidden"
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert topic_reader.read(topics.observation, settle=0.3) == [] and topic_reader.read(topics.patient) == []
    for scope, method, path, body in [("system/*.write", "POST", "/fhir/Patient", patient),
                                      ("system/*.*", "PUT", "/fhir/Observation/heart-rate", obs),
                                      ("system/Observation.cu", "POST", "/fhir/Observation", obs)]:
        r = client.request(method, path, content=body, headers=bearer(keys.token(kid, scope)))
        assert r.status_code in (200, 201), (scope, r.text)
    assert len(topic_reader.read(topics.patient, at_least=1)) == 1


def test_every_bundle_entry_is_checked(secured: Callable[..., TestClient], keys: KeyServer, topics: Topics,
                                       topic_reader: TopicReader, fhir_data: Path) -> None:
    client = secured()
    kid = keys.new_key()
    obs = json.loads(official(fhir_data, "observation-example-heart-rate.json"))
    patient = json.loads(official(fhir_data, "patient-example.json"))
    for btype in ("batch", "transaction"):
        bundle = {"resourceType": "Bundle", "type": btype, "entry": [
            {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
            {"resource": patient, "request": {"method": "PUT", "url": "Patient/example"}}]}
        r = client.post("/fhir", content=json.dumps(bundle), headers=bearer(keys.token(kid, "system/*.c")))
        assert r.status_code == 403, r.text
        assert r.json()["issue"][0]["diagnostics"].startswith("Bundle.entry[1]: scope does not allow update of "
                                                              "Patient")
    assert topic_reader.read(topics.observation, settle=0.5) == [] and topic_reader.read(topics.patient) == []
    r = client.post("/fhir", content=json.dumps(bundle), headers=bearer(keys.token(kid, "system/Observation.c "
                                                                                       "system/Patient.u")))
    assert r.status_code == 200 and all(e["response"]["status"].startswith("2") for e in r.json()["entry"])
    assert len(topic_reader.read(topics.patient, at_least=1)) == 1


def test_import_and_notifications_need_scopes(secured: Callable[..., TestClient], keys: KeyServer, topics: Topics,
                                              topic_reader: TopicReader, fhir_data: Path) -> None:
    client = secured()
    kid = keys.new_key()
    obs = json.loads(official(fhir_data, "observation-example-heart-rate.json"))
    patient = json.loads(official(fhir_data, "patient-example.json"))
    ndjson = "\n".join(json.dumps(x) for x in (patient, obs)).encode()
    r = client.post("/fhir/$import", content=ndjson, headers=bearer(keys.token(kid, "system/*.u"), NDJSON))
    assert r.status_code == 403, r.text
    r = client.post("/fhir/$import", content=json.dumps(patient).encode(),
                    headers=bearer(keys.token(kid, "system/Observation.c"), NDJSON))
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    # A mixed file: the allowed lines go through, the others are named as forbidden.
    r = client.post("/fhir/$import", content=ndjson, headers=bearer(keys.token(kid, "system/Observation.c"), NDJSON))
    assert r.status_code == 200, r.text
    issues = r.json()["issue"]
    assert "accepted 1" in issues[0]["diagnostics"] and issues[1]["code"] == "forbidden"
    assert len(topic_reader.read(topics.observation, at_least=1)) == 1
    assert topic_reader.read(topics.patient, settle=0.3) == []

    note = {"resourceType": "Bundle", "type": "subscription-notification", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
                      "subscription": {"reference": "Subscription/s1"}, "topic": "http://example.org/topic"}},
        {"fullUrl": "http://ehr.example.test/fhir/Patient/example", "resource": patient}]}
    r = client.post("/fhir/subscription-notification", content=json.dumps(note),
                    headers=bearer(keys.token(kid, "system/Observation.c")))
    assert r.status_code == 403, r.text
    assert topic_reader.read(topics.patient, settle=0.3) == []
    r = client.post("/fhir/subscription-notification", content=json.dumps(note),
                    headers=bearer(keys.token(kid, "system/Patient.c")))
    assert r.status_code == 200, r.text
    assert len(topic_reader.read(topics.patient, at_least=1)) == 1


def test_key_rotation_is_picked_up_and_unknown_kids_do_not_flood_the_jwks(
        secured: Callable[..., TestClient], keys: KeyServer, fhir_data: Path) -> None:
    client = secured(auth_jwks_min_refetch_s=1.0)
    raw = official(fhir_data, "observation-example-heart-rate.json")
    old = keys.new_key()
    assert client.post("/fhir/Observation", content=raw, headers=bearer(keys.token(old))).status_code == 201
    hits = keys.hits
    assert hits >= 1
    # Made-up kids, many times in a row: at most one fetch within the floor.
    stranger = keys.new_key(publish=False)
    for _ in range(10):
        assert client.post("/fhir/Observation", content=raw, headers=bearer(keys.token(stranger))).status_code == 401
    assert keys.hits - hits <= 1
    # The server rotates: a new key is published, the old one withdrawn.
    new = keys.new_key(publish=False)
    keys.published = [new]
    time.sleep(1.1)
    r = client.post("/fhir/Observation", content=raw, headers=bearer(keys.token(new)))
    assert r.status_code == 200, r.text  # accepted (already received: the same Observation as above)
    # The withdrawn key no longer verifies once the set has been refreshed.
    assert client.post("/fhir/Observation", content=raw, headers=bearer(keys.token(old))).status_code == 401


def test_unreachable_jwks_is_503_and_open_endpoints_stay_open(make_client: Callable[..., TestClient],
                                                              keys: KeyServer, fhir_data: Path) -> None:
    client = make_client(auth_enabled=True, auth_issuer=ISSUER, auth_audience=AUDIENCE,
                         auth_jwks_url="http://127.0.0.1:9/jwks.json", auth_token_url=f"{ISSUER}/oauth/token")
    kid = keys.new_key()
    r = client.post("/fhir/Observation", content=official(fhir_data, "observation-example-heart-rate.json"),
                    headers=bearer(keys.token(kid)))
    assert r.status_code == 503 and r.headers["retry-after"]
    assert client.get("/livez").status_code == 200
    assert client.get("/metrics").status_code == 200
    meta = client.get("/fhir/metadata")
    assert meta.status_code == 200
    security = meta.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    [uris] = security["extension"]
    assert uris["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert uris["extension"] == [{"url": "token", "valueUri": f"{ISSUER}/oauth/token"}]


def test_auth_off_by_default_and_no_security_advertised(client: TestClient, fhir_data: Path) -> None:
    assert "security" not in client.get("/fhir/metadata").json()["rest"][0]
    r = client.post("/fhir/Observation", content=official(fhir_data, "observation-example-heart-rate.json"),
                    headers=FHIR)
    assert r.status_code == 201
