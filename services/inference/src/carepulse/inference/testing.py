"""Test support: the real inference server on its own event-loop thread, for in-process tests.

Lives with the service so every test that needs a live server (inference's own, and the
services that call it) uses this one; nothing here runs in production.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from carepulse.inference.server import InferenceServer
from carepulse.inference.settings import InferenceSettings

T = TypeVar("T")


class ServerThread:
    """An InferenceServer on its own event loop thread, so sync clients (tritonclient) can drive it."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.server = InferenceServer(settings)
        self._thread = threading.Thread(target=self.loop.run_forever, name="inference-server", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.call(self.server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.metrics_port}"


def local_settings(repo: Path, **overrides: Any) -> InferenceSettings:
    """Settings for a test server: loopback only, ephemeral ports, CPU."""
    values: dict[str, Any] = dict(model_repository=repo, bind_host="127.0.0.1", inference_grpc_port=0,
                                  inference_metrics_port=0, inference_providers="cpu", inference_threads=1,
                                  inference_shutdown_grace_s=1.0)
    values.update(overrides)
    return InferenceSettings(**values)
