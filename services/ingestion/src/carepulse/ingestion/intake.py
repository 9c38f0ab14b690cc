"""The ingestion core, independent of transport (HTTP, Kafka, bulk): validate, route, publish once.

Each resource is validated exactly once; what is published is the sender's bytes when
they can be passed on as they are, otherwise one compact re-serialisation (a Bundle
entry cut out, an id assigned, ``urn:uuid`` references resolved).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from carepulse.ingestion import jsonio
from carepulse.ingestion.dedupe import SeenStore, TopicProbe
from carepulse.ingestion.routing import Route, route
from carepulse.shared.fhir.codec import FhirValidationError, Issue, validate_document
from carepulse.shared.fhir.references import patient_key, rewrite_references
from carepulse.shared.kafka.headers import fhir_headers, stable_id
from carepulse.shared.kafka.producer import OutRecord, Publisher
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
_BOM = b"\xef\xbb\xbf"


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
    # Dedupe keys: the published event id first, then the content key when it differs.
    keys: tuple[str, ...]
    issues: list[Issue] = field(default_factory=list)
    traceparent: str | None = None
    duplicate: bool = False  # published before (same event): acknowledged, not published again
    full: bool = True  # False: ``resource`` keeps only type, id and meta (see slim)
    patient: str | None = None  # the patient reference, kept by slim

    def slim(self) -> None:
        """Keep of the document only what the server reads (type, id, version, patient).

        A validation worker process sends its results back pickled: unpickling whole documents
        would cost the server more than anything else it does. ``raw`` still holds the
        resource exactly as it is published."""
        meta = self.resource.get("meta")
        kept: dict[str, Any] = {"resourceType": self.resource["resourceType"], "id": self.resource["id"]}
        if isinstance(meta, dict):
            kept["meta"] = {k: v for k, v in meta.items() if k in ("versionId", "lastUpdated")}
        self.patient = patient_key(self.resource)
        self.resource, self.full = kept, False

    def document(self) -> dict[str, Any]:
        """The whole resource (decoded again from ``raw`` when slimmed)."""
        return self.resource if self.full else jsonio.loads(self.raw)

    def patient_ref(self) -> str | None:
        """The patient this resource is about (its Kafka key when that is a Patient), or None."""
        if self.route is not None and self.route.key.startswith("Patient/"):
            return self.route.key
        return patient_key(self.resource) if self.full else self.patient

    @property
    def reference(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"

    @property
    def version(self) -> str:
        meta = self.resource.get("meta")
        vid = meta.get("versionId") if isinstance(meta, dict) else None
        return str(vid) if vid else "1"

    @property
    def status(self) -> str:
        return "201 Created" if self.route and not self.duplicate else "200 OK"


@dataclass
class EntryResult:
    accepted: Accepted | None = None
    issues: list[Issue] = field(default_factory=list)
    status: str = "400 Bad Request"


@dataclass
class BundleWork:
    """A Bundle (or one slice of its entries) validated: its type as sent, the interactions its
    entries ask for (checked against the sender's scopes before anything else is used), and the
    entry results, or the error that rejects the whole Bundle."""

    type: str | None
    interactions: list[tuple[str, str, str]]
    results: list[EntryResult] = field(default_factory=list)
    error: FhirValidationError | None = None


def read_bundle(raw: bytes) -> dict[str, Any]:
    """The JSON of a Bundle body; raises FhirValidationError for anything else."""
    doc = jsonio.loads(raw)
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise FhirValidationError([Issue("invalid", "POST to the base URL takes a Bundle", "resourceType")])
    return doc


def bundle_interactions(bundle: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, resource type, interaction) of each entry: POST is create, PUT update. Entries without a
    resource or with another method are left to validation, which rejects them."""
    out = []
    entries = bundle.get("entry")
    for i, e in enumerate(entries if isinstance(entries, list) else []):
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            continue
        request = e.get("request") if isinstance(e.get("request"), dict) else {}
        method = str(request.get("method", "POST")).upper()
        if method in ("POST", "PUT"):
            out.append((f"Bundle.entry[{i}]", res["resourceType"], "c" if method == "POST" else "u"))
    return out


def _prefix(issues: list[Issue], resource_type: str, prefix: str) -> list[Issue]:
    """Re-root FHIRPath expressions of an entry's issues at the Bundle entry (or NDJSON line)."""
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


def content_key(doc: dict[str, Any], digest: str) -> str:
    """The event a resource is: same id + ``meta.versionId``, or same id + content, is the same event."""
    meta = doc.get("meta")
    vid = meta.get("versionId") if isinstance(meta, dict) else None
    if vid:
        return stable_id(doc["resourceType"], str(doc["id"]), "v", str(vid))
    return stable_id(doc["resourceType"], str(doc["id"]), "h", digest)


class Intake:
    def __init__(self, topics: Topics, producer: Publisher | None, source_name: str, max_entries: int,
                 seen: SeenStore | None = None, probe: TopicProbe | None = None) -> None:
        """``producer`` None: an Intake that only validates (a validation worker process)."""
        self._topics = topics
        self._producer = producer
        self._source = source_name
        self._max_entries = max_entries
        self._seen = seen
        self._probe = probe

    # --- single resources -------------------------------------------------
    def accept(self, raw: bytes, expected_type: str | None, url_id: str | None = None,
               event_id: str | None = None, traceparent: str | None = None) -> Accepted:
        """Validate one resource body (``POST /fhir/{type}``, ``PUT /fhir/{type}/{id}``, a Kafka record)."""
        if raw.startswith(_BOM):
            raw = raw[3:]
        doc = validate_document(jsonio.loads(raw), raw, expected_type).resource
        if doc["resourceType"] == "Bundle":
            raise UnsupportedBundle([Issue("not-supported", "post batch/transaction Bundles to the base URL /fhir",
                                           "Bundle.type")])
        if url_id is not None and doc.get("id") != url_id:
            raise FhirValidationError([Issue("invalid", f"resource id {doc.get('id')!r} does not match URL id "
                                                        f"{url_id!r}", f"{doc['resourceType']}.id")])
        return self._accepted(doc, raw if doc.get("id") else None, None, event_id=event_id, traceparent=traceparent)

    def accept_line(self, line: bytes, where: str, event_id: str | None = None) -> EntryResult:
        """One NDJSON line (Bulk Data format): an EntryResult, never an exception."""
        rtype = ""
        try:
            doc = jsonio.loads(line)
            rtype = str(doc.get("resourceType", "")) if isinstance(doc, dict) else ""
            validate_document(doc, line)
            if rtype == "Bundle":
                raise UnsupportedBundle([Issue("not-supported", "NDJSON lines must be resources, not Bundles",
                                               "Bundle")])
        except FhirValidationError as e:
            return EntryResult(issues=_prefix(e.issues, rtype, where) if where else e.issues)
        raw = line[3:] if line.startswith(_BOM) else line
        return EntryResult(accepted=self._accepted(doc, raw if doc.get("id") else None, None, event_id=event_id),
                           status="")

    def _accepted(self, doc: dict[str, Any], raw: bytes | None, local: dict[str, str] | None,
                  event_id: str | None = None, traceparent: str | None = None) -> Accepted:
        digest = jsonio.content_digest(doc)
        if not doc.get("id"):
            # Ids are derived from content, so a retried POST assigns the same id.
            doc["id"] = stable_id("id", digest)
            raw = None
        key = content_key(doc, digest)
        keys = (event_id, key) if event_id and event_id != key else (key,)
        r = route(doc, self._topics, local)
        issues = [] if r else [Issue("informational", f"accepted, not routed: CarePulse has no consumer for "
                                                      f"{doc['resourceType']}", None, "information")]
        return Accepted(doc, raw if raw is not None else jsonio.dumps(doc), r, keys[0], keys, issues, traceparent)

    # --- Bundles ------------------------------------------------------------
    def bundle_entries(self, bundle: dict[str, Any], event_id: str | None = None,
                       traceparent: str | None = None) -> tuple[str, list[EntryResult]]:
        """Validate a batch/transaction Bundle entry by entry, Bundle-local references resolved."""
        btype, entries, local = self.prepare_bundle(bundle)
        return btype, self.entry_results(entries, local, 0, event_id, traceparent)

    def bundle_work(self, bundle: dict[str, Any], event_id: str | None, traceparent: str | None,
                    part: int = 0, parts: int = 1) -> BundleWork:
        """Validate slice ``part`` of ``parts`` of a Bundle's entries (the interactions come with
        part 0). Every slice prepares the whole Bundle (ids, local references) the same way, so
        slices can be validated in different processes from the same bytes."""
        btype = bundle.get("type")
        work = BundleWork(btype if isinstance(btype, str) else None,
                          bundle_interactions(bundle) if part == 0 else [])
        try:
            _, entries, local = self.prepare_bundle(bundle)
        except FhirValidationError as e:
            work.error = e
            return work
        step = max(1, -(-len(entries) // parts))
        start = part * step
        work.results = self.entry_results(entries[start:start + step], local, start, event_id, traceparent)
        return work

    def entry_results(self, entries: list[Any], local: dict[str, str], start: int, event_id: str | None,
                      traceparent: str | None) -> list[EntryResult]:
        """The results of ``entries``, the prepared Bundle's entries from index ``start`` on."""
        return [self._entry(i, e, local, None if event_id is None else stable_id(event_id, str(i)), traceparent)
                for i, e in enumerate(entries, start=start)]

    def prepare_bundle(self, bundle: dict[str, Any]) -> tuple[str, list[Any], dict[str, str]]:
        """Check a Bundle's type and size, give its entries their ids and resolve Bundle-local
        references: (type, entries, fullUrl -> Type/id). Entries are then independent."""
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
        local = self._assign_ids(entries)
        if local:
            for e in entries:
                if isinstance(e, dict) and isinstance(e.get("resource"), dict):
                    rewrite_references(e["resource"], local)
        return str(btype), entries, local

    @staticmethod
    def _assign_ids(entries: list[Any]) -> dict[str, str]:
        """Give every entry resource its id (from the PUT url, the ``urn:uuid`` fullUrl or its content)
        and map each ``fullUrl`` to ``Type/id``, so references between entries can be resolved."""
        local: dict[str, str] = {}
        for e in entries:
            res = e.get("resource") if isinstance(e, dict) else None
            if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
                continue
            full_url = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
            request = e.get("request") if isinstance(e.get("request"), dict) else {}
            if not res.get("id"):
                if str(request.get("method", "")).upper() == "PUT" and isinstance(request.get("url"), str):
                    res["id"] = request["url"].split("?")[0].rstrip("/").split("/")[-1]
                elif full_url and full_url.startswith("urn:uuid:"):
                    res["id"] = full_url[9:]
                else:
                    res["id"] = stable_id("id", jsonio.content_digest(res))
            if full_url and isinstance(res.get("id"), str):
                local[full_url] = f"{res['resourceType']}/{res['id']}"
        return local

    def _entry(self, i: int, entry: Any, local: dict[str, str], event_id: str | None,
               traceparent: str | None) -> EntryResult:
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            return EntryResult(issues=[Issue("required", "entry has no resource", f"{where}.resource")])
        request = entry.get("request") or {}
        method = str(request.get("method", "POST")).upper() if isinstance(request, dict) else "POST"
        if method not in ("POST", "PUT"):
            return EntryResult(issues=[Issue("not-supported", f"method {method} is not supported",
                                             f"{where}.request.method")], status="405 Method Not Allowed")
        res = entry["resource"]
        try:
            validate_document(res, b"")
        except FhirValidationError as e:
            rtype = str(res.get("resourceType", ""))
            return EntryResult(issues=_prefix(e.issues, rtype, f"{where}.resource"))
        if res["resourceType"] == "Bundle":
            return EntryResult(issues=[Issue("not-supported", "nested Bundles are not processed",
                                             f"{where}.resource")])
        if method == "PUT":
            url_id = str(request.get("url", "")).split("?")[0].rstrip("/").split("/")[-1]
            if res.get("id") != url_id:
                return EntryResult(issues=[Issue("invalid", "resource id does not match request.url",
                                                 f"{where}.resource.id")])
        return EntryResult(accepted=self._accepted(res, None, local, event_id, traceparent), status="")

    # --- publication ----------------------------------------------------------
    async def publish(self, accepted: list[Accepted]) -> list[BaseException | None]:
        """Publish each new event once and wait for every ack; the error (or None) per record.

        Events already published (same event id or content) are marked ``duplicate`` and
        not sent again. Raises DedupeUnavailable/StillPending (transient) before sending anything.
        """
        unique: list[Accepted] = []
        batch_keys: set[str] = set()
        for a in accepted:
            if a.route is None:
                continue
            if batch_keys.intersection(a.keys):
                a.duplicate = True  # the same event twice in one request
                continue
            batch_keys.update(a.keys)
            unique.append(a)
        if self._seen is not None and unique:
            assert self._probe is not None
            fresh = await self._seen.claim([a.keys for a in unique], [a.route.topic for a in unique if a.route],
                                           self._probe)
            for a, f in zip(unique, fresh, strict=True):
                a.duplicate = not f
        to_send = [a for a in unique if not a.duplicate]
        records = [OutRecord(a.route.topic, a.route.key, a.raw,  # type: ignore[union-attr]
                             fhir_headers(a.resource["resourceType"], a.event_id, self._source, a.traceparent))
                   for a in to_send]
        if self._producer is None:
            raise RuntimeError("this Intake only validates; it has no producer")
        errors = await self._producer.send_many(records) if records else []
        failed = {id(a): e for a, e in zip(to_send, errors, strict=True) if e is not None}
        if self._seen is not None and to_send:
            done = [k for a in to_send if id(a) not in failed for k in a.keys]
            lost = [k for a in to_send if id(a) in failed for k in a.keys]
            try:
                await self._seen.mark_done(done)
                await self._seen.release(lost)
            except Exception:  # noqa: BLE001 - published already; a stale claim is recovered via the topic
                log.warning("could not mark published events in the dedupe store",
                            extra={"fields": {"records": len(to_send)}})
        return [failed.get(id(a)) for a in accepted]
