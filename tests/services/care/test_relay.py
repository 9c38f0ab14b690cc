"""The webhook relay against a real local HTTP receiver that refuses the first tries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from carepulse.care.relay import WebhookRelay
from carepulse.care.settings import CareSettings
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.topics import Topics

SECRET = "s3cret-for-tests"


class Receiver:
    """Accepts a POST only after ``fail_first`` refusals per alert; remembers what it accepted."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts: dict[str, int] = {}
        self.accepted: dict[str, bytes] = {}
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if self.headers.get("X-CarePulse-Signature") != expected:
                    receiver.bad_signatures += 1
                receiver.attempts[key] = receiver.attempts.get(key, 0) + 1
                ok = receiver.attempts[key] > receiver.fail_first
                if ok:
                    receiver.accepted.setdefault(key, body)  # idempotent: a repeat is not a second alert
                self.send_response(200 if ok else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    r = Receiver(request.param)
    yield r
    r.server.shutdown()


def alerts(n: int) -> list[bytes]:
    return [json.dumps({"resourceType": "Bundle", "id": f"alert-{i}", "type": "message"}).encode() for i in range(n)]


def relay_run(receiver: Receiver, bodies: list[bytes], max_attempts: int) -> list[Outgoing]:
    parked: list[Outgoing] = []

    async def publish(rec: Outgoing) -> None:
        parked.append(rec)

    async def no_sleep(_: float) -> None:
        pass

    async def main() -> None:
        settings = CareSettings(webhook_secret=SECRET, webhook_max_attempts=max_attempts)
        relay = WebhookRelay([receiver.url], settings, Topics.with_prefix(), publish, sleep=no_sleep)
        for body in bodies:
            await relay.deliver(None, body, [])
        # What could not be delivered comes back from the retry topic, until accepted.
        while parked:
            rec = parked.pop(0)
            await relay.redeliver(rec.key.encode(), rec.value, rec.headers)

    asyncio.run(main())
    return parked


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_retries_within_one_delivery(receiver: Receiver) -> None:
    relay_run(receiver, alerts(10), max_attempts=5)
    assert sorted(receiver.accepted) == sorted(f"alert-{i}" for i in range(10))
    assert set(receiver.attempts.values()) == {3} and receiver.bad_signatures == 0


@pytest.mark.parametrize("receiver", [7], indirect=True)
def test_a_receiver_down_longer_gets_every_alert_through_the_retry_topic(receiver: Receiver) -> None:
    bodies = alerts(4)
    relay_run(receiver, bodies, max_attempts=3)
    assert {k: v for k, v in receiver.accepted.items()} == {f"alert-{i}": b for i, b in enumerate(bodies)}
    assert set(receiver.attempts.values()) == {8}  # 3 + 3 (first retry round) + 2


def test_retry_record_for_unknown_target_is_rejected() -> None:
    async def publish(rec: Outgoing) -> None:
        raise AssertionError

    relay = WebhookRelay(["http://127.0.0.1:9/x"], CareSettings(), Topics.with_prefix(), publish)
    with pytest.raises(ValueError):
        asyncio.run(relay.redeliver(None, b"{}", [("target-url", b"http://elsewhere/")]))
