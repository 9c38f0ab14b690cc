"""``carepulse``: start the platform, send FHIR, watch alerts, run the demo."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from carepulse.shared.cli import audit as audit_cli
from carepulse.shared.cli import models
from carepulse.shared.cli.alerts import follow, matches, summarise
from carepulse.shared.cli.send import SendReport, files_in, requests_for, send_one
from carepulse.shared.logs import setup_logging
from carepulse.shared.platform.supervisor import Platform, probe
from carepulse.shared.settings import Settings

app = typer.Typer(help="CarePulse: clinical AI on live FHIR data.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False)
app.add_typer(models.app, name="models")
app.add_typer(audit_cli.app, name="audit")
console = Console()


def _add_service_commands(name: str, module: str) -> None:
    """Commands a service ships (e.g. ``carepulse context`` from care), when it is installed."""
    if importlib.util.find_spec(module.split(".")[0] + "." + module.split(".")[1]) is None:
        return
    app.add_typer(importlib.import_module(module).app, name=name)


_add_service_commands("context", "carepulse.care.cli")
_add_service_commands("nlp", "carepulse.nlp.cli")

train_app = typer.Typer(help="Train or build the models CarePulse serves.", no_args_is_help=True)
app.add_typer(train_app, name="train")
_PASS_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _run_trainer(module: str, ctx: typer.Context) -> None:
    try:
        trainer = importlib.import_module(module)
    except ModuleNotFoundError as e:
        console.print(f"[red]{e.name} is not installed (install the service with its [train] extra)[/]")
        raise typer.Exit(2) from e
    raise typer.Exit(trainer.main(list(ctx.args)))


@train_app.command("imaging", context_settings=_PASS_ARGS)
def train_imaging(ctx: typer.Context) -> None:
    """Train the pneumonia model and export it to models/pneumonia-cxr (--help for options)."""
    _run_trainer("carepulse.imaging.training.cli", ctx)


@train_app.command("nlp-index", context_settings=_PASS_ARGS)
def train_nlp_index(ctx: typer.Context) -> None:
    """Export the sentence-embedding model to ONNX and build the ICD-10-CM index (--help for options)."""
    _run_trainer("carepulse.nlp.index_build", ctx)
_SEVERITY_STYLE = {"high": "bold red", "moderate": "yellow", "low": "cyan"}


def _settings(kafka: str | None = None, redis: str | None = None) -> Settings:
    s = Settings()
    update = {k: v for k, v in (("kafka_bootstrap_servers", kafka), ("redis_url", redis)) if v}
    return s.model_copy(update=update) if update else s


def _current_state(settings: Settings) -> dict | None:
    f = Path(settings.run_dir) / "current" / "state.json"
    return json.loads(f.read_text()) if f.exists() else None


def _status_table(state: dict) -> Table:
    t = Table(title=f"CarePulse platform (kafka {state['kafka']}, redis {state['redis']})")
    for col in ("service", "pid", "ports", "health", "ready"):
        t.add_column(col)
    for name, s in state["services"].items():
        code, body = probe(s["health"] + "/readyz")
        ready = "[green]ready[/]" if code == 200 else f"[red]{'down' if code == 0 else body.get('status', code)}[/]"
        t.add_row(name, str(s["pid"]), ", ".join(str(p) for p in s["ports"].values()), s["health"], ready)
    return t


def _start(settings: Settings, kafka: str | None, redis: str | None, free_ports: bool) -> Platform:
    run_dir = Path(settings.run_dir) / datetime.now().strftime("%Y%m%d-%H%M%S")
    only = [n.strip() for n in settings.services.split(",") if n.strip()] or None
    platform = Platform(settings, run_dir, kafka=kafka, redis=redis, free_ports=free_ports, only=only)
    run_dir.mkdir(parents=True, exist_ok=True)
    current = Path(settings.run_dir) / "current"
    current.unlink(missing_ok=True)
    current.symlink_to(run_dir.name)
    console.print(f"[bold]CarePulse[/] run folder: {run_dir} (logs in {run_dir / 'logs'})")
    try:
        platform.start(progress=lambda m: console.print(f"  [dim]•[/] {m}"))
    except BaseException:
        platform.stop(progress=lambda m: None)
        raise
    console.print(_status_table(platform.state()))
    return platform


def _wait_for_stop(platform: Platform, before_stop: Callable[[], object] = lambda: None) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    warned: set[str] = set()
    while not stop.wait(1.0):
        for r in platform.failed_services():
            if r.spec.name not in warned:
                warned.add(r.spec.name)
                console.print(f"[red]{r.spec.name} exited ({r.proc.returncode}); see {r.log}[/]")
    console.print("\nstopping…")
    before_stop()
    platform.stop(progress=lambda m: console.print(f"  [dim]•[/] {m}"))
    console.print("[bold]CarePulse stopped.[/]")


KafkaOpt = Annotated[str | None, typer.Option("--kafka", help="External Kafka bootstrap servers (host:port)")]
RedisOpt = Annotated[str | None, typer.Option("--redis", help="External Redis URL (redis://host:port/db)")]


@app.command("run")
def run_service(service: Annotated[str, typer.Argument(help="ingestion, care, inference, nlp or imaging")]) -> None:
    """Run one service in the foreground (the container entry point)."""
    from carepulse.shared.platform.catalogue import CATALOGUE

    spec = next((s for s in CATALOGUE if s.name == service), None)
    if spec is None or not spec.installed():
        console.print(f"[red]no installed service named {service!r}[/]")
        raise typer.Exit(2)
    os.execvp(sys.executable, [sys.executable, "-m", spec.module])


@app.command()
def up(kafka: KafkaOpt = None, redis: RedisOpt = None,
       free_ports: Annotated[bool, typer.Option(help="Pick free ports instead of the defaults")] = False) -> None:
    """Start the embedded platform (broker, Redis, every installed service) until Ctrl-C."""
    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    _wait_for_stop(_start(settings, kafka, redis, free_ports))


@app.command()
def status() -> None:
    """Show the services of the running platform and whether each is ready."""
    state = _current_state(_settings())
    if state is None:
        console.print("no platform has been started here (run `carepulse up`)")
        raise typer.Exit(1)
    console.print(_status_table(state))


@app.command()
def send(path: Annotated[Path, typer.Argument(exists=True, help="FHIR JSON / NDJSON file or a folder of them")],
         url: Annotated[str | None, typer.Option(help="Ingestion base URL")] = None) -> None:
    """POST FHIR resources, Bundles or NDJSON to ingestion, with progress and a final report."""
    settings = _settings()
    state = _current_state(settings)
    base = url or (state or {}).get("ingestion_url") or settings.ingestion_url
    report = SendReport()
    work = [req for f in files_in(path) for req in requests_for(f)]
    with httpx.Client(base_url=base, timeout=60) as client, Progress(console=console) as progress:
        task = progress.add_task(f"sending to {base}", total=len(work))
        for url_path, body in work:
            send_one(client, url_path, body, report)
            progress.advance(task)
    console.print(f"accepted [green]{report.accepted}[/], rejected [red]{report.rejected}[/]")
    for reason in report.reasons[:20]:
        console.print(f"  [red]✗[/] {reason}")
    if report.rejected:
        raise typer.Exit(2)


def print_alert(bundle: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(bundle, separators=(",", ":")), flush=True)
        return
    s = summarise(bundle)
    style = _SEVERITY_STYLE.get(s["severity"], "")
    if s["event"].endswith("-resolved"):
        console.print(f"[green]RESOLVED[/] {s['title']}  {s['patient']}  {s['time']}")
        return
    label = "REMINDER" if s["event"].endswith("-reminder") else "ALERT"
    console.print(f"[{style}]{label} {s['title']}: {s['band'].upper()}[/]  {s['patient']}  {s['time']}")
    console.print(f"      {s['detail']}")


@app.command()
def alerts(json_out: Annotated[bool, typer.Option("--json", help="One alert Bundle per line, as JSON")] = False,
           from_beginning: Annotated[bool, typer.Option(help="Replay alerts already on the topic")] = False,
           patient: Annotated[str | None, typer.Option(help="Only this patient (id or Patient/id)")] = None,
           level: Annotated[str | None, typer.Option(help="Only this severity or higher: low, moderate, high")] = None,
           kafka: KafkaOpt = None) -> None:
    """Follow carepulse.alerts and print each alert."""
    settings = _settings()
    state = _current_state(settings)
    if kafka is None and state:
        kafka = state["kafka"]
    settings = _settings(kafka)
    try:
        for bundle in follow(settings, from_beginning):
            if matches(summarise(bundle), patient, level):
                print_alert(bundle, json_out)
    except KeyboardInterrupt:
        pass


@app.command()
def demo(kafka: KafkaOpt = None, redis: RedisOpt = None,
         free_ports: Annotated[bool, typer.Option(help="Pick free ports instead of the defaults")] = False,
         pause: Annotated[float, typer.Option(help="Seconds between hourly rounds")] = 1.5) -> None:
    """Start the platform, send the sample patients' vital signs, and show alerts as they arrive."""
    from carepulse.shared.demo.scenario import admission_documents, patients, rounds, transaction

    settings = _settings()
    setup_logging("WARNING", settings.log_format)
    platform = _start(settings, kafka, redis, free_ports)
    watch = settings.model_copy(update={"kafka_bootstrap_servers": platform.kafka})
    stop_watching = threading.Event()
    watcher = threading.Thread(target=lambda: [print_alert(b, False) for b in follow(watch, True, stop_watching)],
                               daemon=True)
    watcher.start()
    try:
        with httpx.Client(base_url=platform.ingestion_url, timeout=30) as client:
            report = SendReport()
            people = patients()
            send_one(client, "/fhir", json.dumps(transaction(list(people.values()))).encode(), report)
            console.print(f"[bold]demo[/]: {len(people)} patients admitted "
                          f"({', '.join(role + ' = Patient/' + p['id'] for role, p in people.items())})")
            sick = people["deteriorating"]["id"]
            send_one(client, "/fhir", json.dumps(transaction(admission_documents(
                sick, datetime.now().astimezone() - timedelta(hours=5)))).encode(), report)
            console.print(f"[bold]demo[/]: admission note and chest X-ray of Patient/{sick} sent "
                          "(nlp and imaging findings feed the sepsis screen)")
            for h, bundles in enumerate(rounds()):
                for b in bundles:
                    send_one(client, "/fhir", json.dumps(b).encode(), report)
                console.print(f"[dim]demo: vital-signs round {h + 1} sent "
                              f"({report.accepted} accepted, {report.rejected} rejected)[/]")
                time.sleep(pause)
        console.print("[bold]demo[/]: all rounds sent; alerts appear above as the care service raises them. "
                      "Ctrl-C to stop.")
        _wait_for_stop(platform, before_stop=lambda: (stop_watching.set(), watcher.join(5)))
    except BaseException:
        stop_watching.set()
        platform.stop(progress=lambda m: None)
        raise


def run() -> None:
    app()
