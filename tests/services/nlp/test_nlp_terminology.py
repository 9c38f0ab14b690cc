"""ICD-10-CM retrieval: names of codes, synonyms, query wording, abbreviation expansion, re-ranking, index cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import simple_icd_10_cm as cm

from carepulse.nlp import index_build
from carepulse.nlp.embeddings import EmbeddingIndex
from carepulse.nlp.index_build import fingerprint, index_entries
from carepulse.nlp.normalise import Method, Normaliser, _merge
from carepulse.nlp.pipeline import ClinicalPipeline
from carepulse.nlp.rerank import RerankWeights, polarity, qualifiers, rerank
from carepulse.nlp.terminology import (
    CodeDescriptions,
    Lexicon,
    Wording,
    code_terms,
    indexable,
    normalise_phrase,
    term_variants,
)


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
    # Spelt out, "acute MI" is a name of I21: an exact match, no embedding needed.
    r = asyncio.run(Normaliser(lexicon, CodeDescriptions()).normalise("acute MI"))
    assert r.category == "I21" and r.method in (Method.LEXICON, Method.DESCRIPTION) and r.text == "acute MI"
    # Abbreviations of the normalisation synonyms are spelt out too.
    assert lexicon.expand_abbreviations("LBBB, new") == "left bundle branch block, new"


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


def test_synonyms_are_valid_codes_and_agree_with_the_lexicon(lexicon: Lexicon) -> None:
    assert len(lexicon.synonyms) >= 1000
    assert [e.term for e in lexicon.synonyms if not cm.is_valid_item(e.code)] == []
    assert {e.kind for e in lexicon.synonyms} == {"term", "abbrev", "lay"}
    codes: dict[str, set[str]] = {}
    for e in lexicon.all_entries:
        codes.setdefault(normalise_phrase(e.term), set()).add(e.code)
    assert {k: v for k, v in codes.items() if len(v) > 1} == {}
    assert lexicon.lookup("PE").code == "I26.99" and lexicon.lookup("shaky hands") is None
    assert lexicon.lookup("Underactive Thyroid").code == "E03.9"


def test_synonyms_code_mentions_but_are_not_searched_for_in_notes(lexicon: Lexicon,
                                                                  pipeline: ClinicalPipeline) -> None:
    # "PE" (physical examination) and "cold" are names of conditions once a mention is found,
    # never something to look for in free text.
    found = {m.text for m in pipeline.extract("PE: lungs clear. Feels cold. Known HTN.")}
    assert found == {"HTN"}
    codes, texts = index_entries(Lexicon(lexicon.entries[:1], lexicon.synonyms[:2]))
    assert {(e.code, normalise_phrase(e.term)) for e in lexicon.synonyms[:2]} <= set(zip(codes, texts, strict=True))


def test_wording_rewrites_reductions_and_clinical_words() -> None:
    w = Wording.load()
    assert w.rewrite("Haemoptysis") == "hemoptysis" and w.rewrite("oesophageal oedema") == "esophageal edema"
    assert w.rewrite("low BP") == "low blood pressure" and w.rewrite("h/o DM type II") == "history of DM type 2"
    assert "migraine" in w.reductions("migraines") and "renal calculus" in w.reductions("renal calculi")
    assert "stroke" in w.reductions("history of stroke") and "knee pain" in w.reductions("left knee pain")
    # Reductions are only tried when the phrase as written has no exact match; "recurrent" is never dropped
    # (recurrent depression is another category).
    assert "major depression" not in w.reductions("recurrent major depression")
    assert w.clinical("inflamed appendix") == "appendicitis" and w.clinical("infection of the bladder") == "cystitis"
    assert w.clinical("bleeding in the brain") == "hemorrhage in the cerebral" and w.clinical("asthma") is None


def test_exact_matching_goes_through_the_wording(lexicon: Lexicon, descriptions: CodeDescriptions) -> None:
    n = Normaliser(lexicon, descriptions)
    results = asyncio.run(n.normalise_many(["haematuria", "h/o DVT", "chronic low back pain", "kidney stones",
                                            "sore throat infection of the lungs"]))
    assert [r.category for r in results] == ["R31", "I82", "M54", "N20", None]
    assert [r.text for r in results][:2] == ["haematuria", "h/o DVT"]


def test_category_pooling_counts_near_best_entries_only() -> None:
    codes = np.array(["A00.0", "B01.0", "B01.1", "B01.9", "A00.1", "A00.9", "A01.0"])
    texts = np.array(["a", "b0", "b1", "b9", "a1", "a9", "a10"])
    w = RerankWeights()
    # Three names of B01 just under a single A00 entry: the category reached three times wins...
    best = rerank("x", np.arange(4), np.array([0.80, 0.79, 0.79, 0.79]), texts, codes, w)
    assert str(codes[best.row]).startswith("B01") and best.similarity == pytest.approx(0.79)
    best = rerank("x", np.arange(4), np.array([0.80, 0.79, 0.79, 0.79]), texts, codes, RerankWeights(pool=0))
    assert codes[best.row] == "A00.0"
    # ...while far-down names of a category do not drag its best entry back (a mean would).
    best = rerank("x", np.array([0, 6, 4, 5]), np.array([0.80, 0.79, 0.40, 0.40]), texts, codes, w)
    assert codes[best.row] == "A00.0"


def test_merged_neighbours_keep_the_higher_similarity() -> None:
    rows, sims = _merge(np.array([3, 1]), np.array([0.9, 0.5]), np.array([1, 7]), np.array([0.8, 0.6]))
    assert rows.tolist() == [3, 1, 7] and sims.tolist() == pytest.approx([0.9, 0.8, 0.6])


def test_index_recipe_is_part_of_the_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights")
    a = fingerprint(model, ["I10"], ["hypertension"])
    monkeypatch.setattr(index_build, "INDEX_RECIPE", index_build.INDEX_RECIPE + "-next")
    assert fingerprint(model, ["I10"], ["hypertension"]) != a
