"""``carepulse send``: POST FHIR JSON, NDJSON and Bundles to ingestion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

FHIR_JSON = "application/fhir+json"


@dataclass
class SendReport:
    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


def files_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson") and p.is_file())
    return [path]


def requests_for(path: Path) -> Iterator[tuple[str, bytes]]:
    """(url path, body) of each request a file turns into."""
    if path.suffix == ".ndjson":
        for line in path.read_bytes().splitlines():
            if line.strip():
                rtype = json.loads(line).get("resourceType", "")
                yield f"/fhir/{rtype}", line
        return
    body = path.read_bytes()
    doc = json.loads(body.decode("utf-8-sig"))
    if doc.get("resourceType") == "Bundle" and doc.get("type") in ("batch", "transaction"):
        yield "/fhir", body
    else:
        yield f"/fhir/{doc.get('resourceType', '')}", body


def send_one(client: httpx.Client, url_path: str, body: bytes, report: SendReport) -> None:
    r = client.post(url_path, content=body, headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"})
    if r.status_code >= 400:
        report.rejected += 1
        try:
            issues = r.json().get("issue", [])
            report.reasons.append(f"{url_path}: {r.status_code} " + "; ".join(
                f"{(i.get('expression') or ['-'])[0]}: {i.get('diagnostics')}" for i in issues[:3]))
        except ValueError:
            report.reasons.append(f"{url_path}: HTTP {r.status_code}")
        return
    if url_path == "/fhir":
        for e in r.json().get("entry", []):
            status = e.get("response", {}).get("status", "")
            if status[:1] in ("2",):
                report.accepted += 1
            else:
                report.rejected += 1
                issues = (e.get("response", {}).get("outcome") or {}).get("issue", [])
                report.reasons.append(f"{status}: " + "; ".join(
                    f"{(i.get('expression') or ['-'])[0]}: {i.get('diagnostics')}" for i in issues[:3]))
    else:
        report.accepted += 1
