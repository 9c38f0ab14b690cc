"""Mentions of one note grouped into findings: one per (concept, status)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from carepulse.nlp.normalise import Normalised
from carepulse.nlp.pipeline import Mention
from carepulse.nlp.terminology import normalise_phrase


class Status(StrEnum):
    AFFIRMED = "affirmed"  # verificationStatus provisional, clinicalStatus active
    REFUTED = "refuted"  # verificationStatus refuted
    UNCONFIRMED = "unconfirmed"  # uncertain or hypothetical
    HISTORICAL = "historical"  # clinicalStatus resolved / inactive
    FAMILY = "family"  # a FamilyMemberHistory, not a Condition
    FAMILY_REFUTED = "family-refuted"  # "no family history of X": a FamilyMemberHistory saying "no history of X"

    @property
    def family_history(self) -> bool:
        """Published as a FamilyMemberHistory rather than a Condition."""
        return self in (Status.FAMILY, Status.FAMILY_REFUTED)


def status_of(m: Mention) -> Status:
    a = m.assertion
    if a.family:
        # "No family history of X" is a fact about the family, not about the patient: never a
        # refuted Condition (that would say the patient was found not to have X).
        return Status.FAMILY_REFUTED if a.negated else Status.FAMILY
    if a.negated:
        return Status.REFUTED
    if a.hypothetical or a.uncertain:
        return Status.UNCONFIRMED
    if a.historical or a.resolved:
        return Status.HISTORICAL
    return Status.AFFIRMED


_RELATIVES = {
    "mother": "MTH", "mom": "MTH", "father": "FTH", "dad": "FTH", "sister": "SIS", "brother": "BRO",
    "son": "SON", "daughter": "DAU", "grandmother": "GRMTH", "grandfather": "GRFTH", "aunt": "AUNT",
    "uncle": "UNCLE", "cousin": "COUSN", "sibling": "SIB", "parent": "PRN", "child": "CHILD",
}


def relative_of(sentence: str) -> str:
    """v3 RoleCode of the relative a family-history sentence names (FAMMEMB when none)."""
    for word in re.findall(r"[a-z]+", sentence.lower()):
        code = _RELATIVES.get(word.rstrip("s")) or _RELATIVES.get(word)
        if code:
            return code
    return "FAMMEMB"


@dataclass(frozen=True, slots=True)
class Finding:
    key: str  # code or normalised text: what makes it distinct within the note
    status: Status
    concept: Normalised
    mentions: tuple[Mention, ...]

    @property
    def infection(self) -> bool:
        # Lexicon-flagged, or coded in ICD-10-CM's infectious-disease chapter (A00-B99).
        return any(m.infection for m in self.mentions) or (self.concept.code or " ")[0] in ("A", "B")


def group(mentions: list[Mention], concepts: list[Normalised]) -> list[Finding]:
    """One finding per distinct (concept, status), mentions in note order."""
    groups: dict[tuple[str, Status], list[tuple[Mention, Normalised]]] = {}
    for m, c in zip(mentions, concepts, strict=True):
        status = status_of(m)
        key = c.code or f"text:{normalise_phrase(m.text)}"
        groups.setdefault((key, status), []).append((m, c))
    findings = []
    for (key, status), items in groups.items():
        best = max((c for _, c in items), key=lambda c: c.confidence)
        findings.append(Finding(key, status, best, tuple(m for m, _ in items)))
    return findings
