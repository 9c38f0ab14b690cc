"""``carepulse send``: POST FHIR JSON, Bundles and Bulk Data NDJSON to ingestion.

NDJSON files go to ``/fhir/$import`` in chunks of lines, so a large export streams
through with progress per chunk; ingestion answers each chunk with an OperationOutcome
counting what it accepted and naming each rejected line. A resend after a failure is
safe: ingestion publishes every event once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
IMPORT_PATH = "/fhir/$import"
NDJSON_CHUNK_LINES = 1000
_SUMMARY = re.compile(r"lines (\d+), accepted (\d+) \(already received (\d+), not routed (\d+)\), rejected (\d+)")


@dataclass
class SendReport:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0  # accepted, but received before: not published again
    reasons: list[str] = field(default_factory=list)


def files_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson") and p.is_file())
    return [path]


def requests_for(path: Path, chunk_lines: int = NDJSON_CHUNK_LINES) -> Iterator[tuple[str, bytes]]:
    """(url path, body) of each request a file turns into."""
    if path.suffix == ".ndjson":
        chunk: list[bytes] = []
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    chunk.append(line.rstrip(b"\r\n"))
                if len(chunk) >= chunk_lines:
                    yield IMPORT_PATH, b"\n".join(chunk) + b"\n"
                    chunk = []
        if chunk:
            yield IMPORT_PATH, b"\n".join(chunk) + b"\n"
        return
    body = path.read_bytes()
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except ValueError:
        doc = {}
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" and doc.get("type") in ("batch", "transaction"):
        yield "/fhir", body
    else:
        yield f"/fhir/{doc.get('resourceType', '') if isinstance(doc, dict) else ''}", body


def _issues_text(issues: list[dict], n: int = 3) -> str:
    return "; ".join(f"{(i.get('expression') or ['-'])[0]}: {i.get('diagnostics')}" for i in issues[:n])


def _post(client: httpx.Client, url_path: str, body: bytes, retries: int) -> httpx.Response | str:
    ctype = FHIR_NDJSON if url_path == IMPORT_PATH else FHIR_JSON
    for attempt in range(retries + 1):
        try:
            r = client.post(url_path, content=body, headers={"Content-Type": ctype, "Prefer": "return=minimal"})
            if r.status_code != 503 or attempt == retries:
                return r
        except httpx.TransportError as e:
            if attempt == retries:
                return f"{url_path}: {type(e).__name__} (ingestion unreachable)"
        time.sleep(min(0.5 * 2 ** attempt, 5))
    raise AssertionError("unreachable")


def send_one(client: httpx.Client, url_path: str, body: bytes, report: SendReport, retries: int = 3) -> None:
    r = _post(client, url_path, body, retries)
    if isinstance(r, str):
        report.rejected += body.count(b"\n") if url_path == IMPORT_PATH else 1
        report.reasons.append(r)
        return
    if url_path == IMPORT_PATH:
        _import_result(r, body, report)
        return
    if r.status_code >= 400:
        report.rejected += 1
        try:
            report.reasons.append(f"{url_path}: {r.status_code} " + _issues_text(r.json().get("issue", [])))
        except ValueError:
            report.reasons.append(f"{url_path}: HTTP {r.status_code}")
        return
    if url_path == "/fhir":
        for e in r.json().get("entry", []):
            status = e.get("response", {}).get("status", "")
            if status[:1] == "2":
                report.accepted += 1
            else:
                report.rejected += 1
                report.reasons.append(f"{status}: " + _issues_text(
                    (e.get("response", {}).get("outcome") or {}).get("issue", [])))
    else:
        report.accepted += 1


def _import_result(r: httpx.Response, body: bytes, report: SendReport) -> None:
    try:
        issues = r.json().get("issue", [])
    except ValueError:
        issues = []
    summary = next((m for i in issues if (m := _SUMMARY.search(str(i.get("diagnostics", ""))))), None)
    if summary is None:
        report.rejected += body.count(b"\n")
        report.reasons.append(f"{IMPORT_PATH}: HTTP {r.status_code} " + _issues_text(issues))
        return
    lines, accepted, dup, _, rejected = (int(x) for x in summary.groups())
    report.accepted += accepted
    report.duplicates += dup
    report.rejected += rejected + (lines - accepted - rejected if r.status_code == 503 else 0)
    if r.status_code == 503:
        report.reasons.append(f"{IMPORT_PATH}: interrupted after {accepted} of {lines} lines; resend the file")
    report.reasons += [str(i.get("diagnostics")) + (f" ({i['expression'][0]})" if i.get("expression") else "")
                       for i in issues if i.get("severity") == "error" and i.get("code") != "transient"]
