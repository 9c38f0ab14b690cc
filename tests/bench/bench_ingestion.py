"""Ingestion throughput vs ``fhir.resources`` validation alone, in the same process and run.

Cases (resources are the HL7 R4 vital-sign examples, cycled, ids varied):
* ``validation only`` — ``model_validate`` of each resource with fhir.resources (R4B): the
  in-process limit, since ingestion validates every resource once;
* ``intake core`` — ``Intake.accept`` + publish to a real Tansu broker, acks awaited in windows of 256;
* ``HTTP single POSTs`` — the ingestion service as a subprocess, 16 concurrent clients POSTing
  one resource each (``Prefer: return=minimal``);
* ``HTTP batch Bundles`` — the same service, Bundles of 100 entries, 8 concurrent clients;
* ``HTTP NDJSON bulk`` — the same service, ``POST /fhir/$import`` of 1,000-line NDJSON bodies, 4 clients;
* the Bundle and bulk cases again with ``CAREPULSE_INGESTION_VALIDATION_PROCESSES=2`` (validation in two
  worker processes, off the server's event loop).
Every resource is new (ids vary per case), so the dedupe store (Redis) is on the path as in production.
The ratio is each case's resources/s over validation only. This VM's speed drifts by up to a
quarter within minutes, so validation alone is measured three times (first, between the inline
and the pooled server, last) and the best of the three is the limit: ratios are conservative.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
import tempfile
import time

from carepulse.shared.fhir.codec import _model_class
from carepulse.shared.kafka.admin import create_topics
from carepulse.shared.platform.processes import free_port, spawn, stop
from carepulse.shared.platform.servers import start_broker, start_redis
from carepulse.shared.platform.supervisor import wait_ready
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "fhir" / "hl7-r4-official-examples"
EXAMPLES = ["observation-example-heart-rate.json", "observation-example-respiratory-rate.json",
            "observation-example-bloodpressure.json", "observation-example-body-temperature.json",
            "observation-example-satO2.json"]
DURATION_S = float(os.environ.get("CAREPULSE_BENCH_SECONDS", "3"))


def resources(n: int, tag: str = "") -> list[dict]:
    docs = [json.loads((DATA / f).read_text()) for f in EXAMPLES]
    return [dict(docs[i % len(docs)], id=f"bench{tag}-{i}") for i in range(n)]


def _row(case: str, count: int, elapsed: float, latencies: list[float]) -> dict:
    """A result row; its ratio is filled in at the end, against the best validation-only rate."""
    rate = count / elapsed
    lat = sorted(latencies)
    return {"bench": "ingestion", "case": case, "throughput_per_s": round(rate, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
            "ratio_vs_inprocess": None,
            "notes": "resources/s"}


def bench_validation(docs: list[dict]) -> tuple[int, float]:
    model = _model_class("Observation")
    raws = [json.dumps(d).encode() for d in docs]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < DURATION_S:
        for raw in raws[:500]:
            model.model_validate(json.loads(raw))
        n += 500
    return n, time.perf_counter() - start


def bench_intake(settings: Settings, docs: list[dict]) -> tuple[int, float]:
    from carepulse.ingestion.intake import Intake
    from carepulse.shared.kafka.producer import AsyncFhirProducer

    producer = AsyncFhirProducer(settings, "bench")
    intake = Intake(Topics.with_prefix(settings.topic_prefix), producer, "bench", 10_000)
    raws = [json.dumps(d).encode() for d in docs]

    async def main() -> tuple[int, float]:
        await producer.start()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < DURATION_S:
            accepted = [intake.accept(raw, "Observation") for raw in raws[n % 2000: n % 2000 + 256]]
            errors = await intake.publish(accepted)
            assert not any(errors)
            n += len(accepted)
        elapsed = time.perf_counter() - start
        await producer.stop()
        return n, elapsed

    return asyncio.run(main())


async def bench_http(url: str, bodies: list[tuple[str, bytes]], clients: int, per_body: int,
                     content_type: str = "application/fhir+json") -> tuple[int, float, list]:
    """``clients`` callers POSTing in a loop for 2 x DURATION_S (aiohttp: the load generator shares
    the two cores with the server, so it must cost little). Long enough that the requests cut
    off at the end (counted whole, timed to their end) weigh little even for bulk bodies."""
    import aiohttp

    latencies: list[float] = []
    count = 0
    deadline = time.perf_counter() + 2 * DURATION_S
    headers = {"Content-Type": content_type, "Prefer": "return=minimal"}

    async def client(i: int, s: aiohttp.ClientSession) -> None:
        nonlocal count
        k = i
        while time.perf_counter() < deadline:
            path, body = bodies[k % len(bodies)]
            t = time.perf_counter()
            async with s.post(url + path, data=body, headers=headers) as r:
                text = await r.read()
                assert r.status < 300, text[:500]
            latencies.append(time.perf_counter() - t)
            count += per_body
            k += clients

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        # Warm-up, untimed: connections, and the validation processes' first imports and models.
        for path, body in bodies[-clients:]:
            async with s.post(url + path, data=body, headers=headers) as r:
                await r.read()
        deadline = time.perf_counter() + 2 * DURATION_S
        start = time.perf_counter()
        await asyncio.gather(*(client(i, s) for i in range(clients)))
        return count, time.perf_counter() - start, latencies


def http_cases(url: str, tag: str, singles: bool = True) -> list[dict]:
    """Single POSTs, Bundles of 100 and NDJSON bulk against the server at ``url``."""
    rows = []
    ids = "w" if tag else ""  # fresh resource ids per server (every resource is new)
    if singles:
        one = [("/fhir/Observation", json.dumps(d).encode()) for d in resources(20000, f"s{ids}")]
        n, el, lat = asyncio.run(bench_http(url, one, 16, 1))
        rows.append(_row(f"HTTP POST /fhir/Observation, 16 clients{tag}", n, el, lat))
    docs = resources(60000, f"b{ids}")
    bundles = [("/fhir", json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": d, "request": {"method": "PUT", "url": f"Observation/{d['id']}"}}
        for d in docs[i:i + 100]]}).encode()) for i in range(0, len(docs), 100)]
    n, el, lat = asyncio.run(bench_http(url, bundles, 8, 100))
    rows.append(_row(f"HTTP POST /fhir batch of 100, 8 clients{tag}", n, el, lat))
    docs = resources(60000, f"n{ids}")
    ndjson = [("/fhir/$import", b"\n".join(json.dumps(d).encode() for d in docs[i:i + 1000]))
              for i in range(0, len(docs), 1000)]
    n, el, lat = asyncio.run(bench_http(url, ndjson, 4, 1000, "application/fhir+ndjson"))
    rows.append(_row(f"HTTP POST /fhir/$import NDJSON, 1,000 lines/request, 4 clients{tag}", n, el, lat))
    return rows


def run(out_dir: pathlib.Path) -> list[dict]:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-ingestion-"))
    port, redis_port = free_port(), free_port()
    broker = start_broker(port, tmp)
    redis = start_redis(redis_port, tmp, tmp)
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", redis_url=f"redis://127.0.0.1:{redis_port}/0")
    create_topics(settings, Topics.with_prefix(""))
    docs = resources(20000)
    rows = []
    try:
        n, el = bench_validation(docs)
        limits = [n / el]
        n, el = bench_intake(settings, docs)
        rows.append(_row("intake core: validate + publish, acks awaited", n, el, []))

        # Validation inline (the default), then in two worker processes: it is CPU-bound Python,
        # so inline one process uses at most one core.
        for pool in (0, 2):
            http_port = free_port()
            env = {**os.environ, "CAREPULSE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                   "CAREPULSE_REDIS_URL": settings.redis_url, "CAREPULSE_INGESTION_VALIDATION_PROCESSES": str(pool),
                   "CAREPULSE_INGESTION_PORT": str(http_port), "CAREPULSE_LOG_LEVEL": "WARNING"}
            log = out_dir / f"ingestion-server-{pool}.log"
            server = spawn([sys.executable, "-m", "carepulse.ingestion"], log, env=env)
            url = f"http://127.0.0.1:{http_port}"
            wait_ready(url, server, 60, log)
            try:
                rows += http_cases(url, f", {pool} validation processes" if pool else "", singles=not pool)
            finally:
                stop(server)
            n, el = bench_validation(docs)
            limits.append(n / el)
    finally:
        stop(broker)
        stop(redis)
    base = max(limits)
    for r in rows:
        r["ratio_vs_inprocess"] = round(r["throughput_per_s"] / base, 2)
    limit = {"bench": "ingestion", "case": "fhir.resources validation only (in-process limit)",
             "throughput_per_s": round(base, 1), "p50_ms": None, "p99_ms": None, "ratio_vs_inprocess": 1.0,
             "notes": "resources/s, one core; best of " + ", ".join(f"{x:.0f}" for x in limits)}
    return [limit, *rows]
