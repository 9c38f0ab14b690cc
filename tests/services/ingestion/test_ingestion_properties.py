"""Property test: whatever malformed input hits any endpoint, the answer is a 4xx with an
OperationOutcome, never a 5xx, and nothing is published."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                     max_size=4), max_leaves=12)
_not_a_string = st.integers() | st.booleans() | st.lists(_scalars, max_size=3) | st.dictionaries(
    st.text(max_size=5), _scalars, max_size=3)


def _deep(depth: int) -> dict:
    node: dict = {"url": "http://x", "valueString": "leaf"}
    for _ in range(depth):
        node = {"url": "http://x", "extension": [node]}
    return {"resourceType": "Observation", "status": "final", "extension": [node]}


documents = st.one_of(
    # wrong types in a known resource (status must be a code string; code is required too)
    st.builds(lambda v: {"resourceType": "Observation", "status": v}, _not_a_string),
    # unknown resource types (no R4 type starts with X)
    st.builds(lambda t, body: {**(body if isinstance(body, dict) else {}), "resourceType": "X" + t},
              st.text(max_size=30), _json),
    # huge strings (in a resource missing its required code)
    st.builds(lambda n: {"resourceType": "Observation", "status": "final", "valueString": "x" * n}, st.just(
        300_000)),
    st.builds(lambda n: {"resourceType": "X" + "y" * n}, st.just(100_000)),
    # deep nesting (FHIR-shaped, then beyond any parser's patience)
    st.builds(_deep, st.sampled_from([50, 400])),
    # arbitrary JSON that is not a resource
    _json.filter(lambda v: not isinstance(v, dict) or "resourceType" not in v),
).map(lambda d: json.dumps(d).encode())

malformed = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b'{"resourceType": "Observation", "status": "fin'),
    st.just(b"\xef\xbb\xbf\xff\xfe{}"),
)

bodies = st.one_of(documents, malformed)
FHIR = {"Content-Type": "application/fhir+json"}


def _notification(body: bytes) -> bytes:
    try:
        res = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return json.dumps({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
                      "topic": "http://t"}}, {"fullUrl": "http://x/Observation/1", "resource": res}]}).encode()


def _transaction(body: bytes) -> bytes:
    try:
        res = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return json.dumps({"resourceType": "Bundle", "type": "transaction",
                       "entry": [{"resource": res, "request": {"method": "POST", "url": "Observation"}}]}).encode()


def _check(r) -> None:  # type: ignore[no-untyped-def]
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["resourceType"] == "OperationOutcome"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies, endpoint=st.sampled_from(["create", "update", "bundle", "transaction", "import", "notify"]))
def test_bad_input_is_always_4xx_with_an_outcome(client: TestClient, body: bytes, endpoint: str) -> None:
    if endpoint == "create":
        _check(client.post("/fhir/Observation", content=body, headers=FHIR))
    elif endpoint == "update":
        _check(client.put("/fhir/Observation/o1", content=body, headers=FHIR))
    elif endpoint == "bundle":
        _check(client.post("/fhir", content=body, headers=FHIR))
    elif endpoint == "transaction":
        _check(client.post("/fhir", content=_transaction(body), headers=FHIR))
    elif endpoint == "import":
        lines = body.replace(b"\n", b" ") + b"\n" + body.replace(b"\n", b" ")
        _check(client.post("/fhir/$import", content=lines, headers={"Content-Type": "application/fhir+ndjson"}))
    else:
        _check(client.post("/fhir/subscription-notification", content=_notification(body), headers=FHIR))


def test_and_nothing_was_published(client: TestClient, topics: Topics, topic_reader: TopicReader) -> None:
    """The same generators against a fresh prefix, then every topic is read: all empty."""
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def each(body: bytes) -> None:
        _check(client.post("/fhir/Observation", content=body, headers=FHIR))
        _check(client.post("/fhir", content=_transaction(body), headers=FHIR))
        _check(client.post("/fhir/$import", content=body.replace(b"\n", b" "),
                           headers={"Content-Type": "application/fhir+ndjson"}))

    each()
    for topic in set(topics.all()) - {topics.audit}:  # refused requests are audited, on purpose
        assert topic_reader.read(topic, timeout=1) == [], topic
