"""The patient-context store in Redis (``carepulse:patient:<id>:…``).

The cache is disposable (rebuilt by replaying topics), but it must never let an
older reading replace a newer one that arrived first: writes compare effective
times atomically in Redis.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from carepulse.shared.settings import Settings

# Replace a hash field only if the stored value's "t" (epoch seconds) is not newer.
_SET_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local t = cjson.decode(cur)['t']
  if t and tonumber(t) > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


def make_redis(settings: Settings) -> aioredis.Redis:
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return aioredis.Redis.from_url(settings.redis_url, password=password, decode_responses=False)


class PatientContextStore:
    """Latest values per patient, each stamped with its effective time."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int = 7 * 24 * 3600) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._set_if_newer = client.register_script(_SET_IF_NEWER)

    @staticmethod
    def key(patient_id: str, section: str) -> str:
        return f"carepulse:patient:{patient_id}:{section}"

    async def put_latest(
        self, patient_id: str, section: str, field: str, effective: float, value: dict[str, Any]
    ) -> bool:
        """Store ``value`` under ``section``/``field`` unless a newer one is there. True if stored."""
        doc = json.dumps({**value, "t": effective})
        stored = await self._set_if_newer(
            keys=[self.key(patient_id, section)], args=[field, repr(effective), doc, self._ttl]
        )
        return bool(stored)

    async def put_many(self, patient_id: str, items: list[tuple[str, str, float, dict[str, Any]]]) -> None:
        """Several ``put_latest`` writes (section, field, effective, value) in one round trip."""
        await self.put_and_get(patient_id, items, [], [])

    async def get_many(self, patient_id: str, sections: list[str], values: list[str]) -> tuple[
            dict[str, dict[str, dict[str, Any]]], dict[str, str | None]]:
        """Several sections and single values of one patient in one round trip."""
        return await self.put_and_get(patient_id, [], sections, values)

    async def put_and_get(
        self, patient_id: str, items: list[tuple[str, str, float, dict[str, Any]]], sections: list[str],
        values: list[str],
    ) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str | None]]:
        """Writes (as ``put_latest``) then reads of one patient, in one round trip: the hot path
        of a stream worker is one Redis exchange per record."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for section, field, effective, value in items:
                doc = json.dumps({**value, "t": effective})
                await self._set_if_newer(keys=[self.key(patient_id, section)],
                                         args=[field, repr(effective), doc, self._ttl], client=pipe)
            for s in sections:
                pipe.hgetall(self.key(patient_id, s))
            for v in values:
                pipe.get(self.key(patient_id, v))
            raw = (await pipe.execute())[len(items):]
        hashes = {s: {k.decode(): json.loads(v) for k, v in h.items()} for s, h in zip(sections, raw, strict=False)}
        singles = {v: (r.decode() if r is not None else None) for v, r in zip(values, raw[len(sections):], strict=True)}
        return hashes, singles

    async def get_section(self, patient_id: str, section: str) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(self.key(patient_id, section))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def get_value(self, patient_id: str, name: str) -> str | None:
        v = await self._redis.get(self.key(patient_id, name))
        return v.decode() if v is not None else None

    async def set_value(self, patient_id: str, name: str, value: str) -> None:
        await self._redis.set(self.key(patient_id, name), value, ex=self._ttl)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
