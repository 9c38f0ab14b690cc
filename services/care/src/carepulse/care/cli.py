"""``carepulse context``: show one patient's context, or rebuild it from the topics."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from carepulse.care.context import SECTIONS
from carepulse.care.processor import CareProcessor
from carepulse.care.rebuild import rebuild as rebuild_context
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore
from carepulse.shared.topics import Topics

app = typer.Typer(help="The care service's patient context in Redis.", no_args_is_help=True)
console = Console()


async def _publish_nothing(_: object) -> None:
    raise RuntimeError("rebuilding the context publishes nothing")


@app.command()
def show(patient: Annotated[str, typer.Argument(help="Patient id (with or without 'Patient/')")],
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print what care knows about one patient."""
    settings = CareSettings()
    pid = patient.removeprefix("Patient/")

    async def load() -> dict:
        store = PatientContextStore.from_settings(settings)
        try:
            ctx = {s: await store.get_section(pid, s) for s in SECTIONS}
            for key in ("news2-alert", "sepsis-alert"):
                raw = await store.get_value(pid, key)
                ctx[key] = json.loads(raw) if raw else None
            return ctx
        finally:
            await store.close()

    ctx = asyncio.run(load())
    if as_json:
        print(json.dumps(ctx, indent=2))
        return
    table = Table(title=f"Patient/{pid}")
    for col in ("section", "item", "value", "time"):
        table.add_column(col)
    for section in SECTIONS:
        for item, value in sorted(ctx[section].items()):
            t = value.pop("t", "")
            value.pop("source", None)
            table.add_row(section, item, json.dumps(value, ensure_ascii=False), str(t))
    for key in ("news2-alert", "sepsis-alert"):
        if ctx[key]:
            table.add_row("alert state", key, json.dumps(ctx[key]), str(ctx[key].get("at", "")))
    console.print(table)


@app.command()
def rebuild() -> None:
    """Replay the topics into Redis (after a flush, or to warm a new cache)."""
    settings = CareSettings()
    topics = Topics.with_prefix(settings.topic_prefix)

    async def run() -> dict[str, int]:
        store = PatientContextStore.from_settings(settings, ttl_seconds=settings.care_context_ttl_s)
        try:
            return await rebuild_context(CareProcessor(topics, store, _publish_nothing, settings), settings, topics)
        finally:
            await store.close()

    with console.status("replaying topics into the patient context…"):
        counts = asyncio.run(run())
    for topic, n in counts.items():
        console.print(f"  {topic}: {n} records")
