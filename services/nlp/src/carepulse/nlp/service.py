"""Assembly of the NLP components from settings (shared by the worker, the CLI and the bench)."""

from __future__ import annotations

import logging

from carepulse.nlp.embeddings import EmbeddingIndex, InferenceEmbedder, PhraseTokenizer
from carepulse.nlp.normalise import Normaliser
from carepulse.nlp.pipeline import ClinicalPipeline, RuleSet
from carepulse.nlp.settings import NlpSettings
from carepulse.nlp.terminology import CodeDescriptions, Lexicon
from carepulse.shared.inference.client import InferenceClient

log = logging.getLogger(__name__)


def quiet_pyrush() -> None:
    """PyRuSH logs every sentence at DEBUG through loguru; keep only its warnings."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def build_pipeline(lexicon: Lexicon) -> ClinicalPipeline:
    quiet_pyrush()
    return ClinicalPipeline.create(RuleSet.CAREPULSE, lexicon)


def build_normaliser(settings: NlpSettings, lexicon: Lexicon, client: InferenceClient | None) -> Normaliser:
    """Lexicon + exact description match, plus embeddings when the index and a client are there."""
    descriptions = CodeDescriptions()
    if client is None or not settings.nlp_embeddings:
        return Normaliser(lexicon, descriptions)
    try:
        index = EmbeddingIndex.load(settings.nlp_index_path)
        tokenizer = PhraseTokenizer(settings.nlp_tokenizer_path)
    except FileNotFoundError as exc:
        log.warning("embedding step off: %s", exc)
        return Normaliser(lexicon, descriptions)
    embedder = InferenceEmbedder(client, tokenizer, settings.nlp_embedding_model)
    return Normaliser(lexicon, descriptions, embedder, index, settings.nlp_min_similarity)
