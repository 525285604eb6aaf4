"""Novelty filter: keep a text only if its ROUGE-L to every kept text is below a threshold.

Self-Instruct (Wang et al. 2022) keeps a new instruction only when its ROUGE-L F-measure
to every instruction already in the pool is < 0.7; Self-Rewarding's prompt creation needs
the same guard against near-duplicates. Done naively that is one LCS per pair: quadratic in
the pool, with an O(n*m) dynamic programme each.

`NoveltyFilter` gives exactly the verdicts of the `rouge-score` package (same tokenizer,
same F-measure arithmetic) but computes an LCS only where it could matter. ROUGE-L's F is
2*LCS/(n+m) for token counts n and m, and an LCS is at most the multiset overlap of the
two token bags; an inverted index gives every kept text's overlap with the new one in one
pass over the posting lists of its tokens (numpy), and pairs whose bound is below the
threshold are skipped. Frequent words ("the", "a", "of") share posting lists but rarely
lift the bound past 0.7, so almost every pair is pruned.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterable

import numpy as np

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's tokenizer without stemming: lowercase, split on non-alphanumerics.

    >>> rouge_tokens("Give me 3 tips, e.g. for sleep!")
    ['give', 'me', '3', 'tips', 'e', 'g', 'for', 'sleep']
    """
    return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists.

    >>> lcs_length("a b c d".split(), "a c d e".split())
    3
    """
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(a: list[str], b: list[str]) -> float:
    """ROUGE-L F-measure, with rouge-score's arithmetic (precision, recall, then F)."""
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    precision, recall = lcs / len(b), lcs / len(a)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


class NoveltyFilter:
    """A growing pool of texts; `add(text)` keeps `text` only if it is novel.

    >>> f = NoveltyFilter(["Give three tips for staying healthy."])
    >>> f.add("Give three tips for staying very healthy."), f.add("Write a poem about the sea.")
    (False, True)
    >>> len(f)
    2
    """

    def __init__(self, pool: Iterable[str] = (), threshold: float = 0.7):
        self.threshold = threshold
        self.texts: list[str] = []
        self._tokens: list[list[str]] = []
        self._lengths = array("i")
        self._postings: dict[str, tuple[array, array]] = {}
        self.lcs_computed = 0
        self.pairs_seen = 0
        for text in pool:
            self._keep(text, rouge_tokens(text))

    def __len__(self) -> int:
        return len(self.texts)

    def _keep(self, text: str, tokens: list[str]) -> None:
        idx = len(self.texts)
        self.texts.append(text)
        self._tokens.append(tokens)
        self._lengths.append(len(tokens))
        for token, count in Counter(tokens).items():
            ids, counts = self._postings.setdefault(token, (array("i"), array("i")))
            ids.append(idx)
            counts.append(count)

    def most_similar(self, text: str) -> tuple[float, int | None]:
        """The highest ROUGE-L to a kept text that reaches the threshold, and its index;
        (0.0, None) when no kept text comes that close (those are not computed)."""
        tokens = rouge_tokens(text)
        n = len(tokens)
        self.pairs_seen += len(self.texts)
        if n == 0 or not self.texts:
            return 0.0, None
        overlap = np.zeros(len(self.texts), dtype=np.int32)
        for token, count in Counter(tokens).items():
            posting = self._postings.get(token)
            if posting is None:
                continue
            ids = np.frombuffer(posting[0], dtype=np.int32)
            counts = np.frombuffer(posting[1], dtype=np.int32)
            overlap[ids] += np.minimum(counts, count)
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        bound = 2.0 * overlap / (n + lengths)
        # a margin, so float rounding in the bound can never prune a pair at the threshold
        candidates = np.flatnonzero(bound >= self.threshold - 1e-9)
        best, best_idx = 0.0, None
        for idx in candidates[np.argsort(-bound[candidates], kind="stable")]:
            self.lcs_computed += 1
            score = rouge_l(self._tokens[idx], tokens)
            if score >= self.threshold and score > best:
                best, best_idx = score, int(idx)
        return best, best_idx

    def is_novel(self, text: str) -> bool:
        return self.most_similar(text)[1] is None

    def add(self, text: str) -> bool:
        """Keep `text` if its ROUGE-L to every kept text is below the threshold."""
        if not self.is_novel(text):
            return False
        self._keep(text, rouge_tokens(text))
        return True


def filter_novel(texts: Iterable[str], pool: Iterable[str] = (), threshold: float = 0.7) -> list[str]:
    """The texts kept, in order, each compared with `pool` and with those kept before it."""
    f = NoveltyFilter(pool, threshold)
    return [t for t in texts if f.add(t)]
