"""Test-wide fixtures: real servers come from the shared testing plugin (never skipped)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["carepulse.shared.testing.fixtures"]

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def fhir_data() -> Path:
    return DATA / "fhir"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a missing server or tool: fail the run instead of hiding it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") == "true" and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI: {skipped} test(s) skipped; in CI every test must run", red=True)
