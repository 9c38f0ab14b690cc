"""Care throughput and end-to-end latency (issue 5's figure: p99 <= 250 ms at 500 events/s).

Cases:
* ``care core in-process`` — ``CareProcessor.on_observation`` with a real Valkey and no Kafka:
  the in-process limit every ratio is against;
* ``platform steady load`` — ingestion + care as processes on a Tansu broker (``carepulse up``
  with free ports); vital-sign rounds POSTed as transaction Bundles at a fixed rate of
  vital-sign events per second; latency is from the POST of a round to its final NEWS2
  Observation on ``fhir.derived`` (every round) and to its alert on ``carepulse.alerts``
  (escalating rounds), read by a consumer with a short fetch wait. Consumer lag is care's
  group on ``fhir.observation`` (end offset minus committed offset, sampled every second; commits
  are every second, so a worker keeping up shows up to ~1 s of records; Tansu's end offset
  leaves out all but the first record of the last batch, a few records here): its mean over the last
  third of the load against the first third says whether it grows. The p50 latency of the last
  third over the first is reported too; it is not a lag measure, since later rounds of the
  workload are the escalating ones and carry the alerts.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pathlib
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from confluent_kafka import Consumer

from carepulse.care.processor import CareProcessor
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.demo.scenario import PROFILES, Round, rounds
from carepulse.shared.kafka.lag import LagMonitor
from carepulse.shared.kafka.streams import Outgoing
from carepulse.shared.platform.processes import free_port, stop
from carepulse.shared.platform.servers import start_redis
from carepulse.shared.platform.supervisor import Platform
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

DURATION_S = float(os.environ.get("CAREPULSE_BENCH_SECONDS", "3")) * 4
RATE = float(os.environ.get("CAREPULSE_BENCH_CARE_RATE", "500"))  # vital-sign events per second
PER_ROUND = 6  # Observations in one round (RR, HR, SpO2+O2, BP, temp, ACVPU)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(len(v) * q))] * 1000, 1)


def workload(n_rounds: int) -> list[tuple[str, float, dict]]:
    """(patient, effective time, transaction Bundle) for ``n_rounds`` rounds over many patients.

    Each patient goes through the deteriorating profile (alerts at rounds 3 and 4)."""
    profile: list[Round] = PROFILES["deteriorating"]
    n_patients = max(1, n_rounds // len(profile))
    roles = {f"p{i}": str(uuid.uuid4()) for i in range(n_patients)}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=len(profile))
    out = []
    for h, bundles in enumerate(rounds(start, {r: profile for r in roles}, roles)):
        at = (start + timedelta(hours=h)).timestamp()
        for b in bundles:
            pid = b["entry"][0]["resource"]["subject"]["reference"]
            out.append((pid, at, b))
    return out


def bench_core(redis_url: str) -> tuple[int, float]:
    settings = CareSettings(redis_url=redis_url)
    bundles = [b for _, _, b in workload(200)]
    records = [json.dumps(e["resource"]).encode() for b in bundles for e in b["entry"]]

    async def publish(_: Outgoing) -> None:
        pass

    async def main() -> tuple[int, float]:
        store = PatientContextStore(make_redis(settings))
        p = CareProcessor(Topics.with_prefix(""), store, publish, settings)
        start = time.perf_counter()
        for raw in records:
            await p.on_observation(None, raw, None)
        elapsed = time.perf_counter() - start
        await store.close()
        return len(records), elapsed

    return asyncio.run(main())


def follow(servers: list[str], topics: list[str], fetch_wait_ms: int, ready: Any, stop_: Any, scores: Any,
           out: Any) -> None:
    """Record when each final NEWS2 / alert arrives: key (kind, patient, effective time) -> time.

    Runs in its own process with librdkafka's consumer (confluent-kafka), so that reading the
    outputs takes as little as possible of the two cores the system under test runs on and
    does not share a GIL with the load generator (``perf_counter`` is CLOCK_MONOTONIC, so
    times compare across processes). Only records whose ``resource-type`` matters are parsed.
    It fetches with the platform's own wait (``CAREPULSE_KAFKA_FETCH_MAX_WAIT_MS``, 20 ms), like
    any consumer of the outputs: Tansu holds every fetch for the full wait, and a fetch that
    returns records costs it more the longer the in-memory log (measured: the same 100 records/s
    cost the broker 8 % of a core at 1,000 records in the log, 23 % at 40,000). A 5 ms reader
    made four times the fetches of any platform consumer and became the broker's largest load in
    longer runs. The latency measured includes the reader's own wait (up to 20 ms, was 5 ms).
    """
    seen: dict[tuple[str, str, str], float] = {}
    consumer = Consumer({"bootstrap.servers": ",".join(servers), "group.id": f"bench-{uuid.uuid4()}",
                         "auto.offset.reset": "latest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": fetch_wait_ms, "fetch.min.bytes": 1})
    assigned = threading.Event()
    consumer.subscribe(topics, on_assign=lambda c, parts: assigned.set())
    while not assigned.is_set():
        consumer.poll(0.1)
    ready.set()
    while not stop_.is_set():
        for m in consumer.consume(num_messages=500, timeout=0.1):
            if m.error():
                continue
            now = time.perf_counter()
            rtype = dict(m.headers() or []).get("resource-type", b"")
            if rtype == b"Observation":
                doc = json.loads(m.value())
                if doc.get("status") == "final":
                    key = ("score", doc["subject"]["reference"], doc["effectiveDateTime"])
                    if key not in seen:
                        seen[key] = now
                        scores.value += 1
            elif rtype == b"Bundle":
                doc = json.loads(m.value())
                obs = next((e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"),
                           None)
                if obs is not None:
                    seen.setdefault(("alert", obs["subject"]["reference"], obs["effectiveDateTime"]), now)
    consumer.close()
    out.send(seen)


async def _load(url: str, work: list[tuple[str, float, dict]], interval: float,
                sent: dict[tuple[str, str], float], post_lat: list[float], failed: list[object]) -> float:
    """POST every round at its due time (open loop: a slow server does not slow the sender).

    aiohttp, bodies serialised up front: the generator shares the two cores with the
    system under test, so it must cost as little as possible."""
    bodies = [json.dumps(b) for _, _, b in work]
    headers = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}

    async def post(s: aiohttp.ClientSession, body: str) -> None:
        t = time.perf_counter()
        try:
            async with s.post(url + "/fhir", data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    failed.append(r.status)
        except aiohttp.ClientError as exc:
            failed.append(exc)
        post_lat.append(time.perf_counter() - t)

    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as s:
        start = time.perf_counter()
        tasks = []
        for i, ((pid, at, _), body) in enumerate(zip(work, bodies, strict=True)):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            sent[(pid, when)] = time.perf_counter()
            tasks.append(asyncio.create_task(post(s, body)))
        await asyncio.gather(*tasks)
        return time.perf_counter() - start


_WATCHED = {"care": "carepulse.care", "ingestion": "carepulse.ingestion", "broker": "tansu", "redis": "valkey-server"}


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) so far of the platform's processes, by role, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for role, needle in _WATCHED.items():
            if needle in cmd:
                out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def sample_lag(monitor: LagMonitor, topic: str, stop_: threading.Event, out: list[tuple[float, int]]) -> None:
    """(time, care's lag on ``topic``) every second until ``stop_`` is set."""
    while not stop_.wait(1.0):
        try:
            lags = monitor.measure()
        except Exception:  # noqa: BLE001 - the group may not have committed yet
            continue
        out.append((time.perf_counter(), sum(p.lag for p in lags if p.topic == topic)))


def _lag_trend(samples: list[tuple[float, int]], start: float, end: float) -> str:
    third = (end - start) / 3
    first = [lag for t, lag in samples if start <= t < start + third]
    last = [lag for t, lag in samples if end - third <= t <= end]
    if not first or not last:
        return "consumer lag not sampled"
    mean_first, mean_last = sum(first) / len(first), sum(last) / len(last)
    return (f"care's lag on fhir.observation: mean {mean_first:.0f} records in the first third, {mean_last:.0f} "
            f"in the last, max {max(lag for _, lag in samples)}")


def bench_platform(out_dir: pathlib.Path) -> list[dict]:
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench-care-"))
    platform = Platform(Settings(), run_dir, free_ports=True, only=["ingestion", "care"],
                        extra_env={"CAREPULSE_LOG_LEVEL": "WARNING"})
    platform.start(progress=lambda m: None)
    ctx = multiprocessing.get_context("fork")
    watcher = None
    try:
        settings = Settings(kafka_bootstrap_servers=platform.kafka or "")
        topics = Topics.with_prefix("")
        n_rounds = int(RATE * DURATION_S / PER_ROUND)
        work = workload(n_rounds)
        ready, stop_ = ctx.Event(), ctx.Event()
        receive, out = ctx.Pipe(duplex=False)
        scores = ctx.Value("i", 0)
        watcher = ctx.Process(target=follow, args=(settings.kafka_servers, [topics.derived, topics.alerts],
                                                   settings.kafka_fetch_max_wait_ms, ready, stop_, scores, out),
                              daemon=True)
        watcher.start()
        ready.wait(30)
        time.sleep(0.5)
        sent: dict[tuple[str, str], float] = {}
        failed: list[object] = []
        post_lat: list[float] = []
        lag_samples: list[tuple[float, int]] = []
        lag_stop = threading.Event()
        monitor = LagMonitor(settings, groups=[CareSettings().care_group])
        sampler = threading.Thread(target=sample_lag, args=(monitor, topics.observation, lag_stop, lag_samples),
                                   daemon=True)
        sampler.start()
        cpu_before = cpu_seconds()
        load_start = time.perf_counter()
        elapsed = asyncio.run(_load(platform.ingestion_url, work, PER_ROUND / RATE, sent, post_lat, failed))
        cpu_after = cpu_seconds()
        lag_stop.set()
        sampler.join(10)
        monitor.stop()  # closes its admin client
        lag = _lag_trend(lag_samples, load_start, load_start + elapsed)
        cpu = ", ".join(f"{role} {100 * (cpu_after.get(role, 0) - cpu_before.get(role, 0)) / elapsed:.0f}%"
                        for role in _WATCHED)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and scores.value < len(sent):
            time.sleep(0.2)
        stop_.set()
        seen = receive.recv()
        watcher.join(10)
        score_lat = [(sent[(p, w)], seen[("score", p, w)] - sent[(p, w)]) for (kind, p, w) in seen
                     if kind == "score" and (p, w) in sent]
        alert_lat = [seen[("alert", p, w)] - sent[(p, w)] for (kind, p, w) in seen
                     if kind == "alert" and (p, w) in sent]
        score_lat.sort()
        third = max(1, len(score_lat) // 3)
        first = [lat for _, lat in score_lat[:third]]
        last = [lat for _, lat in score_lat[-third:]]
        growth = (_pct(last, 0.5) or 0) / max(_pct(first, 0.5) or 1, 1e-9)
        events = len(sent) * PER_ROUND
        lost = len(sent) - len(score_lat)
        rows = [
            {"bench": "care", "case": f"POST -> NEWS2 on fhir.derived at {RATE:.0f} events/s",
             "throughput_per_s": round(events / elapsed, 1), "p50_ms": _pct([x for _, x in score_lat], 0.5),
             "p99_ms": _pct([x for _, x in score_lat], 0.99), "ratio_vs_inprocess": None,
             "notes": f"{len(sent)} rounds ({len(failed)} POSTs failed), {lost} without a score after 30 s; "
                      f"{lag}; p50 latency last/first third {growth:.2f}; CPU of one core during the load: {cpu}"},
            {"bench": "care", "case": f"POST round trip alone (ingestion) at {RATE:.0f} events/s",
             "throughput_per_s": None, "p50_ms": _pct(post_lat, 0.5), "p99_ms": _pct(post_lat, 0.99),
             "ratio_vs_inprocess": None, "notes": "transaction Bundles of 6 vital signs"},
            {"bench": "care", "case": f"POST -> alert on carepulse.alerts at {RATE:.0f} events/s",
             "throughput_per_s": None, "p50_ms": _pct(alert_lat, 0.5), "p99_ms": _pct(alert_lat, 0.99),
             "ratio_vs_inprocess": None, "notes": f"{len(alert_lat)} alerts"},
        ]
        return rows
    finally:
        if watcher is not None and watcher.is_alive():
            watcher.kill()
        platform.stop(progress=lambda m: None)


def run(out_dir: pathlib.Path) -> list[dict]:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-care-redis-"))
    port = free_port()
    server = start_redis(port, tmp, tmp)
    try:
        n, el = bench_core(f"redis://127.0.0.1:{port}/0")
    finally:
        stop(server)
    base = n / el
    rows = [{"bench": "care", "case": "care core in-process (real Valkey, no Kafka)",
             "throughput_per_s": round(base, 1), "p50_ms": None, "p99_ms": None, "ratio_vs_inprocess": 1.0,
             "notes": "vital-sign events/s"}]
    for r in bench_platform(out_dir):
        if r["throughput_per_s"]:
            r["ratio_vs_inprocess"] = round(r["throughput_per_s"] / base, 2)
        rows.append(r)
    return rows
