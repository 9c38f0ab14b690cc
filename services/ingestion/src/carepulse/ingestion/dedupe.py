"""Publish-once across retries, restarts and crashes: a Redis record of every event seen.

Each event has one or more dedupe keys (``carepulse:ingestion:seen:<event-id>``).
Publishing is claim → publish → mark:

1. *claim*: ``SET key pending:<instance>:<ms> NX`` for every key of the record (one Lua call
   per batch). A key already ``done`` means the event was published: skip it. A key
   pending under a live instance means another request is publishing it right now: wait.
2. *publish* and await the broker's acks.
3. *mark*: the keys become ``done`` (with the TTL). A failed publish releases the claim.

A crash between 2 and 3 leaves a claim whose owner has no lease any more
(``carepulse:ingestion:instance:<id>``, refreshed while the process lives). Whoever meets
such a stale claim asks the topic itself (:class:`TopicProbe`) whether a record with that
``event-id`` got there: if so it marks it ``done`` and skips it, otherwise it takes the
claim over and publishes. So a resend after a kill neither loses nor duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

PREFIX = "carepulse:ingestion:seen:"
LEASE_PREFIX = "carepulse:ingestion:instance:"
DONE = "done"

# KEYS: dedupe keys; ARGV: pending token, ttl. Returns per key "" (claimed) or the value found.
_CLAIM = """
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, ARGV[1], 'NX', 'EX', ARGV[2]) then out[i] = '' else out[i] = redis.call('GET', k) or '' end
end
return out
"""
# KEYS: keys; ARGV: expected value ('' = any), new value ('' = delete), ttl. Compare-and-set each key.
_SWAP = """
local n = 0
for _, k in ipairs(KEYS) do
  local cur = redis.call('GET', k)
  if ARGV[1] == '' or cur == ARGV[1] then
    if ARGV[2] == '' then redis.call('DEL', k) else redis.call('SET', k, ARGV[2], 'EX', ARGV[3]) end
    n = n + 1
  end
