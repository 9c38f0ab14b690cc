"""The FHIR REST front door against a real broker: what is accepted lands on the right
topic, keyed by patient; what is not is refused with an OperationOutcome and publishes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
FHIR = {"Content-Type": "application/fhir+json"}


def official(fhir_data: Path, name: str) -> bytes:
    return (fhir_data / "hl7-r4-official-examples" / name).read_bytes()


def test_create_publishes_the_original_bytes(client: TestClient, topics: Topics, topic_reader: TopicReader,
                                             fhir_data: Path) -> None:
    raw = official(fhir_data, "observation-example-respiratory-rate.json")
    r = client.post("/fhir/Observation", content=raw, headers=FHIR)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/fhir/Observation/respiratory-rate/_history/1")
    assert r.headers["etag"] == 'W/"1"'
    [rec] = topic_reader.read(topics.observation, at_least=1)
    assert rec.value == raw
    assert rec.key == "Patient/example"
    assert rec.headers["resource-type"] == "Observation"


def test_malformed_resource_is_400_with_the_element(client: TestClient, topics: Topics,
                                                    topic_reader: TopicReader) -> None:
    bad = {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": 42}]},
           "subject": {"reference": "Patient/x"}}
    r = client.post("/fhir/Observation", content=json.dumps(bad), headers=FHIR)
    assert r.status_code == 400
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["expression"] == ["Observation.code.coding[0].system"]
    assert topic_reader.read(topics.observation, settle=0.5) == []


def test_not_json_and_wrong_type(client: TestClient) -> None:
    assert client.post("/fhir/Observation", content=b"{oops", headers=FHIR).status_code == 400
    r = client.post("/fhir/Observation", content=b'{"resourceType":"Patient"}', headers=FHIR)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["resourceType"]


def test_wrong_content_type_is_415(client: TestClient) -> None:
    r = client.post("/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 415 and r.json()["resourceType"] == "OperationOutcome"


def test_oversize_body_is_413(client: TestClient) -> None:
    r = client.post("/fhir/Patient", content=b" " * (2 * 1024 * 1024 + 1), headers=FHIR)
    assert r.status_code == 413 and r.json()["issue"][0]["code"] == "too-long"


def test_transaction_with_one_bad_entry_publishes_nothing(client: TestClient, topics: Topics,
                                                          topic_reader: TopicReader, fhir_data: Path) -> None:
    good = json.loads(official(fhir_data, "observation-example-heart-rate.json"))
    bad = dict(good, id="bad", status=["final"])
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": good, "request": {"method": "POST", "url": "Observation"}},
        {"resource": bad, "request": {"method": "POST", "url": "Observation"}}]}
    r = client.post("/fhir", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.status"]
    assert topic_reader.read(topics.observation, settle=0.5) == []


def test_batch_accepts_good_entries_and_reports_bad_ones(client: TestClient, topics: Topics,
                                                         topic_reader: TopicReader, fhir_data: Path) -> None:
    good = json.loads(official(fhir_data, "observation-example-heart-rate.json"))
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": good, "request": {"method": "PUT", "url": "Observation/heart-rate"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}},
        {"resource": good, "request": {"method": "DELETE", "url": "Observation/heart-rate"}}]}
    r = client.post("/fhir", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "405 Method Not Allowed"]
    assert r.json()["type"] == "batch-response"
    assert len(topic_reader.read(topics.observation, at_least=1, settle=0.5)) == 1


def test_synthea_patient_bundle_routes_by_type_keyed_by_patient(
        client: TestClient, topics: Topics, topic_reader: TopicReader, fhir_data: Path) -> None:
    path = next((fhir_data / "synthea").glob("*.json"))
    bundle = json.loads(path.read_text())
    pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    r = client.post("/fhir", content=path.read_bytes(), headers=FHIR)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert all(s in ("201 Created", "200 OK") for s in statuses), statuses
    n_obs = sum(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"])
    obs = topic_reader.read(topics.observation, at_least=n_obs, settle=0.3)
    assert len(obs) == n_obs and {o.key for o in obs} == {f"Patient/{pid}"}
    patient_topic = topic_reader.read(topics.patient, at_least=1)
    assert {"Patient", "Encounter"} == {p.headers["resource-type"] for p in patient_topic}
    clinical = topic_reader.read(topics.clinical, at_least=1)
    assert {c.key for c in clinical} == {f"Patient/{pid}"}


def test_unrouted_type_is_acknowledged_not_silently_dropped(client: TestClient, fhir_data: Path) -> None:
    r = client.post("/fhir/Organization", content=official(fhir_data, "organization-example.json"), headers=FHIR)
    assert r.status_code == 200
    assert "not routed" in r.json()["issue"][0]["diagnostics"]


def test_dicom_document_goes_to_imaging(client: TestClient, topics: Topics, topic_reader: TopicReader) -> None:
    doc = {"resourceType": "DocumentReference", "id": "d1", "status": "current",
           "subject": {"reference": "Patient/p9"},
           "content": [{"attachment": {"contentType": "application/dicom", "data": "AAAA"}}]}
    assert client.post("/fhir/DocumentReference", content=json.dumps(doc), headers=FHIR).status_code == 201
    [rec] = topic_reader.read(topics.imaging, at_least=1)
    assert rec.key == "Patient/p9"


def test_retried_post_without_id_gets_the_same_id_and_event_id(client: TestClient, topics: Topics,
                                                               topic_reader: TopicReader) -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Patient/p1"}}
    a = client.post("/fhir/Observation", content=json.dumps(obs), headers=FHIR)
    b = client.post("/fhir/Observation", content=json.dumps(obs), headers=FHIR)
    assert a.json()["id"] == b.json()["id"]
    assert (a.status_code, b.status_code) == (201, 200)  # the retry is recognised, not published again
    recs = topic_reader.read(topics.observation, at_least=1, settle=0.5)
    assert len(recs) == 1


def test_prefer_minimal_and_update(client: TestClient, fhir_data: Path) -> None:
    raw = official(fhir_data, "patient-example.json")
    r = client.put("/fhir/Patient/example", content=raw, headers={**FHIR, "Prefer": "return=minimal"})
    assert r.status_code == 200 and r.content == b""
    r = client.put("/fhir/Patient/other", content=raw, headers=FHIR)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Patient.id"]


def test_capability_statement(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in cs["rest"][0]["resource"]}
    assert {"Observation", "Patient", "Condition"} <= types


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").json()["checks"] == {"kafka": "ok", "redis": "ok"}
    client.post("/fhir/Observation", content=b"{", headers=FHIR)
    assert 'carepulse_records_total{outcome="invalid"' in client.get("/metrics").text
