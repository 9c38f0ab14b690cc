"""The care core against a real Redis: records in, scores, risk assessments and alerts out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from carepulse.care.processor import CareProcessor
from carepulse.care.readings import UnreadableObservation
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.demo.scenario import PROFILES, ROLES, Round, round_observations, rounds
from carepulse.shared.fhir import parse_resource
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.integration
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# Hand-scored on the RCP NEWS2 chart from the scenario's rounds.
EXPECTED = {"stable": [0, 0, 0, 0, 0], "deteriorating": [0, 1, 6, 12, 19], "watch": [0, 0, 3, 0, 0]}


def care_settings(settings: Settings) -> CareSettings:
    return CareSettings(**settings.model_dump())


Feed = Callable[[CareProcessor], Awaitable[None]]


def drive(settings: Settings, *feeds: Feed) -> list[Outgoing]:
    out: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        out.append(rec)

    async def main() -> None:
        store = PatientContextStore(make_redis(settings))
        p = CareProcessor(Topics.with_prefix(settings.topic_prefix), store, publish, care_settings(settings))
        for feed in feeds:
            await feed(p)
        await store.close()

    asyncio.run(main())
    return out


def observations(bundles: list[dict]) -> list[bytes]:
    return [json.dumps(e["resource"]).encode() for b in bundles for e in b["entry"]]


def feed_rounds(profiles: dict[str, list[Round]] | None = None, start: datetime = START) -> Feed:
    async def feed(p: CareProcessor) -> None:
        for raw in observations([b for rnd in rounds(start, profiles) for b in rnd]):
            await p.on_observation(None, raw, None)
    return feed


def feed_context(*resources: dict) -> Feed:
    async def feed(p: CareProcessor) -> None:
        for r in resources:
            await p.on_context(None, json.dumps(r).encode(), None)
    return feed


def docs(out: list[Outgoing], rtype: str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
    return [d for r in out if (topic is None or r.topic == topic)
            for d in [json.loads(r.value)] if rtype is None or d["resourceType"] == rtype]


def news2(out: list[Outgoing]) -> list[dict[str, Any]]:
    return [d for d in docs(out, "Observation") if d["code"]["coding"][0]["code"] == "1104051000000101"]


def events(out: list[Outgoing], settings: Settings) -> list[tuple[str, str]]:
    """(patient, event code) of each message on the alerts topic, in order."""
    alerts = docs(out, "Bundle", Topics.with_prefix(settings.topic_prefix).alerts)
    return [(next(e["resource"]["subject"]["reference"] for e in a["entry"] if e["resource"]["resourceType"] == "Flag"),
             a["entry"][0]["resource"]["eventCoding"]["code"]) for a in alerts]


def test_scenario_scores_match_the_chart(settings: Settings) -> None:
    out = drive(settings, feed_rounds())
    got: dict[str, list[int]] = {}
    for d in news2(out):
        if d["status"] == "final":
            got.setdefault(d["subject"]["reference"], []).append(d["valueInteger"])
    assert got == {f"Patient/{ROLES[r]}": v for r, v in EXPECTED.items()}
    # One early, preliminary score: the round where the lower bound first reached high.
    early = [(d["valueInteger"], d["status"]) for d in news2(out) if d["status"] != "final"]
    assert early == [(9, "preliminary")]


def test_one_alert_per_episode_escalation_and_resolution(settings: Settings) -> None:
    det, watch = f"Patient/{ROLES['deteriorating']}", f"Patient/{ROLES['watch']}"
    assert events(drive(settings, feed_rounds()), settings) == [
        (det, "news2-alert"), (watch, "news2-alert"), (det, "news2-alert"), (watch, "news2-resolved")]


def test_alert_bundle_says_who_acts_and_carries_the_evidence(settings: Settings) -> None:
    out = drive(settings, feed_rounds({"deteriorating": PROFILES["deteriorating"][3:4]}))
    [bundle] = docs(out, "Bundle")
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["MessageHeader", "DetectedIssue", "Flag", "CommunicationRequest", "Observation"]
    issue, flag, request, obs = (e["resource"] for e in bundle["entry"][1:])
    # The high band is reached after three readings (RR, pulse, SpO2 on oxygen): the alert goes
    # out then, on the preliminary lower bound, naming what is not yet measured.
    assert issue["severity"] == "high" and "NEWS2 9" in issue["detail"] and "Not measured" in issue["detail"]
    assert request["priority"] == "stat" and request["recipient"][0]["display"] == "Critical care outreach team"
    assert flag["status"] == "active" and (obs["valueInteger"], obs["status"]) == (9, "preliminary")
    assert issue["evidence"][0]["detail"][0]["reference"] == f"urn:uuid:{obs['id']}"


def test_everything_published_is_valid_fhir_r4(settings: Settings) -> None:
    out = drive(settings, feed_rounds())
    assert {d["resourceType"] for d in docs(out)} == {"Observation", "Provenance", "RiskAssessment", "Bundle"}
    for rec in out:
        parsed = parse_resource(rec.value)
        assert dict(rec.headers)["event-id"] == parsed.resource["id"].encode()


def test_news2_observation_content(settings: Settings) -> None:
    out = drive(settings, feed_rounds({"deteriorating": PROFILES["deteriorating"][3:4]}))
    [obs] = [d for d in news2(out) if d["status"] == "final"]
    assert {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in obs["component"]} == {
        "respiratory_rate": 3, "spo2": 2, "air_or_oxygen": 2, "systolic_bp": 2, "pulse": 2,
        "consciousness": 0, "temperature": 1}
    assert len(obs["derivedFrom"]) == 6 and obs["interpretation"][0]["coding"][0]["code"] == "high"
    prov = next(d for d in docs(out, "Provenance") if d["target"] == [{"reference": f"Observation/{obs['id']}"}])
    assert len(prov["entity"]) == 6


def hypercapnic_condition(pid: str) -> dict:
    return {"resourceType": "Condition", "id": "copd-hcrf", "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J96.12",
                                 "display": "Chronic respiratory failure with hypercapnia"}]}}


def test_hypercapnic_patient_is_scored_on_spo2_scale_2(settings: Settings) -> None:
    pid = ROLES["stable"]
    at_target = {"stable": [Round(16, 89, 0, 124, 78, 72, "A", 36.8)]}
    scale1 = news2(drive(settings, feed_rounds(at_target)))
    redis.Redis.from_url(settings.redis_url).flushdb()
    scale2 = news2(drive(settings, feed_context(hypercapnic_condition(pid)), feed_rounds(at_target)))
    assert (scale1[0]["valueInteger"], scale2[0]["valueInteger"]) == (3, 0)
    assert "scale 2" in " ".join(n["text"] for n in scale2[0]["note"])


def test_sepsis_screen_with_infection_and_lactate(settings: Settings) -> None:
    pid = ROLES["deteriorating"]
    pneumonia = {"resourceType": "Condition", "id": "cap", "subject": {"reference": f"Patient/{pid}"},
                 "clinicalStatus": {"coding": [{"code": "active"}]},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "233604007",
                                      "display": "Pneumonia"}]}}
    lactate = {"resourceType": "Observation", "id": "lac", "status": "final",
               "subject": {"reference": f"Patient/{pid}"},
               "code": {"coding": [{"system": "http://loinc.org", "code": "2524-7"}]},
               "effectiveDateTime": (START + timedelta(hours=2)).isoformat(),
               "valueQuantity": {"value": 3.1, "unit": "mmol/L", "code": "mmol/L"}}

    async def labs(p: CareProcessor) -> None:
        await p.on_observation(None, json.dumps(lactate).encode(), None)

    out = drive(settings, feed_context(pneumonia), labs, feed_rounds({"deteriorating": PROFILES["deteriorating"]}))
    risks = [d["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] for d in docs(out, "RiskAssessment")]
    # Rounds 0-4; the lactate (taken at round 2) counts from round 2 on; round 3 also has an
    # early, preliminary assessment.
    assert risks == ["low", "low", "high", "high", "high", "high"]
    ra = docs(out, "RiskAssessment")[2]
    assert {"reference": "Condition/cap"} in ra["basis"] and {"reference": "Observation/lac"} in ra["basis"]
    assert [e for _, e in events(out, settings)].count("sepsis-alert") == 1  # one episode


def test_an_incomplete_set_reaching_high_is_reported_at_once(settings: Settings) -> None:
    pid = ROLES["deteriorating"]
    obs = round_observations(pid, PROFILES["deteriorating"][4], START)
    partial = [o for o in obs if o["code"]["coding"][0]["code"] in ("9279-1", "59408-5", "8867-4")]  # RR, SpO2, HR

    async def feed(p: CareProcessor) -> None:
        for o in partial:
            await p.on_observation(None, json.dumps(o).encode(), None)

    out = drive(settings, feed)
    first = news2(out)[0]
    assert first["status"] == "preliminary" and first["valueInteger"] >= 7
    assert "missing" in first["note"][-1]["text"]


def test_replay_after_a_crash_repeats_ids_not_new_results(settings: Settings) -> None:
    once = {json.loads(r.value)["id"] for r in drive(settings, feed_rounds())}
    redis.Redis.from_url(settings.redis_url).flushdb()
    records = observations([b for rnd in rounds(START) for b in rnd])

    async def crash_and_replay(p: CareProcessor) -> None:
        for raw in records + records[40:]:  # the restarted worker re-reads what it had not committed
            await p.on_observation(None, raw, None)

    replayed = drive(settings, crash_and_replay)
    assert len(replayed) > len(once)  # results were re-published…
    assert {json.loads(r.value)["id"] for r in replayed} == once  # …under the same ids only


def test_unreadable_vital_sign_raises_for_dead_letter(settings: Settings) -> None:
    obs = {"resourceType": "Observation", "id": "t", "status": "final", "subject": {"reference": "Patient/z"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
           "effectiveDateTime": "2024-01-01T00:00:00Z", "valueQuantity": {"value": 310, "code": "K"}}

    async def feed(p: CareProcessor) -> None:
        with pytest.raises(UnreadableObservation):
            await p.on_observation(None, json.dumps(obs).encode(), None)

    assert drive(settings, feed) == []
