"""The shipped model: its stated quality, recomputed through the inference service, and training
reproducing a model of that quality from the shipped data."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
from imaging_fixtures import DATA, MODEL, MODELS, InferenceThread

from carepulse.imaging.classifier import Classifier
from carepulse.imaging.evaluation import binary_metrics, roc_auc, roc_curve
from carepulse.shared.inference.client import InferenceClient

TARGET_AUC, TARGET_ACCURACY = 0.975, 0.90


def served_probabilities(url: str, images: np.ndarray) -> np.ndarray:
    async def main() -> list[float]:
        async with InferenceClient(url, deadline_s=30) as client:
            clf = Classifier(client, MODEL, max_batch=64)
            # Eight concurrent callers of 64 images: the server's dynamic batching merges them.
            chunks = [list(images[i:i + 64]) for i in range(0, len(images), 64)]
            version = await clf.version()
            parts = await asyncio.gather(*(clf.probabilities(c, version) for c in chunks))
            return [p for part in parts for p in part]

    return np.array(asyncio.run(main()))


def test_committed_model_figures_recomputed_through_the_inference_service(inference: InferenceThread,
                                                                          val_set) -> None:
    images, labels = val_set
    x = [(img.astype(np.float32) / 255.0)[None] for img in images]
    probs = served_probabilities(inference.url, np.stack(x))
    m = binary_metrics(labels, probs, 0.5)
    stated = json.loads((MODELS / MODEL / "evaluation" / "1" / "metrics.json").read_text())["validation"]
    assert m.n == stated["n"] == 524
    assert m.auc == pytest.approx(stated["auc"], abs=1e-6)
    assert m.accuracy == pytest.approx(stated["accuracy"], abs=1e-9)
    assert (m.tp, m.fp, m.tn, m.fn) == (stated["tp"], stated["fp"], stated["tn"], stated["fn"])
    assert m.auc >= TARGET_AUC and m.accuracy >= TARGET_ACCURACY
    card = (MODELS / MODEL / "MODEL_CARD.md").read_text()
    row = re.search(r"\*\*validation \(ONNX Runtime\)\*\* \| 524 \| ([0-9.]+) \| ([0-9.]+) \|", card)
    assert row and float(row.group(1)) == pytest.approx(m.auc, abs=5e-5)
    assert float(row.group(2)) == pytest.approx(m.accuracy, abs=5e-5)


def test_evaluation_helpers_agree_with_definitions() -> None:
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    assert roc_auc(y, s) == pytest.approx(5 / 6)  # 5 of the 6 positive/negative pairs are ordered
    fpr, tpr, _ = roc_curve(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(5 / 6)
    m = binary_metrics(y, s, 0.5)
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 1, 1, 1)


def test_short_seeded_training_reaches_the_stated_quality_and_serves(tmp_path: Path) -> None:
    # torch is a test requirement (tests/requirements.txt): a missing one fails here, it never skips.
    from carepulse.imaging.training.cli import main

    repo = tmp_path / "models"
    args = ["--data", str(DATA), "--repository", str(repo), "--epochs", "4", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((repo / MODEL / "evaluation" / "1" / "metrics.json").read_text())
    assert metrics["validation"]["auc"] >= TARGET_AUC
    assert metrics["validation"]["accuracy"] >= TARGET_ACCURACY
    assert metrics["max_abs_diff_onnx_vs_torch"] < 1e-4
    for f in ("config.pbtxt", "MODEL_CARD.md", "1/model.onnx", "evaluation/1/roc.png", "evaluation/1/report.md"):
        assert (repo / MODEL / f).is_file(), f
    assert (repo / MODEL / "evaluation" / "1" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "dynamic_batching" in (repo / MODEL / "config.pbtxt").read_text()
    # What training wrote is servable as it is: the inference service loads it and agrees.
    with InferenceThread(repo) as server:
        images = np.load(DATA)["val_images"][:64].astype(np.float32)[:, None] / 255.0
        probs = served_probabilities(server.url, images)
    assert probs.shape == (64,) and np.all((probs >= 0) & (probs <= 1))
