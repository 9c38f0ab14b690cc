"""FHIR Subscription notifications (R4B/R5, and the R4 backport HAPI sends) as ingestion input.

A notification is a Bundle whose first entry says what happened (``SubscriptionStatus``
in R4B/R5, a ``Parameters`` status in the R4 backport); the entries after it carry the
changed resources (``full-resource``) or only their URLs (``id-only``), in which case
the resource is fetched from the one configured FHIR server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from carepulse.shared.fhir.codec import FhirValidationError, Issue

_EVENT_TYPES = ("event-notification", "query-event")
_QUIET_TYPES = ("handshake", "heartbeat", "query-status")


class FetchFailed(RuntimeError):
    """The configured FHIR server did not return a resource of an id-only notification (transient)."""


@dataclass
class Notification:
    kind: str  # handshake, heartbeat, event-notification, ...
    subscription: str | None
    # (entry index, resource or None, reference to fetch when None)
    items: list[tuple[int, dict[str, Any] | None, str | None]] = field(default_factory=list)


def _status_fields(status: dict[str, Any]) -> tuple[str, str | None, list[str]]:
    """(notification type, subscription reference, focus references) of the status entry."""
    if status.get("resourceType") == "SubscriptionStatus":
        sub = status.get("subscription")
        focus = [str(e.get("focus", {}).get("reference")) for e in status.get("notificationEvent") or []
                 if isinstance(e, dict) and isinstance(e.get("focus"), dict) and e["focus"].get("reference")]
        return str(status.get("type", "")), sub.get("reference") if isinstance(sub, dict) else None, focus
    # R4 backport: Parameters with named parts.
    kind, sub, focus = "", None, []
    for p in status.get("parameter") or []:
        if not isinstance(p, dict):
            continue
        if p.get("name") == "type":
            kind = str(p.get("valueCode", ""))
        elif p.get("name") == "subscription" and isinstance(p.get("valueReference"), dict):
            sub = p["valueReference"].get("reference")
        elif p.get("name") == "notification-event":
            for part in p.get("part") or []:
                if isinstance(part, dict) and part.get("name") == "focus" and isinstance(
                        part.get("valueReference"), dict):
                    focus.append(str(part["valueReference"].get("reference")))
    return kind, sub, focus


def parse_notification(bundle: Any) -> Notification:
    """Read a notification Bundle; raises :class:`FhirValidationError` when it is not one."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirValidationError([Issue("invalid", "a Subscription notification is a Bundle", "resourceType")])
    if bundle.get("type") not in ("subscription-notification", "history"):
        raise FhirValidationError([Issue("invalid", "notification Bundle type must be subscription-notification "
                                                    "(R4B/R5) or history (R4 backport)", "Bundle.type")])
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise FhirValidationError([Issue("required", "the first entry must be the subscription status",
                                         "Bundle.entry[0]")])
    status = entries[0].get("resource")
    if not isinstance(status, dict) or status.get("resourceType") not in ("SubscriptionStatus", "Parameters"):
        raise FhirValidationError([Issue("required", "the first entry must be a SubscriptionStatus (or the R4 "
                                                     "backport's Parameters)", "Bundle.entry[0].resource")])
    kind, sub, focus = _status_fields(status)
    if kind not in _EVENT_TYPES + _QUIET_TYPES:
        raise FhirValidationError([Issue("value", f"unknown notification type {kind[:40]!r}",
                                         "Bundle.entry[0].resource.type")])
    note = Notification(kind, sub)
    if kind in _QUIET_TYPES:
        return note
    seen_urls: set[str] = set()
    for i, e in enumerate(entries[1:], start=1):
        if not isinstance(e, dict):
            raise FhirValidationError([Issue("structure", "entry must be an object", f"Bundle.entry[{i}]")])
        res = e.get("resource")
        url = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
        if isinstance(res, dict):
            note.items.append((i, res, None))
        elif url:
            note.items.append((i, None, url))
        else:
            raise FhirValidationError([Issue("required", "entry has neither resource nor fullUrl",
                                             f"Bundle.entry[{i}]")])
        if url:
            seen_urls.add(url)
    # id-only notifications may carry the focus only in the status (no further entries).
    for ref in focus:
        if ref not in seen_urls and not any(r is not None and _ref_of(r) == _tail(ref) for _, r, _ in note.items):
            note.items.append((0, None, ref))
    return note


def _ref_of(res: dict[str, Any]) -> str:
    return f"{res.get('resourceType')}/{res.get('id')}"


def resource_type_of(resource: dict[str, Any] | None, url: str | None) -> str:
    """Resource type of a notification item: the resource's own, or the one its URL names."""
    if resource is not None:
        return str(resource.get("resourceType", ""))
    ref = _tail(url or "")
    return ref.split("/")[0] if "/" in ref else ""


def _tail(url: str) -> str:
    """``Type/id`` of a relative or absolute resource URL (``_history`` dropped)."""
    parts = url.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:])


class ResourceFetcher:
    """Fetches id-only resources, only ever from the configured server (never a URL the sender chose)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._base = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s, headers={"Accept": "application/fhir+json"})

    async def fetch(self, url: str) -> bytes:
        if not self._base:
            raise FhirValidationError([Issue("not-supported", "id-only notification, but no FHIR server is "
                                                              "configured (CAREPULSE_INGESTION_FHIR_SERVER_URL)")])
        ref = _tail(url)
        if ref.count("/") != 1 or not all(ref.split("/")):
            raise FhirValidationError([Issue("invalid", f"cannot tell the resource of {url[:80]!r}")])
        try:
            r = await self._client.get(f"{self._base}/{ref}")
        except httpx.HTTPError as e:
            raise FetchFailed(f"fetching {ref}: {type(e).__name__}") from e
        if r.status_code in (404, 410):
            raise FhirValidationError([Issue("not-found", f"{ref} is not on the FHIR server ({r.status_code})")])
        if r.status_code != 200:
            raise FetchFailed(f"fetching {ref}: HTTP {r.status_code}")
        return r.content

    async def close(self) -> None:
        await self._client.aclose()
