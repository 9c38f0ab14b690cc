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


def _data_path(name: str) -> Path:
    return Path(str(resources.files("carepulse.nlp") / "data" / name))


def default_lexicon_path() -> Path:
    return _data_path("lexicon.tsv")


def default_synonyms_path() -> Path:
    return _data_path("synonyms.tsv")


def default_wording_path() -> Path:
    return _data_path("wording.tsv")


def _tsv_rows(path: Path) -> list[dict[str, str]]:
    rows = (line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#"))
    return list(csv.DictReader(rows, delimiter="\t"))


def _initials(term: str) -> str:
    return "".join(w[0] for w in re.findall(r"[a-z0-9]+", term.lower()))


def _is_subsequence(short: str, long: str) -> bool:
    chars = iter(long)
    return all(c in chars for c in short)


def _spelt_out(abbreviation: str, terms: list[LexiconEntry]) -> str:
    """The full term an abbreviation stands for: the shortest whose word initials spell it
    (UTI -> urinary tract infection, DM2 -> diabetes mellitus type 2), else the fullest
    clinical term of the same code (HTN -> essential hypertension)."""
    spelt = [e.term for e in terms if _is_subsequence(abbreviation.lower(), _initials(e.term))]
    if spelt:
        return min(spelt, key=len)
    return min(terms, key=lambda e: (e.kind != "term", -len(e.term))).term


class Lexicon:
    """Synonym/abbreviation lexicon: normalised term -> entry.

    ``entries`` (``data/lexicon.tsv``) are the terms the pipeline looks for in notes;
    ``synonyms`` (``data/synonyms.tsv``) are more names of conditions, used only to code a
    mention once found (exact match, abbreviation expansion, embedding-index targets): many
    lay terms and short abbreviations ("cold", "MS", "PE") are safe as the name of a found
    mention but not as something to search free text for.
    """

    def __init__(self, entries: list[LexiconEntry], synonyms: list[LexiconEntry] | None = None) -> None:
        self.entries = entries
        self.synonyms = synonyms or []
        self._by_key: dict[str, LexiconEntry] = {}
        for e in [*entries, *self.synonyms]:
            self._by_key.setdefault(normalise_phrase(e.term), e)
        self._infection_codes = {e.code for e in entries if e.infection}
        full_terms: dict[str, list[LexiconEntry]] = {}
        for e in [*entries, *self.synonyms]:
            if e.kind != "abbrev":
                full_terms.setdefault(e.code, []).append(e)
        self._expansions: dict[str, str] = {}
        for e in [*entries, *self.synonyms]:
            if e.kind == "abbrev" and e.code in full_terms and e.term.isalnum():
                self._expansions.setdefault(e.term, _spelt_out(e.term, full_terms[e.code]))

    @classmethod
    def load(cls, path: Path | None = None, synonyms_path: Path | None = None) -> Lexicon:
        entries = [LexiconEntry(r["term"], r["code"], r["kind"], r["infection"] == "y")
                   for r in _tsv_rows(path or default_lexicon_path())]
        synonyms = [LexiconEntry(r["term"], r["code"], r["kind"], False)
                    for r in _tsv_rows(synonyms_path or default_synonyms_path())]
        return cls(entries, synonyms)

    @property
    def all_entries(self) -> list[LexiconEntry]:
        return [*self.entries, *self.synonyms]

    def lookup(self, phrase: str) -> LexiconEntry | None:
        return self._by_key.get(normalise_phrase(phrase))

    def expand_abbreviations(self, phrase: str) -> str:
        """``phrase`` with each abbreviation the lexicon knows (as written: "CHF", not "chf")
        spelt out as a full lexicon term for the same code (``_spelt_out``) ("acute CHF" ->
        "acute congestive heart failure"): sentence encoders know few clinical abbreviations."""
        def spelt(m: re.Match[str]) -> str:
            return self._expansions.get(m.group(0), m.group(0))

        return re.sub(r"[A-Za-z0-9]+", spelt, phrase) if self._expansions else phrase

    def is_infection(self, code: str) -> bool:
        return code in self._infection_codes


def _singular(word: str) -> str:
    """English plural -> singular, for the exact-match fallback only ("migraines", "cavities")."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "ys")):
        return word[:-1]
    if word.endswith("ae"):  # Latin: vertebrae, bullae
        return word[:-1]
    if word.endswith("i") and len(word) > 4:  # Latin: calculi, emboli, thrombi
        return word[:-1] + "us"
    return word


def _words_re(words: dict[str, str]) -> re.Pattern[str] | None:
    """Whole-word (or word-sequence) alternation of ``words``, longest first; None if empty."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(r"(?<![\w/])(" + alternatives + r")(?![\w/])", re.I)


class Wording:
    """Rewrites a mention phrase towards ICD-10-CM wording (``data/wording.tsv``).

    ``rewrite``: British spellings and clinical shorthand spelt out ("haemoptysis",
    "low BP", "DM type II"). ``reductions``: shorter forms tried, in order, only when the
    phrase has no exact match as written: plurals made singular, then a leading "history
    of"/"known" dropped, then laterality/severity/course words dropped (ICD-10-CM's
    unspecified code covers the bare condition).
    """

    def __init__(self, rows: list[dict[str, str]]) -> None:
        by_kind: dict[str, list[tuple[str, str]]] = {}
        for r in rows:
            by_kind.setdefault(r["kind"], []).append((r["from"].lower(), (r.get("to") or "").lower()))
        self._spelling = by_kind.get("spelling", [])
        words = dict(by_kind.get("word", []))
        self._words = words
        self._word_re = _words_re(words)
        self._prefixes = sorted((f for f, _ in by_kind.get("prefix", [])), key=len, reverse=True)
        self._modifiers = {f for f, _ in by_kind.get("modifier", [])}
        self._lay = dict(by_kind.get("lay", []))
        self._lay_re = _words_re(self._lay)
        self._organs = dict(by_kind.get("organ", []))
        organs = "|".join(re.escape(o) for o in sorted(self._organs, key=len, reverse=True))
        # "inflamed appendix", "inflammation of the bladder", "throat infection", "infected gums".
        self._inflamed = re.compile(
            rf"^(?:(?:inflamed|infected|sore)\s+(?P<a>{organs})|(?:inflammation|infection)\s+of\s+(?:the\s+)?(?P<b>{organs})"
            rf"|(?P<c>{organs})\s+(?:inflammation|infection))$") if organs else None

    @classmethod
    def load(cls, path: Path | None = None) -> Wording:
        return cls(_tsv_rows(path or default_wording_path()))

    def rewrite(self, phrase: str) -> str:
        def word(m: re.Match[str]) -> str:
            return self._words[m.group(0).lower()]

        def spelling(m: re.Match[str]) -> str:
            w = m.group(0)
            low = w.lower()
            for old, new in self._spelling:
                low = low.replace(old, new)
            return w if low == w.lower() else low

        out = re.sub(r"[A-Za-z]+", spelling, phrase)
        return self._word_re.sub(word, out) if self._word_re else out

    def clinical(self, phrase: str) -> str | None:
        """A second wording of a lay phrase for the embedding step, or None if it has none:
        organ + inflamed/infection -> the organ's "-itis" ("inflamed appendix" -> "appendicitis"),
        else lay words -> clinical ones ("bleeding in the brain" -> "hemorrhage in the cerebral")."""
        key = normalise_phrase(phrase)
        m = self._inflamed.match(key) if self._inflamed else None
        if m:
            return self._organs[m.group("a") or m.group("b") or m.group("c")]
        if self._lay_re is None:
            return None
        out = self._lay_re.sub(lambda w: self._lay[w.group(0).lower()], key)
        return out if out != key else None

    def reductions(self, phrase: str) -> list[str]:
        key = normalise_phrase(phrase)
        words = key.split()
        out = [" ".join([*words[:-1], _singular(words[-1])]) if words else key,
               " ".join(_singular(w) for w in words)]
        for prefix in self._prefixes:
            if key.startswith(prefix + " "):
                key = key[len(prefix) + 1:]
                out.append(key)
                break
        kept = [w for w in key.split() if w not in self._modifiers]
        if kept:
            out += [" ".join(kept), " ".join(_singular(w) for w in kept)]
        return [v for v in dict.fromkeys(out) if v and v != normalise_phrase(phrase)]


# Chapters whose codes a bare mention should not land on: pregnancy (O), perinatal (P)
# and external causes (V-Y) need context a phrase does not carry.
_EXCLUDED_CHAPTER_LETTERS = ("O", "P", "V", "W", "X", "Y")


def indexable(code: str) -> bool:
    """Whether a mention may be coded to ``code`` from its words alone."""
    if code.startswith(_EXCLUDED_CHAPTER_LETTERS):
        return False
    # Manifestation codes ("... in diseases classified elsewhere") and the supplementary
    # organism codes ("... as the cause of diseases classified elsewhere") are never coded alone.
    return "classified elsewhere" not in cm.get_description(code).lower()


def code_terms(code: str) -> list[str]:
    """The description, inclusion terms and "Includes" notes of ``code`` (tabular list), as written."""
    return [cm.get_description(code), *cm.get_inclusion_term(code), *cm.get_includes(code)]


_PARENS = re.compile(r"\s*\(([^()]*)\)")
_BRACKET = re.compile(r"\s*\[([^\[\]]*)\]")
_MAX_MODIFIERS = 4


def term_variants(term: str) -> list[str]:
    """The names an ICD-10-CM term stands for, following the tabular list's own conventions.

    ``[...]`` holds a synonym or alternative wording: at the end of a term it is a name in
    its own right ("Acute nasopharyngitis [common cold]"), inside it replaces the word before
    it ("herpesviral [herpes simplex] infections"). ``(...)`` holds non-essential modifiers
    that may or may not be present: the term is kept without them and with each of them.
    A trailing "NOS" (not otherwise specified) is dropped.
    """
    term = re.sub(r",?\s+NOS\b", "", term).strip()
    bases = [_BRACKET.sub("", term)]
    for m in _BRACKET.finditer(term):
        inner = m.group(1).strip()
        if not inner:
            continue
        if not term[m.end():].strip(" ,"):
            bases.append(inner)
        else:
            before = term[:m.start()].rsplit(" ", 1)
            head = before[0] + " " if len(before) == 2 else ""
            bases.append(_BRACKET.sub("", head + inner + term[m.end():]))
    out: list[str] = []
    for base in bases:
        # split() alternates the text around the modifiers and the modifiers themselves.
        pieces = _PARENS.split(base)
        text, modifiers = pieces[0::2], pieces[1::2]
        for keep in (None, *range(min(len(modifiers), _MAX_MODIFIERS))):
            words = [text[0]]
            for i, mod in enumerate(modifiers):
                words += [mod if i == keep else "", text[i + 1]]
            out.append(" ".join(" ".join(words).split()))
    return [t for t in dict.fromkeys(out) if t]


class CodeDescriptions:
    """Exact match of a phrase against ICD-10-CM descriptions and inclusion terms."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        for code in cm.get_all_codes(with_dots=True):
            if cm.is_chapter(code) or cm.is_block(code) or not indexable(code):
                continue
            for term in code_terms(code):
                for variant in term_variants(term):
                    self._add(normalise_phrase(variant), code)

    def _add(self, key: str, code: str) -> None:
        current = self._by_key.get(key)
        # Prefer the shortest (most general) code for a description shared by several.
        if current is None or len(code) < len(current):
            self._by_key[key] = code

    def lookup(self, phrase: str) -> str | None:
        key = normalise_phrase(phrase)
        return self._by_key.get(key) or self._by_key.get(key + " unspecified")
