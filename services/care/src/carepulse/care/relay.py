"""The webhook relay: every alert Bundle POSTed to each configured URL, never lost.

Each delivery carries ``Idempotency-Key`` (the Bundle id: receivers drop repeats) and
``X-CarePulse-Signature: sha256=<HMAC of the body>`` when a secret is set. A receiver
that fails every attempt gets the alert again later through the retry topic (target
URL, attempt and not-before time in headers), with growing back-off, until it accepts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from carepulse.care.settings import CareSettings
from carepulse.shared.kafka.headers import Headers, header
from carepulse.shared.kafka.streams import Outgoing, Publish
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
MAX_RETRY_DELAY_S = 3600.0


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


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

    async def _post(self, url: str, body: bytes, idempotency_key: str) -> bool:
        headers = {"Content-Type": "application/fhir+json", "Idempotency-Key": idempotency_key}
        if self._secret is not None:
            headers["X-CarePulse-Signature"] = signature(self._secret, body)
        try:
            r = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("webhook unreachable", extra={"fields": {"bundle": idempotency_key,
                                                                 "error": type(exc).__name__}})
            return False
        return 200 <= r.status_code < 300

    async def _try(self, url: str, body: bytes, key: str) -> bool:
        delay = 0.2
        for attempt in range(self._attempts):
            if await self._post(url, body, key):
                return True
            if attempt + 1 < self._attempts:
                await self._sleep(delay)
                delay *= 2
        return False

    async def _park(self, url: str, key: str, body: bytes, rounds: int) -> None:
        wait = min(MAX_RETRY_DELAY_S, 5.0 * 2 ** rounds)
        headers: Headers = [("target-url", url.encode()), ("retry-round", str(rounds).encode()),
                            ("not-before", repr(self._clock() + wait).encode()), ("event-id", key.encode())]
        await self._publish(Outgoing(self._topics.alerts_retry, key, body, headers))
        log.warning("webhook delivery parked on the retry topic",
                    extra={"fields": {"bundle": key, "round": rounds, "retry_in_s": wait}})

    async def deliver(self, key: bytes | None, value: bytes, headers: Headers | None) -> None:
        """One alert from ``carepulse.alerts`` to every URL."""
        bundle_id = str(json.loads(value).get("id", ""))
        for url in self._urls:
            if not await self._try(url, value, bundle_id):
                await self._park(url, bundle_id, value, 0)

    async def redeliver(self, key: bytes | None, value: bytes, headers: Headers | None) -> None:
        """One parked delivery from the retry topic, when its time has come."""
        url = header(headers, "target-url")
        if not url or url not in self._urls:
            raise ValueError(f"retry record for an unknown webhook target {url!r}")
        not_before = float(header(headers, "not-before") or 0)
        rounds = int(header(headers, "retry-round") or 0)
        bundle_id = header(headers, "event-id") or str(json.loads(value).get("id", ""))
        wait = not_before - self._clock()
        if wait > 0:
            await self._sleep(min(wait, MAX_RETRY_DELAY_S))
        if not await self._try(url, value, bundle_id):
            await self._park(url, bundle_id, value, rounds + 1)
