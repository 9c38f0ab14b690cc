"""The ingestion core, independent of HTTP: validate, route, publish, report.

Each resource is validated exactly once; what is published is the sender's bytes
(re-serialised only when a Bundle entry has to be cut out or an id assigned).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from carepulse.ingestion.routing import Route, route
from carepulse.shared.fhir.codec import FhirValidationError, Issue, decode_json, validate_document
from carepulse.shared.kafka.headers import fhir_headers, stable_id
from carepulse.shared.kafka.producer import Delivered, FhirProducer
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)


class TransactionRejected(FhirValidationError):
    """A transaction Bundle with at least one bad entry: nothing was published."""


class UnsupportedBundle(FhirValidationError):
    """A Bundle this endpoint does not process (type other than batch/transaction)."""


@dataclass
class Accepted:
    """One resource accepted for publication (or acknowledged but not routed)."""

    resource: dict[str, Any]
    raw: bytes
    route: Route | None
    event_id: str
    issues: list[Issue] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"

    @property
    def status(self) -> str:
        return "201 Created" if self.route else "200 OK"


@dataclass
class EntryResult:
    accepted: Accepted | None = None
    issues: list[Issue] = field(default_factory=list)
    status: str = "400 Bad Request"


def _compact(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _prefix(issues: list[Issue], resource_type: str, prefix: str) -> list[Issue]:
    """Re-root FHIRPath expressions of an entry's issues at the Bundle entry."""
    out = []
    for i in issues:
        expr = i.expression
        if expr and expr.split(".", 1)[0].split("[", 1)[0] == resource_type:
            expr = prefix + expr[len(resource_type):]
        elif expr:
            expr = f"{prefix}.{expr}"
        else:
            expr = prefix
        out.append(Issue(i.code, i.diagnostics, expr, i.severity))
    return out


class Intake:
    def __init__(self, topics: Topics, producer: FhirProducer, source_name: str, max_entries: int) -> None:
        self._topics = topics
        self._producer = producer
        self._source = source_name
        self._max_entries = max_entries

    # --- single resources -------------------------------------------------
    def accept(self, raw: bytes, expected_type: str | None, url_id: str | None = None) -> Accepted:
        """Validate one resource body (``POST /fhir/{type}`` or ``PUT /fhir/{type}/{id}``)."""
        parsed = validate_document(decode_json(raw), raw, expected_type)
        doc = parsed.resource
        if doc["resourceType"] == "Bundle":
            raise UnsupportedBundle([Issue("not-supported", "post batch/transaction Bundles to the base URL /fhir",
                                           "Bundle.type")])
        if url_id is not None and doc.get("id") != url_id:
            raise FhirValidationError([Issue("invalid", f"resource id {doc.get('id')!r} does not match URL id "
                                                        f"{url_id!r}", f"{doc['resourceType']}.id")])
        return self._accepted(doc, None if doc.get("id") is None else raw, None)

    def _accepted(self, doc: dict[str, Any], raw: bytes | None, local: dict[str, str] | None,
                  full_url: str | None = None) -> Accepted:
        digest = hashlib.sha256(raw if raw is not None else _compact(doc)).hexdigest()
        if not doc.get("id"):
            # Ids are derived from content, so a retried POST assigns the same id.
            doc["id"] = full_url[9:] if full_url and full_url.startswith("urn:uuid:") else stable_id("id", digest)
            raw = None
        version = str((doc.get("meta") or {}).get("versionId", ""))
        event_id = stable_id(doc["resourceType"], doc["id"], version, digest)
        r = route(doc, self._topics, local)
        issues = [] if r else [Issue("informational", f"accepted, not routed: CarePulse has no consumer for "
                                                      f"{doc['resourceType']}", None, "information")]
        return Accepted(doc, raw if raw is not None else _compact(doc), r, event_id, issues)

    # --- Bundles ------------------------------------------------------------
    def bundle_entries(self, bundle: dict[str, Any]) -> tuple[str, list[EntryResult]]:
        """Validate a batch/transaction Bundle entry by entry."""
        btype = bundle.get("type")
        if btype not in ("batch", "transaction"):
            raise UnsupportedBundle([Issue("not-supported", f"Bundle type {btype!r}: only batch and transaction "
                                                            "are processed here", "Bundle.type")])
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise FhirValidationError([Issue("structure", "entry must be an array", "Bundle.entry")])
        if len(entries) > self._max_entries:
            raise FhirValidationError([Issue("too-costly", f"{len(entries)} entries; at most {self._max_entries}",
                                             "Bundle.entry")])
        local: dict[str, str] = {}
        for e in entries:
            res = e.get("resource") if isinstance(e, dict) else None
            if isinstance(res, dict) and isinstance(e.get("fullUrl"), str) and res.get("resourceType"):
                rid = res.get("id") or (e["fullUrl"][9:] if e["fullUrl"].startswith("urn:uuid:") else None)
                if rid:
                    local[e["fullUrl"]] = f"{res['resourceType']}/{rid}"
        results = [self._entry(i, e, local) for i, e in enumerate(entries)]
        return str(btype), results

    def _entry(self, i: int, entry: Any, local: dict[str, str]) -> EntryResult:
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            return EntryResult(issues=[Issue("required", "entry has no resource", f"{where}.resource")])
        request = entry.get("request") or {}
        method = str(request.get("method", "POST")).upper()
        if method not in ("POST", "PUT"):
            return EntryResult(issues=[Issue("not-supported", f"method {method} is not supported",
                                             f"{where}.request.method")], status="405 Method Not Allowed")
        res = entry["resource"]
        try:
            validate_document(res, b"")
        except FhirValidationError as e:
            rtype = str(res.get("resourceType", ""))
            return EntryResult(issues=_prefix(e.issues, rtype, f"{where}.resource"))
        if method == "PUT":
            url_id = str(request.get("url", "")).rstrip("/").split("/")[-1]
            if res.get("id") and res["id"] != url_id:
                return EntryResult(issues=[Issue("invalid", "resource id does not match request.url",
                                                 f"{where}.resource.id")])
            res.setdefault("id", url_id)
        return EntryResult(accepted=self._accepted(res, None, local, entry.get("fullUrl")), status="")

    # --- publication ----------------------------------------------------------
    def _send(self, a: Accepted) -> asyncio.Future[Delivered] | None:
        if a.route is None:
            return None
        headers = fhir_headers(a.resource["resourceType"], a.event_id, self._source)
        return self._producer.send(a.route.topic, a.route.key, a.raw, headers)

    async def publish(self, accepted: list[Accepted]) -> list[BaseException | None]:
        """Publish in order and wait for every ack; returns the error (or None) per record."""
        futures = [self._send(a) for a in accepted]
        pending = [f for f in futures if f is not None]
        results = await asyncio.gather(*pending, return_exceptions=True)
        it = iter(results)
        return [None if f is None else (r if isinstance(r, BaseException) else None)
                for f, r in ((f, next(it) if f is not None else None) for f in futures)]
