"""The patient-context store against a real Redis-protocol server (Valkey)."""

from __future__ import annotations

import asyncio

import pytest

from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.settings import Settings

pytestmark = pytest.mark.integration


def run(settings: Settings, scenario):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        store = PatientContextStore(make_redis(settings), ttl_seconds=60)
        try:
            return await scenario(store)
        finally:
            await store.close()
    return asyncio.run(main())


def test_newer_reading_wins_even_when_the_older_arrives_last(settings: Settings) -> None:
    async def scenario(store: PatientContextStore):  # type: ignore[no-untyped-def]
        assert await store.put_latest("p-order", "vitals", "pulse", 200.0, {"value": 90})
        assert not await store.put_latest("p-order", "vitals", "pulse", 100.0, {"value": 60})
        return await store.get_section("p-order", "vitals")

    section = run(settings, scenario)
    assert section["pulse"]["value"] == 90 and section["pulse"]["t"] == 200.0


def test_keys_are_namespaced_and_expire(settings: Settings) -> None:
    async def scenario(store: PatientContextStore):  # type: ignore[no-untyped-def]
        await store.put_latest("p-ttl", "vitals", "spo2", 1.0, {"value": 97})
        await store.set_value("p-ttl", "news2-band", "low")
        r = make_redis(settings)
        keys = sorted(k.decode() for k in await r.keys("carepulse:patient:p-ttl:*"))
        ttl = await r.ttl("carepulse:patient:p-ttl:vitals")
        await r.aclose()
        return keys, ttl, await store.ping()

    keys, ttl, ok = run(settings, scenario)
    assert keys == ["carepulse:patient:p-ttl:news2-band", "carepulse:patient:p-ttl:vitals"]
    assert 0 < ttl <= 60 and ok
