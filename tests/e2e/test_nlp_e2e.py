"""End to end, through processes: a DocumentReference POSTed to ingestion -> Conditions on fhir.derived.

Needs the exported embedding model and index (`carepulse train nlp-index`, run by set-up).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carepulse.shared.fhir import parse_resource
from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = pytest.mark.e2e
TOPICS = Topics.with_prefix("")
FHIR = {"Content-Type": "application/fhir+json"}
NOTE = """PATIENT NAME: Jane Doe    MRN: 55501
CHIEF COMPLAINT: fever and cough.
HISTORY OF PRESENT ILLNESS: Three days of fever with productive cough. Chest x-ray consistent with pneumonia.
She denies dysuria; no evidence of urinary tract infection. Also reports a tummy bug since Monday.
FAMILY HISTORY: Mother had breast cancer. No family history of diabetes.
"""


@pytest.fixture(scope="module")
def nlp_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    run_dir: Path = tmp_path_factory.mktemp("nlp-platform")
    p = Platform(Settings(log_format="json"), run_dir, free_ports=True, only=["inference", "ingestion", "nlp"])
    try:
        p.start(progress=lambda m: None)
        yield p
    finally:
        p.stop(progress=lambda m: None)


def test_document_reference_yields_conditions(nlp_platform: Platform) -> None:
    pid, doc_id = str(uuid.uuid4()), str(uuid.uuid4())
    doc = {"resourceType": "DocumentReference", "id": doc_id, "status": "current",
           "subject": {"reference": f"Patient/{pid}"},
           "content": [{"attachment": {"contentType": "text/plain",
                                       "data": base64.b64encode(NOTE.encode()).decode()}}]}
    with httpx.Client(base_url=nlp_platform.ingestion_url, timeout=30) as c:
        r = c.post("/fhir/DocumentReference", content=json.dumps(doc), headers=FHIR)
        assert r.status_code in (200, 201), r.text
    reader = TopicReader(Settings(kafka_bootstrap_servers=nlp_platform.kafka or "", redis_url=nlp_platform.redis or ""))
    try:
        records = reader.read(TOPICS.derived, at_least=16, timeout=90, settle=3.0)
    finally:
        reader.close()
    mine = [parse_resource(r.value).resource for r in records if r.key == f"Patient/{pid}"]
    conditions = {c["code"]["text"].lower(): c for c in mine if c["resourceType"] == "Condition"}
    status = {t: c["verificationStatus"]["coding"][0]["code"] for t, c in conditions.items()}
    assert status["pneumonia"] == "provisional" and status["fever"] == "provisional"
    assert status["urinary tract infection"] == "refuted" and status["dysuria"] == "refuted"
    assert conditions["pneumonia"]["code"]["coding"][0]["code"] == "J18.9"
    assert conditions["pneumonia"]["meta"]["tag"][0]["code"] == "infection"
    # Not in the lexicon: coded by the embedding model through the inference service.
    bug = conditions["tummy bug"]
    ext = {e["url"]: e for e in bug["evidence"][0]["extension"][0]["extension"]}
    assert ext["method"]["valueCode"] in ("embedding", "none") and "confidence" in ext
    fmh = {x["condition"][0]["code"]["text"]: x for x in mine if x["resourceType"] == "FamilyMemberHistory"}
    assert set(fmh) == {"breast cancer", "No history of diabetes"}
    assert fmh["breast cancer"]["condition"][0]["code"]["coding"][0]["code"] == "C50.919"
    assert "coding" not in fmh["No history of diabetes"]["condition"][0]["code"]  # never a positive code
    assert "diabetes" not in conditions
    provenance = [x for x in mine if x["resourceType"] == "Provenance"]
    assert len(provenance) == len(mine) // 2
    assert all(x["entity"][0]["what"]["reference"] == f"DocumentReference/{doc_id}" for x in provenance)
    assert "all-MiniLM-L6-v2" in provenance[0]["agent"][0]["who"]["display"]
    assert not any("Jane" in json.dumps(x) or "55501" in json.dumps(x) for x in mine)
