"""Evaluation of negation on NegEx-style annotations (report, concept, sentence, Affirmed/Negated).

The annotated concept is written in upper case inside its sentence; it is located there
and handed to each system as the target, so the figures measure assertion alone.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from carepulse.nlp.negex import NegEx
from carepulse.nlp.pipeline import ClinicalPipeline, RuleSet


@dataclass(frozen=True, slots=True)
class Example:
    report: str
    concept: str
    sentence: str
    start: int
    end: int
    negated: bool


@dataclass(frozen=True, slots=True)
class Scores:
    system: str
    n: int
    accuracy: float
    negated_precision: float
    negated_recall: float
    negated_f1: float
    seconds: float

    def line(self) -> str:
        return (f"accuracy={self.accuracy:.4f} negated_precision={self.negated_precision:.4f} "
                f"negated_recall={self.negated_recall:.4f} negated_f1={self.negated_f1:.4f}")


def locate(concept: str, sentence: str) -> tuple[int, int] | None:
    """Where the (upper-cased) concept is in the sentence; case-insensitive as a fallback."""
    words = concept.split()
    if not words:
        return None
    for text, flags in ((concept.upper(), 0), (concept, re.I)):
        pattern = r"\s+".join(re.escape(w) for w in text.split())
        m = re.search(pattern, sentence, flags)
        if m:
            return m.start(), m.end()
    return None


def load_examples(path: Path) -> tuple[list[Example], int]:
    """Examples of a NegEx-format TSV and how many rows had a concept not found in its sentence."""
    examples: list[Example] = []
    missing = 0
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            label = (row.get("Negation") or "").strip()
            if label not in ("Affirmed", "Negated"):
                raise ValueError(f"row {row.get('Report No.')}: label {label!r} is not Affirmed/Negated")
            span = locate(row["Concept"], row["Sentence"])
            if span is None:
                missing += 1
                continue
            examples.append(Example(row.get("Report No.", ""), row["Concept"], row["Sentence"], *span,
                                    negated=label == "Negated"))
    return examples, missing


def score(system: str, gold: list[bool], predicted: list[bool], seconds: float) -> Scores:
    tp = sum(g and p for g, p in zip(gold, predicted, strict=True))
    fp = sum(p and not g for g, p in zip(gold, predicted, strict=True))
    fn = sum(g and not p for g, p in zip(gold, predicted, strict=True))
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(system, len(gold), correct / len(gold) if gold else 0.0, precision, recall, f1, seconds)


def _run(system: str, predict: Callable[[Example], bool], examples: list[Example]) -> tuple[Scores, list[bool]]:
    started = time.perf_counter()
    predicted = [predict(e) for e in examples]
    return score(system, [e.negated for e in examples], predicted, time.perf_counter() - started), predicted


def pipeline_predictor(pipeline: ClinicalPipeline) -> Callable[[Example], bool]:
    def predict(e: Example) -> bool:
        return pipeline.assert_spans(e.sentence, [(e.start, e.end)])[0].absent
    return predict


def medspacy_default_predictor(pipeline: ClinicalPipeline) -> Callable[[Example], bool]:
    # medspaCy's own notion of negation: only the NEGATED_EXISTENCE modifier.
    def predict(e: Example) -> bool:
        return pipeline.assert_spans(e.sentence, [(e.start, e.end)])[0].negated
    return predict


def negex_predictor(negex: NegEx) -> Callable[[Example], bool]:
    def predict(e: Example) -> bool:
        return negex.is_negated(e.sentence, e.start, e.end)
    return predict


SYSTEMS = ("carepulse", "medspacy-default", "negex")


def evaluate(examples: list[Example], systems: Iterable[str] = SYSTEMS) -> list[Scores]:
    """Scores of each system on the same examples, computed in this process."""
    results = []
    for system in systems:
        if system == "carepulse":
            predict = pipeline_predictor(ClinicalPipeline.create(RuleSet.CAREPULSE))
        elif system == "medspacy-default":
            predict = medspacy_default_predictor(ClinicalPipeline.create(RuleSet.MEDSPACY_DEFAULT))
        elif system == "negex":
            predict = negex_predictor(NegEx.load())
        else:
            raise ValueError(f"unknown system {system!r}")
        results.append(_run(system, predict, examples)[0])
    return results


def errors(examples: list[Example], system: str = "carepulse") -> list[tuple[Example, bool]]:
    """The examples a system gets wrong, with its prediction (for error analysis on the dev set)."""
    predict = (pipeline_predictor(ClinicalPipeline.create(RuleSet.CAREPULSE)) if system == "carepulse"
               else medspacy_default_predictor(ClinicalPipeline.create(RuleSet.MEDSPACY_DEFAULT)) if
               system == "medspacy-default" else negex_predictor(NegEx.load()))
    _, predicted = _run(system, predict, examples)
    return [(e, p) for e, p in zip(examples, predicted, strict=True) if p != e.negated]
