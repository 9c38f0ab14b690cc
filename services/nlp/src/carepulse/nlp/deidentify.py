"""Identifiers out of note text before anything reads it (and so before any phrase goes to inference).

:func:`deidentify` blanks, with ``X`` characters so every offset still points at the same place
in the original note:

- labelled fields (``Name:``, ``MRN:``, ``DOB:``, ``SSN:``, ``Phone:``, ``Address:``...) and
  de-identification placeholders (``**NAME[...]``): :func:`carepulse.nlp.text.redact_identifiers`;
- labels that are identifiers only in the header, the first 15 lines (``Patient:``, ``Patient ID:``,
  ``Birth date:``, ``Driver's license:``, ``Passport:``, ``E-mail:``, ``Insurance ID:``...);
- the subject line of a Synthea note's history section: the line naming the patient right before
  ``is a 28 year-old ...`` (one, two or three names, any spelling);
- Synthea's generated names anywhere: a capitalised word with a numeric suffix (``Donetta1``,
  ``O'Keefe54``, ``Karena692``), alone or in a run;
- a courtesy title's name (``Mr. Smith``, ``Mrs O'Keefe54``);
- dates of birth written in the text (``born on 1950-03-02``, ``born 03/02/1950``), social
  security and telephone numbers.

Pure and offset-preserving; clinical words are kept (a condition is never a capitalised word
ending in digits, and the subject line holds only the name).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from carepulse.nlp.text import redact_identifiers

_NAME_WORD = r"[A-Z][A-Za-z'\-]*[a-z][A-Za-z'\-]*"
# Synthea: "# History of Present Illness\nElisa944 Donetta1\n is a 80 year-old ..." -- the name line.
_SUBJECT_LINE = re.compile(
    r"(?m)^[ \t]*(?P<name>[^\n#:]{1,120}?)[ \t]*\n(?=[ \t]*is an? \d{1,3}[- ](?:year|month|week|day)s?[- ]old\b)"
)
# Generated names: a capitalised word with a 1-4 digit suffix ("Marine542", "Ai120", "O'Keefe54").
_GENERATED_NAME = re.compile(rf"(?<![\w'\-]){_NAME_WORD}\d{{1,4}}(?![\w.\-]*\d)(?!\w)")
_TITLED_NAME = re.compile(
    rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr)\.?[ \t]+(?P<name>{_NAME_WORD}\d{{0,4}}(?:[ \t]+{_NAME_WORD}\d{{0,4}})?)"
)
# Labels that mark an identifier in a note's header only: in the body "Patient: denies pain" is clinical.
_HEADER_LINES = 15
_HEADER_LABEL = re.compile(
    r"(?im)^[ \t]*(?:patient(?:\s+id)?|member\s+id|birth\s*date|driver'?s\s+licen[cs]e(?:\s+(?:number|no\.?))?|"
    r"passport(?:\s+(?:number|no\.?))?|e-?mail|insurance(?:\s+id)?|guarantor|next\s+of\s+kin|emergency\s+contact)"
    r"\s*[:#]\s*(?P<value>[^\n]*?)[ \t]*$"
)
_DATE = r"(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}\.\d{1,2}\.\d{4})"
_BORN = re.compile(rf"(?i)\b(?:born|birth\s*date|d\.o\.b\.?)\s*(?:on|:)?\s*(?P<date>{_DATE})")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_PHONE = re.compile(r"(?<![\w-])(?:\+?1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}\b")


def _blank(s: str) -> str:
    return re.sub(r"\S", "X", s)


def _blank_group(group: str) -> Callable[[re.Match[str]], str]:
    def sub(m: re.Match[str]) -> str:
        whole = m.group(0)
        a, b = m.start(group) - m.start(0), m.end(group) - m.start(0)
        return whole[:a] + _blank(whole[a:b]) + whole[b:]
    return sub


def _nth_line_end(text: str, n: int) -> int:
    end = -1
    for _ in range(n):
        end = text.find("\n", end + 1)
        if end < 0:
            return len(text)
    return end


def deidentify(text: str) -> str:
    """``text`` with the identifiers of its header (and the shapes above anywhere) blanked; same length."""
    text = redact_identifiers(text)
    head_end = _nth_line_end(text, _HEADER_LINES)
    text = _HEADER_LABEL.sub(_blank_group("value"), text[:head_end]) + text[head_end:]
    text = _SUBJECT_LINE.sub(_blank_group("name"), text)
    text = _TITLED_NAME.sub(_blank_group("name"), text)
    text = _GENERATED_NAME.sub(lambda m: _blank(m.group(0)), text)
    text = _BORN.sub(_blank_group("date"), text)
    text = _SSN.sub(lambda m: _blank(m.group(0)), text)
    return _PHONE.sub(lambda m: _blank(m.group(0)), text)
