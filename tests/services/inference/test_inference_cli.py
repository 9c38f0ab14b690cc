"""``carepulse models list|load|unload`` against a live server (the CLI's typer sub-app)."""

from __future__ import annotations

from typer.testing import CliRunner

from carepulse.inference.testing import ServerThread
from carepulse.shared.cli.models import app

runner = CliRunner()


def test_list_unload_load(server: ServerThread) -> None:
    url = ["--url", server.grpc_url]
    result = runner.invoke(app, ["list", *url], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "affine" in result.output and "READY" in result.output and "broken" in result.output

    result = runner.invoke(app, ["unload", "uint8_mean", *url])
    assert result.exit_code == 0, result.output
    assert not server.server.repository.is_ready("uint8_mean")
    result = runner.invoke(app, ["list", "--ready", *url], terminal_width=200)
    assert "uint8_mean" not in result.output

    result = runner.invoke(app, ["load", "uint8_mean", *url])
    assert result.exit_code == 0, result.output
    assert server.server.repository.is_ready("uint8_mean")


def test_errors_exit_non_zero(server: ServerThread) -> None:
    result = runner.invoke(app, ["load", "no-such-model", "--url", server.grpc_url])
    assert result.exit_code == 1 and "NOT_FOUND" in result.output
    result = runner.invoke(app, ["load", "broken", "--url", server.grpc_url])
    assert result.exit_code == 1 and "FAILED_PRECONDITION" in result.output
