"""The faust-streaming app factory every stream worker (care, nlp, imaging) uses.

Timeouts follow FIELD-NOTES: with faust's defaults a new consumer group waits
~20 s for its first record on Tansu; these values bring that to a few seconds.
Records are raw bytes (FHIR JSON exactly as validated at the edge); handlers
decode what they need.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST

from carepulse.shared.health import HealthChecks
from carepulse.shared.metrics import render_metrics
from carepulse.shared.settings import Settings


def make_stream_app(
    settings: Settings,
    name: str,
    *,
    web_port: int,
    data_dir: Path,
    health: HealthChecks,
) -> faust.App:
    """A faust app for consumer group ``name`` with health and metrics on ``web_port``.

    Offsets are committed only after the agent has finished with an event, so a
    worker killed mid-stream re-reads what it had not finished (at-least-once);
    handlers make their output idempotent by deriving ids from the input.
    """
    app = faust.App(
        name,
        broker=[f"kafka://{s}" for s in settings.kafka_servers],
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(data_dir),
        web_enabled=True,
        web_host="127.0.0.1" if settings.kafka_servers[0].startswith("127.") else "0.0.0.0",
        web_port=web_port,
        web_in_thread=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_max_poll_interval=10.0,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_acks=-1,
        producer_max_request_size=16 * 1024 * 1024,
        stream_wait_empty=True,
    )

    @app.page("/livez")
    async def livez(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ok, detail = await health.readiness()
        return web.json({"status": "ok" if ok else "unavailable", "checks": detail}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(render_metrics(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return app


Handler = Callable[..., Awaitable[None]]
