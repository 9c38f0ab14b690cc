"""Mention text -> ICD-10-CM: lexicon and exact description match first, then embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from carepulse.nlp.embeddings import Embedder, EmbeddingIndex
from carepulse.nlp.rerank import RerankWeights, rerank
from carepulse.nlp.terminology import CodeDescriptions, Lexicon, icd_coding, normalise_phrase

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


class Normaliser:
    def __init__(self, lexicon: Lexicon, descriptions: CodeDescriptions | None = None,
                 embedder: Embedder | None = None, index: EmbeddingIndex | None = None,
                 min_similarity: float = DEFAULT_MIN_SIMILARITY, weights: RerankWeights | None = None) -> None:
        self.lexicon = lexicon
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

    async def normalise_many(self, phrases: list[str]) -> list[Normalised]:
        results: list[Normalised | None] = [self.exact(p) for p in phrases]
        queries = [self.lexicon.expand_abbreviations(p) for p in phrases]
        for i, q in enumerate(queries):
            if results[i] is None and q != phrases[i] and (found := self.exact(q)) is not None:
                results[i] = Normalised(phrases[i], found.code, found.display, found.confidence, found.method)
        todo = [i for i, r in enumerate(results) if r is None and normalise_phrase(queries[i])]
        if todo and self._embedder is not None and self._index is not None:
            index = self._index
            vectors = await self._embedder.embed([normalise_phrase(queries[i]) for i in todo])
            rows, sims = index.neighbours(vectors, self._weights.k)
            for n, i in enumerate(todo):
                best = rerank(queries[i], rows[n], sims[n], index.texts, index.codes, self._weights)
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
