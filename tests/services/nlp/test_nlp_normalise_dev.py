"""The normaliser with the real model and index (built at set-up) on the ICD-10-CM development list.

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


def test_dev_and_gold_lists_share_no_phrase() -> None:
    dev = {p.lower() for p, _ in load_gold(DEV)}
    assert len(dev) >= 150 and not dev & {p.lower() for p, _ in load_gold(GOLD)}


def test_embedding_step_adds_over_exact_matching_on_dev(lexicon: Lexicon, descriptions: CodeDescriptions) -> None:
    settings = NlpSettings()
    model_dir = ROOT / settings.nlp_tokenizer_path.parent
    index = EmbeddingIndex.load(ROOT / settings.nlp_index_path)
    dev = load_gold(DEV)
    exact = asyncio.run(evaluate_gold(dev, Normaliser(lexicon, descriptions), "exact"))
    full = asyncio.run(evaluate_gold(
        dev, Normaliser(lexicon, descriptions, OnnxEmbedder(model_dir), index, settings.nlp_min_similarity), "full"))
    # Measured 0.307 exact, 0.712 with embeddings (163 phrases, mostly lay terms).
    assert 0.25 <= exact.accuracy <= 0.4
    assert full.accuracy >= 0.68 and full.accuracy >= exact.accuracy + 0.3
    assert full.by_method["embedding"] >= 90
