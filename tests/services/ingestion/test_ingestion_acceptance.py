"""Acceptance: real FHIR data (Synthea, Bulk NDJSON) and a real FHIR client against ingestion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carepulse.ingestion.offload import SPLIT_BUNDLE_BYTES
from carepulse.shared.fhir.codec import parse_resource
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
FHIR = {"Content-Type": "application/fhir+json"}
ROUTED = ("patient", "observation", "clinical", "document", "imaging")


def routed_records(reader: TopicReader, topics: Topics, at_least: int = 0) -> list:
    out: list = []
    for name in ROUTED:
        out += reader.read(getattr(topics, name), timeout=2)
    if len(out) < at_least:
        out = []
        for name in ROUTED:
            out += reader.read(getattr(topics, name), timeout=10, settle=0.5)
    return out


@pytest.fixture(params=[0, 2], ids=["inline", "validation-pool"])
def validation_processes(request: pytest.FixtureRequest) -> int:
    """Every acceptance test twice: validation inline, and in two worker processes."""
    return int(request.param)


def test_every_synthea_bundle_is_accepted_unchanged(client: TestClient, topics: Topics, topic_reader: TopicReader,
                                                    fhir_data: Path) -> None:
    files = sorted((fhir_data / "synthea").glob("*.json"))
    assert len(files) == 7
    expected = 0
    for f in files:
        bundle = json.loads(f.read_bytes())
        r = client.post("/fhir", content=f.read_bytes(), headers=FHIR)
        assert r.status_code == 200, r.text
        statuses = [e["response"]["status"] for e in r.json()["entry"]]
        assert len(statuses) == len(bundle["entry"])
        assert all(s in ("201 Created", "200 OK") for s in statuses), (f.name, statuses)
        expected += sum(Topics.with_prefix("").for_resource_type(e["resource"]["resourceType"]) is not None
                        for e in bundle["entry"])
    recs = routed_records(topic_reader, topics, expected)
    assert len(recs) == expected
    for rec in recs[:50]:
        parse_resource(rec.value)  # what is published is valid R4
        assert rec.key.startswith("Patient/")
    # urn:uuid references between entries now name the resources as published.
    assert not any(b"urn:uuid:" in rec.value for rec in recs if rec.headers["resource-type"] == "Observation")


def test_batch_with_invalid_entries_names_exactly_those(client: TestClient, topics: Topics,
                                                        topic_reader: TopicReader, fhir_data: Path) -> None:
    path = sorted((fhir_data / "synthea").glob("Bibi*.json"))[0]
    bundle = json.loads(path.read_bytes())
    obs_at = [i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Observation"]
    # One broken entry in each half: with the validation pool the Bundle is split between workers.
    imm = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Immunization")
    broken = {imm: "vaccineCode", obs_at[-2]: "code"}
    for i, element in broken.items():
        bundle["entry"][i]["resource"][element] = "not a CodeableConcept"
    body = json.dumps(bundle)
    assert len(body) > SPLIT_BUNDLE_BYTES and imm < len(bundle["entry"]) // 2 < obs_at[-2]
    r = client.post("/fhir", content=body, headers={**FHIR, "Prefer": "return=representation"})
    assert r.status_code == 200
    entries = r.json()["entry"]
    bad = [i for i, e in enumerate(entries) if not e["response"]["status"].startswith("2")]
    assert bad == sorted(broken)
    for i, element in broken.items():
        exprs = {x for issue in entries[i]["response"]["outcome"]["issue"] for x in issue.get("expression", [])}
        assert f"Bundle.entry[{i}].resource.{element}" in exprs
    last = obs_at[-1]  # a valid entry of the second half comes back whole, as published
    assert entries[last]["resource"]["code"] == bundle["entry"][last]["resource"]["code"]
    assert entries[last]["resource"]["id"] == entries[last]["response"]["location"].split("/")[1]
    recs = topic_reader.read(topics.observation, at_least=len(obs_at) - 1, settle=0.5)
    assert len(recs) == len(obs_at) - 1


def test_transaction_resolves_urn_uuid_references(client: TestClient, topics: Topics,
                                                  topic_reader: TopicReader) -> None:
    pat, obs = "urn:uuid:6f1b2c1e-0000-4000-8000-000000000001", "urn:uuid:6f1b2c1e-0000-4000-8000-000000000002"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pat, "resource": {"resourceType": "Patient", "name": [{"family": "Test"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": obs, "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "hr"},
                                      "subject": {"reference": pat}, "valueQuantity": {"value": 80}},
         "request": {"method": "POST", "url": "Observation"}}]}
    r = client.post("/fhir", content=json.dumps(bundle), headers={**FHIR, "Prefer": "return=representation"})
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[1]["response"]["location"].startswith("Observation/6f1b2c1e-0000-4000-8000-000000000002/")
    assert entries[1]["resource"]["subject"]["reference"] == "Patient/6f1b2c1e-0000-4000-8000-000000000001"
    [rec] = topic_reader.read(topics.observation, at_least=1)
    assert rec.json()["subject"]["reference"] == "Patient/6f1b2c1e-0000-4000-8000-000000000001"
    assert rec.key == "Patient/6f1b2c1e-0000-4000-8000-000000000001"


def test_prefer_etag_and_idempotency_key(client: TestClient, topics: Topics, topic_reader: TopicReader) -> None:
    obs = {"resourceType": "Observation", "id": "o1", "meta": {"versionId": "3"}, "status": "final",
           "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}
    r = client.post("/fhir/Observation", content=json.dumps(obs), headers={**FHIR, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 201 and r.json()["resourceType"] == "OperationOutcome"
    assert r.headers["etag"] == 'W/"3"' and r.headers["location"] == "/fhir/Observation/o1/_history/3"
    # Same id + versionId, different formatting: the same event, published once.
    r = client.put("/fhir/Observation/o1", content=json.dumps(obs, indent=2), headers=FHIR)
    assert r.status_code == 200 and r.json()["id"] == "o1"
    # A sender's idempotency key: same key, published once, even with other content.
    other = dict(obs, id="o2", meta={"versionId": "1"})
    for _ in range(2):
        r = client.post("/fhir/Observation", content=json.dumps(other),
                        headers={**FHIR, "Prefer": "return=minimal", "Idempotency-Key": "k-42"})
        assert r.content == b""
    other["id"] = "o3"
    assert client.post("/fhir/Observation", content=json.dumps(other),
                       headers={**FHIR, "Idempotency-Key": "k-42"}).status_code == 200
    recs = topic_reader.read(topics.observation, at_least=2, settle=0.5)
    assert sorted(r.json()["id"] for r in recs) == ["o1", "o2"]
    assert recs[0].headers["event-id"] != recs[1].headers["event-id"]


def test_bulk_ndjson_import_reports_accepted_and_rejected(client: TestClient, topics: Topics,
                                                          topic_reader: TopicReader, fhir_data: Path) -> None:
    lines = (fhir_data / "synthea-bulk-10-patients-ndjson" / "Condition.000.ndjson").read_bytes().splitlines()
    lines[5] = b'{"resourceType":"Condition","subject":{"reference":"Patient/x"},"onsetDateTime":"yesterday"}'
    lines.insert(9, b"{not json")
    body = b"\n".join(lines) + b"\n"
    r = client.post("/fhir/$import", content=body, headers={"Content-Type": "application/fhir+ndjson"})
    assert r.status_code == 200, r.text
    issues = r.json()["issue"]
    assert issues[0]["diagnostics"].startswith(f"lines {len(lines)}, accepted {len(lines) - 2} ")
    assert {i["diagnostics"].split(":")[0] for i in issues[1:]} == {"line 6", "line 10"}
    assert any(i.get("expression") == ["Condition.onsetDateTime"] for i in issues[1:])
    recs = topic_reader.read(topics.clinical, at_least=len(lines) - 2, settle=0.5)
    assert len(recs) == len(lines) - 2
    # The whole file again: everything was received already, nothing published twice.
    r = client.post("/fhir/$import", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert f"already received {len(lines) - 2}" in r.json()["issue"][0]["diagnostics"]
    assert len(topic_reader.read(topics.clinical, settle=0.5)) == len(lines) - 2
    assert client.post("/fhir/$import", content=body, headers=FHIR).status_code == 415


def test_capability_statement_is_valid_r4_and_declares_what_is_served(client: TestClient) -> None:
    r = client.get("/fhir/metadata")
    cs = parse_resource(r.content).resource
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"batch", "transaction"}
    assert [o["name"] for o in rest["operation"]] == ["import"]
    assert "subscription-notification" in rest["documentation"]


def test_fhirclient_creates_resources_against_ingestion(client: TestClient, topics: Topics,
                                                        topic_reader: TopicReader) -> None:
    """The SMART ``fhirclient`` library, as an EHR-side app would use it, talking to ingestion."""
    from fhirclient import client as smart_client
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient

    smart = smart_client.FHIRClient(settings={"app_id": "carepulse-test", "api_base": "http://testserver/fhir"})
    smart.server.session = client  # the in-process app behind a requests-compatible session
    patient = Patient({"name": [{"family": "Client", "given": ["Smart"]}], "gender": "female"})
    created = patient.create(smart.server)
    assert created["resourceType"] == "Patient" and created["id"]
    obs = Observation({"status": "final", "code": {"text": "heart rate"},
                       "subject": {"reference": f"Patient/{created['id']}"},
                       "valueQuantity": {"value": 72, "unit": "/min"}})
    made = obs.create(smart.server)
    assert made["id"]
    [rec] = topic_reader.read(topics.observation, at_least=1)
    assert rec.key == f"Patient/{created['id']}" and rec.json()["valueQuantity"]["value"] == 72
