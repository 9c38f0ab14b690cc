"""Care throughput and end-to-end latency (issue 5's figure: p99 <= 250 ms at 500 events/s).

Cases:
* ``care core in-process`` — ``CareProcessor.on_observation`` with a real Valkey and no Kafka:
  the in-process limit every ratio is against;
* ``platform steady load`` — ingestion + care as processes on a Tansu broker (``carepulse up``
  with free ports); vital-sign rounds POSTed as transaction Bundles at a fixed rate of
  vital-sign events per second; latency is from the POST of a round to its final NEWS2
  Observation on ``fhir.derived`` (every round) and to its alert on ``carepulse.alerts``
  (escalating rounds), read by a consumer with a short fetch wait. Lag growth is the p50 of
  the last third of the run over the first third.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from kafka import KafkaConsumer

from carepulse.care.processor import CareProcessor
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.demo.scenario import PROFILES, Round, rounds
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


def follow(settings: Settings, topics: list[str], seen: dict[tuple[str, str, str], float],
           stop_: threading.Event) -> None:
    """Record when each final NEWS2 / alert arrives: key (topic kind, patient, effective time)."""
    consumer = KafkaConsumer(*topics, bootstrap_servers=settings.kafka_servers, group_id=None,
                             auto_offset_reset="latest", fetch_max_wait_ms=5)
    consumer.poll(timeout_ms=500)  # join at the end of the topics before the load starts
    while not stop_.is_set():
        for batch in consumer.poll(timeout_ms=100).values():
            now = time.perf_counter()
            for m in batch:
                doc = json.loads(m.value)
                if doc["resourceType"] == "Observation" and doc.get("status") == "final":
                    seen.setdefault(("score", doc["subject"]["reference"], doc["effectiveDateTime"]), now)
                elif doc["resourceType"] == "Bundle":
                    obs = next((e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"),
                               None)
                    if obs is not None:
                        seen.setdefault(("alert", obs["subject"]["reference"], obs["effectiveDateTime"]), now)
    consumer.close()


def bench_platform(out_dir: pathlib.Path) -> list[dict]:
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench-care-"))
    platform = Platform(Settings(), run_dir, free_ports=True, only=["ingestion", "care"],
                        extra_env={"CAREPULSE_LOG_LEVEL": "WARNING"})
    platform.start(progress=lambda m: None)
    try:
        settings = Settings(kafka_bootstrap_servers=platform.kafka or "")
        topics = Topics.with_prefix("")
        n_rounds = int(RATE * DURATION_S / PER_ROUND)
        work = workload(n_rounds)
        seen: dict[tuple[str, str, str], float] = {}
        stop_ = threading.Event()
        watcher = threading.Thread(target=follow, args=(settings, [topics.derived, topics.alerts], seen, stop_))
        watcher.start()
        time.sleep(1.0)
        sent: dict[tuple[str, str], float] = {}
        failed: list[object] = []

        post_lat: list[float] = []

        async def timed_post(c: httpx.AsyncClient, body: str) -> httpx.Response:
            t = time.perf_counter()
            r = await c.post("/fhir", content=body, headers={"Content-Type": "application/fhir+json",
                                                             "Prefer": "return=minimal"})
            post_lat.append(time.perf_counter() - t)
            return r

        async def load() -> float:
            interval = PER_ROUND / RATE
            async with httpx.AsyncClient(base_url=platform.ingestion_url, timeout=30,
                                         limits=httpx.Limits(max_connections=32)) as c:
                start = time.perf_counter()
                tasks = []
                for i, (pid, at, bundle) in enumerate(work):
                    due = start + i * interval
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                    sent[(pid, when)] = time.perf_counter()
                    tasks.append(asyncio.create_task(timed_post(c, json.dumps(bundle))))
                results = await asyncio.gather(*tasks, return_exceptions=True)
                failed.extend(r for r in results if isinstance(r, BaseException) or r.status_code != 200)
                return time.perf_counter() - start

        elapsed = asyncio.run(load())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(k[0] == "score" for k in seen) < len(sent):
            time.sleep(0.2)
        stop_.set()
        watcher.join()
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
                      f"p50 last/first third {growth:.2f}"},
            {"bench": "care", "case": f"POST round trip alone (ingestion) at {RATE:.0f} events/s",
             "throughput_per_s": None, "p50_ms": _pct(post_lat, 0.5), "p99_ms": _pct(post_lat, 0.99),
             "ratio_vs_inprocess": None, "notes": "transaction Bundles of 6 vital signs"},
            {"bench": "care", "case": f"POST -> alert on carepulse.alerts at {RATE:.0f} events/s",
             "throughput_per_s": None, "p50_ms": _pct(alert_lat, 0.5), "p99_ms": _pct(alert_lat, 0.99),
             "ratio_vs_inprocess": None, "notes": f"{len(alert_lat)} alerts"},
        ]
        return rows
    finally:
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
