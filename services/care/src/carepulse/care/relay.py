"""The webhook relay: every alert Bundle POSTed to each configured URL, never lost, each outcome audited.

Each delivery carries ``Idempotency-Key`` (the Bundle id: receivers drop repeats) and
``X-CarePulse-Signature: sha256=<HMAC of the body>`` when a secret is set. A receiver
that fails every attempt gets the alert again later through the retry topic (target
URL, attempt and not-before time in headers), with growing back-off, until it accepts.

Every outcome (delivered; parked on the retry topic) is a FHIR AuditEvent on the audit
topic: the relay as requestor, the receiver as destination (host only: paths and query
strings may hold tokens), the alert Bundle, its DetectedIssue/Flag and the patient as
entities. Its id comes from the alert, the receiver and the outcome, so a replayed or
retried relay repeats the same event id instead of adding one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from carepulse.care.codes import CAREPULSE_CS
from carepulse.care.settings import CareSettings
from carepulse.shared import audit as fhir_audit
from carepulse.shared.kafka.headers import Headers, fhir_headers, header, stable_id
from carepulse.shared.kafka.streams import Outgoing, Publish
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
MAX_RETRY_DELAY_S = 3600.0

# Who the relay is in the audit trail: `carepulse audit --client care` lists its deliveries.
RELAY_SYSTEM = "urn:carepulse:service"
RELAY_ID = "care"
WEBHOOK_SYSTEM = "urn:carepulse:webhook"
EXPORT = {"system": fhir_audit.DCM_SYSTEM, "code": "110106", "display": "Export"}
DELIVERY = {"system": f"{CAREPULSE_CS}/audit-subtype", "code": "alert-delivery", "display": "Alert delivery"}
SOURCE_ROLE = {"system": fhir_audit.DCM_SYSTEM, "code": "110153", "display": "Source Role ID"}
DESTINATION_ROLE = {"system": fhir_audit.DCM_SYSTEM, "code": "110152", "display": "Destination Role ID"}
_AUDITED_TYPES = ("DetectedIssue", "Flag")


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def target_id(url: str) -> str:
    """A receiver's id in the audit trail: a digest of its URL, so two paths on one host differ
    while the path and query (which may carry a token) stay out of the trail."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _host_agent(url: str) -> dict[str, Any]:
    host = urlsplit(url).hostname or "unknown"
    try:
        ipaddress.ip_address(host)
        kind = fhir_audit.NETWORK_IP_ADDRESS
    except ValueError:
        kind = fhir_audit.NETWORK_MACHINE_NAME
    return fhir_audit.agent(WEBHOOK_SYSTEM, target_id(url), requestor=False, display=f"webhook at {host}",
                            address=host, address_type=kind, role=DESTINATION_ROLE)


@dataclass(frozen=True)
class Attempts:
    """How one delivery round went: delivered or not, after how many POSTs, the last failure."""

    delivered: bool
    count: int
    last_error: str | None = None


