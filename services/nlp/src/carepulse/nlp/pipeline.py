"""The clinical text pipeline: sentences, sections, condition mentions and their assertion.

Built on medspaCy: PyRuSH sentence splitting, the sectionizer, a target matcher fed from
the lexicon, and ConText for assertion (negated, uncertain, hypothetical, historical,
family, resolved). Two rule sets: CarePulse's (``data/context_rules.json``, medspaCy's
defaults adjusted on the NegEx development set) and medspaCy's defaults, for comparison.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import medspacy  # noqa: F401  (registers the medspacy_* pipeline factories)
import spacy
from medspacy.context import ConTextRule
from medspacy.ner import TargetRule
from spacy.language import Language
from spacy.tokens import Doc, Span

from carepulse.nlp.terminology import Lexicon
from carepulse.nlp.text import FoldedText, fold_whitespace, keep_text

log = logging.getLogger(__name__)

LABEL = "CONDITION"
MEDSPACY_DEFAULT_RULES = Path(str(resources.files("medspacy"))).parent / "resources" / "en" / "context_rules.json"

# Sections whose findings are family history or past history, whatever the sentence says.
FAMILY_SECTIONS = {"family_history"}
HISTORY_SECTIONS = {"past_medical_history", "past_surgical_history"}

SPAN_ATTRS: dict[str, dict[str, Any]] = {
    "NEGATED_EXISTENCE": {"is_negated": True},
    "POSSIBLE_EXISTENCE": {"is_uncertain": True},
    "HYPOTHETICAL": {"is_hypothetical": True},
    "HISTORICAL": {"is_historical": True},
    "FAMILY": {"is_family": True},
    "RESOLVED": {"is_resolved": True},
}


class RuleSet(StrEnum):
    CAREPULSE = "carepulse"
    MEDSPACY_DEFAULT = "medspacy-default"


@dataclass(frozen=True, slots=True)
class Assertion:
    negated: bool = False
    uncertain: bool = False
    hypothetical: bool = False
    historical: bool = False
    family: bool = False
    resolved: bool = False

    @property
    def absent(self) -> bool:
        """What the NegEx annotation calls Negated: ruled out, or present no longer."""
        return self.negated or (self.resolved and not (self.hypothetical or self.uncertain))


@dataclass(frozen=True, slots=True)
class Mention:
    """One condition mention; offsets are in the original note text."""

    text: str
    start: int
    end: int
    sentence: str
    sentence_start: int
    sentence_end: int
    section: str | None
    assertion: Assertion
    lexicon_code: str | None = None
    infection: bool = False


def _load_rules(ruleset: RuleSet) -> list[ConTextRule]:
    defaults = json.loads(MEDSPACY_DEFAULT_RULES.read_text(encoding="utf-8"))["context_rules"]
    if ruleset is RuleSet.MEDSPACY_DEFAULT:
        return [ConTextRule(**r) for r in defaults]
    custom = json.loads((resources.files("carepulse.nlp") / "data" / "context_rules.json").read_text(encoding="utf-8"))
    drop = {d.lower() for d in custom["drop"]}
    rules = [ConTextRule(**r) for r in defaults if r["literal"].lower() not in drop]
    rules += [ConTextRule(**r) for r in custom["add"]]
    return rules


def _target_rules(lexicon: Lexicon, nlp: Language) -> list[TargetRule]:
    rules = []
    for e in lexicon.entries:
        meta = {"code": e.code, "infection": e.infection}
        if e.kind == "abbrev":
            pattern: list[dict[str, Any]] | None = [{"ORTH": t.text} for t in nlp.make_doc(e.term)]
        else:
            pattern = [{"LOWER": t.lower_} for t in nlp.make_doc(e.term)]
        rules.append(TargetRule(e.term, LABEL, pattern=pattern, metadata=meta))
    return rules


# Phrases the lexicon does not know still become candidate mentions when the text marks
# them as a diagnosis: a SNOMED "(disorder)" tag (problem lists pasted into notes) or a
# diagnostic cue. The normaliser codes them (embedding step) or keeps only their text.
_TAGGED = re.compile(r"(?:^|[,:;.]\s*|\bof\s+|\bwith\s+)([a-z][a-z0-9' -]{2,60}?)\s*\(disorder\)", re.I)
_CUED = re.compile(
    r"\b(?:diagnosed with|diagnosis of|suspicious for|concerning for|consistent with|complains of|c/o|"
    r"reports an?|treated for)\s+(?:an?\s+|the\s+)?([a-z][a-z' -]{2,40}?)"
    r"(?=\s*[.,;:()]|\s+(?:and|or|but|with|which|that|since|for|in|on|at|after)\b|\s*$)", re.I | re.M)


@Language.component("carepulse_candidates")
def candidate_mentions(doc: Doc) -> Doc:
    """Add cue- and tag-marked phrases as condition mentions where no lexicon term is."""
    taken = [(e.start_char, e.end_char) for e in doc.ents]
    added = []
    for rx in (_TAGGED, _CUED):
        for m in rx.finditer(doc.text):
            start, end = m.span(1)
            if any(s < end and start < e for s, e in taken):
                continue
            span = doc.char_span(start, end, label=LABEL, alignment_mode="contract")
            if span is not None and len(span) > 0:
                taken.append((start, end))
                added.append(span)
    if added:
        doc.ents = sorted([*doc.ents, *added], key=lambda e: e.start)
    return doc


def build_nlp(ruleset: RuleSet = RuleSet.CAREPULSE, lexicon: Lexicon | None = None) -> Language:
    """A medspaCy pipeline; without a lexicon it has no target matcher (targets are given)."""
    if not Span.has_extension("is_resolved"):
        Span.set_extension("is_resolved", default=False)
    nlp = spacy.blank("en")
    nlp.add_pipe("medspacy_pyrush")
    if lexicon is not None:
        matcher = nlp.add_pipe("medspacy_target_matcher")
        matcher.add(_target_rules(lexicon, nlp))
        nlp.add_pipe("carepulse_candidates")
    if ruleset is RuleSet.CAREPULSE:
        nlp.add_pipe("medspacy_sectionizer", config={"rules": "default"})
    context = nlp.add_pipe(
        "medspacy_context",
        config={
            "rules": None,
            "span_attrs": SPAN_ATTRS,
            # A trigger inside the finding phrase ("lungs show no opacities") is part of the
            # finding, not a modifier of it.
            "prune_on_target_overlap": ruleset is RuleSet.CAREPULSE,
        },
    )
    context.add(_load_rules(ruleset))
    return nlp


def _assertion(ent: Span, section: str | None) -> Assertion:
    return Assertion(
        negated=bool(ent._.is_negated),
        uncertain=bool(ent._.is_uncertain),
        hypothetical=bool(ent._.is_hypothetical),
        historical=bool(ent._.is_historical) or section in HISTORY_SECTIONS,
        family=bool(ent._.is_family) or section in FAMILY_SECTIONS,
        resolved=bool(ent._.is_resolved),
    )


class ClinicalPipeline:
    """Runs the medspaCy pipeline on note text and returns mentions in original offsets."""

    def __init__(self, nlp: Language, *, fold: bool = True) -> None:
        self._nlp = nlp
        self._fold = fold

    @classmethod
    def create(cls, ruleset: RuleSet = RuleSet.CAREPULSE, lexicon: Lexicon | None = None) -> ClinicalPipeline:
        # medspaCy's defaults are run as medspaCy runs them: on the text as it is.
        return cls(build_nlp(ruleset, lexicon), fold=ruleset is RuleSet.CAREPULSE)

    @property
    def nlp(self) -> Language:
        return self._nlp

    def extract(self, text: str) -> list[Mention]:
        """Condition mentions found by the lexicon's target matcher."""
        folded = fold_whitespace(text) if self._fold else keep_text(text)
        doc = self._nlp(folded.text)
        return self._mentions(doc, folded, text)

    def assert_spans(self, text: str, spans: Sequence[tuple[int, int]]) -> list[Assertion]:
        """Assertion of given target spans (original offsets) of ``text``: for evaluation."""
        folded = fold_whitespace(text) if self._fold else keep_text(text)
        back = {o: i for i, o in enumerate(folded.origin)}
        doc = self._nlp.make_doc(folded.text)
        ents = []
        for start, end in spans:
            f_start = back.get(start)
            f_end = next((back[e] + 1 for e in range(end - 1, start - 1, -1) if e in back), None)
            if f_start is None or f_end is None:
                raise ValueError(f"span {start}:{end} is not in the text")
            span = doc.char_span(f_start, f_end, label=LABEL, alignment_mode="expand")
            if span is None:
                raise ValueError(f"span {start}:{end} does not align with tokens")
            ents.append(span)
        for name, proc in self._nlp.pipeline:
            if name in ("medspacy_target_matcher", "carepulse_candidates"):
                continue
            if name == "medspacy_context":
                doc.ents = ents
            doc = proc(doc)
        by_span = {(e.start_char, e.end_char): e for e in doc.ents}
        out = []
        for span in ents:
            ent = by_span[(span.start_char, span.end_char)]
            out.append(_assertion(ent, ent._.section_category if Span.has_extension("section_category") else None))
        return out

    def _mentions(self, doc: Doc, folded: FoldedText, original: str) -> list[Mention]:
        mentions = []
        for ent in doc.ents:
            start, end = folded.to_original(ent.start_char, ent.end_char)
            sent = ent.sent
            s_start, s_end = folded.to_original(sent.start_char, sent.end_char)
            rule = ent._.target_rule
            meta = (rule.metadata if rule is not None else None) or {}
            section = ent._.section_category
            mentions.append(Mention(
                text=original[start:end], start=start, end=end,
                sentence=original[s_start:s_end].strip(), sentence_start=s_start, sentence_end=s_end,
                section=section, assertion=_assertion(ent, section),
                lexicon_code=meta.get("code"), infection=bool(meta.get("infection")),
            ))
        return mentions
