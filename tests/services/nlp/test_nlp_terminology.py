"""ICD-10-CM retrieval: names of codes from the tabular list, abbreviation expansion, re-ranking, index cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from carepulse.nlp.embeddings import EmbeddingIndex
from carepulse.nlp.index_build import fingerprint
from carepulse.nlp.normalise import Method, Normaliser
from carepulse.nlp.rerank import RerankWeights, polarity, qualifiers, rerank
from carepulse.nlp.terminology import CodeDescriptions, Lexicon, code_terms, indexable, term_variants


def test_term_variants_follow_tabular_list_conventions() -> None:
    assert term_variants("Acute nasopharyngitis [common cold]") == ["Acute nasopharyngitis", "common cold"]
    assert term_variants("juvenile onset diabetes (mellitus)") == [
        "juvenile onset diabetes", "juvenile onset diabetes mellitus"]
    assert term_variants("Anogenital herpesviral [herpes simplex] infections") == [
        "Anogenital herpesviral infections", "Anogenital herpes simplex infections"]
    assert term_variants("Infective nasopharyngitis NOS") == ["Infective nasopharyngitis"]
    assert term_variants("Cough") == ["Cough"]


def test_includes_notes_and_synonyms_are_exact_matches(descriptions: CodeDescriptions) -> None:
    # "Includes" notes of a category and bracketed synonyms are names of the code.
    assert "juvenile onset diabetes (mellitus)" in code_terms("E10")
    assert descriptions.lookup("juvenile onset diabetes") == "E10"
    assert descriptions.lookup("common cold") == "J00"
    assert descriptions.lookup("hyperthyroidism") == "E05"
    # Supplementary organism codes and manifestation codes are never coded alone.
    assert not indexable("B95.0") and not indexable("G63")


def test_abbreviations_are_spelt_out_as_written(lexicon: Lexicon) -> None:
    assert lexicon.expand_abbreviations("acute CHF exacerbation") == "acute congestive heart failure exacerbation"
    assert lexicon.expand_abbreviations("UTI, recurrent") == "urinary tract infection, recurrent"  # by initials
    assert lexicon.expand_abbreviations("chf") == "chf"  # abbreviations match only as written
    # Spelt out, "acute MI" is the description of I21: an exact match, no embedding needed.
    r = asyncio.run(Normaliser(lexicon, CodeDescriptions()).normalise("acute MI"))
    assert (r.code, r.method) == ("I21", Method.DESCRIPTION) and r.text == "acute MI"


def test_polarity_and_qualifiers() -> None:
    assert polarity("low blood pressure") == -1 and polarity("hypotension") == -1
    assert polarity("high blood pressure") == 1 and polarity("hyperglycemia") == 1
    assert polarity("blood pressure") == 0 and polarity("hypoxia") == -1 and polarity("low hyperglycemia") == 0
    assert qualifiers("congenital renal calculi") == {"conge"} and qualifiers("renal calculi") == frozenset()


def test_rerank_prefers_agreeing_polarity_and_unqualified_entries() -> None:
    texts = np.array(["high blood pressure", "hypotension", "congenital renal calculi", "renal stone"])
    codes = np.array(["I10", "I95.9", "Q63.8", "N20.0"])
    w = RerankWeights(pool=0.0, qualifier_penalty=0.3)
    best = rerank("low blood pressure", np.array([0, 1]), np.array([0.70, 0.62]), texts, codes, w)
    assert codes[best.row] == "I95.9" and best.similarity == pytest.approx(0.62)
    best = rerank("renal calculi", np.array([2, 3]), np.array([0.85, 0.60]), texts, codes, w)
    assert codes[best.row] == "N20.0"
    # Without a reason to move, the nearest entry stays first.
    best = rerank("blood pressure", np.array([0, 1]), np.array([0.70, 0.62]), texts, codes, w)
    assert codes[best.row] == "I10"


def test_threshold_applies_to_the_similarity_of_the_chosen_entry(lexicon: Lexicon) -> None:
    class Fixed:
        async def embed(self, texts: list[str]) -> np.ndarray:
            return np.array([[1.0, 0.0]] * len(texts), np.float32)

    index = EmbeddingIndex(np.array(["I10", "I95.9"]), np.array(["high blood pressure", "hypotension"]),
                           np.array([[0.8, 0.6], [0.55, 0.835]], np.float32), "test")
    n = Normaliser(lexicon, CodeDescriptions(), Fixed(), index, min_similarity=0.6)
    r = asyncio.run(n.normalise("low blood pressure when standing up"))
    # Polarity moves the choice off I10 to I95.9, whose own similarity (0.55) is under the bar.
    assert (r.code, r.method, r.confidence) == (None, Method.NONE, 0.55)


def test_index_fingerprint_changes_with_model_and_entries(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights-1")
    a = fingerprint(model, ["I10"], ["hypertension"])
    assert a == fingerprint(model, ["I10"], ["hypertension"])
    assert a != fingerprint(model, ["I10"], ["high blood pressure"])
    model.write_bytes(b"weights-2")
    assert a != fingerprint(model, ["I10"], ["hypertension"])
    index = EmbeddingIndex(np.array(["I10"]), np.array(["hypertension"]), np.ones((1, 2), np.float32), "m", a)
    index.save(tmp_path / "i.npz")
    assert EmbeddingIndex.stored_fingerprint(tmp_path / "i.npz") == a
    assert EmbeddingIndex.load(tmp_path / "i.npz").fingerprint == a
    assert EmbeddingIndex.stored_fingerprint(tmp_path / "missing.npz") == ""
