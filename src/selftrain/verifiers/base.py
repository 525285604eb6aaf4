"""The verifier interface: a batch of (problem, completion) in, one Score per sample out; and
what a verifier named in a task's settings is (`VerifierKind`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from selftrain.records import Problem, Score


@runtime_checkable
class Verifier(Protocol):
    """A plain callable over batches.

    `verifier(problems, completions)[i]` judges `completions[i]` as an answer to
    `problems[i]`. A Score's value is None when the verifier could not judge.
    """

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]: ...


@dataclass(frozen=True)
class VerifierKind:
    """A verifier by name (`verifier: math` in a task's settings): how it is built from the
    task's settings, and what of a problem it reads (a task must map those fields). Each
    built-in declares its own beside its code (`KIND`); `selftrain.verifiers.register` adds
    one of yours."""

    name: str
    make: Callable[[Any], Verifier]
    """(the task's settings: timeout, units, marker, threshold, ...) -> the verifier."""
    needs: frozenset[str] = frozenset()
    """The problem fields it reads: `answer`, `tests` (with `entry_point`)."""
