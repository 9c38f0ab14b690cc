"""The fhir.inbound consumer: routed when valid, dead-lettered with the original bytes when not,
offsets committed only after the routed records are acknowledged."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration


def test_inbound_records_are_routed_or_dead_lettered(make_client, send_inbound, settings: Settings,  # type: ignore[no-untyped-def]
                                                     topics: Topics,
                                                     topic_reader: TopicReader, fhir_data: Path) -> None:
    client = make_client(ingestion_consume_inbound=True, ingestion_consumer_group=f"{topics.inbound}-g")
    heart = (fhir_data / "hl7-r4-official-examples" / "observation-example-heart-rate.json").read_bytes()
    bad = b'{"resourceType":"Observation","status":["final"]}'
    lines = (fhir_data / "synthea-bulk-10-patients-ndjson" / "Condition.000.ndjson").read_bytes().splitlines()[:5]
    ndjson = b"\n".join([*lines, b'{"resourceType":"Nope"}'])
    # The second heart-rate is the same event: published once.
    send_inbound(client, (heart, bad, ndjson, heart), headers=[("source", b"ehr")])
    assert client.get("/readyz").json()["checks"]["inbound-consumer"] == "ok"
    obs = topic_reader.read(topics.observation, at_least=1, timeout=30, settle=0.5)
    assert [r.value for r in obs] == [heart]
    assert len(topic_reader.read(topics.clinical, at_least=5, timeout=15, settle=0.3)) == 5
    dead = topic_reader.read(topics.deadletter, at_least=2, timeout=15, settle=0.3)
    by_value = {d.value: d for d in dead}
    assert set(by_value) == {bad, b'{"resourceType":"Nope"}'}
    outcome = json.loads(by_value[bad].headers["deadletter-outcome"])
    assert ["Observation.status"] in [i.get("expression") for i in outcome["issue"]]
    assert by_value[bad].headers["origin-topic"] == topics.inbound

    # Committed: the group's position is past all four records once they were acknowledged.
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    try:
        deadline = time.monotonic() + 15
        while True:
            offsets = admin.list_group_offsets(f"{topics.inbound}-g")[f"{topics.inbound}-g"]
            if sum(o.offset for o in offsets.values()) == 4 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert sum(o.offset for o in offsets.values()) == 4
    finally:
        admin.close()
