"""End to end, through processes: vitals POSTed as FHIR -> NEWS2 on fhir.derived -> alerts."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from carepulse.shared.demo.scenario import PROFILES, ROLES, patients, rounds, transaction
from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.e2e
TOPICS = Topics.with_prefix("")
FHIR = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}


def post_all(platform: Platform, bundles: list[dict]) -> None:
    with httpx.Client(base_url=platform.ingestion_url, timeout=30) as c:
        for b in bundles:
            r = c.post("/fhir", content=json.dumps(b), headers=FHIR)
            assert r.status_code == 200, r.text
            assert all(e["response"]["status"].startswith("2") for e in r.json()["entry"])


def news2_scores(records: list) -> dict[str, dict[str, int]]:
    """Patient -> {observation id: total} of the final NEWS2 Observations on fhir.derived."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        doc = r.json()
        if doc["resourceType"] == "Observation" and doc["status"] == "final":
            out.setdefault(r.key, {})[doc["id"]] = doc["valueInteger"]
    return out


def message(bundle: dict) -> tuple[str, str, int | None]:
    """(patient, event code, NEWS2 total) of an alert message Bundle."""
    res = [e["resource"] for e in bundle["entry"]]
    flag = next(r for r in res if r["resourceType"] == "Flag")
    obs = next((r for r in res if r["resourceType"] == "Observation"), None)
    return flag["subject"]["reference"], res[0]["eventCoding"]["code"], obs["valueInteger"] if obs else None


def test_deteriorating_patient_alerts_and_stable_one_does_not(platform: Platform, platform_settings: Settings) -> None:
    post_all(platform, [transaction(list(patients().values()))])
    post_all(platform, [b for rnd in rounds() for b in rnd])
    reader = TopicReader(platform_settings)
    try:
        # 3 patients x 5 rounds = 15 final scores (+1 early one), each with Provenance and a RiskAssessment.
        derived = reader.read(TOPICS.derived, at_least=64, timeout=60)
        alerts = reader.read(TOPICS.alerts, at_least=4, timeout=30, settle=2.0)
    finally:
        reader.close()
    det, stable, watch = (f"Patient/{ROLES[r]}" for r in ("deteriorating", "stable", "watch"))
    finals = sorted((d["subject"]["reference"], d["effectiveDateTime"], d["valueInteger"])
                    for d in (r.json() for r in derived)
                    if d["resourceType"] == "Observation" and d["status"] == "final")
    by_patient: dict[str, list[int]] = {}
    for ref, _, total in finals:
        by_patient.setdefault(ref, []).append(total)
    assert by_patient == {det: [0, 1, 6, 12, 19], stable: [0] * 5, watch: [0, 0, 3, 0, 0]}
    got = [message(a.json()) for a in alerts]
    # One alert per episode: medium then high for one patient (the high one sent early, on the
    # incomplete set's lower bound of 9), low-medium and its resolution for another, none for
    # the stable patient.
    assert sorted(got) == sorted([(det, "news2-alert", 6), (det, "news2-alert", 9), (watch, "news2-alert", 3),
                                  (watch, "news2-resolved", 0)])
    assert all(a.key in (det, watch) for a in alerts)
    for a in alerts:
        assert a.json()["type"] == "message" and a.json()["entry"][0]["resource"]["resourceType"] == "MessageHeader"


def test_a_trace_id_set_on_the_post_reaches_the_score_and_the_alert(platform: Platform,
                                                                    platform_settings: Settings) -> None:
    trace_id = os.urandom(16).hex()
    traceparent = f"00-{trace_id}-{os.urandom(8).hex()}-01"
    pid = str(uuid.uuid4())
    bundles = [b for rnd in rounds(datetime.now(UTC) - timedelta(hours=4),
                                   {"d": PROFILES["deteriorating"][2:3]}, {"d": pid}) for b in rnd]
    with httpx.Client(base_url=platform.ingestion_url, timeout=30) as c:
        for b in bundles:
            r = c.post("/fhir", content=json.dumps(b), headers={**FHIR, "traceparent": traceparent})
            assert r.status_code == 200, r.text
    reader = TopicReader(platform_settings)
    try:
        deadline = time.monotonic() + 60
        while True:
            derived = [r for r in reader.read(TOPICS.derived, timeout=1) if r.key == f"Patient/{pid}"]
            alerts = [r for r in reader.read(TOPICS.alerts, timeout=1) if r.key == f"Patient/{pid}"]
            if (alerts and any(r.json()["resourceType"] == "Observation" for r in derived)) \
                    or time.monotonic() > deadline:
                break
    finally:
        reader.close()
    score = next(r for r in derived if r.json()["resourceType"] == "Observation")
    assert score.headers["traceparent"].split("-")[1] == trace_id
    assert alerts and all(a.headers["traceparent"].split("-")[1] == trace_id for a in alerts)


def test_killing_the_care_worker_mid_stream_loses_no_score(platform: Platform, platform_settings: Settings) -> None:
    n_patients = 40
    roles = {f"p{i}": str(uuid.uuid4()) for i in range(n_patients)}
    profiles = {role: PROFILES["deteriorating"][:3] for role in roles}
    bundles = [b for rnd in rounds(datetime.now(UTC) - timedelta(hours=3), profiles, roles) for b in rnd]
    expected_sets = n_patients * 3
    care = next(r for r in platform.services if r.spec.name == "care")

    reader = TopicReader(platform_settings)
    try:
        before = len(reader.read(TOPICS.derived, timeout=2))
        post_all(platform, bundles[: len(bundles) // 2])
        # Kill -9 as soon as the worker is visibly mid-stream.
        deadline = time.monotonic() + 60
        while len(reader.read(TOPICS.derived, timeout=0.5)) - before < 10:
            assert time.monotonic() < deadline, "care produced nothing"
        os.kill(care.proc.pid, signal.SIGKILL)
        care.proc.wait(10)
        post_all(platform, bundles[len(bundles) // 2:])  # events keep flowing while it is down
        platform.restart("care")
        wanted = set(roles.values())
        deadline = time.monotonic() + 120
        while True:
            derived = reader.read(TOPICS.derived, timeout=1)
            scores = news2_scores(derived)
            got = sum(len(v) for k, v in scores.items() if k.split("/", 1)[1] in wanted)
            if got >= expected_sets or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        reader.close()
    ours = {k: v for k, v in scores.items() if k.split("/", 1)[1] in wanted}
    # Every observation set scored exactly once by id (re-publications reuse the id).
    assert sum(len(v) for v in ours.values()) == expected_sets
    assert all(sorted(v.values()) == [0, 1, 6] for v in ours.values())
