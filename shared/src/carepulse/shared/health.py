"""Liveness and readiness, independent of the web framework serving them.

``/livez``: the process is running. ``/readyz``: every dependency it needs answers
(Kafka, Redis, …); orchestrators send traffic only when it is ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Check = Callable[[], Awaitable[bool] | bool]


class HealthChecks:
    """Named readiness checks; each returns True when its dependency is usable."""

    def __init__(self, timeout: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = timeout

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def _run(self, check: Check) -> bool:
        try:
            result = check()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await asyncio.wait_for(result, self._timeout)
            return bool(result)
        except Exception:
            return False

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        detail = {n: "ok" if r else "failing" for n, r in zip(names, results, strict=True)}
        return all(results), detail
