"""Binary-classifier figures (numpy only): used by training, its report, and the tests.

Kept out of ``training`` so the figures can be recomputed from the served model without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BinaryMetrics:
    n: int
    positives: int
    auc: float
    accuracy: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney U statistic (ties count one half)."""
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # Average ranks over ties.
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, thresholds), from the strictest threshold down."""
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fps / max(int((~y).sum()), 1)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> BinaryMetrics:
    y = np.asarray(labels).ravel().astype(bool)
    pred = np.asarray(scores, dtype=np.float64).ravel() >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    tn, fn = int((~pred & ~y).sum()), int((~pred & y).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return BinaryMetrics(
        n=len(y), positives=int(y.sum()), auc=roc_auc(y, scores), accuracy=ratio(tp + tn, len(y)),
        sensitivity=ratio(tp, tp + fn), specificity=ratio(tn, tn + fp), ppv=ratio(tp, tp + fp),
        npv=ratio(tn, tn + fn), threshold=threshold, tp=tp, fp=fp, tn=tn, fn=fn,
    )
