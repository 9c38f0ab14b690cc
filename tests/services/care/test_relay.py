"""The webhook relay against a real local HTTP receiver that refuses the first tries, and the
AuditEvent it publishes for every delivery outcome."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from carepulse.care.news2 import Band
from carepulse.care.relay import RELAY_ID, WebhookRelay
from carepulse.care.resources import alert_bundle, resolution_bundle
from carepulse.care.settings import CareSettings
from carepulse.shared.cli.audit import app as audit_app
from carepulse.shared.fhir.codec import parse_resource
from carepulse.shared.kafka.headers import stable_id
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

SECRET = "s3cret-for-tests"


class Receiver:
    """Accepts a POST only after ``fail_first`` refusals per alert; remembers what it accepted."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts: dict[str, int] = {}
        self.accepted: dict[str, bytes] = {}
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if self.headers.get("X-CarePulse-Signature") != expected:
                    receiver.bad_signatures += 1
                receiver.attempts[key] = receiver.attempts.get(key, 0) + 1
                ok = receiver.attempts[key] > receiver.fail_first
                if ok:
                    receiver.accepted.setdefault(key, body)  # idempotent: a repeat is not a second alert
                self.send_response(200 if ok else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    r = Receiver(request.param)
    yield r
    r.server.shutdown()


def alerts(n: int) -> list[bytes]:
    return [json.dumps({"resourceType": "Bundle", "id": f"alert-{i}", "type": "message"}).encode() for i in range(n)]


def relay_run(receiver: Receiver, bodies: list[bytes], max_attempts: int, url: str | None = None,
              keys: list[bytes | None] | None = None) -> list[Outgoing]:
    """Deliver ``bodies``, then what was parked until accepted; returns the audit records published."""
    topics = Topics.with_prefix()
    parked: list[Outgoing] = []
    audits: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        (audits if rec.topic == topics.audit else parked).append(rec)

    async def no_sleep(_: float) -> None:
        pass

    async def main() -> None:
        settings = CareSettings(webhook_secret=SECRET, webhook_max_attempts=max_attempts)
        relay = WebhookRelay([url or receiver.url], settings, topics, publish, sleep=no_sleep)
        for body, key in zip(bodies, keys or [None] * len(bodies), strict=True):
            await relay.deliver(key, body, [])
        # What could not be delivered comes back from the retry topic, until accepted.
        while parked:
            rec = parked.pop(0)
            assert rec.topic == topics.alerts_retry
            await relay.redeliver(rec.key.encode(), rec.value, rec.headers)

    asyncio.run(main())
    return audits


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_retries_within_one_delivery(receiver: Receiver) -> None:
    relay_run(receiver, alerts(10), max_attempts=5)
    assert sorted(receiver.accepted) == sorted(f"alert-{i}" for i in range(10))
    assert set(receiver.attempts.values()) == {3} and receiver.bad_signatures == 0


@pytest.mark.parametrize("receiver", [7], indirect=True)
def test_a_receiver_down_longer_gets_every_alert_through_the_retry_topic(receiver: Receiver) -> None:
    bodies = alerts(4)
    relay_run(receiver, bodies, max_attempts=3)
    assert {k: v for k, v in receiver.accepted.items()} == {f"alert-{i}": b for i, b in enumerate(bodies)}
    assert set(receiver.attempts.values()) == {8}  # 3 + 3 (first retry round) + 2


def test_retry_record_for_unknown_target_is_rejected() -> None:
    async def publish(rec: Outgoing) -> None:
        raise AssertionError

    relay = WebhookRelay(["http://127.0.0.1:9/x"], CareSettings(), Topics.with_prefix(), publish)
    with pytest.raises(ValueError):
        asyncio.run(relay.redeliver(None, b"{}", [("target-url", b"http://elsewhere/")]))


# --- one AuditEvent per delivery outcome ------------------------------------------------------------

DETAIL = "NEWS2 9 (high risk): respiratory rate 29/min, SpO2 88%"
OBS = {"resourceType": "Observation", "id": "0f3c1c6e-7d4b-4a43-9f4e-1a2b3c4d5e6f", "status": "final",
       "code": {"text": "NEWS2"}, "valueInteger": 9}
# What an AuditEvent may be made of: structure, codes, references, times; never free text or names.
AUDIT_LEAF_KEYS = {"resourceType", "id", "system", "code", "display", "action", "recorded", "outcome", "outcomeDesc",
                   "requestor", "reference", "value", "address", "type", "site"}


def real_alerts(n: int) -> list[dict]:
    """Alert Bundles as the care service builds them, for patients p0..p(n-1)."""
    return [alert_bundle(stable_id("test-alert", str(i)), f"Patient/p{i}", [OBS], band=Band.HIGH, title="NEWS2",
                         detail=DETAIL, episode_id=stable_id("episode", str(i)), at=0, source_name="t", now=0,
                         event=("news2-alert", "NEWS2 early-warning alert")) for i in range(n)]


def leaves(doc: object, key: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, k)
    elif isinstance(doc, list):
        for v in doc:
            yield from leaves(v, key)
    else:
        yield key, doc


def secret_url(receiver: Receiver) -> str:
    """The receiver's URL with what must never reach the trail: credentials, a path and a query token."""
    return receiver.url.replace("http://", "http://relay:pw-123@") + "?token=tok-456"


def assert_no_phi(event: dict, alert: dict) -> None:
    assert {k for k, _ in leaves(event)} <= AUDIT_LEAF_KEYS
    text = json.dumps(event)
    request = next(e["resource"] for e in alert["entry"] if e["resource"]["resourceType"] == "CommunicationRequest")
    for leaked in ("/alerts", "tok-456", "pw-123", "relay:", SECRET, DETAIL, request["payload"][0]["contentString"],
                   "respiratory", "SpO2"):
        assert leaked not in text, leaked


@pytest.mark.parametrize("receiver", [7], indirect=True)
def test_one_audit_event_per_delivery_outcome_valid_r4_and_without_phi(receiver: Receiver) -> None:
    bundles = real_alerts(4)
    audits = relay_run(receiver, [json.dumps(b).encode() for b in bundles], max_attempts=3, url=secret_url(receiver))
    events = [json.loads(a.value) for a in audits]
    for a, e in zip(audits, events, strict=True):
        parse_resource(a.value, "AuditEvent")
        assert a.key == f"Client/{RELAY_ID}" and dict(a.headers)["event-id"] == e["id"].encode()
    # 7 refusals with 3 attempts per round: parked twice (rounds 0 and 1), delivered in round 2.
    delivered = [e for e in events if e["outcome"] == "0"]
    parked = [e for e in events if e["outcome"] == "4"]
    assert len(delivered) == len(bundles) and len(parked) == 2 * len(bundles)
    assert len({e["id"] for e in events}) == len(events)
    for b in bundles:
        ids = {x["resource"]["resourceType"]: x["resource"]["id"] for x in b["entry"]}
        patient = b["entry"][1]["resource"]["patient"]["reference"]
        [done] = [e for e in delivered if {"reference": f"Bundle/{b['id']}"} in [x["what"] for x in e["entity"]]]
        assert [(x["what"]["reference"], x["role"]["code"]) for x in done["entity"]] == [
            (patient, "1"), (f"Bundle/{b['id']}", "4"), (f"DetectedIssue/{ids['DetectedIssue']}", "4"),
            (f"Flag/{ids['Flag']}", "4")]
        assert done["outcomeDesc"] == "delivered after 2 attempt(s)"
        assert_no_phi(done, b)
        rounds = sorted(e["outcomeDesc"] for e in parked if {"reference": patient} in [x["what"] for x in e["entity"]])
        assert rounds == ["not delivered after 3 attempt(s) (last: HTTP 503); parked on the retry topic, round 0, "
                          "next try in 5 s",
                          "not delivered after 3 attempt(s) (last: HTTP 503); parked on the retry topic, round 1, "
                          "next try in 10 s"]
    e = delivered[0]
    relay, receiver_agent = e["agent"]
    assert relay["requestor"] is True and relay["who"]["identifier"]["value"] == RELAY_ID
    assert receiver_agent["requestor"] is False and receiver_agent["network"] == {"address": "127.0.0.1", "type": "2"}
    assert (e["type"]["code"], e["action"], e["recorded"][-1]) == ("110106", "R", "Z")


@pytest.mark.parametrize("receiver", [0], indirect=True)
def test_a_replayed_relay_repeats_the_same_event_ids(receiver: Receiver) -> None:
    bundles = [json.dumps(b).encode() for b in real_alerts(3)]
    first = relay_run(receiver, bundles, max_attempts=1)
    again = relay_run(receiver, bundles, max_attempts=1)  # the alerts topic read again after a crash
    assert len(first) == len(again) == 3
    assert [json.loads(a.value)["id"] for a in first] == [json.loads(a.value)["id"] for a in again]
    assert len(receiver.accepted) == 3


@pytest.mark.parametrize("receiver", [0], indirect=True)
def test_a_resolution_is_audited_with_its_flag_and_patient(receiver: Receiver) -> None:
    res = resolution_bundle(stable_id("res"), "Patient/p9", [OBS], title="NEWS2", episode_id=stable_id("ep"),
                            previous=Band.HIGH, current=Band.LOW, at=0, source_name="t", now=0,
                            event=("news2-resolved", "NEWS2 alert level fallen"))
    [audit] = relay_run(receiver, [json.dumps(res).encode()], max_attempts=1)
    event = parse_resource(audit.value, "AuditEvent").resource
    assert [x["what"]["reference"] for x in event["entity"]] == [
        "Patient/p9", f"Bundle/{res['id']}", f"Flag/{stable_id('ep')}"]


@pytest.mark.integration
@pytest.mark.parametrize("receiver", [0], indirect=True)
def test_carepulse_audit_shows_each_delivered_alert_once_per_patient(receiver: Receiver, settings: Settings,
                                                                     topics: Topics,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bundles = [json.dumps(b).encode() for b in real_alerts(2)]
    audits = relay_run(receiver, bundles, max_attempts=1) + relay_run(receiver, bundles, max_attempts=1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    for a in audits:  # both runs, as a replayed relay would leave them on the topic
        producer.send(topics.audit, key=a.key.encode(), value=a.value, headers=a.headers)
    producer.flush()
    producer.close()
    monkeypatch.setenv("CAREPULSE_TOPIC_PREFIX", settings.topic_prefix)
    kafka = ["--kafka", settings.kafka_bootstrap_servers]
    runner = CliRunner()
    out = runner.invoke(audit_app, ["--patient", "p1", *kafka])
    assert out.exit_code == 0, out.output
    lines = [x for x in out.stdout.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    assert "ok" in lines[0] and f"client={RELAY_ID}" in lines[0] and "to=127.0.0.1" in lines[0]
    assert "patients=Patient/p1" in lines[0] and "alert-delivery" in lines[0]
    everything = runner.invoke(audit_app, ["--client", RELAY_ID, "--json", *kafka])
    assert len([x for x in everything.stdout.splitlines() if x.strip()]) == 2
