"""Helpers shared by the deploy tests: what the code expects (settings, catalogue)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable

import pytest

from carepulse.shared.inference.settings import InferenceClientSettings
from carepulse.shared.platform.catalogue import CATALOGUE
from carepulse.shared.settings import Settings
from carepulse.shared.tracing import TracingSettings


def _settings_env(service: str) -> set[str]:
    """Every CAREPULSE_* variable a service's processes read (its settings + the shared ones)."""
    classes: list[type[Settings]] = [Settings, InferenceClientSettings, TracingSettings]
    names: set[str] = set()
    # find_spec of a submodule raises when the package itself is absent: ask for the package first.
    if importlib.util.find_spec(f"carepulse.{service}") is not None:
        module = importlib.import_module(f"carepulse.{service}.settings")
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, Settings)]
    else:
        # A service still being written: hold it to the platform's contract (its ports).
        spec = next(s for s in CATALOGUE if s.name == service)
        names |= set(spec.ports)
    return names | {"CAREPULSE_" + f.upper() for c in classes for f in c.model_fields}



@pytest.fixture(scope="session")
def settings_env() -> Callable[[str], set[str]]:
    return _settings_env
