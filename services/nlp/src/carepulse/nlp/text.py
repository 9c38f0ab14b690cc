"""Note text clean-up that keeps offsets: whitespace folding, header redaction, HTML stripping.

Every transformation here maps back to the characters of the original note, so a finding's
offsets in the published FHIR point at the text the clinician wrote.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

# Runs of spaces/tabs become one space; runs holding a line break become one line break.
# spaCy makes a token of every extra space, and multi-word triggers ("negative   for")
# would then not match.
_WS = re.compile(r"[ \t\r\f\v\u00a0]*\n[\s]*|[ \t\r\f\v\u00a0]{2,}|[\t\r\f\v\u00a0]")

# Note-header fields that identify people; their values are blanked before any processing.
_HEADER_FIELD = re.compile(
    r"(?im)\b(patient\s+name|name|mrn|medical\s+record\s+(?:number|no\.?)|account\s*(?:#|no\.?|number)|"
    r"dob|date\s+of\s+birth|attending(?:\s+physician)?|referring\s+physician|physician|provider|ssn|"
    r"address|phone|telephone)\s*[:#]\s*([^\n]*?)(?=\s{2,}|\n|$)"
)
# Synthea-style generated names ("Sumiko254 Larue605"): letters immediately followed by digits.
_GENERATED_NAME = re.compile(r"\b[A-Z][a-z]+\d{2,4}(?:\s+[A-Z][a-z]+\d{2,4})+\b")
# De-identification placeholders with their (fake) values: **NAME[AAA, BBB M].
_DEID_PLACEHOLDER = re.compile(r"\*\*(?:NAME|ID-NUM|PHONE|ADDRESS|EMAIL)\[[^\]]*\]")


@dataclass(frozen=True, slots=True)
class FoldedText:
    """Text with whitespace folded, and the offset in the original of each character."""

    text: str
    origin: tuple[int, ...]
    original_length: int

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of the folded span ``[start, end)``."""
        if start >= len(self.origin):
            return self.original_length, self.original_length
        o_start = self.origin[start]
        o_end = self.origin[end - 1] + 1 if end > start else o_start
        return o_start, o_end


def fold_whitespace(text: str) -> FoldedText:
    out: list[str] = []
    origin: list[int] = []
    pos = 0
    for m in _WS.finditer(text):
        out.append(text[pos:m.start()])
        origin.extend(range(pos, m.start()))
        out.append("\n" if "\n" in m.group() else " ")
        origin.append(m.start())
        pos = m.end()
    out.append(text[pos:])
    origin.extend(range(pos, len(text)))
    return FoldedText("".join(out), tuple(origin), len(text))


def keep_text(text: str) -> FoldedText:
    """The text unchanged, as a FoldedText (identity offsets)."""
    return FoldedText(text, tuple(range(len(text))), len(text))


def redact_identifiers(text: str) -> str:
    """Blank names and numbers of the note header with 'X's, keeping every offset.

    Only the values go; the field labels stay so sections and sentences still parse.
    """
    def blank(s: str) -> str:
        return re.sub(r"\S", "X", s)

    def field(m: re.Match[str]) -> str:
        whole = m.group(0)
        cut = m.start(2) - m.start(0)
        return whole[:cut] + blank(whole[cut:])

    text = _HEADER_FIELD.sub(field, text)
    text = _GENERATED_NAME.sub(lambda m: blank(m.group(0)), text)
    return _DEID_PLACEHOLDER.sub(lambda m: blank(m.group(0)), text)


class _TextOnly(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML note, block elements on their own lines (offsets refer to this text)."""
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    return html.unescape("".join(parser.parts)).strip()
