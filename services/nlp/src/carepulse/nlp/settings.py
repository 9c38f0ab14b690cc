"""Settings of the NLP worker (``CAREPULSE_NLP_*``, the inference client's and the common ones)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from carepulse.shared.inference.settings import InferenceClientSettings


class NlpSettings(InferenceClientSettings):
    nlp_port: int = Field(8091, description="Health and metrics port of the NLP worker")
    nlp_group: str = Field("carepulse-nlp", description="Kafka consumer group of the NLP worker")
    nlp_max_note_bytes: int = Field(256 * 1024, gt=0, description="Notes larger than this are dead-lettered")
    nlp_embedding_model: str = Field("text-embedding", description="Sentence-embedding model on the inference service")
    nlp_tokenizer_path: Path = Field(
        Path("models/text-embedding/tokenizer.json"), description="tokenizer.json of the embedding model"
    )
    nlp_index_path: Path = Field(
        Path("models/text-embedding/index/icd10cm.npz"),
        description="ICD-10-CM embedding index (built by `carepulse train nlp-index`)",
    )
    nlp_min_similarity: float = Field(
        0.6, ge=0, le=1, description="Least cosine similarity for an embedding-based ICD-10-CM code"
    )
    nlp_embeddings: bool = Field(True, description="Use the embedding step (off: lexicon and exact match only)")
