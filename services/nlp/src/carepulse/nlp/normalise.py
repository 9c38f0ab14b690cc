"""Mention text -> ICD-10-CM: lexicon and exact description match first, then embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from carepulse.nlp.embeddings import Embedder, EmbeddingIndex
from carepulse.nlp.rerank import RerankWeights, rerank
from carepulse.nlp.terminology import CodeDescriptions, Lexicon, Wording, icd_coding, normalise_phrase

# Below this cosine similarity the nearest description is not trusted: the mention keeps
# only its text. Chosen before looking at the gold list (MiniLM paraphrases score > 0.6).
DEFAULT_MIN_SIMILARITY = 0.6


class Method(StrEnum):
    LEXICON = "lexicon"
    DESCRIPTION = "description"
    EMBEDDING = "embedding"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Normalised:
    text: str
    code: str | None
    display: str | None
    confidence: float
    method: Method

    @property
    def category(self) -> str | None:
        return self.code[:3] if self.code else None


def _merge(rows_a: np.ndarray, sims_a: np.ndarray, rows_b: np.ndarray,
           sims_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of two neighbour lists, each entry at its higher similarity, nearest first."""
    best: dict[int, float] = {}
    pairs = [*zip(rows_a.tolist(), sims_a.tolist(), strict=True), *zip(rows_b.tolist(), sims_b.tolist(), strict=True)]
    for row, sim in pairs:
        best[row] = max(sim, best.get(row, -1.0))
    ordered = sorted(best.items(), key=lambda kv: -kv[1])
    return np.array([r for r, _ in ordered], np.int64), np.array([s for _, s in ordered], np.float32)


class Normaliser:
    def __init__(self, lexicon: Lexicon, descriptions: CodeDescriptions | None = None,
                 embedder: Embedder | None = None, index: EmbeddingIndex | None = None,
                 min_similarity: float = DEFAULT_MIN_SIMILARITY, weights: RerankWeights | None = None,
                 wording: Wording | None = None) -> None:
        self.lexicon = lexicon
        self._wording = wording or Wording.load()
        self._weights = weights or RerankWeights()
        self._descriptions = descriptions
        self._embedder = embedder
        self._index = index
        self._min = min_similarity

    @property
    def uses_embeddings(self) -> bool:
        return self._embedder is not None and self._index is not None

    def exact(self, phrase: str) -> Normalised | None:
        entry = self.lexicon.lookup(phrase)
        if entry is not None:
            c = icd_coding(entry.code)
            return Normalised(phrase, c.code, c.display, 1.0, Method.LEXICON)
        code = self._descriptions.lookup(phrase) if self._descriptions else None
        if code is not None:
            c = icd_coding(code)
            return Normalised(phrase, c.code, c.display, 1.0, Method.DESCRIPTION)
        return None

    def query(self, phrase: str) -> str:
        """``phrase`` in ICD-10-CM's wording: US spelling, shorthand and abbreviations spelt out."""
        return self.lexicon.expand_abbreviations(self._wording.rewrite(phrase))

    def _exact_any(self, phrase: str, query: str) -> Normalised | None:
        """Exact match of the phrase as written, then as rewritten, then of its reductions
        (singular, without "history of", without laterality/severity words), then of its
        clinical wording ("inflamed appendix" -> "appendicitis")."""
        clinical = self._wording.clinical(query)
        reductions = self._wording.reductions(query)
        for candidate in dict.fromkeys([phrase, query, *reductions, *([clinical] if clinical else [])]):
            found = self.exact(candidate)
            if found is not None:
                return Normalised(phrase, found.code, found.display, found.confidence, found.method)
        return None

    async def normalise_many(self, phrases: list[str]) -> list[Normalised]:
        queries = [self.query(p) for p in phrases]
        results: list[Normalised | None] = [self._exact_any(p, q) for p, q in zip(phrases, queries, strict=True)]
        todo = [i for i, r in enumerate(results) if r is None and normalise_phrase(queries[i])]
        if todo and self._embedder is not None and self._index is not None:
            index = self._index
            # Lay phrases are embedded twice, as written and in clinical words ("bleeding in
            # the brain" / "hemorrhage in the cerebral"); the neighbours of both are re-ranked together.
            clinical = {i: c for i in todo if (c := self._wording.clinical(queries[i]))}
            texts = [normalise_phrase(queries[i]) for i in todo] + list(clinical.values())
            vectors = await self._embedder.embed(texts)
            rows, sims = index.neighbours(vectors, self._weights.k)
            second = {i: len(todo) + n for n, i in enumerate(clinical)}
            for n, i in enumerate(todo):
                near, near_sims = rows[n], sims[n]
                if i in second:
                    near, near_sims = _merge(near, near_sims, rows[second[i]], sims[second[i]])
                best = rerank(queries[i], near, near_sims, index.texts, index.codes, self._weights)
                if best.similarity >= self._min:
                    c = icd_coding(str(index.codes[best.row]))
                    results[i] = Normalised(phrases[i], c.code, c.display, round(best.similarity, 4),
                                            Method.EMBEDDING)
                else:
                    results[i] = Normalised(phrases[i], None, None, round(best.similarity, 4), Method.NONE)
        return [r if r is not None else Normalised(phrases[i], None, None, 0.0, Method.NONE)
                for i, r in enumerate(results)]

    async def normalise(self, phrase: str) -> Normalised:
        return (await self.normalise_many([phrase]))[0]
