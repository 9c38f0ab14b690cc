"""Input limits on fhir.inbound: a record over the body limit is dead-lettered with the reason (its first
bytes kept, its size said), one at the limit is routed; nesting beyond 1,024 levels is dead-lettered too.
Nothing stops the consumer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
LIMIT = 4096


def padded(resource: dict, size: int) -> bytes:
    """The resource as JSON of exactly ``size`` bytes (trailing spaces are still one JSON document)."""
    raw = json.dumps(resource).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def test_inbound_records_over_the_limits_are_dead_lettered_with_the_reason(
        make_client, send_inbound, topics: Topics, topic_reader: TopicReader,  # type: ignore[no-untyped-def]
        fhir_data: Path) -> None:
    client = make_client(ingestion_consume_inbound=True, ingestion_consumer_group=f"{topics.inbound}-g",
                         ingestion_max_body_bytes=LIMIT)
    heart = json.loads((fhir_data / "hl7-r4-official-examples" / "observation-example-heart-rate.json").read_bytes())
    at_limit = padded(heart, LIMIT)
    over = padded({**heart, "id": "too-big"}, 3 * LIMIT)
    deep = b'{"resourceType":"Observation","extension":' + b"[" * 1100 + b"]" * 1100 + b"}"
    send_inbound(client, (over, deep, at_limit))
    routed = topic_reader.read(topics.observation, at_least=1, timeout=30, settle=0.5)
    assert [r.json()["id"] for r in routed] == ["heart-rate"]
    dead = topic_reader.read(topics.deadletter, at_least=2, timeout=15, settle=0.5)
    assert len(dead) == 2
    big = next(d for d in dead if "deadletter-truncated-from" in d.headers)
    assert big.value == over[:LIMIT] and big.headers["deadletter-truncated-from"] == str(len(over))
    [issue] = json.loads(big.headers["deadletter-outcome"])["issue"]
    assert issue["code"] == "too-long" and f"record is {len(over)} bytes, more than the {LIMIT} allowed" in (
        issue["diagnostics"])
    assert big.headers["origin-topic"] == topics.inbound
    nested = next(d for d in dead if d is not big)
    assert nested.value == deep
    assert json.loads(nested.headers["deadletter-outcome"])["issue"][0]["code"] == "too-costly"
    assert client.get("/readyz").json()["checks"]["inbound-consumer"] == "ok"
