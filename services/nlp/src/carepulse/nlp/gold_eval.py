"""Top-1 ICD-10-CM category accuracy on a gold list (phrase, category), with and without embeddings."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from carepulse.nlp.normalise import Method, Normaliser


@dataclass(frozen=True, slots=True)
class GoldScores:
    setting: str
    n: int
    accuracy: float
    coded: int
    by_method: dict[str, int]


def load_gold(path: Path) -> list[tuple[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [(r["phrase"], r["category"]) for r in csv.DictReader(lines, delimiter="\t")]


async def evaluate_gold(gold: list[tuple[str, str]], normaliser: Normaliser, setting: str) -> GoldScores:
    results = await normaliser.normalise_many([p for p, _ in gold])
    correct = sum(r.category == cat for r, (_, cat) in zip(results, gold, strict=True))
    by_method: dict[str, int] = {m.value: 0 for m in Method}
    for r in results:
        by_method[r.method.value] += 1
    return GoldScores(setting, len(gold), correct / len(gold) if gold else 0.0,
                      sum(r.code is not None for r in results), by_method)
