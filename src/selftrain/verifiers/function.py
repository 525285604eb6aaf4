"""A verifier of your own: a plain Python function with TRL's reward signature.

    def sql_matches(prompts, completions, answer, **columns) -> list[float | bool | None]:
        ...

named by import path in a task's `verifier` setting (`"my_checks:sql_matches"` or
`"path/to/checks.py:sql_matches"`). It gets a batch of prompts and completions and, as
keyword arguments, the problems' columns, one list each (`columns_of`: the dataset's own
columns by their own names, and the mapped roles `answer`, `id`, `bucket`), and returns one value per completion: a number (a reward; the
sample is accepted at `threshold` or above), True / False, or None for "could not judge".

It runs in a worker process of its own, batch by batch (`batch_size`), each batch with a
deadline (`timeout`): a batch that hangs, raises or kills its process is cut in halves and
each half tried again in a fresh worker, down to the single completions it fails on, which
are scored None with the reason ("timed out after 5 s", the error and its line in your
file); every other completion of the batch is judged. A value that is not a finite number,
a bool or None (inf, nan, a string, a container) is None with what it was. Nothing the
function does is ever an accepted sample by accident, and the run goes on. A return of the
wrong shape (not a list, or not one value per completion) is a clear error that stops the
run: the function breaks the contract, and no score could be trusted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from selftrain.artifacts import code_fingerprint
from selftrain.errors import SelftrainError
from selftrain.plugins import Guarded, check_reward_function, load_object
from selftrain.records import Problem, Score


class VerifierError(SelftrainError):
    """A verifier of your own broke its contract (the shape of what it returned)."""


def verdict(value: Any, threshold: float) -> Score:
    """A function's value as a Score: a finite real number (a reward, accepted at `threshold`
    or above) or True / False; None and anything else (inf, nan, a string, a container)
    could not be judged, with what it was.

    >>> [verdict(v, 0.5).value for v in (0.7, True, 0, None, float("inf"), float("nan"), "1", [1])]
    [1.0, 1.0, 0.0, None, None, None, None, None]
    >>> verdict(float("-inf"), 0.5).reason
    'the function returned -inf, not a finite number, True/False or None'
    """
    if value is None:
        return Score(None, "the function could not judge (None)")
    if isinstance(value, bool):
        return Score(float(value), "accepted (True)" if value else "rejected (False)")
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        ok = float(value) >= threshold
        return Score(float(ok), f"reward {float(value):g} {'>=' if ok else '<'} threshold {threshold:g}")
    return Score(None, f"the function returned {value!r:.60}, not a finite number, True/False or None")


class FunctionVerifier:
    """A function of your own (`target`) as a verifier: batches of `batch_size` in a worker
    process, each with `timeout` seconds (`selftrain.plugins.Guarded`: a batch that raises,
    dies or hangs is cut in halves until only the completions it fails on are None); a
    sample is accepted when its value reaches `threshold` (True counts 1, False 0)."""

    def __init__(self, target: str, threshold: float = 0.5, timeout: float = 30.0, batch_size: int = 64,
                 setting: str = "verifier"):
        check_reward_function(target, setting)
        self.target, self.threshold, self.timeout, self.batch_size, self.setting = target, threshold, timeout, batch_size, setting
        self.source = code_fingerprint(load_object(target, setting))
        self._calls = Guarded(target, setting, timeout, batch_size, request=_request)

    def describe(self) -> dict[str, Any]:
        """Its target, its code (with every function of your own it calls: `code_fingerprint`)
        and its settings: changing what the function does redoes the scoring and what follows it."""
        return {"kind": "function", "target": self.target, "source": self.source, "threshold": self.threshold,
                "timeout": self.timeout}

    def close(self) -> None:
        self._calls.close()

    def _score(self, kind: str, detail: Any) -> Score:
        if kind == "ok":
            return verdict(detail, self.threshold)
        if kind == "shape":
            raise VerifierError(f"{self.setting}: {self.target} returned {detail} completions; it must return a list "
                                "with one value (a number, True/False or None) per completion")
        if kind == "timeout":
            return Score(None, f"the function timed out after {detail:g} s")
        if kind == "died":
            return Score(None, f"the function's process died (exit {detail})")
        return Score(None, f"the function raised {detail}")

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        return [self._score(kind, detail) for kind, detail in self._calls(list(zip(problems, completions)))]


def _request(batch: list[tuple[Problem, str]]) -> tuple[tuple, dict]:
    """A batch as TRL calls a reward function: prompts, completions, and the columns by name."""
    problems = [p for p, _ in batch]
    return ([p.prompt for p in problems], [c for _, c in batch]), columns_of(problems)


def columns_of(problems: Sequence[Problem]) -> dict[str, list]:
    """The keyword arguments a reward function gets, one list per column, one value per
    problem, as TRL passes a dataset's columns: every column of the dataset under its own
    name (`meta["columns"]`), and the roles the task mapped (`answer`, `id`, `bucket`) under
    theirs, where the dataset has no column of that name.

    >>> p = Problem("u1", "9=", "9", meta={"columns": {"uid": "u1", "problem": "9", "target": 9}})
    >>> sorted(columns_of([p]).items())
    [('answer', ['9']), ('bucket', ['all']), ('id', ['u1']), ('problem', ['9']), ('target', [9]), ('uid', ['u1'])]
    """
    names = sorted({k for p in problems for k in p.meta.get("columns", {})})
    columns: dict[str, list] = {k: [p.meta.get("columns", {}).get(k) for p in problems] for k in names}
    roles = {"answer": [p.answer for p in problems], "id": [p.id for p in problems], "bucket": [p.bucket for p in problems]}
    return {**roles, **columns}
