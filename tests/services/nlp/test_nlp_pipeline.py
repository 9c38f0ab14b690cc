"""Pipeline: mentions, offsets, sections and assertions; text helpers; terminology data."""

from __future__ import annotations

import simple_icd_10_cm as cm

from carepulse.nlp.findings import Status, relative_of, status_of
from carepulse.nlp.pipeline import ClinicalPipeline
from carepulse.nlp.terminology import Lexicon, normalise_phrase
from carepulse.nlp.text import fold_whitespace, html_to_text, redact_identifiers

NOTE = """HISTORY OF PRESENT ILLNESS:
67 yo man with HTN and DM2 presents with SOB and fever.  Denies   chest pain.
No evidence of pneumonia on CXR. Possible UTI. Will treat if cellulitis develops.
PAST MEDICAL HISTORY: CHF.
FAMILY HISTORY: Mother had breast cancer.
"""


def by_text(pipeline: ClinicalPipeline, text: str) -> dict[str, Status | None]:
    return {m.text: status_of(m) for m in pipeline.extract(text)}


def test_mentions_carry_original_offsets_code_and_section(pipeline: ClinicalPipeline) -> None:
    mentions = pipeline.extract(NOTE)
    for m in mentions:
        assert NOTE[m.start:m.end] == m.text
        assert m.text in m.sentence
    chest = next(m for m in mentions if m.text == "chest pain")
    assert chest.lexicon_code == "R07.9" and chest.section == "history_of_present_illness"
    assert chest.sentence == "Denies   chest pain."
    assert next(m for m in mentions if m.text == "UTI").infection


def test_assertions_of_a_note(pipeline: ClinicalPipeline) -> None:
    got = by_text(pipeline, NOTE)
    assert got["HTN"] is Status.AFFIRMED and got["SOB"] is Status.AFFIRMED and got["fever"] is Status.AFFIRMED
    assert got["chest pain"] is Status.REFUTED  # "Denies   chest pain": multi-space folded away
    assert got["pneumonia"] is Status.REFUTED
    assert got["UTI"] is Status.UNCONFIRMED and got["cellulitis"] is Status.UNCONFIRMED
    assert got["CHF"] is Status.HISTORICAL
    assert got["breast cancer"] is Status.FAMILY


def test_negation_scope_and_pseudo_triggers(pipeline: ClinicalPipeline) -> None:
    assert by_text(pipeline, "No fever, cough, or dysuria.") == {
        "fever": Status.REFUTED, "cough": Status.REFUTED, "dysuria": Status.REFUTED}
    # Scope ends at "but"; "no change" and "gram negative" are not negations.
    assert by_text(pipeline, "No fever but has cough.") == {"fever": Status.REFUTED, "cough": Status.AFFIRMED}
    assert by_text(pipeline, "No change in the pleural effusion.")["pleural effusion"] is Status.AFFIRMED
    assert by_text(pipeline, "ROS is -ve for headache.")["headache"] is Status.REFUTED
    assert by_text(pipeline, "Her nausea has resolved.")["nausea"] is Status.HISTORICAL
    assert by_text(pipeline, "No family history of diabetes.") == {"diabetes": Status.FAMILY_REFUTED}


def test_abbreviations_match_only_as_written(pipeline: ClinicalPipeline) -> None:
    assert {m.text for m in pipeline.extract("HTN and CHF")} == {"HTN", "CHF"}
    assert pipeline.extract("she is sob about it") == []


def test_fold_whitespace_maps_back() -> None:
    text = "a  \t b\n\n   c"
    f = fold_whitespace(text)
    assert f.text == "a b\nc"
    assert f.to_original(2, 3) == (5, 6) and text[slice(*f.to_original(4, 5))] == "c"


def test_redaction_keeps_length_and_removes_names() -> None:
    text = "PATIENT NAME:  **NAME[AAA, BBB M]  MRN: 12345\nSumiko254 Larue605 is a 60 year-old with HTN."
    red = redact_identifiers(text)
    assert len(red) == len(text)
    for secret in ("AAA", "12345", "Sumiko", "Larue"):
        assert secret not in red
    assert "PATIENT NAME:" in red and "with HTN." in red


def test_html_to_text() -> None:
    assert html_to_text("<div><p>No fever.</p><script>x()</script><p>Cough &amp; cold</p></div>") == \
        "No fever.\n\nCough & cold"


def test_lexicon_codes_exist_in_icd10cm(lexicon: Lexicon) -> None:
    assert len(lexicon.entries) >= 200
    assert [e.term for e in lexicon.entries if not cm.is_valid_item(e.code)] == []
    for abbrev in ("HTN", "DM2", "CHF", "COPD", "SOB", "PNA", "UTI", "AKI"):
        assert lexicon.lookup(abbrev) is not None, abbrev


def test_normalise_phrase_and_relatives() -> None:
    assert normalise_phrase("Viral sinusitis (disorder)") == "viral sinusitis"
    assert normalise_phrase("Alzheimer's  Disease") == "alzheimer disease"
    assert relative_of("Mother had breast cancer.") == "MTH"
    assert relative_of("Family history of colon cancer.") == "FAMMEMB"
