"""Tasks from real data: GSM8K, MATH-500, HumanEval, and any JSON-lines file; the verifier
each names (`make_verifier`).

Each owns its loader, its prompt format and its grader. The splits follow `Task`:
`human` (problems with a worked solution: the SFT baseline's data), `pool` (the problems
self-training samples on; only the final answer or the tests are used) and `test`.

Where a data set has no training split (MATH-500, HumanEval), the problems are divided by a
seeded shuffle into a pool and a test half: a run then trains and tests on the same
distribution without ever testing on a problem it trained on. For the paper's setting,
point the `jsonl` task at a training set (e.g. MATH's train split, APPS) instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from selftrain.artifacts import read_rows
from selftrain.config import GSM8KConfig, HumanEvalConfig, JsonlConfig, Math500Config
from selftrain.data import humaneval_file
from selftrain.errors import TaskDataError
from selftrain.records import Problem
from selftrain.tasks.base import Task, limit, make_verifier, split, units
from selftrain.tasks.dataset import load_split
from selftrain.verifiers.base import Verifier

# ---------------------------------------------------------------- GSM8K


GSM8K_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_solution(answer: str) -> tuple[str, str]:
    """(worked solution for training, final answer) from a GSM8K `answer` field; the
    calculator annotations `<<48/2=24>>` are removed, the `#### N` ending kept.

    >>> gsm8k_solution("She sold 48/2 = <<48/2=24>>24 clips.\\n#### 72")
    ('She sold 48/2 = 24 clips.\\n#### 72', '72')
    """
    if "####" not in answer:
        raise ValueError("no '####' final answer")
    final = answer.rsplit("####", 1)[1].strip().replace(",", "")
    return GSM8K_CALC.sub("", answer), final


class GSM8KTask(Task):
    """Grade-school math word problems; the answer after `####` is graded by `MathVerifier`.

    Prompt: `Question: ...\\nAnswer:`; a worked solution ends with `#### N`. Buckets: the
    number of reasoning steps (lines) of the reference solution. Read from local JSON lines
    (`train_path`, `test_path`) or, without them, from the hub (`hub`).
    """

    name = "gsm8k"
    config = GSM8KConfig

    def _load(self, split: str) -> list[Problem]:
        path = self.cfg.train_path if split == "train" else self.cfg.test_path
        if path is not None:
            rows, where = read_rows(path, ("question", "answer")), path
        else:
            rows, where = load_split(self.cfg.hub, split, "main", setting=f"task.gsm8k ({split}_path unset)"), self.cfg.hub
        out = []
        for i, row in enumerate(rows):
            try:
                solution, final = gsm8k_solution(row["answer"])
            except (KeyError, ValueError) as err:
                raise TaskDataError(f"{where}: row {i + 1}: {err}") from None
            steps = solution.count("\n")
            out.append(
                Problem(
                    id=f"{split}-{i}",
                    prompt=self.cfg.prompt_template.format(question=row["question"].strip()),
                    answer=final,
                    solution=" " + solution,
                    bucket=f"{min(steps, 6)}{'+' if steps >= 6 else ''} steps",
                    meta={"text": row["question"]},
                )
            )
        return out

    @cached_property
    def _train(self) -> list[Problem]:
        return self._load("train")

    def eval_texts(self) -> list[tuple[str, str]]:
        return [(p.id, p.meta["text"]) for p in self.test()]

    def human(self) -> list[Problem]:
        return limit(self._train, self.cfg.human_size)

    def pool(self) -> list[Problem]:
        return [Problem(p.id, p.prompt, p.answer, None, p.bucket) for p in limit(self._train, self.cfg.pool_size)]

    def test(self) -> list[Problem]:
        return limit(self._load("test"), self.cfg.test_size)

    @cached_property
    def _verifier(self) -> Verifier:
        from selftrain.verifiers.math import MathVerifier

        return MathVerifier(timeout=self.cfg.timeout, **units(self.cfg))

    def verifier(self) -> Verifier:
        return self._verifier


# ---------------------------------------------------------------- MATH-500


class _HalvesTask(Task):
    """A data set with no training split, divided by a seeded shuffle: the first part is
    the pool (and, with its worked solutions, the human data), the rest the test set."""

    cfg: Any
    _all: list[Problem]

    @cached_property
    def _halves(self) -> tuple[list[Problem], list[Problem]]:
        return split(self._all, self.cfg.pool_fraction, self.cfg.split_seed)

    def human(self) -> list[Problem]:
        return limit(self._halves[0], self.cfg.human_size)

    def pool(self) -> list[Problem]:
        return [Problem(p.id, p.prompt, p.answer, None, p.bucket, p.meta) for p in limit(self._halves[0], self.cfg.pool_size)]

    def test(self) -> list[Problem]:
        return limit(self._halves[1], self.cfg.test_size)


class Math500Task(_HalvesTask):
    """Competition math (MATH-500); the `\\boxed{}` answer is graded by `MathVerifier`.

    Prompt: the problem, then an instruction to put the final answer in `\\boxed{}`.
    Buckets: the problem's level (1-5).
    """

    name = "math500"
    config = Math500Config

    @cached_property
    def _all(self) -> list[Problem]:
        if self.cfg.path is not None:
            rows = read_rows(self.cfg.path, ("problem", "solution", "answer"))
        else:
            rows = load_split(self.cfg.hub, "test", setting="task.math500 (path unset)")
        return [
            Problem(
                id=row.get("unique_id", str(i)),
                prompt=self.cfg.prompt_template.format(problem=row["problem"].strip()),
                answer=row["answer"],
                solution=" " + row["solution"],
                bucket=f"level {row.get('level', '?')}",
                meta={"subject": row.get("subject"), "text": row["problem"],
                      **({"level": int(row["level"])} if str(row.get("level", "")).isdigit() else {})},
            )
            for i, row in enumerate(rows)
        ]

    def eval_texts(self) -> list[tuple[str, str]]:
        return [(p.id, p.meta["text"]) for p in self._all]

    @cached_property
    def _verifier(self) -> Verifier:
        from selftrain.verifiers.math import MathVerifier

        return MathVerifier(timeout=self.cfg.timeout, **units(self.cfg))

    def verifier(self) -> Verifier:
        return self._verifier


# ---------------------------------------------------------------- HumanEval


class HumanEvalTask(_HalvesTask):
    """Python functions from docstrings (HumanEval), graded by running their unit tests in
    the sandbox (`CodeVerifier`). The prompt is the signature and docstring; a completion
    continues the body. The canonical solutions are the human data."""

    name = "humaneval"
    config = HumanEvalConfig

    @cached_property
    def _all(self) -> list[Problem]:
        path = self.cfg.path or humaneval_file()
        rows = read_rows(path, ("task_id", "prompt", "canonical_solution", "test", "entry_point"))
        return [
            Problem(
                id=row["task_id"],
                prompt=row["prompt"],
                answer="",
                solution=row["canonical_solution"],
                meta={"test": row["test"], "entry_point": row["entry_point"]},
            )
            for row in rows
        ]

    def eval_texts(self) -> list[tuple[str, str]]:
        return [(p.id, p.prompt) for p in self._all]

    @cached_property
    def _verifier(self) -> Verifier:
        from selftrain.verifiers.code import CodeVerifier
        from selftrain.verifiers.sandbox import Limits

        return CodeVerifier(limits=Limits(wall_seconds=self.cfg.timeout, cpu_seconds=max(1, int(self.cfg.timeout))))

    def verifier(self) -> Verifier:
        return self._verifier


# ---------------------------------------------------------------- any JSON-lines file


class JsonlTask(Task):
    """A user's own problems from JSON-lines files, with a field mapping.

    `verifier: math` needs an answer field; `exact` compares the text after the last
    `marker`; `code` needs a tests field (HumanEval style, defining `check(candidate)`) and
    an entry-point field. A `solution` field, if mapped, gives the human data.
    """

    name = "jsonl"
    config = JsonlConfig

    def _rows(self, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
        f = self.cfg.fields
        required = tuple(x for x in (f.prompt, f.answer if self.cfg.verifier != "code" else None) if x)
        if self.cfg.verifier == "code":
            required += (f.tests, f.entry_point)
        yield from enumerate(read_rows(path, required))

    def _load(self, path: str) -> list[Problem]:
        f = self.cfg.fields
        out = []
        for i, row in self._rows(path):
            meta = {"test": row[f.tests], "entry_point": row[f.entry_point]} if self.cfg.verifier == "code" else {}
            if f.level and f.level in row:
                try:
                    meta["level"] = int(row[f.level])
                except (TypeError, ValueError):
                    raise ValueError(f"{path} row {i + 1}: field {f.level!r} must be a whole number (a curriculum level), not {row[f.level]!r}") from None
            solution = row.get(f.solution) if f.solution else None
            out.append(
                Problem(
                    id=str(row[f.id]) if f.id and f.id in row else f"{Path(path).stem}-{i}",
                    prompt=self.cfg.prompt_template.format(prompt=row[f.prompt]),
                    answer=str(row.get(f.answer, "")) if f.answer else "",
                    solution=None if solution is None else str(solution),
                    bucket=str(row[f.bucket]) if f.bucket and f.bucket in row else "all",
                    meta=meta,
                )
            )
        return out

    @cached_property
    def _pool_and_test(self) -> tuple[list[Problem], list[Problem]]:
        train = self._load(self.cfg.path)
        if self.cfg.test_path:
            return train, self._load(self.cfg.test_path)
        return split(train, self.cfg.pool_fraction, self.cfg.split_seed)

    def human(self) -> list[Problem]:
        return limit([p for p in self._pool_and_test[0] if p.solution], self.cfg.human_size)

    def pool(self) -> list[Problem]:
        return [Problem(p.id, p.prompt, p.answer, None, p.bucket, p.meta) for p in limit(self._pool_and_test[0], self.cfg.pool_size)]

    def test(self) -> list[Problem]:
        return limit(self._pool_and_test[1], self.cfg.test_size)

    def verifier(self) -> Verifier:
        return self._verifier

    @cached_property
    def _verifier(self) -> Verifier:
        return make_verifier(self.cfg, "task.jsonl.verifier")
