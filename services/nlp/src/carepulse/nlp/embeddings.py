"""Sentence embeddings through the inference service, and the ICD-10-CM description index.

The NLP service tokenises (``tokenizers``, the model's own ``tokenizer.json``) and sends
token ids to the ``text-embedding`` model over gRPC; mean pooling and L2 normalisation
are inside the ONNX graph, so the answer is a unit vector and cosine similarity is a
dot product. Only mention phrases are sent, never whole notes.
"""

from __future__ import annotations

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
    def __init__(self, path: Path, length: int = SEQUENCE_LENGTH, fixed: bool = True) -> None:
        """``fixed``: pad every batch to ``length`` (one shape for dynamic batching); otherwise
        to the batch's longest phrase, which the offline index build uses to save work
        (mean pooling ignores padding, so the vectors are the same)."""
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer not found: {path}")
        self._tok = Tokenizer.from_file(str(path))
        self._tok.enable_truncation(max_length=length)
        self._tok.enable_padding(length=length if fixed else None, pad_id=0, pad_token="[PAD]")

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


class EmbeddingIndex:
    """Unit vectors of ICD-10-CM descriptions (and lexicon synonyms) with their codes."""

    def __init__(self, codes: np.ndarray, texts: np.ndarray, vectors: np.ndarray, model: str,
                 fingerprint: str = "") -> None:
        self.codes = codes
        self.texts = texts
        self.vectors = vectors.astype(np.float32)
        self.model = model
        # What the index was built from (model file, entries): a rebuild is skipped when it matches.
        self.fingerprint = fingerprint

    @classmethod
    def load(cls, path: Path) -> EmbeddingIndex:
        if not path.is_file():
            raise FileNotFoundError(f"embedding index not found: {path} (build it: carepulse train nlp-index)")
        with np.load(path, allow_pickle=False) as z:
            fingerprint = str(z["fingerprint"]) if "fingerprint" in z.files else ""
            return cls(z["codes"], z["texts"], z["vectors"], str(z["model"]), fingerprint)

    @staticmethod
    def stored_fingerprint(path: Path) -> str:
        """The fingerprint of the index at ``path`` without loading its vectors ("" if none)."""
        if not path.is_file():
            return ""
        with np.load(path, allow_pickle=False) as z:
            return str(z["fingerprint"]) if "fingerprint" in z.files else ""

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, codes=self.codes, texts=self.texts, vectors=self.vectors.astype(np.float16),
                            model=np.array(self.model), fingerprint=np.array(self.fingerprint))

    def neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, similarities) of the ``k`` nearest entries of each query vector, nearest first."""
        if len(vectors) == 0:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        sims = vectors.astype(np.float32) @ self.vectors.T
        k = min(k, sims.shape[1])
        rows = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, rows, axis=1)
        order = np.argsort(-top, axis=1)
        return np.take_along_axis(rows, order, axis=1), np.take_along_axis(top, order, axis=1)
