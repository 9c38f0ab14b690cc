"""Fixtures of the inference tests (helpers and test models: inference_fixtures.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from inference_fixtures import build_repository

from carepulse.inference.testing import ServerThread, local_settings


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(model_repo: Path) -> Iterator[ServerThread]:
    with ServerThread(local_settings(model_repo)) as running:
        yield running


@pytest.fixture
def make_server(model_repo: Path) -> Callable[..., ServerThread]:
    return lambda **overrides: ServerThread(local_settings(model_repo, **overrides))
