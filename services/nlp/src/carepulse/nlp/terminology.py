"""ICD-10-CM terminology: the code set (simple-icd-10-cm) and CarePulse's curated lexicon.

The lexicon (``data/lexicon.tsv``) is data, not code: clinicians extend it without a
release of the matching logic.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import simple_icd_10_cm as cm

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"

# SNOMED-style semantic tags ("(disorder)", "(finding)") that notes copy from problem lists.
_SEMANTIC_TAG = re.compile(r"\s*\((?:disorder|finding|situation|morphologic abnormality|procedure)\)\s*$", re.I)


def normalise_phrase(phrase: str) -> str:
    """Lower case, semantic tag dropped, punctuation and spaces folded: the key of exact matching."""
    phrase = _SEMANTIC_TAG.sub("", phrase)
    phrase = re.sub(r"[’`]", "'", phrase.lower())
    phrase = re.sub(r"[^\w'/+.-]+", " ", phrase)
    return " ".join(phrase.replace("'s ", " ").replace("'", "").split())


@dataclass(frozen=True, slots=True)
class LexiconEntry:
    term: str
    code: str
    kind: str  # term | abbrev | lay
    infection: bool


@dataclass(frozen=True, slots=True)
class Coding:
    code: str
    display: str
    category: str


def icd_coding(code: str) -> Coding:
    """The ICD-10-CM coding of ``code`` with its description and 3-character category."""
    if not cm.is_valid_item(code):
        raise KeyError(f"not an ICD-10-CM code: {code}")
    return Coding(code, cm.get_description(code), code[:3])


def default_lexicon_path() -> Path:
    return Path(str(resources.files("carepulse.nlp") / "data" / "lexicon.tsv"))


class Lexicon:
    """Synonym/abbreviation lexicon: normalised term -> entry."""

    def __init__(self, entries: list[LexiconEntry]) -> None:
        self.entries = entries
        self._by_key: dict[str, LexiconEntry] = {}
        for e in entries:
            self._by_key.setdefault(normalise_phrase(e.term), e)
        self._infection_codes = {e.code for e in entries if e.infection}

    @classmethod
    def load(cls, path: Path | None = None) -> Lexicon:
        path = path or default_lexicon_path()
        rows = (line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#"))
        entries = [
            LexiconEntry(r["term"], r["code"], r["kind"], r["infection"] == "y")
            for r in csv.DictReader(rows, delimiter="\t")
        ]
        return cls(entries)

    def lookup(self, phrase: str) -> LexiconEntry | None:
        return self._by_key.get(normalise_phrase(phrase))

    def is_infection(self, code: str) -> bool:
        return code in self._infection_codes


# Chapters whose codes a bare mention should not land on: pregnancy (O), perinatal (P)
# and external causes (V-Y) need context a phrase does not carry.
_EXCLUDED_CHAPTER_LETTERS = ("O", "P", "V", "W", "X", "Y")


def indexable(code: str) -> bool:
    """Whether a mention may be coded to ``code`` from its words alone."""
    if code.startswith(_EXCLUDED_CHAPTER_LETTERS):
        return False
    # Manifestation codes are never coded on their own.
    return "in diseases classified elsewhere" not in cm.get_description(code).lower()


def code_terms(code: str) -> list[str]:
    """The description and the inclusion terms of ``code`` (tabular list)."""
    return [cm.get_description(code), *cm.get_inclusion_term(code)]


class CodeDescriptions:
    """Exact match of a phrase against ICD-10-CM descriptions and inclusion terms."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        for code in cm.get_all_codes(with_dots=True):
            if cm.is_chapter(code) or cm.is_block(code) or not indexable(code):
                continue
            for term in code_terms(code):
                key = normalise_phrase(re.sub(r"\s+NOS$", "", term))
                current = self._by_key.get(key)
                # Prefer the shortest (most general) code for a description shared by several.
                if current is None or len(code) < len(current):
                    self._by_key[key] = code

    def lookup(self, phrase: str) -> str | None:
        key = normalise_phrase(phrase)
        return self._by_key.get(key) or self._by_key.get(key + " unspecified")
