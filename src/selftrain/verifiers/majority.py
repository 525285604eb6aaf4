"""Filters for tasks without a verifier (Lee et al. 2025, "Self-Improving Transformers
Overcome Easy-to-Hard and Length Generalization Challenges", arXiv 2502.01612): a sample
is kept for what the model's own samples agree on, never for the reference answer.

- majority voting: among a problem's K samples, the most common final answer wins, and
  the samples giving it are accepted when it holds at least `min_agreement` of the K and
  no other answer ties with it;
- a length filter: a sample whose length strays from the median length of its problem's
  samples by more than `length_tolerance` (a share) is dropped, as are samples with no
  answer to read (the format filter).

These score like a verifier (one Score per sample, 1.0 kept / 0.0 dropped), so the same
ReST-EM loop runs with them in place of one; the grader still measures how many kept
samples were really right (`truly_right`, in the report).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from statistics import median

from selftrain.records import Problem, Score


class MajorityVote:
    """Keep the samples that give their problem's majority answer.

    `answer_of` reads a completion's final answer (None: it has none). The samples of one
    problem are judged together, so a call must hold all of a problem's samples (the score
    stage passes them all at once: `whole_groups`).

    >>> vote = MajorityVote(lambda c: c.split("A:")[-1] if "A:" in c else None, min_agreement=0.5)
    >>> p = Problem(id="1", prompt="2+3=", answer="")
    >>> [s.value for s in vote([p] * 4, ["A:5", "A:5", "A:6", "no answer"])]
    [1.0, 1.0, 0.0, 0.0]
    >>> [s.value for s in vote([p] * 4, ["A:5", "A:6", "A:7", "A:5x"])]  # no answer holds half
    [0.0, 0.0, 0.0, 0.0]
    """

    whole_groups = True

    def __init__(self, answer_of: Callable[[str], str | None], min_agreement: float = 0.5,
                 length_tolerance: float | None = None):
        if not 0 < min_agreement <= 1:
            raise ValueError(f"min_agreement must be in (0, 1], not {min_agreement}")
        self.answer_of = answer_of
        self.min_agreement = min_agreement
        self.length_tolerance = length_tolerance

    def describe(self) -> dict:
        from selftrain.artifacts import describe

        return {"kind": "majority", "answer_of": describe(self.answer_of), "min_agreement": self.min_agreement,
                "length_tolerance": self.length_tolerance}

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        answers = [self.answer_of(c) for c in completions]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(problems):
            groups[p.id].append(i)
        out: list[Score | None] = [None] * len(completions)
        for rows in groups.values():
            lengths = median(len(completions[i]) for i in rows)
            votes = Counter(answers[i] for i in rows if answers[i] is not None)
            ranked = votes.most_common(2)
            top, count = ranked[0] if ranked else (None, 0)
            tied = len(ranked) == 2 and ranked[1][1] == count  # no single answer leads: no majority
            agreed = count >= self.min_agreement * len(rows) and not tied
            for i in rows:
                out[i] = self._verdict(answers[i], completions[i], top if agreed else None, count, len(rows), lengths)
        return out  # type: ignore[return-value]

    def _verdict(self, answer: str | None, completion: str, top: str | None, count: int, k: int,
                 median_length: float) -> Score:
        if answer is None:
            return Score(0.0, "no answer to read (format filter)")
        if self.length_tolerance is not None and abs(len(completion) - median_length) > self.length_tolerance * median_length:
            return Score(0.0, f"length {len(completion)} strays from the median {median_length:g} (length filter)", answer)
        if top is None:
            return Score(0.0, f"no single answer holds {self.min_agreement:.0%} of the {k} samples (top: {count})", answer)
        if answer != top:
            return Score(0.0, f"minority answer {answer} (majority: {top}, {count} of {k})", answer)
        return Score(1.0, f"majority answer ({count} of {k})", answer)
