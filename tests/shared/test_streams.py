"""The stream workers' runtime against a real broker: group hand-over, commits, failures."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.headers import Headers, fhir_headers
from carepulse.shared.kafka.lag import LagMonitor
from carepulse.shared.kafka.producer import FhirProducer, OutRecord, make_producer
from carepulse.shared.kafka.streams import StreamApp, add_handler, make_publisher, make_stream_app
from carepulse.shared.platform.processes import free_port
from carepulse.shared.settings import Settings
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
KEYS = 30


def _produce(settings: Settings, topic: str, n: int) -> None:
    producer = FhirProducer(make_producer(settings, "streams-test"))
    try:
        records = [OutRecord(topic, f"Patient/p{i % KEYS}", f"{i}".encode(), fhir_headers("Basic", f"e{i}", "t"))
                   for i in range(n)]
        assert asyncio.run(producer.send_many(records)) == [None] * n
    finally:
        producer.close()


def _app(settings: Settings, group: str, topics: Topics, handle: object) -> StreamApp:
    app = make_stream_app(settings, group, web_port=free_port(), health=HealthChecks())
    add_handler(app, topics.observation, handle, service="streams-test",  # type: ignore[arg-type]
                deadletter_topic=topics.deadletter, source_name="streams-test", publish=make_publisher(app))
    return app


def _placed(settings: Settings, topic: str, n: int) -> dict[int, tuple[int, int]]:
    """Where each record landed: value -> (partition, offset)."""
    reader = TopicReader(settings)
    try:
        return {int(r.value): (r.partition, r.offset) for r in reader.read(topic, at_least=n)}
    finally:
        reader.close()


def _committed(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The group's committed position per partition. Ends come from the records themselves:
    Tansu's ListOffsets does not count every record of a batch (it answered 1 for a partition
    holding 30 records produced as one batch)."""
    monitor = LagMonitor(settings, groups=[group])
    try:
        return {p.partition: p.committed for p in monitor.measure() if p.topic == topic}
    finally:
        monitor.stop()


def test_a_member_leaving_mid_stream_hands_over_without_losing_or_reordering(settings: Settings,
                                                                            topics: Topics) -> None:
    n = 600
    _produce(settings, topics.observation, n)
    group = f"carepulse-test-{uuid.uuid4().hex[:8]}"
    seen: dict[str, list[int]] = {"a": [], "b": []}
    by_key: dict[bytes, list[int]] = {}
    stop_a, stop_b = asyncio.Event(), asyncio.Event()

    def handler(member: str) -> object:
        async def handle(key: bytes | None, value: bytes, headers: Headers) -> None:
            await asyncio.sleep(0.002)  # slow enough that both members hold records in flight
            seen[member].append(int(value))
            by_key.setdefault(key or b"", []).append(int(value))
            if member == "a" and len(seen["a"]) == 100:
                stop_a.set()  # a leaves with the rest of its partitions unread
            if len({*seen["a"], *seen["b"]}) == n:
                stop_b.set()
        return handle

    async def main() -> None:
        a = _app(settings, group, topics, handler("a"))
        b = _app(settings, group, topics, handler("b"))
        await asyncio.wait_for(asyncio.gather(a.run(stop_a), b.run(stop_b)), 90)

    asyncio.run(main())
    ends: dict[int, int] = {}
    for partition, offset in _placed(settings, topics.observation, n).values():
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    assert {*seen["a"], *seen["b"]} == set(range(n))  # nothing lost
    assert seen["a"] and seen["b"]
    for values in by_key.values():  # each patient's records in order, a re-read only repeats a tail
        firsts = list(dict.fromkeys(values))
        assert firsts == sorted(firsts)
    assert _committed(settings, group, topics.observation) == ends  # committed up to the end, not past it


def test_an_unexpected_handler_error_stops_the_worker_before_the_record_is_committed(settings: Settings,
                                                                                    topics: Topics) -> None:
    n = 90
    _produce(settings, topics.observation, n)
    group = f"carepulse-test-{uuid.uuid4().hex[:8]}"
    poison = 45
    handled: list[int] = []

    async def buggy(key: bytes | None, value: bytes, headers: Headers) -> None:
        if int(value) == poison:
            raise RuntimeError("a bug, not bad input")  # neither TRANSIENT nor PERMANENT
        handled.append(int(value))

    async def fixed(key: bytes | None, value: bytes, headers: Headers) -> None:
        handled.append(int(value))
        if poison in handled:
            stop.set()

    stop = asyncio.Event()
    with pytest.raises(ExceptionGroup) as failed:
        asyncio.run(asyncio.wait_for(_app(settings, group, topics, buggy).run(asyncio.Event()), 60))
    assert failed.group_contains(RuntimeError)
    partition, offset = _placed(settings, topics.observation, n)[poison]
    assert poison not in handled
    assert _committed(settings, group, topics.observation).get(partition, 0) <= offset

    # The restarted worker takes the record up again: it was never committed.
    asyncio.run(asyncio.wait_for(_app(settings, group, topics, fixed).run(stop), 60))
    assert poison in handled
