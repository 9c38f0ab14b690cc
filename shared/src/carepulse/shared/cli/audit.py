"""``carepulse audit``: print the audit trail (FHIR AuditEvents on the audit topic), for one patient
or one client, as lines for people or JSON for machines.

The trail holds one event per request at the ingestion edge (client = the token's client id)
and one per alert delivery outcome of the care relay (client ``care``, destination = the
receiver's host). Replays can put an event on the topic twice with the same id: it is shown once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from kafka import KafkaConsumer, TopicPartition

from carepulse.shared.audit import PATIENT_ROLE
from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

app = typer.Typer(help="Print the audit trail: one AuditEvent per request at the ingestion edge and per alert "
                       "delivery outcome.",
                  add_completion=False, pretty_exceptions_show_locals=False)
_OUTCOMES = {"0": "ok", "4": "refused", "8": "failed", "12": "failed"}


def read_events(settings: Settings, *, follow: bool = False,
                stop: threading.Event | None = None, idle_s: float = 1.0) -> Iterator[dict[str, Any]]:
    """AuditEvents from the start of the topic; without ``follow``, stop once caught up with its end."""
    stop = stop or threading.Event()
    topic = Topics.with_prefix(settings.topic_prefix).audit
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100, **kafka_client_security(settings))
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=int(idle_s * 1000))
            for records in batch.values():
                for msg in records:
                    try:
                        doc = json.loads(msg.value)
                    except ValueError:
                        continue  # not ours to print; the topic carries AuditEvents only
                    if isinstance(doc, dict) and doc.get("resourceType") == "AuditEvent":
                        yield doc
            if not follow and all(consumer.position(p) >= end[p] for p in parts):
                return
    finally:
        consumer.close()


def summarise(event: dict[str, Any]) -> dict[str, Any]:
    """The parts of an AuditEvent a person reads: when, who, from where, to where, what, outcome."""
    agents = [a for a in event.get("agent") or [] if isinstance(a, dict)] or [{}]
    agent = next((a for a in agents if a.get("requestor")), agents[0])
    others = [a for a in agents if a is not agent]
    who = agent.get("who") or {}
    client = (who.get("identifier") or {}).get("value") or who.get("display") or ""
    patients, what = [], []
    for e in event.get("entity") or []:
        ref = (e.get("what") or {}).get("reference")
        role = (e.get("role") or {}).get("code")
        if ref and role == PATIENT_ROLE:
            patients.append(ref)
        elif ref:
            what.append(ref)
        elif (e.get("what") or {}).get("type"):
            what.append(str(e["what"]["type"]))
        elif (e.get("what") or {}).get("display"):
            what.append(str(e["what"]["display"]))
    subtype = ((event.get("subtype") or [{}])[0]).get("code", "")
    return {"time": str(event.get("recorded", "")), "client": str(client),
            "address": str((agent.get("network") or {}).get("address", "")),
            "to": ", ".join(str((a.get("network") or {}).get("address", "")) for a in others if a.get("network")),
            "interaction": str(subtype), "outcome": _OUTCOMES.get(str(event.get("outcome")), "?"),
            "detail": str(event.get("outcomeDesc", "")), "patients": patients, "what": what}


def matches(summary: dict[str, Any], patient: str | None, client: str | None) -> bool:
    if patient and f"Patient/{patient.removeprefix('Patient/')}" not in summary["patients"]:
        return False
    return not client or summary["client"] == client


def line(s: dict[str, Any], max_items: int = 5) -> str:
    what = s["what"][:max_items] + ([f"+{len(s['what']) - max_items} more"] if len(s["what"]) > max_items else [])
    who = ", ".join(s["patients"][:max_items]) or "-"
    to = f" to={s['to']}" if s.get("to") else ""
    return (f"{s['time']}  {s['outcome']:<7} {s['interaction']:<11} client={s['client']} from={s['address'] or '-'}"
            f"{to}  patients={who}  what={', '.join(what) or '-'}  ({s['detail']})")


def _kafka(settings: Settings, kafka: str | None) -> Settings:
    """Explicit ``--kafka``, else the running embedded platform's broker, else the settings'."""
    if kafka is None:
        state = Path(settings.run_dir) / "current" / "state.json"
        if state.exists():
            kafka = json.loads(state.read_text()).get("kafka")
    return settings.model_copy(update={"kafka_bootstrap_servers": kafka}) if kafka else settings


@app.callback(invoke_without_command=True)
def audit(patient: Annotated[str | None, typer.Option(help="Only requests about this patient (id or Patient/id)")]
          = None,
          client: Annotated[str | None, typer.Option(help="Only requests of this client id ('anonymous' too)")]
          = None,
          json_out: Annotated[bool, typer.Option("--json", help="One AuditEvent per line, as JSON")] = False,
          follow: Annotated[bool, typer.Option(help="Keep printing new events until Ctrl-C")] = False,
          kafka: Annotated[str | None, typer.Option("--kafka", help="Kafka bootstrap servers (host:port)")] = None,
          ) -> None:
    """Print the AuditEvents of the audit topic, oldest first."""
    settings = _kafka(Settings(), kafka)
    shown = 0
    seen: set[str] = set()
    try:
        for event in read_events(settings, follow=follow):
            event_id = str(event.get("id", ""))
            if event_id and event_id in seen:
                continue  # the same event again (a replayed or retried publisher): one record of one fact
            seen.add(event_id)
            s = summarise(event)
            if not matches(s, patient, client):
                continue
            shown += 1
            typer.echo(json.dumps(event, separators=(",", ":")) if json_out else line(s))
    except KeyboardInterrupt:
        pass
    if not json_out and not follow:
        typer.echo(f"{shown} event(s)", err=True)
