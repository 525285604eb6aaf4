"""Decontamination: training rows that overlap an evaluation set are found and dropped.

A model trained on (synthetic copies of) its test problems reports numbers that mean
nothing. The rule is the usual n-gram overlap (GPT-3, Llama 2 use 8- to 13-grams) on
normalised text: lower case, punctuation as spaces, and every number as one placeholder,
so a test problem copied verbatim, reformatted (case, spacing, punctuation, line breaks) or
with its numbers changed is still found. Test items shorter than n words (an arithmetic
problem, a one-line question) would match everything once numbers are placeholders, so
those are matched as a whole instead, numbers kept: a row contaminates when it contains
the item's whole word sequence.

The evaluation sets: the run's own test split, plus any of GSM8K test, MATH-500 and
HumanEval named in `decontaminate.against`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_NUMBER = re.compile(r"^\d+$")
NUMBER = "<n>"


def words(text: str, numbers: bool = True) -> list[str]:
    """Normalised words: lower case, punctuation dropped; without `numbers`, each number
    becomes one placeholder.

    >>> words("Janet's ducks lay 16 eggs, per day!")
    ['janet', 's', 'ducks', 'lay', '16', 'eggs', 'per', 'day']
    >>> words("  JANET'S ducks lay 17 eggs per day ", numbers=False)
    ['janet', 's', 'ducks', 'lay', '<n>', 'eggs', 'per', 'day']
    """
    tokens = _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
    return tokens if numbers else [NUMBER if _NUMBER.match(t) else t for t in tokens]


@dataclass(frozen=True)
class EvalItem:
    source: str
    """The evaluation set: `test` (the run's own), `gsm8k`, `math500`, `humaneval`."""
    id: str
    text: str


@dataclass(frozen=True)
class Match:
    item: EvalItem
    overlap: str
    """The shared n-gram (or the whole short item), as normalised words."""


class EvalIndex:
    """The n-grams of evaluation items; `match(text)` finds the first item a text overlaps.
    N-grams in more than half of the items (a prompt template's) are not counted."""

    def __init__(self, items: Iterable[EvalItem], n: int = 13):
        self.n = n
        self.ngrams: dict[tuple[str, ...], EvalItem] = {}
        self.short: dict[str, list[tuple[tuple[str, ...], EvalItem]]] = {}
        items = list(items)
        shared: dict[tuple[str, ...], int] = {}
        for item in items:
            w = words(item.text, numbers=False)
            if len(w) >= n:
                grams = {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
                for gram in grams:
                    self.ngrams.setdefault(gram, item)
                    shared[gram] = shared.get(gram, 0) + 1
            else:
                exact = tuple(words(item.text))
                if exact:
                    self.short.setdefault(exact[0], []).append((exact, item))

        # boilerplate is not contamination: an n-gram in more than half of the items comes
        # from a prompt template (few-shot examples, instructions), not from a problem
        if len(items) >= 4:
            for gram, count in shared.items():
                if count > len(items) / 2:
                    del self.ngrams[gram]

    def match(self, text: str) -> Match | None:
        w = words(text, numbers=False)
        for i in range(len(w) - self.n + 1):
            item = self.ngrams.get(tuple(w[i : i + self.n]))
            if item is not None:
                return Match(item, " ".join(w[i : i + self.n]))
        exact = words(text)
        for i, word in enumerate(exact):
            for seq, item in self.short.get(word, ()):
                if tuple(exact[i : i + len(seq)]) == seq:
                    return Match(item, " ".join(seq))
        return None


@dataclass(frozen=True)
class Contamination:
    """What training rows must not overlap, and how it is checked: the run's evaluation
    items and the n-gram length (`decontaminate:`); `fp` stands for it in fingerprints."""

    enabled: bool
    n: int
    items: tuple[EvalItem, ...]

    @cached_property
    def index(self) -> EvalIndex:
        return EvalIndex(self.items, self.n)

    @cached_property
    def fp(self) -> str:
        from selftrain.artifacts import fingerprint

        return fingerprint("contamination", self.enabled, self.n, [(i.source, i.id, i.text) for i in self.items])

    def match(self, text: str) -> Match | None:
        return self.index.match(text) if self.enabled else None
