"""Assertion on the NegEx development set: CarePulse vs medspaCy defaults vs classic NegEx, same run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carepulse.nlp.assertion_eval import evaluate, load_examples, locate
from carepulse.nlp.cli import app
from carepulse.nlp.negex import NegEx

DEV = Path(__file__).resolve().parents[2] / "data" / "notes" / "negex_dev.tsv"


@pytest.fixture(scope="module")
def scores() -> dict:
    examples, missing = load_examples(DEV)
    assert len(examples) >= 1180 and missing <= 5
    return {s.system: s for s in evaluate(examples)}


def test_carepulse_beats_both_baselines_on_dev(scores: dict) -> None:
    ours, medspacy, negex = scores["carepulse"], scores["medspacy-default"], scores["negex"]
    assert ours.accuracy >= 0.985 and ours.negated_f1 >= 0.96
    assert ours.negated_f1 > medspacy.negated_f1 and ours.negated_f1 > negex.negated_f1
    # The baselines are real: medspaCy's defaults and NegEx both get most cases right, not all.
    assert 0.85 < medspacy.negated_f1 < 0.97 and 0.85 < negex.negated_f1 < 0.97


def test_negex_classic_behaviour() -> None:
    negex = NegEx.load()
    s = "No fever, chills or night sweats but has cough."
    assert negex.is_negated(s, *locate("fever", s)) and negex.is_negated(s, *locate("night sweats", s))
    assert not negex.is_negated(s, *locate("cough", s))  # "but" ends the scope
    s = "No significant change in the effusion."
    assert not negex.is_negated(s, *locate("effusion", s))  # pseudo-negation
    s = "Pneumonia was ruled out."
    assert negex.is_negated(s, *locate("pneumonia", s))
    s = "No acute distress in the patient who has long standing severe chronic hypertension."
    assert not negex.is_negated(s, *locate("hypertension", s))  # beyond the five-word window


def test_cli_eval_assertion_last_line(tmp_path: Path) -> None:
    sample = tmp_path / "sample.tsv"
    sample.write_text(
        "Report No.\tConcept\tSentence\tNegation\n"
        "1\tfever\tThe patient denies FEVER.\tNegated\n"
        "1\tcough\tThe patient reports a COUGH.\tAffirmed\n"
        "2\tpneumonia\tNo evidence of PNEUMONIA.\tNegated\n"
        "2\tedema\tThere is EDEMA of the legs.\tNegated\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["eval-assertion", str(sample), "--no-baselines"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == (
        "accuracy=0.7500 negated_precision=1.0000 negated_recall=0.6667 negated_f1=0.8000")
