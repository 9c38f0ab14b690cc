"""The care core against a real Redis: scenario rounds in, NEWS2 Observations and alerts out."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
import redis

from carepulse.care.processor import CareProcessor
from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.demo.scenario import PROFILES, ROLES, Round, rounds
from carepulse.shared.fhir import parse_resource
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# Hand-scored on the RCP NEWS2 chart from the scenario's rounds.
EXPECTED = {"stable": [0, 0, 0, 0, 0], "deteriorating": [0, 1, 6, 12, 19], "watch": [0, 0, 3, 0, 0]}


def drive(settings: Settings, profiles: dict[str, list[Round]] | None = None,
          replay_from: int | None = None) -> list[Outgoing]:
    topics = Topics.with_prefix(settings.topic_prefix)
    out: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        out.append(rec)

    async def main() -> None:
        store = PatientContextStore(make_redis(settings))
        p = CareProcessor(topics, store, publish, source_name="test", set_tolerance_s=900)
        records = [json.dumps(e["resource"]).encode() for rnd in rounds(START, profiles) for b in rnd
                   for e in b["entry"]]
        for raw in records:
            await p.on_observation(None, raw, None)
        if replay_from is not None:  # a restarted worker re-reads what it had not committed
            for raw in records[replay_from:]:
                await p.on_observation(None, raw, None)
        await store.close()

    asyncio.run(main())
    return out


def scores_by_patient(out: list[Outgoing]) -> dict[str, list[int]]:
    scores: dict[str, list[int]] = {}
    for rec in out:
        doc = json.loads(rec.value)
        if doc["resourceType"] == "Observation":
            scores.setdefault(rec.key, []).append(doc["valueInteger"])
    return scores


def test_scenario_scores_match_the_chart(settings: Settings) -> None:
    out = drive(settings)
    got = scores_by_patient(out)
    assert got == {f"Patient/{ROLES[r]}": v for r, v in EXPECTED.items()}


def test_alerts_on_escalation_only(settings: Settings) -> None:
    out = drive(settings)
    topics = Topics.with_prefix(settings.topic_prefix)
    alerts = [json.loads(r.value) for r in out if r.topic == topics.alerts]
    got = [(a["entry"][1]["resource"]["patient"]["reference"], a["entry"][2]["resource"]["valueInteger"])
           for a in alerts]
    assert got == [(f"Patient/{ROLES['deteriorating']}", 6), (f"Patient/{ROLES['watch']}", 3),
                   (f"Patient/{ROLES['deteriorating']}", 12)]


def test_everything_published_is_valid_fhir_r4(settings: Settings) -> None:
    for rec in drive(settings):
        parsed = parse_resource(rec.value)
        assert rec.headers[2] == ("event-id", parsed.resource["id"].encode())


def test_news2_observation_content(settings: Settings) -> None:
    out = drive(settings, {"deteriorating": PROFILES["deteriorating"][3:4]})
    obs = next(json.loads(r.value) for r in out if json.loads(r.value)["resourceType"] == "Observation")
    assert obs["code"]["coding"][0]["code"] == "1104051000000101"
    assert {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in obs["component"]} == {
        "respiratory_rate": 3, "spo2": 2, "air_or_oxygen": 2, "systolic_bp": 2, "pulse": 2,
        "consciousness": 0, "temperature": 1}
    assert len(obs["derivedFrom"]) == 6 and obs["interpretation"][0]["coding"][0]["code"] == "high"
    prov = next(json.loads(r.value) for r in out if json.loads(r.value)["resourceType"] == "Provenance")
    assert prov["target"] == [{"reference": f"Observation/{obs['id']}"}]


def test_replay_after_a_crash_repeats_ids_not_new_results(settings: Settings) -> None:
    once = {json.loads(r.value)["id"] for r in drive(settings)}
    redis.Redis.from_url(settings.redis_url).flushdb()
    # A restarted worker re-reads the records it had not committed (the last 50 of 90)
    # with the patient context as the crashed worker left it.
    replayed = drive(settings, replay_from=40)
    assert len(replayed) > len(once)  # results were re-published…
    assert {json.loads(r.value)["id"] for r in replayed} == once  # …under the same ids only


def test_unreadable_vital_sign_raises_for_dead_letter(settings: Settings) -> None:
    from carepulse.care.readings import UnreadableObservation

    topics = Topics.with_prefix(settings.topic_prefix)

    async def main() -> None:
        async def publish(rec: Outgoing) -> None:
            raise AssertionError("nothing may be published")

        store = PatientContextStore(make_redis(settings))
        p = CareProcessor(topics, store, publish, source_name="test", set_tolerance_s=900)
        obs = {"resourceType": "Observation", "id": "t", "status": "final", "subject": {"reference": "Patient/z"},
               "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
               "effectiveDateTime": "2024-01-01T00:00:00Z", "valueQuantity": {"value": 310, "code": "K"}}
        with pytest.raises(UnreadableObservation):
            await p.on_observation(None, json.dumps(obs).encode(), None)
        await store.close()

    asyncio.run(main())
