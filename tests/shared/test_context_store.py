"""The patient-context store against a real Redis-protocol server (Valkey), plain and encrypted."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from carepulse.shared.context_crypto import AuthenticationError, UnknownKeyError, new_key_entry
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


def test_writes_survive_a_server_that_lost_its_scripts(settings: Settings) -> None:
    """A Redis restart or SCRIPT FLUSH empties the script cache: the next write reloads it."""
    async def scenario(store: PatientContextStore):  # type: ignore[no-untyped-def]
        await store.put_many("p-flush", [("vitals", "pulse", 100.0, {"value": 60})])
        await store._redis.script_flush()
        hashes, _ = await store.put_and_get("p-flush", [("vitals", "pulse", 200.0, {"value": 90}),
                                                        ("vitals", "resp", 50.0, {"value": 20})], ["vitals"], [])
        stale, _ = await store.put_and_get("p-flush", [("vitals", "pulse", 150.0, {"value": 70})], ["vitals"], [])
        return hashes["vitals"], stale["vitals"]

    fresh, after_stale = run(settings, scenario)
    assert fresh["pulse"]["value"] == 90 and fresh["resp"]["value"] == 20
    assert after_stale["pulse"]["value"] == 90  # the older reading still loses


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


# --- encryption at rest (CAREPULSE_CONTEXT_KEYS) ---------------------------------------------

def keyed(settings: Settings, keys: str | None) -> Settings:
    return settings.model_copy(update={"context_keys": SecretStr(keys) if keys is not None else None})


def with_store(settings: Settings, scenario):  # type: ignore[no-untyped-def]
    """Run ``scenario(store, raw_redis)`` with a store built from ``settings`` like a worker does."""
    async def main():  # type: ignore[no-untyped-def]
        store = PatientContextStore.from_settings(settings, ttl_seconds=60)
        r = make_redis(settings)
        try:
            return await scenario(store, r)
        finally:
            await store.close()
            await r.aclose()
    return asyncio.run(main())


def test_encrypted_values_are_unreadable_in_redis_and_without_the_key(settings: Settings) -> None:
    old = new_key_entry("k2025")
    key = PatientContextStore.key("p-enc", "vitals")

    async def write(store: PatientContextStore, r):  # type: ignore[no-untyped-def]
        assert store.encrypted
        assert await store.put_latest("p-enc", "vitals", "temp", 200.0, {"value": 37.2, "display": "Patient temp"})
        # The newer-wins compare still works on the envelope's clear time.
        assert not await store.put_latest("p-enc", "vitals", "temp", 100.0, {"value": 40.1})
        await store.set_value("p-enc", "news2-alert", '{"band": "high"}')
        return await r.hget(key, "temp"), await r.get(PatientContextStore.key("p-enc", "news2-alert"))

    raw, raw_state = with_store(keyed(settings, old), write)
    for secret in (b"37.2", b"40.1", b"Patient", b"value", b"high"):
        assert secret not in raw and secret not in raw_state
    envelope = json.loads(raw)
    assert envelope["t"] == 200.0 and envelope["enc"].startswith("v1:k2025:") and raw_state.startswith(b"v1:k2025:")

    async def read(store: PatientContextStore, r):  # type: ignore[no-untyped-def]
        return await store.get_section("p-enc", "vitals")

    with pytest.raises(UnknownKeyError, match="no context key configured"):
        with_store(keyed(settings, None), read)
    with pytest.raises(UnknownKeyError, match="k2025"):
        with_store(keyed(settings, new_key_entry("other")), read)

    # Rotation: prepend a new key; old values still open, new writes use the new key.
    async def after_rotation(store: PatientContextStore, r):  # type: ignore[no-untyped-def]
        before = await store.get_section("p-enc", "vitals")
        state = await store.get_value("p-enc", "news2-alert")
        assert await store.put_latest("p-enc", "vitals", "pulse", 300.0, {"value": 88})
        ctx, singles = await store.get_many("p-enc", ["vitals"], ["news2-alert"])
        return before, state, ctx, singles, json.loads(await r.hget(key, "pulse"))["enc"]

    rotated = keyed(settings, f"{new_key_entry('k2026')},{old}")
    before, state, ctx, singles, pulse_enc = with_store(rotated, after_rotation)
    assert before == {"temp": {"value": 37.2, "display": "Patient temp", "t": 200.0}}
    assert state == '{"band": "high"}' and singles == {"news2-alert": state}
    assert ctx["vitals"]["pulse"] == {"value": 88, "t": 300.0} and ctx["vitals"]["temp"]["value"] == 37.2
    assert pulse_enc.startswith("v1:k2026:")


def test_a_value_moved_or_retimed_in_redis_fails_to_open(settings: Settings) -> None:
    keys = new_key_entry("k1")

    async def scenario(store: PatientContextStore, r):  # type: ignore[no-untyped-def]
        await store.put_latest("p-a", "labs", "lactate", 50.0, {"value": 4.1})
        raw = await r.hget(PatientContextStore.key("p-a", "labs"), "lactate")
        await r.hset(PatientContextStore.key("p-b", "labs"), "lactate", raw)  # another patient
        await r.hset(PatientContextStore.key("p-a", "labs"), "creatinine", raw)  # another field
        errors = []
        for pid in ("p-b", "p-a"):
            try:
                await store.get_section(pid, "labs")
            except AuthenticationError as exc:
                errors.append(str(exc))
        doc = json.loads(raw)
        await r.hset(PatientContextStore.key("p-c", "labs"), "lactate", json.dumps({**doc, "t": 9e9}))
        with pytest.raises(AuthenticationError):  # a forged time (to block updates) is caught too
            await store.get_section("p-c", "labs")
        await r.hset(PatientContextStore.key("p-d", "labs"), "lactate", json.dumps({"value": 1.0, "t": 1.0}))
        with pytest.raises(AuthenticationError, match="plaintext"):
            await store.get_section("p-d", "labs")
        return errors

    errors = with_store(keyed(settings, keys), scenario)
    assert len(errors) == 2 and "carepulse:patient:p-b:labs" in errors[0] and "[creatinine]" in errors[1]
    assert all("4.1" not in e for e in errors)


def test_without_keys_values_stay_plain_json(settings: Settings) -> None:
    async def scenario(store: PatientContextStore, r):  # type: ignore[no-untyped-def]
        assert not store.encrypted
        await store.put_latest("p-plain", "vitals", "spo2", 1.0, {"value": 97})
        return await r.hget(PatientContextStore.key("p-plain", "vitals"), "spo2")

    assert json.loads(with_store(keyed(settings, "  "), scenario)) == {"value": 97, "t": 1.0}


def test_care_scores_the_demo_scenario_the_same_with_encryption(settings: Settings) -> None:
    # Care-level check (imports the care service): identical NEWS2 results, nothing readable at rest.
    from carepulse.care.processor import CareProcessor
    from carepulse.care.settings import CareSettings
    from carepulse.shared.demo.scenario import rounds
    from carepulse.shared.kafka.streams import Outgoing
    from carepulse.shared.topics import Topics

    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    raws = [json.dumps(e["resource"]).encode() for rnd in rounds(start, None) for b in rnd for e in b["entry"]]

    def scores(s: Settings) -> tuple[list[tuple[str, int, str]], list[bytes]]:
        out: list[Outgoing] = []

        async def publish(rec: Outgoing) -> None:
            out.append(rec)

        async def main() -> list[bytes]:
            store = PatientContextStore.from_settings(s)
            r = make_redis(s)
            try:
                await r.flushdb()
                p = CareProcessor(Topics.with_prefix(s.topic_prefix), store, publish, CareSettings(**s.model_dump()))
                for raw in raws:
                    await p.on_observation(None, raw, None)
                dump = []
                for k in await r.keys("carepulse:patient:*"):
                    dump += list((await r.hgetall(k)).values()) if await r.type(k) == b"hash" else [await r.get(k)]
                return dump
            finally:
                await store.close()
                await r.aclose()

        dump = asyncio.run(main())
        docs = [json.loads(o.value) for o in out]
        return [(d["subject"]["reference"], d["valueInteger"], d["status"]) for d in docs
                if d["resourceType"] == "Observation" and d["code"]["coding"][0]["code"] == "1104051000000101"], dump

    plain, plain_dump = scores(keyed(settings, None))
    sealed, sealed_dump = scores(keyed(settings, new_key_entry("k1")))
    assert plain and sealed == plain and any(v for _, v, _ in plain)
    assert any(b'"value"' in v for v in plain_dump)  # the check below would catch plaintext
    assert sealed_dump and all(b'"value"' not in v and b"v1:k1:" in v for v in sealed_dump)
