"""The PneumoniaMNIST arrays: train for fitting, validation for reporting only."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """The data file is missing arrays or holds something other than 28x28 grey images."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # uint8 [N], 1 = pneumonia

    def scaled(self) -> np.ndarray:
        """FP32 [N, 1, 28, 28] in 0..1: exactly what the served model takes as ``image``."""
        return (self.images.astype(np.float32) / 255.0)[:, None, :, :]

    def subset(self, n: int, seed: int) -> Split:
        """A seeded random ``n`` of the images (the file stores them grouped by class)."""
        if n <= 0 or n >= len(self.labels):
            return self
        idx = np.sort(np.random.default_rng(seed).permutation(len(self.labels))[:n])
        return Split(self.images[idx], self.labels[idx])


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    sha256: str
    path: Path


def load(path: Path) -> Dataset:
    raw = path.read_bytes()
    with np.load(path) as npz:
        try:
            splits = {
                name: Split(np.asarray(npz[f"{name}_images"], dtype=np.uint8),
                            np.asarray(npz[f"{name}_labels"], dtype=np.uint8).reshape(-1))
                for name in ("train", "val")
            }
        except KeyError as e:
            raise DatasetError(f"{path}: missing array {e}") from None
    for name, s in splits.items():
        if s.images.ndim != 3 or s.images.shape[1:] != (28, 28) or len(s.images) != len(s.labels):
            raise DatasetError(f"{path}: {name} split has shape {s.images.shape} / {s.labels.shape}")
        if not set(np.unique(s.labels)) <= {0, 1}:
            raise DatasetError(f"{path}: {name} labels are not binary")
    return Dataset(splits["train"], splits["val"], hashlib.sha256(raw).hexdigest(), path)
