"""The ``fhir.inbound`` consumer: records an EHR publishes straight to Kafka, validated and routed.

A record may be one resource, a batch/transaction Bundle, or NDJSON lines. What cannot
be processed goes to ``fhir.deadletter`` with the original bytes and an OperationOutcome.
A record over the body limit (``CAREPULSE_INGESTION_MAX_BODY_BYTES``, the same as an HTTP
request's) is not decoded: its dead letter keeps the first bytes only (the whole would not
fit in a producer request), says the original size, and points at the original by
origin-topic/origin-offset. JSON nesting (1,024 levels, the decoder's limit) and Bundle entries
(``CAREPULSE_INGESTION_MAX_BUNDLE_ENTRIES``) are limited as on the HTTP API.
Offsets are committed only after every routed and dead-lettered record of the batch is
acknowledged; a failure retries the batch, and the dedupe store keeps retries from
publishing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from carepulse.ingestion import jsonio
from carepulse.ingestion.dedupe import SeenStore, TopicProbe
from carepulse.ingestion.intake import Accepted, Intake, TransactionRejected, UnsupportedBundle
from carepulse.ingestion.settings import IngestionSettings
from carepulse.shared.fhir.codec import FhirValidationError, Issue
from carepulse.shared.fhir.outcome import operation_outcome
from carepulse.shared.kafka.deadletter import deadletter_headers
from carepulse.shared.kafka.headers import Headers, header, stable_id
from carepulse.shared.kafka.producer import OutRecord, Publisher
from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.metrics import records_total
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
SERVICE = "ingestion"
# What a dead letter keeps of a record over the size limit: enough to see what it was.
DEADLETTER_KEEP_BYTES = 64 * 1024


@dataclass
class DeadLetter:
    event_id: str
    value: bytes
    issues: list[Issue]
    offset: int
    key: str  # the original record's key (the sender's patient key), else where it came from
    original_bytes: int | None = None  # set when ``value`` is only the start of a record over the limit


class InboundConsumer:
    def __init__(self, settings: IngestionSettings, group: str, topics: Topics, intake: Intake, producer: Publisher,
                 seen: SeenStore | None, probe: TopicProbe | None, source: str) -> None:
        self._settings = settings
        self._group = group
        self._topics = topics
        self._intake = intake
        self._producer = producer
        self._seen = seen
        self._probe = probe
        self._source = source
        self._task: asyncio.Task[None] | None = None
        self.started = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fhir-inbound")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await self._task

    def ready(self) -> bool:
        return self.started and self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                self._topics.inbound, bootstrap_servers=self._settings.kafka_servers, group_id=self._group,
                client_id="carepulse-ingestion-inbound", enable_auto_commit=False, auto_offset_reset="earliest",
                # Short group timeouts: a first record in ~3 s instead of ~23 s (FIELD-NOTES).
                session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_interval_ms=120_000,
                fetch_max_wait_ms=50, max_poll_records=500, **kafka_client_security(self._settings))
            try:
                await consumer.start()
                self.started = True
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                    for tp, msgs in batches.items():
                        await self._until_done(msgs)
                        await consumer.commit({tp: msgs[-1].offset + 1})
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnect; uncommitted records are consumed again
                log.exception("inbound consumer failed; restarting")
                self.started = False
                await asyncio.sleep(1)
            finally:
                await consumer.stop()

    async def _until_done(self, msgs: list[ConsumerRecord]) -> None:
        delay = 0.2
        while True:
            try:
                await self.process(msgs)
                return
            except Exception as exc:  # noqa: BLE001 - transient (broker, Redis): retry, dedupe prevents twins
                log.warning("inbound batch not fully published; retrying",
                            extra={"fields": {"error": type(exc).__name__, "records": len(msgs)}})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def process(self, msgs: list[ConsumerRecord]) -> None:
        accepted: list[Accepted] = []
        dead: list[DeadLetter] = []
        for m in msgs:
            self._classify(m, accepted, dead)
        errors = await self._intake.publish(accepted)
        bad = [e for e in errors if e is not None]
        if bad:
            raise RuntimeError(f"{len(bad)} record(s) not acknowledged: {bad[0]}")
        await self._deadletter(dead)
        for a in accepted:
            if a.route and not a.duplicate:
                records_total().labels(SERVICE, a.route.topic, "ok").inc()
        if dead:
            records_total().labels(SERVICE, self._topics.deadletter, "deadletter").inc(len(dead))

    def _classify(self, m: ConsumerRecord, accepted: list[Accepted], dead: list[DeadLetter]) -> None:
        value: bytes = m.value or b""
        supplied = header(m.headers, "event-id")
        trace = header(m.headers, "traceparent")
        key = m.key.decode(errors="replace") if m.key else f"{m.topic}/{m.partition}/{m.offset}"
        base_id = supplied or stable_id("inbound", m.topic, str(m.partition), str(m.offset))
        limit = self._settings.ingestion_max_body_bytes
        if len(value) > limit:
            keep = min(DEADLETTER_KEEP_BYTES, limit)
            issue = Issue("too-long", f"record is {len(value)} bytes, more than the {limit} allowed "
                                      f"(CAREPULSE_INGESTION_MAX_BODY_BYTES); the dead letter keeps the first {keep}")
            dead.append(DeadLetter(stable_id(base_id, "record"), value[:keep], [issue], m.offset, key, len(value)))
            return
        try:
            doc = jsonio.loads(value)
        except FhirValidationError as e:
            lines = [ln for ln in value.splitlines() if ln.strip()]
            if len(lines) > 1:  # not one JSON document: NDJSON, one resource per line
                self._ndjson(lines, supplied, trace, base_id, m.offset, key, accepted, dead)
            else:
                dead.append(DeadLetter(stable_id(base_id, "record"), value, e.issues, m.offset, key))
            return
        try:
            if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
                btype, results = self._intake.bundle_entries(doc, supplied, trace)
                bad = [r for r in results if r.accepted is None]
                if btype == "transaction" and bad:
                    raise TransactionRejected([i for r in bad for i in r.issues])
                accepted += [r.accepted for r in results if r.accepted is not None]
                if bad:
                    dead.append(DeadLetter(stable_id(base_id, "bundle"), value,
                                           [i for r in bad for i in r.issues], m.offset, key))
                return
            accepted.append(self._intake.accept(value, None, None, supplied, trace))
        except (FhirValidationError, UnsupportedBundle) as e:
            dead.append(DeadLetter(stable_id(base_id, "record"), value, e.issues, m.offset, key))

    def _ndjson(self, lines: list[bytes], supplied: str | None, trace: str | None, base_id: str, offset: int,
                key: str, accepted: list[Accepted], dead: list[DeadLetter]) -> None:
        for n, line in enumerate(lines):
            r = self._intake.accept_line(line, "", None if supplied is None else stable_id(supplied, str(n)))
            if r.accepted is not None:
                r.accepted.traceparent = trace
                accepted.append(r.accepted)
            else:
                issues = [Issue(i.code, f"line {n + 1}: {i.diagnostics}", i.expression) for i in r.issues]
                dead.append(DeadLetter(stable_id(base_id, "line", str(n)), line, issues, offset, key))

    async def _deadletter(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        fresh = [True] * len(dead)
        if self._seen is not None and self._probe is not None:
            fresh = await self._seen.claim([[d.event_id] for d in dead], [self._topics.deadletter] * len(dead),
                                           self._probe)
        todo = [d for d, f in zip(dead, fresh, strict=True) if f]
        records = [OutRecord(self._topics.deadletter, d.key, d.value, self._dl_headers(d)) for d in todo]
        errors = await self._producer.send_many(records)
        if self._seen is not None:
            await self._seen.mark_done([d.event_id for d, e in zip(todo, errors, strict=True) if e is None])
            await self._seen.release([d.event_id for d, e in zip(todo, errors, strict=True) if e is not None])
        if any(errors):
            raise RuntimeError("dead letters not acknowledged")

    def _dl_headers(self, d: DeadLetter) -> Headers:
        headers = deadletter_headers(operation_outcome(d.issues), self._source, d.event_id, self._topics.inbound,
                                     d.offset)
        if d.original_bytes is not None:
            headers.append(("deadletter-truncated-from", str(d.original_bytes).encode()))
        return headers
