"""The verifier interface: a batch of (problem, completion) in, one Score per sample out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from selftrain.records import Problem, Score


@runtime_checkable
class Verifier(Protocol):
    """A plain callable over batches.

    `verifier(problems, completions)[i]` judges `completions[i]` as an answer to
    `problems[i]`. A Score's value is None when the verifier could not judge.
    """

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]: ...
