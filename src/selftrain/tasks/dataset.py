"""A dataset by name or path (`task.name: dataset`), loaded with `datasets.load_dataset`: a
Hugging Face hub name, a local folder (data files, or one made by `save_to_disk`), or a
single parquet, JSON-lines, JSON or CSV file; a column mapping says which column holds the
prompt, the answer, a worked solution, an id, a bucket, a level, or chat `messages`.

Rows with a worked solution are the human data; every row is in the pool; the test set is
`test_path` (another file), `test_split`, or a seeded share of `split`. `task.name: jsonl`
is this task (the name of an earlier, narrower one). Every column of a row travels with its
problem (`meta["columns"]`), so a verifier of your own gets them as keyword arguments by the
dataset's own names (`selftrain.verifiers.function.columns_of`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from selftrain.config import _Section
from selftrain.errors import TaskDataError
from selftrain.records import Problem
from selftrain.tasks.base import NotAProblem, Task, TaskSettings, limit, make_verifier, split
from selftrain.verifiers.base import Verifier


class Columns(_Section):
    """Which column of the dataset holds what; None: it has no such column."""

    prompt: str | None = "prompt"
    """The problem's text (filled into `prompt_template` as `{prompt}`); None with `messages`."""
    answer: str | None = "answer"
    """The reference answer a verifier compares with."""
    solution: str | None = None
    """A worked solution: rows that have one are the human data (SFT)."""
    messages: str | None = None
    """Chat rows (`[{role, content}, ...]`): the last user turn is the prompt, the assistant
    turn after it the solution (the human data), a system turn the system prompt."""
    id: str | None = None
    """None: the data's own `id` column where it has one, else `<split>-<row number>`."""
    bucket: str | None = None
    """The report's buckets (accuracy per bucket); None: one bucket, `all`."""
    level: str | None = None
    """A whole-number difficulty level, for a curriculum (`rest_em.curriculum`)."""
    tests: str | None = None
    """Test code defining `check(candidate)` (verifier `code`)."""
    expression: str | None = None
    """The arithmetic expression that computes the answer (`oracle: expression`: the seed
    problems are shown to the proposer as the question and its expression)."""
    entry_point: str | None = None
    """The name of the function the tests call (verifier `code`)."""


class DatasetConfig(TaskSettings):
    """A dataset by name or path, loaded with `datasets.load_dataset`: a Hugging Face hub
    name, a local folder of data files or made by `save_to_disk`, or one file (parquet,
    JSON lines, JSON, CSV)."""

    path: str = ""
    """Hub name (`openai/gsm8k`), a folder, or a file (parquet, JSON lines, JSON, CSV,
    optionally gzipped); required."""
    name: str | None = None
    """The dataset's config (`main` for GSM8K)."""
    split: str = "train"
    """The split the pool (and the human data) come from."""
    test_split: str | None = None
    """The split of the test set; None: a seeded share of `split` (`pool_fraction`, `split_seed`)."""
    test_path: str | None = None
    """The test set from another file or folder (its `test_split`, or its only split) instead."""
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    """`datasets.load_dataset`'s data_files (a hub dataset's files, or a folder's)."""
    revision: str | None = None
    """A hub dataset's revision (a branch, tag or commit)."""
    columns: Columns = Columns()
    verifier: str = "math"
    """`math`, `exact` (the text after the last `marker`), `code` (the sandbox), one registered
    (`selftrain.verifiers.register`), or a function of your own by import path
    (`my_checks:name`, `path/to/checks.py:name`; TRL's reward signature,
    `selftrain.verifiers.function`)."""
    threshold: float = 0.5
    """A function's value at or above which a sample is accepted."""
    oracle: Literal["expression"] | None = None
    """How the answer of a problem the model writes is computed (`own-problems`):
    `expression`: the model writes a question and, on its last line, `Expression: <+ - * /
    of whole numbers>`, evaluated exactly; every number in it must appear in the question, and
    the answer must be a whole number. None: the task has no oracle."""
    verifier_batch_size: int = Field(64, ge=1)
    """A verifier of your own: completions per call, each call with `timeout` seconds (a call
    that hangs is halved until only the hanging completions are None)."""
    marker: str = "A:"
    """For `exact`: the final answer is the text after the last marker."""
    prompt_template: str = "{prompt}"
    """What the model is given: `{prompt}` is the prompt column."""
    pool_fraction: float = Field(0.5, gt=0, lt=1)
    """Without a test split: the share of `split` in the pool; the rest is the test set."""
    split_seed: int = 0
    """Without a test split: the seed of the shuffle that divides `split`."""

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        from selftrain.verifiers import check_verifier

        if not self.path:
            raise ValueError("path: the dataset's hub name, a folder or a file")
        if not self.columns.prompt and not self.columns.messages:
            raise ValueError("columns: a prompt column or a messages column")
        mapped = {"answer"} if self.columns.answer else set()
        if self.columns.tests and self.columns.entry_point:
            mapped.add("tests")
        check_verifier(self.verifier, "task.dataset.verifier", mapped)
        return self


