"""The patient-context store in Redis (``carepulse:patient:<id>:…``).

The cache is disposable (rebuilt by replaying topics), but it must never let an
older reading replace a newer one that arrived first: writes compare effective
times atomically in Redis.

With ``CAREPULSE_CONTEXT_KEYS`` set, every value is sealed with AES-GCM (see
:mod:`carepulse.shared.context_crypto`). A hash field then holds ``{"t": <time>, "enc":
"v1:<kid>:<base64>"}``: the effective time stays outside the ciphertext so the Lua compare
still works, and is bound to it as associated data together with the Redis key and field,
so neither the time nor the place of a value can be changed without the read failing.
Single values hold the sealed text itself. Without keys, values are plain JSON as before.
A store with keys refuses plaintext values (they could have been written by anyone with
access to Redis): after turning encryption on, flush the cache and run ``carepulse context
rebuild``.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from carepulse.shared.context_crypto import (
    AuthenticationError,
    ContextCryptoError,
    Keyring,
    is_sealed,
    open_sealed,
    seal,
)
from carepulse.shared.redis_client import make_redis  # the one factory (TLS, ACL); re-exported
from carepulse.shared.settings import Settings

# Replace a hash field only if the stored value's "t" (epoch seconds) is not newer. Both the
# plain document and the encrypted envelope carry "t" at the top level.
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

# Writes (as _SET_IF_NEWER, one per hash field) then reads of one patient, in one command.
# KEYS: the written hashes, then the hashes read whole, then the single values read.
# ARGV: number of writes, number of hashes read, TTL, then (field, time, document) per write.
# Returns the flat HGETALL of each hash read, then each value (nil when missing).
_PUT_AND_GET = """
local nw, ns, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nw do
  local key, a = KEYS[i], 3 + (i - 1) * 3
  local cur = redis.call('HGET', key, ARGV[a + 1])
  local t = cur and cjson.decode(cur)['t']
  if not (t and tonumber(t) > tonumber(ARGV[a + 2])) then
    redis.call('HSET', key, ARGV[a + 1], ARGV[a + 3])
    redis.call('EXPIRE', key, ttl)
  end
end
local out = {}
for i = nw + 1, nw + ns do out[#out + 1] = redis.call('HGETALL', KEYS[i]) end
for i = nw + ns + 1, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) end
return out
"""


def context_keyring(settings: Settings) -> Keyring | None:
    """The keyring from ``CAREPULSE_CONTEXT_KEYS``, or None (plaintext) when unset or blank."""
    spec = settings.context_keys.get_secret_value() if settings.context_keys else ""
    return Keyring.parse(spec) if spec.strip() else None


def _aad(key: str, field: str, effective: object = None) -> bytes:
    # NUL cannot appear in the JSON of the time; key and field are ids we build ourselves.
    return "\0".join(("carepulse-context-v1", key, field, json.dumps(effective))).encode()


class PatientContextStore:
    """Latest values per patient, each stamped with its effective time."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int = 7 * 24 * 3600,
                 keyring: Keyring | None = None) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._keyring = keyring
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self._put_and_get = client.register_script(_PUT_AND_GET)

    @classmethod
    def from_settings(cls, settings: Settings, ttl_seconds: int = 7 * 24 * 3600) -> PatientContextStore:
        """A store on ``settings.redis_url``, encrypting when ``settings.context_keys`` is set."""
        return cls(make_redis(settings), ttl_seconds, context_keyring(settings))

    @property
    def encrypted(self) -> bool:
        return self._keyring is not None

    @staticmethod
    def key(patient_id: str, section: str) -> str:
        return f"carepulse:patient:{patient_id}:{section}"

    def _encode(self, key: str, field: str, effective: float, value: dict[str, Any]) -> str:
        if self._keyring is None:
            return json.dumps({**value, "t": effective})
        sealed = seal(self._keyring, json.dumps(value).encode(), _aad(key, field, effective))
        return json.dumps({"t": effective, "enc": sealed})

    def _decode(self, key: str, field: str, raw: bytes) -> dict[str, Any]:
        doc = json.loads(raw)
        try:
            if isinstance(doc, dict) and doc.keys() == {"t", "enc"} and isinstance(doc["enc"], str) \
                    and is_sealed(doc["enc"]):
                value = json.loads(open_sealed(self._keyring, doc["enc"], _aad(key, field, doc["t"])))
                return {**value, "t": doc["t"]}
            if self._keyring is not None:
                raise AuthenticationError("plaintext value where encrypted values are required")
        except ContextCryptoError as exc:
            raise type(exc)(f"{key} [{field}]: {exc}") from None
        return doc

    def _decode_value(self, key: str, raw: bytes | None) -> str | None:
        if raw is None:
            return None
        text = raw.decode()
        try:
            if is_sealed(text):
                return open_sealed(self._keyring, text, _aad(key, "")).decode()
            if self._keyring is not None:
                raise AuthenticationError("plaintext value where encrypted values are required")
        except ContextCryptoError as exc:
            raise type(exc)(f"{key}: {exc}") from None
        return text

    async def put_latest(
        self, patient_id: str, section: str, field: str, effective: float, value: dict[str, Any]
    ) -> bool:
        """Store ``value`` under ``section``/``field`` unless a newer one is there. True if stored."""
        key = self.key(patient_id, section)
        doc = self._encode(key, field, effective, value)
        stored = await self._set_if_newer(keys=[key], args=[field, repr(effective), doc, self._ttl])
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
        keys: list[str] = []
        args: list[str | int] = [len(items), len(sections), self._ttl]
        for section, field, effective, value in items:
            key = self.key(patient_id, section)
            keys.append(key)
            args += [field, repr(effective), self._encode(key, field, effective, value)]
        keys += [self.key(patient_id, s) for s in sections] + [self.key(patient_id, v) for v in values]
        try:
            # One command, not a pipeline of one per write and read: redis-py's cost is per command.
            reply = await self._redis.evalsha(self._put_and_get.sha, len(keys), *keys, *args)
        except NoScriptError:  # the server lost its scripts (restart, SCRIPT FLUSH): load, resend once
            await self._redis.script_load(_PUT_AND_GET)
            reply = await self._redis.evalsha(self._put_and_get.sha, len(keys), *keys, *args)
        raw = [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in reply[:len(sections)]]
        raw += reply[len(sections):]
        hashes = {s: self._decode_section(patient_id, s, h) for s, h in zip(sections, raw, strict=False)}
        singles = {v: self._decode_value(self.key(patient_id, v), r)
                   for v, r in zip(values, raw[len(sections):], strict=True)}
        return hashes, singles

    async def get_section(self, patient_id: str, section: str) -> dict[str, dict[str, Any]]:
        return self._decode_section(patient_id, section, await self._redis.hgetall(self.key(patient_id, section)))

    def _decode_section(self, patient_id: str, section: str, raw: dict[bytes, bytes]) -> dict[str, dict[str, Any]]:
        key = self.key(patient_id, section)
        return {k.decode(): self._decode(key, k.decode(), v) for k, v in raw.items()}

    async def get_value(self, patient_id: str, name: str) -> str | None:
        key = self.key(patient_id, name)
        return self._decode_value(key, await self._redis.get(key))

    async def set_value(self, patient_id: str, name: str, value: str) -> None:
        key = self.key(patient_id, name)
        stored = value if self._keyring is None else seal(self._keyring, value.encode(), _aad(key, ""))
        await self._redis.set(key, stored, ex=self._ttl)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
