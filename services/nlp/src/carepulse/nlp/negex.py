"""Classic NegEx (Chapman et al., 2001): the baseline CarePulse's assertion is compared with.

The published algorithm on word tokens: a pre-negation trigger negates a target that
starts within five words after it, a post-negation trigger one that ends within five
words before it; pseudo-negations are skipped as triggers, and a conjunction ("but",
"which", ...) between the trigger and the target ends the trigger's scope. Trigger
phrases are data (``data/negex_triggers.tsv``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

WINDOW = 5
_WORD = re.compile(r"[a-z0-9]+(?:['/][a-z0-9]+)*", re.I)


@dataclass(frozen=True, slots=True)
class _Trigger:
    start: int  # first word index
    end: int  # one past the last word index
    kind: str


class NegEx:
    def __init__(self, triggers: dict[str, str], window: int = WINDOW) -> None:
        self._triggers = {tuple(_WORD.findall(p.lower())): k for p, k in triggers.items()}
        self._longest = max(len(t) for t in self._triggers)
        self._window = window

    @classmethod
    def load(cls) -> NegEx:
        text = (resources.files("carepulse.nlp") / "data" / "negex_triggers.tsv").read_text(encoding="utf-8")
        rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")][1:]
        return cls({phrase: kind for phrase, kind in rows})

    def _find(self, words: list[str]) -> list[_Trigger]:
        found: list[_Trigger] = []
        i = 0
        while i < len(words):
            for n in range(min(self._longest, len(words) - i), 0, -1):
                kind = self._triggers.get(tuple(words[i:i + n]))
                if kind:
                    found.append(_Trigger(i, i + n, kind))
                    i += n
                    break
            else:
                i += 1
        return found

    def is_negated(self, sentence: str, start: int, end: int) -> bool:
        """Whether the target at characters ``[start, end)`` of ``sentence`` is negated."""
        tokens = list(_WORD.finditer(sentence))
        words = [t.group().lower() for t in tokens]
        inside = [i for i, t in enumerate(tokens) if t.start() < end and t.end() > start]
        if not inside:
            return False
        t_first, t_last = inside[0], inside[-1]
        triggers = [t for t in self._find(words) if not (t.start <= t_last and t.end > t_first)]
        conj = [t for t in triggers if t.kind == "CONJ"]
        for t in triggers:
            before = t.kind == "PREN" and t.end <= t_first and t_first - t.end < self._window
            if before and not any(t.end <= c.start < t_first for c in conj):
                return True
            after = t.kind == "POST" and t.start > t_last and t.start - t_last - 1 < self._window
            if after and not any(t_last < c.start < t.start for c in conj):
                return True
        return False
