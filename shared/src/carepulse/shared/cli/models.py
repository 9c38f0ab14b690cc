"""``carepulse models list|load|unload``: the inference service's model repository.

Works against the CarePulse inference service or NVIDIA Triton alike (same protocol).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from carepulse.shared.inference.client import InferenceClient, InferenceError, channel_credentials
from carepulse.shared.inference.settings import InferenceClientSettings

T = TypeVar("T")

app = typer.Typer(help="List, load and unload models on the inference service.", no_args_is_help=True)
console = Console()

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Inference gRPC host:port [default: CAREPULSE_INFERENCE_URL or 127.0.0.1:8001]"),
]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait (loading can take a while)")]


def _run(url: str | None, timeout: float, call: Callable[[InferenceClient], Awaitable[T]]) -> T:
    settings = InferenceClientSettings()

    async def main() -> T:
        async with InferenceClient(url or settings.inference_url, deadline_s=timeout,
                                   retries=settings.inference_retries, credentials=channel_credentials(settings),
                                   tls_server_name=settings.inference_client_tls_server_name) as client:
            return await call(client)

    try:
        return asyncio.run(main())
    except InferenceError as e:
        console.print(f"[red]{e.code.name}[/]: {e.message}")
        raise typer.Exit(1) from None


@app.command("list")
def list_models(
    url: UrlOption = None,
    ready: Annotated[bool, typer.Option("--ready", help="Only models that are ready")] = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Every model in the repository, with its versions and state."""
    entries = _run(url, timeout, lambda c: c.repository_index(ready_only=ready))
    table = Table(title="Model repository")
    for col in ("model", "version", "state", "reason"):
        table.add_column(col)
    style = {"READY": "green", "UNAVAILABLE": "red"}
    for e in entries:
        state = f"[{style[e.state]}]{e.state}[/]" if e.state in style else (e.state or "-")
        table.add_row(e.name, e.version or "-", state, e.reason)
    console.print(table)


@app.command("load")
def load(
    name: Annotated[str, typer.Argument(help="Model name (directory in the repository)")],
    url: UrlOption = None,
    timeout: TimeoutOption = 120.0,
) -> None:
    """Load (or reload) a model."""
    _run(url, timeout, lambda c: c.load_model(name))
    console.print(f"[green]loaded[/] {name}")


@app.command("unload")
def unload(
    name: Annotated[str, typer.Argument(help="Model name")],
    url: UrlOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Unload a model; requests for it get NOT_FOUND until it is loaded again."""
    _run(url, timeout, lambda c: c.unload_model(name))
    console.print(f"[yellow]unloaded[/] {name}")