_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".gz": "json"}


def load_split(path: str, split: str, name: str | None = None, data_files: Any = None, revision: str | None = None,
               setting: str = "task.dataset") -> list[dict[str, Any]]:
    """The rows of one split, as dicts. `path`: a `save_to_disk` folder, a data file, a folder
    of data files, or a hub name; an error that says which, and what to do, when it fails."""
    import datasets

    datasets.disable_progress_bars()
    local = Path(path)
    if not local.exists() and local.suffix in _BUILDERS:
        raise TaskDataError(f"{setting}: no file {path} (from {Path.cwd()})")
    try:
        if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(local))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise TaskDataError(f"{setting}: {path} has no split {split!r} (it has: {', '.join(loaded)})")
                loaded = loaded[split]
        elif local.is_file():
            if local.suffix not in _BUILDERS:
                raise TaskDataError(f"{setting}: cannot read {path}: a .parquet, .jsonl(.gz), .json or .csv file, or a folder")
            loaded = datasets.load_dataset(_BUILDERS[local.suffix], data_files=str(local), split="train")
        else:
            loaded = datasets.load_dataset(path, name, split=split, data_files=data_files, revision=revision)
    except TaskDataError:
        raise
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        hint = "" if local.exists() else (" It is not a local file or folder; as a hub name it needs the network "
                                          "(offline, give a local path)." )
        raise TaskDataError(f"{setting}: cannot load {path!r} (split {split}): {type(err).__name__}: {err}.{hint}") from None
    return list(loaded)


