"""Fixtures of the imaging tests (helpers and DICOM builders: imaging_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from imaging_fixtures import InferenceThread, direct_probabilities, validation_set


@pytest.fixture(scope="session")
def val_set() -> tuple[np.ndarray, np.ndarray]:
    return validation_set()


@pytest.fixture(scope="session")
def val_direct(val_set: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return direct_probabilities(val_set[0])


@pytest.fixture(scope="module")
def inference() -> Iterator[InferenceThread]:
    with InferenceThread() as running:
        yield running