end
return n
"""


class DedupeUnavailable(RuntimeError):
    """The dedupe store cannot be reached (transient: the sender should retry)."""


class StillPending(RuntimeError):
    """Another live ingestion instance has been publishing this event for too long."""


@dataclass(frozen=True)
class StaleClaim:
    """A claim left by a dead instance: ``event_id`` may or may not have reached ``topic``."""

    index: int
    topic: str
    event_id: str
    since_ms: int


# Given stale claims, return the event ids that are on their topics already.
TopicProbe = Callable[[Sequence[StaleClaim]], Awaitable[set[str]]]


class SeenStore:
    def __init__(self, client: aioredis.Redis, ttl_s: int, lease_s: float = 5.0, busy_wait_s: float = 20.0) -> None:
        self._r = client
        self._ttl = ttl_s
        self._lease_s = lease_s
        self._busy_wait_s = busy_wait_s
        self.instance = uuid.uuid4().hex
        self._claim = client.register_script(_CLAIM)
        self._swap = client.register_script(_SWAP)
        self._lease_task: asyncio.Task[None] | None = None
        # Keys this process has claimed and not yet marked: its own claims on anything else
        # were left by a publish that failed to mark (e.g. Redis blipped) and are stale.
        self._inflight: set[str] = set()

    # --- lease ------------------------------------------------------------------
    async def start(self) -> None:
        await self._renew()
        self._lease_task = asyncio.create_task(self._keep_lease(), name="dedupe-lease")

    async def _renew(self) -> None:
        await self._r.set(LEASE_PREFIX + self.instance, "1", px=int(self._lease_s * 1000))

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 4)
            try:
                await self._renew()
            except Exception:  # noqa: BLE001 - Redis down: readiness reports it; keep trying
                log.warning("dedupe lease renewal failed")

    async def stop(self) -> None:
        if self._lease_task:
            self._lease_task.cancel()
        with contextlib.suppress(Exception):  # best effort on shutdown
            await self._r.delete(LEASE_PREFIX + self.instance)
        await self._r.aclose()

    async def ping(self) -> bool:
        return bool(await self._r.ping())

    # --- claim / mark -----------------------------------------------------------------
    def _token(self) -> str:
        return f"pending:{self.instance}:{int(time.time() * 1000)}"

    async def claim(self, keys: Sequence[Sequence[str]], topics: Sequence[str], probe: TopicProbe) -> list[bool]:
        """Claim each record's keys; True: publish it now, False: already published (skip).

        Raises :class:`StillPending` when another live instance holds a claim past the wait,
        :class:`DedupeUnavailable` when Redis cannot be reached.
        """
        result: list[bool | None] = [None] * len(keys)
        todo = list(range(len(keys)))
        deadline = time.monotonic() + self._busy_wait_s
        try:
            while todo:
                todo = await self._claim_round(todo, keys, topics, probe, result)
                if todo:
                    if time.monotonic() > deadline:
                        raise StillPending(f"{len(todo)} event(s) still being published by another request")
                    await asyncio.sleep(0.05)
        except (StillPending, DedupeUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - any Redis failure is transient for the sender
            raise DedupeUnavailable(f"dedupe store: {exc}") from exc
        return [bool(r) for r in result]

    async def _claim_round(self, todo: list[int], keys: Sequence[Sequence[str]], topics: Sequence[str],
                           probe: TopicProbe, result: list[bool | None]) -> list[int]:
        token = self._token()
        found = await self._claim(keys=[PREFIX + k for i in todo for k in keys[i]], args=[token, self._ttl])
        busy: list[int] = []
        contested: list[tuple[int, str, int]] = []
        release: list[str] = []
        pos = 0
        for i in todo:
            vals = [v.decode() if isinstance(v, bytes) else str(v) for v in found[pos:pos + len(keys[i])]]
            pos += len(keys[i])
            if all(v == "" for v in vals):
                result[i] = True
                self._inflight.update(keys[i])
                continue
            release += [PREFIX + k for k, v in zip(keys[i], vals, strict=True) if v == ""]
            others = [v for v in vals if v]
            if DONE in others:
                result[i] = False
                continue
            owner, since = _owner(others[0])
            if not owner or (owner == self.instance and keys[i][0] in self._inflight):
                busy.append(i)  # an earlier request of this process is publishing it now
            else:
                contested.append((i, owner, since))
        if release:
            await self._swap(keys=release, args=[token, "", 0])
        alive = await self._alive({o for _, o, _ in contested}) - {self.instance}
        busy += [i for i, o, _ in contested if o in alive]
        dead = [StaleClaim(i, topics[i], keys[i][0], since) for i, o, since in contested if o not in alive]
        if dead:
            await self._recover(dead, keys, probe, result)
            busy += [s.index for s in dead if result[s.index] is None]
        return busy

    async def _alive(self, owners: set[str]) -> set[str]:
        if not owners:
            return set()
        names = sorted(owners)
        found = await self._r.mget([LEASE_PREFIX + o for o in names])
        return {o for o, v in zip(names, found, strict=True) if v is not None}

    async def _recover(self, stale: list[StaleClaim], keys: Sequence[Sequence[str]], probe: TopicProbe,
                       result: list[bool | None]) -> None:
        present = await probe(stale)
        for s in stale:
            ks = [PREFIX + k for k in keys[s.index]]
            raw = await self._r.get(ks[0])
            if raw is None:
                continue  # released meanwhile: the next round claims it normally
            old = raw.decode()
            if old == DONE:
                result[s.index] = False
            elif s.event_id in present:
                await self._swap(keys=ks, args=["", DONE, self._ttl])
                result[s.index] = False
                log.info("recovered a crashed publish", extra={"fields": {"event_id": s.event_id, "on_topic": True}})
            elif await self._swap(keys=ks[:1], args=[old, self._token(), self._ttl]):
                # Taken over (compare-and-set: one instance wins); the other keys follow.
                await self._swap(keys=ks[1:], args=["", self._token(), self._ttl])
                result[s.index] = True
                self._inflight.update(keys[s.index])
                log.info("recovered a crashed publish", extra={"fields": {"event_id": s.event_id, "on_topic": False}})

    async def mark_done(self, keys: Sequence[str]) -> None:
        self._inflight.difference_update(keys)
        if keys:
            await self._swap(keys=[PREFIX + k for k in keys], args=["", DONE, self._ttl])

    async def release(self, keys: Sequence[str]) -> None:
        """Give up claims after a failed publish, so a retry publishes."""
        self._inflight.difference_update(keys)
        if keys:
            await self._swap(keys=[PREFIX + k for k in keys], args=["", "", 0])


def _owner(token: str) -> tuple[str, int]:
    parts = token.split(":")
    if len(parts) == 3 and parts[0] == "pending":
        return parts[1], int(parts[2])
    return "", 0