def _patient_and_focus(alert: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The patient reference of an alert Bundle and the references of its DetectedIssue/Flag."""
    patient: str | None = None
    focus: list[str] = []
    for entry in alert.get("entry") or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") not in _AUDITED_TYPES or not res.get("id"):
            continue
        focus.append(f"{res['resourceType']}/{res['id']}")
        ref = (res.get("patient") or res.get("subject") or {}).get("reference")
        if patient is None and isinstance(ref, str) and ref.startswith("Patient/"):
            patient = ref
    return patient, focus


def delivery_audit_event(alert: dict[str, Any], url: str, attempts: Attempts, *, source_name: str, recorded: float,
                         retry_round: int = 0, retry_in_s: float | None = None,
                         patient_hint: str | None = None) -> dict[str, Any]:
    """The AuditEvent (R4) of one delivery outcome of one alert to one receiver.

    Outcome 0 when delivered; 4 (minor failure: the alert is kept and retried) when parked.
    """
    bundle_id = str(alert.get("id", ""))
    patient, focus = _patient_and_focus(alert)
    patient = patient or (patient_hint if patient_hint and patient_hint.startswith("Patient/") else None)
    if attempts.delivered:
        outcome, what = fhir_audit.SUCCESS, "delivered"
        desc = f"delivered after {attempts.count} attempt(s)"
        event_id = stable_id("audit", "alert-delivery", bundle_id, target_id(url), what)
    else:
        outcome, what = fhir_audit.MINOR_FAILURE, "parked"
        desc = (f"not delivered after {attempts.count} attempt(s) (last: {attempts.last_error or 'refused'}); "
                f"parked on the retry topic, round {retry_round}")
        if retry_in_s is not None:
            desc += f", next try in {retry_in_s:g} s"
        event_id = stable_id("audit", "alert-delivery", bundle_id, target_id(url), what, str(retry_round))
    entities = [fhir_audit.patient_entity(patient)] if patient else []
    entities += [fhir_audit.resource_entity(ref) for ref in ([f"Bundle/{bundle_id}"] if bundle_id else []) + focus]
    relay = fhir_audit.agent(RELAY_SYSTEM, RELAY_ID, requestor=True, display=f"{source_name} care webhook relay",
                             role=SOURCE_ROLE)
    return fhir_audit.audit_event(
        event_id=event_id, type_=EXPORT, subtype=[DELIVERY], action="R", recorded=fhir_audit.instant(recorded),
        outcome=outcome, outcome_desc=desc, agents=[relay, _host_agent(url)],
        source=fhir_audit.source("carepulse-care", source_name), entities=entities)


class WebhookRelay:
    def __init__(
        self, urls: list[str], settings: CareSettings, topics: Topics, publish: Publish,
        client: httpx.AsyncClient | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._urls = urls
        self._secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
        self._attempts = max(1, settings.webhook_max_attempts)
        self._topics = topics
        self._publish = publish
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._sleep = sleep
        self._clock = clock
        self._source = settings.source_name
        self._audit = settings.care_audit_enabled

    async def _post(self, url: str, body: bytes, idempotency_key: str) -> str | None:
        """None when the receiver accepted; else why not (status or error type, never the URL)."""
        headers = {"Content-Type": "application/fhir+json", "Idempotency-Key": idempotency_key}
        if self._secret is not None:
            headers["X-CarePulse-Signature"] = signature(self._secret, body)
        try:
            r = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("webhook unreachable", extra={"fields": {"bundle": idempotency_key,
                                                                 "error": type(exc).__name__}})
            return type(exc).__name__
        return None if 200 <= r.status_code < 300 else f"HTTP {r.status_code}"

    async def _try(self, url: str, body: bytes, key: str) -> Attempts:
        delay = 0.2
        error: str | None = None
        for attempt in range(self._attempts):
            error = await self._post(url, body, key)
            if error is None:
                return Attempts(True, attempt + 1)
            if attempt + 1 < self._attempts:
                await self._sleep(delay)
                delay *= 2
        return Attempts(False, self._attempts, error)

    async def _park(self, url: str, key: str, body: bytes, rounds: int) -> float:
        wait = min(MAX_RETRY_DELAY_S, 5.0 * 2 ** rounds)
        headers: Headers = [("target-url", url.encode()), ("retry-round", str(rounds).encode()),
                            ("not-before", repr(self._clock() + wait).encode()), ("event-id", key.encode())]
        await self._publish(Outgoing(self._topics.alerts_retry, key, body, headers))
        log.warning("webhook delivery parked on the retry topic",
                    extra={"fields": {"bundle": key, "round": rounds, "retry_in_s": wait}})
        return wait

    async def _record(self, alert: dict[str, Any], url: str, attempts: Attempts, key: bytes | None,
                      trace: str | None, retry_round: int = 0, retry_in_s: float | None = None) -> None:
        """Publish the AuditEvent of one outcome; through the handler's publisher, so the input record
        is committed only once its audit event is acknowledged (none is lost)."""
        if not self._audit:
            return
        hint = key.decode(errors="replace") if key else None
        event = delivery_audit_event(alert, url, attempts, source_name=self._source, recorded=self._clock(),
                                     retry_round=retry_round, retry_in_s=retry_in_s, patient_hint=hint)
        value = json.dumps(event, separators=(",", ":")).encode()
        await self._publish(Outgoing(self._topics.audit, f"Client/{RELAY_ID}", value,
                                     fhir_headers("AuditEvent", event["id"], self._source, trace)))

    async def deliver(self, key: bytes | None, value: bytes, headers: Headers | None) -> None:
        """One alert from ``carepulse.alerts`` to every URL."""
        alert = _alert(value)
        bundle_id = str(alert.get("id", ""))
        trace = header(headers, "traceparent")
        for url in self._urls:
            attempts = await self._try(url, value, bundle_id)
            if attempts.delivered:
                await self._record(alert, url, attempts, key, trace)
            else:
                wait = await self._park(url, bundle_id, value, 0)
                await self._record(alert, url, attempts, key, trace, 0, wait)

    async def redeliver(self, key: bytes | None, value: bytes, headers: Headers | None) -> None:
        """One parked delivery from the retry topic, when its time has come."""
        url = header(headers, "target-url")
        if not url or url not in self._urls:
            raise ValueError(f"retry record for an unknown webhook target {url!r}")
        not_before = float(header(headers, "not-before") or 0)
        rounds = int(header(headers, "retry-round") or 0)
        alert = _alert(value)
        bundle_id = header(headers, "event-id") or str(alert.get("id", ""))
        trace = header(headers, "traceparent")
        wait = not_before - self._clock()
        if wait > 0:
            await self._sleep(min(wait, MAX_RETRY_DELAY_S))
        attempts = await self._try(url, value, bundle_id)
        if attempts.delivered:
            await self._record(alert, url, attempts, None, trace)
        else:
            retry_in = await self._park(url, bundle_id, value, rounds + 1)
            await self._record(alert, url, attempts, None, trace, rounds + 1, retry_in)


def _alert(value: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(value)
    except RecursionError:
        raise ValueError("alert record nests JSON too deeply") from None
    if not isinstance(doc, dict):
        raise ValueError("alert record is not a JSON object")
    return doc
