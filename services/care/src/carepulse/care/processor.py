"""The care worker's core: FHIR records in, patient context, scores and alerts out.

Transport-neutral: it gets a context store and a ``publish`` coroutine, so tests
drive it without Kafka. The order of effects makes a crash at any point safe to
replay: store context -> publish scores -> publish alerts -> remember alert state;
the input's offset is committed by the caller only after all of that.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carepulse.care.alert_policy import Action, AlertState, decide
from carepulse.care.codes import NEWS2_TOTAL
from carepulse.care.context import Entry, age_years, entries
from carepulse.care.news2 import Band, News2Score, score_news2
from carepulse.care.observation_set import ObservationSet, assemble
from carepulse.care.readings import parse_fhir_datetime
from carepulse.care.resources import (
    SEPSIS_BAND,
    alert_bundle,
    derived_id,
    describe,
    news2_observation,
    provenance,
    resolution_bundle,
    risk_assessment,
)
from carepulse.care.sepsis import Labs, SepsisRisk, qsofa, screen
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore
from carepulse.shared.fhir.references import patient_key
from carepulse.shared.kafka.headers import Headers, fhir_headers, header, stable_id
from carepulse.shared.kafka.streams import Outgoing, Publish
from carepulse.shared.metrics import alerts_total
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)
NEWS2_CODE = NEWS2_TOTAL["code"]
CONTEXT_READ = ("vitals", "demographics", "conditions", "labs", "findings")
STATE_KEYS = ("news2-alert", "sepsis-alert")
# Derived resource types that never carry a finding for the context (skipped without decoding).
_NO_FINDINGS = frozenset({"Provenance", "RiskAssessment"})
NEWS2_EVENTS = {Action.ALERT: ("news2-alert", "NEWS2 early-warning alert"),
                Action.REMIND: ("news2-reminder", "NEWS2 still at alert level"),
                Action.RESOLVE: ("news2-resolved", "NEWS2 alert level fallen")}
SEPSIS_EVENTS = {Action.ALERT: ("sepsis-alert", "Possible sepsis"),
                 Action.REMIND: ("sepsis-reminder", "Possible sepsis, still"),
                 Action.RESOLVE: ("sepsis-resolved", "Sepsis risk fallen")}


@dataclass(frozen=True)
class Outcome:
    """What one input led to (for metrics and tests)."""

    context_entries: int = 0
    score: int | None = None
    band: str | None = None
    actions: tuple[str, ...] = ()


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(value: bytes) -> dict[str, Any]:
    doc = json.loads(value)
    if not isinstance(doc, dict):
        raise ValueError("record is not a JSON object")
    return doc


def _state(raw: str | None) -> AlertState | None:
    if raw is None:
        return None
    d = json.loads(raw)
    return AlertState(Band(d["band"]), d["at"], Band(d["alerted"]) if d.get("alerted") else None,
                      d.get("alerted_at"), d.get("episode"))


def _state_json(s: AlertState) -> str:
    return json.dumps({"band": s.band.value, "at": s.at, "alerted": s.alerted.value if s.alerted else None,
                       "alerted_at": s.alerted_at, "episode": s.episode})


class CareProcessor:
    def __init__(
        self, topics: Topics, store: PatientContextStore, publish: Publish, settings: CareSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topics = topics
        self._store = store
        self._publish = publish
        self._s = settings
        self._clock = clock

    # --- inputs ---------------------------------------------------------------
    async def remember(self, resource: dict[str, Any], derived: bool = False,
                       found: list[Entry] | None = None) -> tuple[str | None, int]:
        """Write what ``resource`` says about its patient into the context; (patient id, entries)."""
        found = entries(resource, derived) if found is None else found
        ref = patient_key(resource)
        if not found or ref is None:
            return None, 0
        pid = ref.split("/", 1)[1]
        await self._store.put_many(pid, [(e.section, e.field, e.effective, e.value) for e in found])
        return pid, len(found)

    async def on_context(self, key: bytes | None, value: bytes, headers: Headers | None) -> Outcome:
        """Patient, Encounter and clinical records: context only."""
        _, n = await self.remember(_decode(value))
        return Outcome(context_entries=n)

    async def on_derived(self, key: bytes | None, value: bytes, headers: Headers | None) -> Outcome:
        """AI findings from nlp and imaging (our own outputs yield no entries)."""
        if header(headers, "resource-type") in _NO_FINDINGS:
            return Outcome()  # half of what care reads here is its own Provenance and RiskAssessment
        _, n = await self.remember(_decode(value), derived=True)
        return Outcome(context_entries=n)

    async def on_observation(self, key: bytes | None, value: bytes, headers: Headers | None) -> Outcome:
        """Vital signs and labs: remember them, then assess the observation set they belong to.

        Raises ``ValueError`` (incl. ``UnreadableObservation``) for input that can never
        be processed; the caller dead-letters it.
        """
        obs = _decode(value)
        found = entries(obs)
        ref = patient_key(obs)
        if ref is None:
            if found:  # vital signs, but no patient to attach them to
                raise ValueError("vital-sign Observation names no Patient subject")
            return Outcome()
        vitals = [e for e in found if e.section == "vitals"]
        if not vitals:
            _, n = await self.remember(obs, found=found)
            return Outcome(context_entries=n)
        pid = ref.split("/", 1)[1]
        # Write the readings and read the context they complete in one Redis round trip.
        ctx, states = await self._store.put_and_get(
            pid, [(e.section, e.field, e.effective, e.value) for e in found], list(CONTEXT_READ), list(STATE_KEYS))
        return await self.assess(pid, max(e.effective for e in vitals), header(headers, "traceparent"),
                                 len(found), (ctx, states))

    async def restore(self, resource: dict[str, Any]) -> bool:
        """Replay one of care's own past outputs into the alert state (used by rebuild).

        Running ``decide`` again over the scores in their original order gives back exactly
        the state the live worker had, without sending anything.
        """
        ref = patient_key(resource)
        if ref is None:
            return False
        rtype = resource.get("resourceType")
        codes = [c.get("code") for c in (resource.get("code") or {}).get("coding", [])]
        if rtype == "Observation" and NEWS2_CODE in codes and resource.get("status") in ("final", "preliminary"):
            key, band = "news2-alert", Band(resource["interpretation"][0]["coding"][0]["code"])
            at = parse_fhir_datetime(resource["effectiveDateTime"])
        elif rtype == "RiskAssessment" and resource.get("method", {}).get("coding", [{}])[0].get("code") == (
                "sepsis-screen"):
            risk = resource["prediction"][0]["qualitativeRisk"]["coding"][0]["code"]
            key, band = "sepsis-alert", SEPSIS_BAND[SepsisRisk(risk)]
            at = parse_fhir_datetime(resource["occurrenceDateTime"])
        else:
            return False
        pid = ref.split("/", 1)[1]
        previous = _state(await self._store.get_value(pid, key))
        episode = stable_id("episode", ref, key, repr(at))
        decision = decide(previous, band, at, self._s.care_realert_after_s, episode)
        if decision.state != previous:
            await self._store.set_value(pid, key, _state_json(decision.state))
        return True

    # --- assessment -------------------------------------------------------------
    async def assess(self, pid: str, at: float, trace: str | None, n: int = 0,
                     context: tuple[dict[str, dict[str, Any]], dict[str, str | None]] | None = None) -> Outcome:
        """Score the observation set around ``at`` and act on it (``context``: already read)."""
        patient_ref = f"Patient/{pid}"
        ctx, states = context or await self._store.get_many(pid, list(CONTEXT_READ), list(STATE_KEYS))
        scale2 = any(c.get("active") and (c.get("hypercapnic") or c.get("spo2_scale2"))
                     for c in ctx["conditions"].values()) or bool(
            ctx["demographics"].get("patient", {}).get("spo2_scale2"))
        oset = assemble(ctx["vitals"], at, self._s.care_news2_window_s, scale2)
        if oset is None:
            return Outcome(context_entries=n)
        score = score_news2(oset.vitals)
        if score.missing and not self._worth_reporting_early(_state(states["news2-alert"]), score):
            return Outcome(context_entries=n)  # wait for the rest of the set
        now = self._clock()
        notes = []
        age = age_years(ctx["demographics"].get("patient", {}).get("birthDate"), oset.effective)
        if age is not None and age < 16:
            notes.append("NEWS2 is not validated in patients under 16 years")
        obs_id = stable_id("news2", patient_ref, str(score.spo2_scale), *oset.sources)
        score_obs = news2_observation(obs_id, patient_ref, oset, score, issued=now, notes=notes)
        await self._emit(self._topics.derived, patient_ref, score_obs, trace)
        await self._emit(self._topics.derived, patient_ref,
                         provenance(score_obs, self._s.source_name, now, "NEWS2 (Royal College of Physicians, 2017)"),
                         trace)

        labs = self._labs(ctx["labs"], oset.effective)
        infection, infection_refs = self._infection(ctx["conditions"], ctx["findings"], oset.effective)
        q = qsofa(oset.vitals)
        sep = screen(score, q, oset.vitals, labs, infection)
        ra = risk_assessment(derived_id(obs_id, "sepsis-screen"), patient_ref, score_obs, q, sep,
                             list(labs.sources) + infection_refs, oset.effective)
        await self._emit(self._topics.derived, patient_ref, ra, trace)
        await self._emit(self._topics.derived, patient_ref,
                         provenance(ra, self._s.source_name, now, "sepsis screen (qSOFA, NEWS2, lactate)"), trace)

        actions = []
        a = await self._escalate(pid, "news2-alert", states["news2-alert"], score.band, oset, score_obs, [score_obs],
                                 "NEWS2",
                                 describe(oset, score), NEWS2_EVENTS, trace, now)
        if a:
            actions.append(f"news2-{a}")
        a = await self._escalate(pid, "sepsis-alert", states["sepsis-alert"], SEPSIS_BAND[sep.risk], oset, ra,
                                 [ra, score_obs],
                                 "Possible sepsis", f"Sepsis screen {sep.risk.value}: {'; '.join(sep.reasons)}. "
                                 "Decision support, not a diagnosis.", SEPSIS_EVENTS, trace, now)
        if a:
            actions.append(f"sepsis-{a}")
        return Outcome(context_entries=n, score=score.total, band=score.band.value, actions=tuple(actions))

    @staticmethod
    def _worth_reporting_early(state: AlertState | None, partial: News2Score) -> bool:
        """An incomplete set is reported before the rest arrives only when it changes what the
        ward must do: missing parameters can only add, so a lower bound already in the high
        band is an emergency, unless the patient's open episode is already at high. Anything
        else waits, so a round arriving reading by reading does not escalate step by step."""
        if partial.band is not Band.HIGH:
            return False
        return state is None or state.alerted is not Band.HIGH

    def _labs(self, labs: dict[str, dict[str, Any]], at: float) -> Labs:
        fresh = {k: v for k, v in labs.items() if at - self._s.care_lab_window_s <= float(v["t"]) <= at + 60}
        return Labs(lactate=fresh["lactate"]["value"] if "lactate" in fresh else None,
                    wbc=fresh["wbc"]["value"] if "wbc" in fresh else None,
                    sources=tuple(v["source"] for v in fresh.values()))

    def _infection(self, conditions: dict[str, dict[str, Any]], findings: dict[str, dict[str, Any]],
                   at: float) -> tuple[list[str], list[str]]:
        names, refs = [], []
        for c in conditions.values():
            if c.get("active") and c.get("infection"):
                names.append(str(c["infection"]))
                refs.append(str(c["source"]))
        for f in findings.values():
            if f.get("active") and f.get("infection") and at - float(f["t"]) <= self._s.care_finding_window_s:
                names.append(str(f["infection"]))
                refs.append(str(f["source"]))
        return names, refs

    async def _escalate(
        self, pid: str, state_key: str, stored: str | None, band: Band, oset: ObservationSet, focus: dict[str, Any],
        evidence: list[dict[str, Any]], title: str, detail: str, events: dict[Action, tuple[str, str]],
        trace: str | None, now: float,
    ) -> str | None:
        patient_ref = f"Patient/{pid}"
        previous = _state(stored)
        episode = stable_id("episode", patient_ref, state_key, repr(oset.effective))
        decision = decide(previous, band, oset.effective, self._s.care_realert_after_s, episode)
        if decision.action is not None:
            bundle_id = stable_id(state_key, decision.action.value, focus["id"])
            if decision.action is Action.RESOLVE:
                assert previous is not None and previous.alerted is not None
                bundle = resolution_bundle(
                    bundle_id, patient_ref, evidence, title=title, episode_id=previous.episode or episode,
                    previous=previous.alerted, current=band, at=oset.effective, source_name=self._s.source_name,
                    now=now, event=events[Action.RESOLVE])
            else:
                bundle = alert_bundle(
                    bundle_id, patient_ref, evidence, band=band, title=title, detail=detail,
                    episode_id=decision.state.episode or episode, at=oset.effective,
                    source_name=self._s.source_name, now=now, event=events[decision.action])
            await self._emit(self._topics.alerts, patient_ref, bundle, trace)
            alerts_total().labels("care", events[decision.action][0], band.value).inc()
            log.info("alert sent", extra={"fields": {"patient": pid, "kind": state_key,
                                                     "action": decision.action.value, "band": band.value}})
        if decision.state != previous:
            await self._store.set_value(pid, state_key, _state_json(decision.state))
        return decision.action.value if decision.action else None

    async def _emit(self, topic: str, key: str, resource: dict[str, Any], trace: str | None) -> None:
        headers = fhir_headers(resource["resourceType"], resource["id"], self._s.source_name, trace)
        await self._publish(Outgoing(topic, key, _dumps(resource), headers))
