"""A verifier of your own: a plain Python function with TRL's reward signature.

    def sql_matches(prompts, completions, answer, **columns) -> list[float | bool | None]:
        ...

named by import path in a task's `verifier` setting (`"my_checks:sql_matches"` or
`"path/to/checks.py:sql_matches"`). It gets a batch of prompts and completions and, as
keyword arguments, the problems' columns (`answer`, `id`, `bucket`, and a dataset's other
columns), one list each, and returns one value per completion: a number (a reward; the
sample is accepted at `threshold` or above), True / False, or None for "could not judge".

It runs in a worker process of its own, batch by batch, each batch with a deadline: a
function that hangs is stopped and its batch scored None ("timed out"); one that raises
has its batch retried row by row, and each row that raises is scored None with the error;
a value that is not a number, bool or None is scored None with what it was. Nothing the
function does is ever an accepted sample by accident, and the run goes on. A return of the
wrong shape (not a list, or not one value per completion) is a clear error that stops the
run: the function breaks the contract, and no score could be trusted.
"""

from __future__ import annotations

import math
import pickle
import select
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from selftrain.errors import ConfigError, SelftrainError
from selftrain.plugins import check_reward_function, load_object, source_hash
from selftrain.records import Problem, Score


class VerifierError(SelftrainError):
    """A verifier of your own broke its contract (the shape of what it returned)."""


class _Worker:
    def __init__(self, target: str, setting: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "selftrain.verifiers._function_worker", target, setting],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        kind, detail = self.receive(120)
        if kind != "ready":
            self.stop()
            raise ConfigError(f"{setting}: the verifier's worker could not load {target}: {detail}")

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj)
        self.proc.stdin.write(len(data).to_bytes(4, "big") + data)

    def receive(self, timeout: float) -> tuple[str, Any]:
        """The next reply; ("timeout", None) when none came in time, ("died", code) if it died."""
        fd = self.proc.stdout.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            return "timeout", None
        head = self.proc.stdout.read(4)
        body = self.proc.stdout.read(int.from_bytes(head, "big")) if len(head) == 4 else b""
        if not body:
            return "died", self.proc.wait()
        return pickle.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class FunctionVerifier:
    """A function of your own (`target`) as a verifier: batches of `batch_size` in a worker
    process, each with `timeout` seconds; a sample is accepted when its value reaches
    `threshold` (True counts 1, False 0)."""

    def __init__(self, target: str, threshold: float = 0.5, timeout: float = 30.0, batch_size: int = 64,
                 setting: str = "verifier"):
        check_reward_function(target, setting)
        self.target, self.threshold, self.timeout, self.batch_size, self.setting = target, threshold, timeout, batch_size, setting
        self.source = source_hash(load_object(target, setting))
        self._worker: _Worker | None = None

    def describe(self) -> dict[str, Any]:
        """Its target, the hash of the file it is in, and its settings: changing the
        function's code redoes the scoring and what follows it."""
        return {"kind": "function", "target": self.target, "source": self.source, "threshold": self.threshold,
                "timeout": self.timeout}

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __getstate__(self) -> dict[str, Any]:  # sent to Ray tasks without its worker process
        return {**self.__dict__, "_worker": None}

    def _call(self, prompts: list[str], completions: list[str], columns: dict[str, list]) -> tuple[str, Any]:
        if self._worker is None:
            self._worker = _Worker(self.target, self.setting)
        self._worker.send((prompts, completions, columns))
        kind, detail = self._worker.receive(self.timeout)
        if kind in ("timeout", "died"):
            self.close()  # a fresh worker for the next batch
        return kind, detail

    def _score(self, value: Any) -> Score:
        if value is None:
            return Score(None, "the function could not judge (None)")
        if isinstance(value, bool):
            return Score(float(value), "accepted (True)" if value else "rejected (False)")
        if isinstance(value, (int, float)) and not math.isnan(value):
            ok = value >= self.threshold
            return Score(float(ok), f"reward {value:g} {'>=' if ok else '<'} threshold {self.threshold:g}")
        return Score(None, f"the function returned {value!r:.60}, not a number, True/False or None")

    def _batch(self, prompts: list[str], completions: list[str], columns: dict[str, list]) -> list[Score]:
        kind, detail = self._call(prompts, completions, columns)
        if kind == "ok":
            if not isinstance(detail, (list, tuple)) or len(detail) != len(completions):
                got = f"{len(detail)} values" if isinstance(detail, (list, tuple)) else f"a {type(detail).__name__}"
                raise VerifierError(f"{self.setting}: {self.target} returned {got} for {len(completions)} completions; "
                                    "it must return a list with one value (a number, True/False or None) per completion")
            return [self._score(v) for v in detail]
        if kind == "timeout":
            return [Score(None, f"the function timed out after {self.timeout:g} s (a batch of {len(completions)})")] * len(completions)
        if kind == "died":
            why = f"the function's process died (exit {detail})"
            if len(completions) == 1:
                return [Score(None, why)]
        elif len(completions) == 1:
            return [Score(None, f"the function raised {detail}")]
        # it raised (or died) on the batch: row by row, so that only the rows it fails on are None
        return [s for i in range(len(completions))
                for s in self._batch(prompts[i:i + 1], completions[i:i + 1], {k: v[i:i + 1] for k, v in columns.items()})]

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        out: list[Score] = []
        for s in range(0, len(problems), self.batch_size):
            batch = list(problems[s:s + self.batch_size])
            out += self._batch([p.prompt for p in batch], list(completions[s:s + self.batch_size]), columns_of(batch))
        return out


def columns_of(problems: Sequence[Problem]) -> dict[str, list]:
    """The keyword arguments a reward function gets: each column, one value per problem
    (`answer`, `id`, `bucket`, and the dataset's own columns kept in `meta["columns"]`)."""
    columns: dict[str, list] = {"answer": [p.answer for p in problems], "id": [p.id for p in problems],
                                "bucket": [p.bucket for p in problems]}
    extra = sorted({k for p in problems for k in p.meta.get("columns", {})})
    for k in extra:
        columns.setdefault(k, [p.meta.get("columns", {}).get(k) for p in problems])
    return columns
