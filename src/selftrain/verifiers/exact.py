"""Exact-answer verifier: read the final answer after a marker and compare it exactly."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from selftrain.records import Problem, Score
from selftrain.verifiers.base import VerifierKind


def integer_answer(text: str) -> str | None:
    """Canonical form of an integer answer, or None if `text` is not one.

    >>> integer_answer(" 0042 "), integer_answer("-7"), integer_answer("4.5")
    ('42', '-7', None)
    """
    text = text.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        return None
    return str(int(text))


def text_answer(text: str) -> str | None:
    """An answer compared as text: stripped of surrounding space; None when empty.

    >>> text_answer(" Paris "), text_answer("  ")
    ('Paris', None)
    """
    return text.strip() or None


class ExactAnswerVerifier:
    """Accepts a completion whose final answer, after the last `marker`, equals the reference.

    Only the final answer is checked, as in ReST-EM: a worked solution with a flawed step
    and the right answer is accepted.

    >>> v = ExactAnswerVerifier(marker="A:")
    >>> p = Problem(id="1", prompt="2+3=", answer="5")
    >>> [(s.value, s.reason) for s in v([p, p, p], ["2+3+0=5 A:5", "A:6", "5"])]
    [(1.0, 'correct'), (0.0, 'wrong answer 6, expected 5'), (0.0, 'no final answer after "A:"')]
    """

    def __init__(self, marker: str = "A:", normalize: Callable[[str], str | None] = integer_answer,
                 reference: Callable[[str], str | None] | None = None):
        """`normalize` reads a completion's answer; `reference` the problem's (default: the same)."""
        self.marker = marker
        self.normalize = normalize
        self.reference = reference or normalize

    def describe(self) -> dict:
        """Its settings, for a stage's fingerprint (`selftrain.artifacts.describe`)."""
        from selftrain.artifacts import describe

        return {"kind": "exact", "marker": self.marker, "normalize": describe(self.normalize),
                "reference": describe(self.reference)}

    def extract(self, completion: str) -> str | None:
        """The normalized final answer, or None when there is none."""
        head, sep, tail = completion.rpartition(self.marker)
        if not sep:
            return None
        return self.normalize(tail.splitlines()[0] if tail.strip() else tail)

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        out = []
        for problem, completion in zip(problems, completions):
            if self.marker not in completion:
                out.append(Score(0.0, f'no final answer after "{self.marker}"'))
                continue
            got = self.extract(completion)
            if got is None:
                out.append(Score(0.0, "final answer is not a number"))
                continue
            ok = got == self.reference(problem.answer)
            out.append(Score(float(ok), "correct" if ok else f"wrong answer {got}, expected {problem.answer}", got))
        return out


def _make(cfg) -> ExactAnswerVerifier:
    return ExactAnswerVerifier(marker=getattr(cfg, "marker", "A:"), normalize=text_answer)


KIND = VerifierKind("exact", _make, frozenset({"answer"}))
"""`verifier: exact`: the text after the task's `marker`, compared with the answer as text."""
