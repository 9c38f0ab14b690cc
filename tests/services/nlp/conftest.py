"""Shared fixtures of the NLP tests: one pipeline per session (building one takes seconds)."""

from __future__ import annotations

import pytest

from carepulse.nlp.pipeline import ClinicalPipeline
from carepulse.nlp.service import build_pipeline
from carepulse.nlp.terminology import CodeDescriptions, Lexicon


@pytest.fixture(scope="session")
def lexicon() -> Lexicon:
    return Lexicon.load()


@pytest.fixture(scope="session")
def pipeline(lexicon: Lexicon) -> ClinicalPipeline:
    return build_pipeline(lexicon)


@pytest.fixture(scope="session")
def descriptions() -> CodeDescriptions:
    return CodeDescriptions()