class DatasetTask(Task):
    """Problems from any dataset `datasets` can load, through a column mapping."""

    name = "dataset"
    config = DatasetConfig

    def __init__(self, cfg: DatasetConfig):
        self.cfg = cfg

    def _problems(self, split: str, path: str | None = None, label: str | None = None) -> list[Problem]:
        """The problems of `split` of the dataset at `path` (default: `path` of the settings),
        their ids `<label>-<row>` when the data names none."""
        c, cols = self.cfg, self.cfg.columns
        path = path or c.path
        setting = "task.dataset.test_path" if path == c.test_path else "task.dataset.path"
        rows = load_split(path, split, c.name, c.data_files if path == c.path else None, c.revision, setting=setting)
        if not rows:
            raise TaskDataError(f"{setting}: {path} split {split!r} has no rows")
        have = list(rows[0])
        named = {k: v for k, v in cols.model_dump().items() if v is not None}
        for what, column in named.items():
            if column not in rows[0]:
                raise TaskDataError(f"task.dataset.columns.{what}: {path} ({split}) has no column {column!r}; "
                                    f"its columns: {', '.join(have)}")
        return [self._problem(label or split, i, row) for i, row in enumerate(rows)]

    def _problem(self, split: str, i: int, row: dict[str, Any]) -> Problem:
        cols = self.cfg.columns
        prompt, solution, system = row.get(cols.prompt) if cols.prompt else None, row.get(cols.solution) if cols.solution else None, None
        if cols.messages:
            prompt, chat_solution, system = _from_messages(row[cols.messages], f"{split} row {i + 1}")
            solution = solution if solution is not None else chat_solution
        meta: dict[str, Any] = {"columns": dict(row)}  # every column, by its own name: what a verifier of yours reads
        if cols.level:
            try:
                meta["level"] = int(row[cols.level])
            except (TypeError, ValueError):
                raise TaskDataError(f"task.dataset.columns.level: row {i + 1} of {split} has {row[cols.level]!r}, "
                                    "not a whole number") from None
        if cols.tests:
            meta.update(test=row[cols.tests], entry_point=row[cols.entry_point])
        if system:
            meta["system"] = system
        return Problem(
            id=str(row[cols.id]) if cols.id else str(row["id"]) if row.get("id") is not None else f"{split}-{i}",
            prompt=self.cfg.prompt_template.format(prompt=prompt),
            answer="" if not cols.answer or row.get(cols.answer) is None else str(row[cols.answer]),
            solution=None if solution is None else str(solution),
            bucket=str(row[cols.bucket]) if cols.bucket else "all",
            meta=meta,
        )

    @cached_property
    def _pool_and_test(self) -> tuple[list[Problem], list[Problem]]:
        c = self.cfg
        train = self._problems(c.split)
        if c.test_path:
            return train, self._problems(c.test_split or "train", c.test_path, "test")
        if c.test_split:
            return train, self._problems(c.test_split)
        return split(train, c.pool_fraction, c.split_seed)

    def human(self) -> list[Problem]:
        return limit([p for p in self._pool_and_test[0] if p.solution], self.cfg.human_size)

    def pool(self) -> list[Problem]:
        return [Problem(p.id, p.prompt, p.answer, None, p.bucket, p.meta) for p in limit(self._pool_and_test[0], self.cfg.pool_size)]

    def test(self) -> list[Problem]:
        return limit(self._pool_and_test[1], self.cfg.test_size)

    @cached_property
    def _verifier(self) -> Verifier:
        return make_verifier(self.cfg, "task.dataset.verifier")

    def verifier(self) -> Verifier:
        return self._verifier

    @classmethod
    def has_oracle(cls) -> bool:
        return True  # with `oracle: expression` (the config checks it is set where it is needed)

    def written(self, problem: Problem) -> str:
        """A problem as the proposer writes one: its question, then `Expression: ...`."""
        cols = problem.meta["columns"]
        return f"{cols[self.cfg.columns.prompt]}\nExpression: {cols[self.cfg.columns.expression]}"

    def oracle(self, written: str, id: str) -> Problem:
        """`oracle: expression`: the question the model wrote and the answer its expression
        evaluates to, exactly; `NotAProblem` for anything else (no expression, an operation or
        token outside + - * / ( ) and whole numbers, a number the question does not state, a
        division by zero, an answer that is not a whole number)."""
        if self.cfg.oracle != "expression":
            raise NotAProblem("the dataset task computes answers only with `oracle: expression`")
        question, sep, expression = written.strip().rpartition("\nExpression:")
        question, expression = question.strip(), expression.strip().split("\n")[0]
        if not sep or not question:
            raise NotAProblem("no question and `Expression:` line")
        value = evaluate(expression)
        stated = set(re.findall(r"\d+", question))
        unstated = [n for n in re.findall(r"\d+", expression) if n not in stated]
        if unstated:
            raise NotAProblem(f"the expression uses {unstated[0]}, which the question does not state")
        if value.denominator != 1:
            raise NotAProblem(f"the answer {value} is not a whole number")
        cols = self.cfg.columns
        answer = str(value.numerator)
        digits = max(len(n) for n in re.findall(r"\d+", expression))
        return Problem(id, self.cfg.prompt_template.format(prompt=question), answer, None, str(digits),
                       {"columns": {cols.prompt: question, cols.answer or "answer": answer,
                                    cols.expression or "expression": expression}})


def evaluate(expression: str) -> Fraction:
    """An arithmetic expression of whole numbers, + - * / and parentheses, evaluated exactly.

    >>> evaluate("45 + 17"), evaluate("(7 - 2) * 3 / 5")
    (Fraction(62, 1), Fraction(3, 1))
    >>> evaluate("2 ** 10")
    Traceback (most recent call last):
    ...
    selftrain.tasks.base.NotAProblem: not + - * / of whole numbers: 2 ** 10
    """
    import ast

    def value(node) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div):
                if b == 0:
                    raise NotAProblem("a division by zero")
                return a / b
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
        raise NotAProblem(f"not + - * / of whole numbers: {expression}")

    if len(expression) > 200:
        raise NotAProblem("an expression of more than 200 characters")
    try:
        return value(ast.parse(expression, mode="eval").body)
    except SyntaxError:
        raise NotAProblem(f"not an expression: {expression[:40]!r}") from None


def _from_messages(messages: Any, where: str) -> tuple[str, str | None, str | None]:
    """(the last user turn, the assistant turn after it or None, the system turn or None).

    >>> _from_messages([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
    ...                 {"role": "assistant", "content": "4"}], "row 1")
    ('2+2?', '4', 'Be brief.')
    """
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise TaskDataError(f"task.dataset.columns.messages: {where} is not a list of {{role, content}} turns")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise TaskDataError(f"task.dataset.columns.messages: {where} has no user turn")
    last = users[-1]
    after = [m["content"] for m in messages[last + 1:] if m["role"] == "assistant"]
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    return messages[last]["content"], (after[0] if after else None), system
