"""Sentence embeddings through the inference service, and the ICD-10-CM description index.

The NLP service tokenises (``tokenizers``, the model's own ``tokenizer.json``) and sends
token ids to the ``text-embedding`` model over gRPC; mean pooling and L2 normalisation
are inside the ONNX graph, so the answer is a unit vector and cosine similarity is a
dot product. Only mention phrases are sent, never whole notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from carepulse.shared.inference.client import InferenceClient

# Every request is padded to this many tokens: requests then share one shape, so the
# inference service's dynamic batching can merge them. Condition phrases are far shorter.
SEQUENCE_LENGTH = 32
MODEL_NAME = "text-embedding"


class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> np.ndarray: ...


class PhraseTokenizer:
    def __init__(self, path: Path, length: int = SEQUENCE_LENGTH) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer not found: {path}")
        self._tok = Tokenizer.from_file(str(path))
        self._tok.enable_truncation(max_length=length)
        self._tok.enable_padding(length=length, pad_id=0, pad_token="[PAD]")

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        enc = self._tok.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        }


class InferenceEmbedder:
    """Embeds phrases with the ``text-embedding`` model served by the inference service."""

    def __init__(self, client: InferenceClient, tokenizer: PhraseTokenizer, model: str = MODEL_NAME,
                 max_batch: int = 64) -> None:
        self._client = client
        self._tokenizer = tokenizer
        self._model = model
        self._max_batch = max_batch

    async def embed(self, texts: list[str]) -> np.ndarray:
        parts = []
        for i in range(0, len(texts), self._max_batch):
            inputs = self._tokenizer.encode(texts[i:i + self._max_batch])
            out = await self._client.infer(self._model, inputs, outputs=["embedding"])
            parts.append(out["embedding"].astype(np.float32))
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


@dataclass(frozen=True, slots=True)
class Hit:
    code: str
    text: str
    score: float


class EmbeddingIndex:
    """Unit vectors of ICD-10-CM descriptions (and lexicon synonyms) with their codes."""

    def __init__(self, codes: np.ndarray, texts: np.ndarray, vectors: np.ndarray, model: str) -> None:
        self.codes = codes
        self.texts = texts
        self.vectors = vectors.astype(np.float32)
        self.model = model

    @classmethod
    def load(cls, path: Path) -> EmbeddingIndex:
        if not path.is_file():
            raise FileNotFoundError(f"embedding index not found: {path} (build it: carepulse train nlp-index)")
        with np.load(path, allow_pickle=False) as z:
            return cls(z["codes"], z["texts"], z["vectors"], str(z["model"]))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, codes=self.codes, texts=self.texts, vectors=self.vectors.astype(np.float16),
                            model=np.array(self.model))

    def search(self, vectors: np.ndarray) -> list[Hit]:
        """Best entry for each query vector (rows of ``vectors``), by cosine similarity."""
        if len(vectors) == 0:
            return []
        sims = vectors.astype(np.float32) @ self.vectors.T
        best = sims.argmax(axis=1)
        return [Hit(str(self.codes[j]), str(self.texts[j]), float(sims[i, j])) for i, j in enumerate(best)]
