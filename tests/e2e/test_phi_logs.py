"""No PHI in any log: the Synthea patients go through ingestion into care on the embedded platform
(batch Bundles, single Patients, invalid copies of them over HTTP and over fhir.inbound), then every
line of every log in the run folder is searched for their names, identifiers, birth dates,
addresses and phone numbers.

Synthea's MRN identifier repeats the Patient's logical id, which logs may carry by policy (ids,
never identifiers); it is therefore left out of the search, and every other identifier value
(SSN, driver's licence, passport) is in it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.e2e
TOPICS = Topics.with_prefix("")
FHIR = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}


def synthea_bundles(fhir_data: Path) -> list[dict[str, Any]]:
    return [json.loads(f.read_text()) for f in sorted((fhir_data / "synthea").glob("*_*_*.json"))]


def phi_of(patient: dict[str, Any]) -> set[str]:
    out = {n for name in patient.get("name", []) for n in [name.get("family", ""), *name.get("given", [])]}
    out |= {i["value"] for i in patient.get("identifier", []) if i.get("value") and i["value"] != patient["id"]}
    out.add(patient["birthDate"])
    for a in patient.get("address", []):
        out |= set(a.get("line", [])) | {a.get("city", "")}
    out |= {t["value"] for t in patient.get("telecom", []) if t.get("value")}
    for ext in patient.get("extension", []):  # mother's maiden name, birthplace
        if isinstance(ext.get("valueString"), str):
            out.add(ext["valueString"])
    return {s for s in out if len(s) >= 4}


def test_no_patient_name_identifier_birth_date_or_address_in_any_log(platform: Platform,
                                                                     platform_settings: Settings,
                                                                     fhir_data: Path) -> None:
    bundles = synthea_bundles(fhir_data)
    patients = [e["resource"] for b in bundles for e in b["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 5
    phi = set().union(*(phi_of(p) for p in patients))
    assert len(phi) >= 35 and {"Pablo44", "Sporer811", "999-20-7466", "2015-10-20"} <= phi

    with httpx.Client(base_url=platform.ingestion_url, timeout=60) as c:
        for b in bundles:
            r = c.post("/fhir", content=json.dumps(b), headers=FHIR)
            assert r.status_code == 200, r.text[:300]
        for p in patients:
            assert c.post("/fhir/Patient", content=json.dumps(p), headers=FHIR).status_code in (200, 201)
            # Invalid copies: the error paths must not echo the patient either.
            bad = {**p, "id": f"{p['id']}-bad", "birthDate": f"born {p['birthDate']}", "gender": p["name"][0]["family"]}
            assert c.post("/fhir/Patient", content=json.dumps(bad), headers=FHIR).status_code == 400
            assert c.post("/fhir/Patient", content=json.dumps(p)[:-5], headers=FHIR).status_code == 400
    producer = KafkaProducer(bootstrap_servers=platform_settings.kafka_servers)
    try:
        for p in patients:
            bad = {**p, "birthDate": p["name"][0]["given"][0]}
            producer.send(TOPICS.inbound, json.dumps(bad).encode(), key=f"Patient/{p['id']}".encode())
        producer.flush(10)
    finally:
        producer.close()

    reader = TopicReader(platform_settings)
    try:
        # Every patient routed, the bad inbound copies dead-lettered, care through the observations.
        assert len({r.key for r in reader.read(TOPICS.patient, at_least=5, timeout=30)}) >= 5
        assert len(reader.read(TOPICS.deadletter, at_least=5, timeout=30)) >= 5
        n_obs = len(reader.read(TOPICS.observation, at_least=80, timeout=30))
        assert n_obs >= 80
    finally:
        reader.close()
    time.sleep(3.0)  # care works through the observations it has been handed

    logs = [f for f in platform.run_dir.rglob("*") if f.is_file() and (f.suffix == ".log" or "logs" in f.parts)]
    assert {f.name for f in logs} >= {"ingestion.log", "care.log"}
    text = {f: f.read_text(errors="replace") for f in logs}
    lines = sum(t.count("\n") for t in text.values())
    assert lines > 10
    leaks = [(f.name, n, s) for f, t in text.items() for n, line in enumerate(t.splitlines(), 1)
             for s in phi if s in line]
    assert leaks == [], leaks[:20]
    # The logs do speak of these patients, by id: the search looked where the traffic was.
    ingestion_log = text[next(f for f in logs if f.name == "ingestion.log")]
    assert all(f"Patient/{p['id']}" in ingestion_log for p in patients)
