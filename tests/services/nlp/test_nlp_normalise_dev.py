"""The normaliser with the real model and index (built at set-up) on the ICD-10-CM dev and gold lists.

The embedding step runs in-process here (``OnnxEmbedder``, the offline tools' embedder) so
the test needs no inference service; the figures are those the service gets through it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from carepulse.nlp.embeddings import EmbeddingIndex
from carepulse.nlp.gold_eval import evaluate_gold, load_gold
from carepulse.nlp.index_build import OnnxEmbedder
from carepulse.nlp.normalise import Normaliser
from carepulse.nlp.settings import NlpSettings
from carepulse.nlp.terminology import CodeDescriptions, Lexicon

ROOT = Path(__file__).resolve().parents[3]
DEV = ROOT / "tests" / "data" / "notes" / "icd10cm_dev.tsv"
GOLD = ROOT / "tests" / "data" / "notes" / "icd10cm_gold.tsv"


def _first_round(path: Path) -> list[tuple[str, str]]:
    """The dev phrases written before the normalisation synonyms (none of them is in synonyms.tsv)."""
    text = path.read_text(encoding="utf-8").split("# Added in the second round")[0]
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return [tuple(line.split("\t")) for line in lines[1:]]  # type: ignore[misc]


def test_dev_and_gold_lists_share_no_phrase(lexicon: Lexicon) -> None:
    dev = {p.lower() for p, _ in load_gold(DEV)}
    assert len(dev) >= 400 and not dev & {p.lower() for p, _ in load_gold(GOLD)}
    first = _first_round(DEV)
    assert len(first) == 163
    assert [p for p, _ in first if lexicon.lookup(p) in lexicon.synonyms] == []


def test_embedding_step_adds_over_exact_matching_on_dev(lexicon: Lexicon, descriptions: CodeDescriptions) -> None:
    settings = NlpSettings()
    model_dir = ROOT / settings.nlp_tokenizer_path.parent
    index = EmbeddingIndex.load(ROOT / settings.nlp_index_path)
    dev = load_gold(DEV)
    exact = asyncio.run(evaluate_gold(dev, Normaliser(lexicon, descriptions), "exact"))
    full = asyncio.run(evaluate_gold(
        dev, Normaliser(lexicon, descriptions, OnnxEmbedder(model_dir), index, settings.nlp_min_similarity), "full"))
    # Measured 0.701 exact, 0.939 with embeddings (412 phrases: lay terms, abbreviations, variants).
    assert 0.6 <= exact.accuracy <= 0.8
    assert full.accuracy >= 0.92 and full.accuracy >= exact.accuracy + 0.2
    assert full.by_method["embedding"] >= 100
    # The first 163 phrases share none with the synonym list: 0.399 exact, 0.859 with embeddings.
    first = _first_round(DEV)
    first_full = asyncio.run(evaluate_gold(
        first, Normaliser(lexicon, descriptions, OnnxEmbedder(model_dir), index, settings.nlp_min_similarity), "full"))
    assert first_full.accuracy >= 0.84


def test_gold_top1_category_accuracy(lexicon: Lexicon, descriptions: CodeDescriptions) -> None:
    """The evaluation list: never tuned on. Measured once, after all tuning on the dev list:
    0.857 exact/synonym, 0.952 with embeddings (147 phrases; the bench's inference-service path
    gives the same). The floors sit just under that; the target is 0.9."""
    settings = NlpSettings()
    gold = load_gold(GOLD)
    exact = asyncio.run(evaluate_gold(gold, Normaliser(lexicon, descriptions), "exact"))
    full = asyncio.run(evaluate_gold(gold, Normaliser(
        lexicon, descriptions, OnnxEmbedder(ROOT / settings.nlp_tokenizer_path.parent),
        EmbeddingIndex.load(ROOT / settings.nlp_index_path), settings.nlp_min_similarity), "full"))
    assert len(gold) >= 100 and exact.accuracy >= 0.84
    assert full.accuracy >= 0.94 and full.accuracy >= exact.accuracy + 0.07
