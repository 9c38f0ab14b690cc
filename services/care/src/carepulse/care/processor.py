"""The care worker's core: one vital-sign Observation in, scores and alerts out.

Transport-neutral: it gets a context store and a ``publish`` coroutine, so tests
drive it without Kafka. Order of effects makes a crash at any point safe to replay:
store readings -> publish score -> publish alert -> remember the band; the input's
offset is committed by the caller only after all of that.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carepulse.care.alert_policy import should_alert
from carepulse.care.news2 import Band, score_news2
from carepulse.care.observation_set import assemble
from carepulse.care.readings import extract_readings
from carepulse.care.resources import alert_bundle, news2_observation, provenance
from carepulse.shared.context_store import PatientContextStore
from carepulse.shared.fhir.references import patient_key
from carepulse.shared.kafka.headers import Headers, fhir_headers, header, stable_id
from carepulse.shared.kafka.streams import Outgoing, Publish
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one input led to (for metrics and tests)."""

    readings: int = 0
    score: int | None = None
    band: str | None = None
    alerted: bool = False


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class CareProcessor:
    def __init__(
        self,
        topics: Topics,
        store: PatientContextStore,
        publish: Publish,
        *,
        source_name: str,
        set_tolerance_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topics = topics
        self._store = store
        self._publish = publish
        self._source = source_name
        self._tolerance = set_tolerance_s
        self._clock = clock

    async def on_observation(self, key: bytes | None, value: bytes, headers: Headers | None) -> Outcome:
        """Handle one record of the observation topic.

        Raises ``ValueError`` (incl. ``UnreadableObservation``) for input that can
        never be processed; the caller dead-letters it.
        """
        obs = json.loads(value)
        if not isinstance(obs, dict):
            raise ValueError("record is not a JSON object")
        readings = extract_readings(obs)
        if not readings:
            return Outcome()
        patient_ref = patient_key(obs) or (key.decode() if key else "")
        if not patient_ref.startswith("Patient/"):
            raise ValueError("vital-sign Observation names no Patient subject")
        pid = patient_ref.split("/", 1)[1]
        for r in readings:
            reading = {"value": r.value, "source": r.source}
            await self._store.put_latest(pid, "vitals", r.parameter, r.effective, reading)
        latest = await self._store.get_section(pid, "vitals")
        oset = assemble(latest, max(r.effective for r in readings), self._tolerance)
        if oset is None:
            return Outcome(readings=len(readings))

        score = score_news2(oset.vitals)
        now = self._clock()
        obs_id = stable_id("news2", patient_ref, *oset.sources)
        score_obs = news2_observation(obs_id, patient_ref, oset, score, issued=now)
        trace = header(headers, "traceparent")
        await self._emit(self._topics.derived, patient_ref, score_obs, trace)
        await self._emit(self._topics.derived, patient_ref, provenance(score_obs, self._source, now), trace)

        previous = await self._band_state(pid)
        alerted = False
        if previous is None or oset.effective >= previous[1]:
            if should_alert(previous[0] if previous else None, score.band):
                bundle = alert_bundle(
                    stable_id("alert", obs_id), patient_ref, score_obs, oset, score, self._source, now
                )
                await self._emit(self._topics.alerts, patient_ref, bundle, trace)
                alerted = True
                fields = {"patient": pid, "news2": score.total, "band": score.band.value}
                log.info("alert raised", extra={"fields": fields})
            await self._store.set_value(pid, "news2-band", json.dumps({"band": score.band.value, "t": oset.effective}))
        return Outcome(readings=len(readings), score=score.total, band=score.band.value, alerted=alerted)

    async def _band_state(self, pid: str) -> tuple[Band, float] | None:
        raw = await self._store.get_value(pid, "news2-band")
        if raw is None:
            return None
        doc = json.loads(raw)
        return Band(doc["band"]), float(doc["t"])

    async def _emit(self, topic: str, key: str, resource: dict[str, Any], trace: str | None) -> None:
        headers = fhir_headers(resource["resourceType"], resource["id"], self._source, trace)
        await self._publish(Outgoing(topic, key, _dumps(resource), headers))
