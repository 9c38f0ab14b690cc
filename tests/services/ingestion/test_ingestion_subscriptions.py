"""Subscription notifications (R5/R4B full-resource and id-only, R4 backport) against a local fake FHIR server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def fhir_server(fhir_data: Path) -> Iterator[tuple[str, list[str]]]:
    """A minimal FHIR server on 127.0.0.1 serving two resources by ``Type/id``; records the paths asked for."""
    store = {"/fhir/Observation/heart-rate": (fhir_data / "hl7-r4-official-examples" /
                                              "observation-example-heart-rate.json").read_bytes()}
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            asked.append(self.path)
            body = store.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/fhir+json")
            self.end_headers()
            self.wfile.write(body or b'{"resourceType":"OperationOutcome","issue":[]}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/fhir", asked
    server.shutdown()


def r5_notification(kind: str, entries: list[dict], focus: list[str] | None = None) -> dict:
    status = {"resourceType": "SubscriptionStatus", "status": "active", "type": kind,
              "subscription": {"reference": "https://ehr.example/fhir/Subscription/s1"},
              "topic": "http://example.org/topic/vitals",
              "notificationEvent": [{"eventNumber": str(i + 1), "focus": {"reference": f}}
                                    for i, f in enumerate(focus or [])]}
    return {"resourceType": "Bundle", "type": "subscription-notification",
            "entry": [{"fullUrl": "urn:uuid:9b0f6d6a-1d6c-4d0e-9f4a-3c1e2b7a5d10", "resource": status}, *entries]}


def test_full_resource_notification_is_routed(make_client, topics: Topics, topic_reader: TopicReader,  # type: ignore[no-untyped-def]
                                              fhir_data: Path) -> None:
    client = make_client()
    obs = json.loads((fhir_data / "hl7-r4-official-examples" / "observation-example-heart-rate.json").read_bytes())
    note = r5_notification("event-notification",
                           [{"fullUrl": "https://ehr.example/fhir/Observation/heart-rate", "resource": obs}],
                           ["https://ehr.example/fhir/Observation/heart-rate"])
    r = client.post("/fhir/subscription-notification", content=json.dumps(note), headers=FHIR)
    assert r.status_code == 200, r.text
    [rec] = topic_reader.read(topics.observation, at_least=1)
    assert rec.key == "Patient/example" and rec.json()["id"] == "heart-rate"


def test_id_only_notification_fetches_from_the_configured_server(make_client, fhir_server,  # type: ignore[no-untyped-def]
                                                                 topics: Topics, topic_reader: TopicReader) -> None:
    base, asked = fhir_server
    client = make_client(ingestion_fhir_server_url=base)
    # R5 id-only: the entry has only the fullUrl; the server's own host is never contacted.
    note = r5_notification("event-notification", [{"fullUrl": "https://elsewhere.example/fhir/Observation/heart-rate"}],
                           ["https://elsewhere.example/fhir/Observation/heart-rate"])
    r = client.post("/fhir/subscription-notification", content=json.dumps(note), headers=FHIR)
    assert r.status_code == 200, r.text
    assert asked == ["/fhir/Observation/heart-rate"]
    [rec] = topic_reader.read(topics.observation, at_least=1)
    assert rec.json()["id"] == "heart-rate"
    # A focus the server does not have: 400 naming it, nothing more published.
    missing = r5_notification("event-notification", [], ["Observation/nope"])
    r = client.post("/fhir/subscription-notification", content=json.dumps(missing), headers=FHIR)
    assert r.status_code == 400 and "Observation/nope" in r.text
    assert len(topic_reader.read(topics.observation, settle=0.3)) == 1


def test_handshake_and_r4_backport_event(make_client, topics: Topics, topic_reader: TopicReader,  # type: ignore[no-untyped-def]
                                         fhir_data: Path) -> None:
    client = make_client()
    r = client.post("/fhir/subscription-notification", content=json.dumps(r5_notification("handshake", [])),
                    headers=FHIR)
    assert r.status_code == 200 and "handshake" in r.text
    cond = json.loads((fhir_data / "hl7-r4-official-examples" / "condition-example.json").read_bytes())
    backport = {"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "Parameters", "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/s1"}},
            {"name": "status", "valueCode": "active"}, {"name": "type", "valueCode": "event-notification"}]}},
        {"fullUrl": "Condition/example", "resource": cond}]}
    r = client.post("/fhir/subscription-notification", content=json.dumps(backport), headers=FHIR)
    assert r.status_code == 200, r.text
    assert len(topic_reader.read(topics.clinical, at_least=1)) == 1
    r = client.post("/fhir/subscription-notification", content=json.dumps({"resourceType": "Bundle",
                                                                              "type": "batch"}), headers=FHIR)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Bundle.type"]
