"""A dataset by name or path (`task.name: dataset`), loaded with `datasets.load_dataset`: a
Hugging Face hub name, a local folder (data files, or one made by `save_to_disk`), or a
single parquet, JSON-lines, JSON or CSV file; a column mapping says which column holds the
prompt, the answer, a worked solution, an id, a bucket, a level, or chat `messages`.

Rows with a worked solution are the human data; every row is in the pool; the test set is
`test_split`, or a seeded share of `split`. Columns the mapping does not name travel with
each problem (`meta["columns"]`), so a verifier of your own gets them as keyword arguments.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from selftrain.config import DatasetConfig
from selftrain.errors import TaskDataError
from selftrain.records import Problem
from selftrain.tasks.base import Task, limit, make_verifier, split
from selftrain.verifiers.base import Verifier

_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def load_split(path: str, split: str, name: str | None = None, data_files: Any = None, revision: str | None = None,
               setting: str = "task.dataset") -> list[dict[str, Any]]:
    """The rows of one split, as dicts. `path`: a `save_to_disk` folder, a data file, a folder
    of data files, or a hub name; an error that says which, and what to do, when it fails."""
    import datasets

    datasets.disable_progress_bars()
    local = Path(path)
    try:
        if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(local))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise TaskDataError(f"{setting}: {path} has no split {split!r} (it has: {', '.join(loaded)})")
                loaded = loaded[split]
        elif local.is_file():
            if local.suffix not in _BUILDERS:
                raise TaskDataError(f"{setting}: cannot read {path}: a .parquet, .jsonl, .json or .csv file, or a folder")
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

    def _rows(self, split: str) -> list[dict[str, Any]]:
        c = self.cfg
        return load_split(c.path, split, c.name, c.data_files, c.revision)

    def _problems(self, split: str) -> list[Problem]:
        rows, cols = self._rows(split), self.cfg.columns
        if not rows:
            raise TaskDataError(f"task.dataset: {self.cfg.path} split {split!r} has no rows")
        have = list(rows[0])
        named = {k: v for k, v in cols.model_dump().items() if v is not None}
        for what, column in named.items():
            if column not in rows[0]:
                raise TaskDataError(f"task.dataset.columns.{what}: {self.cfg.path} ({split}) has no column {column!r}; "
                                    f"its columns: {', '.join(have)}")
        return [self._problem(split, i, row) for i, row in enumerate(rows)]

    def _problem(self, split: str, i: int, row: dict[str, Any]) -> Problem:
        cols = self.cfg.columns
        prompt, solution, system = row.get(cols.prompt) if cols.prompt else None, row.get(cols.solution) if cols.solution else None, None
        if cols.messages:
            prompt, chat_solution, system = _from_messages(row[cols.messages], f"{split} row {i + 1}")
            solution = solution if solution is not None else chat_solution
        meta: dict[str, Any] = {"columns": {k: v for k, v in row.items() if k not in set(cols.model_dump().values())}}
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
            id=str(row[cols.id]) if cols.id else f"{split}-{i}",
            prompt=self.cfg.prompt_template.format(prompt=prompt),
            answer="" if not cols.answer or row.get(cols.answer) is None else str(row[cols.answer]),
            solution=None if solution is None else str(solution),
            bucket=str(row[cols.bucket]) if cols.bucket else "all",
            meta=meta,
        )

    @cached_property
    def _pool_and_test(self) -> tuple[list[Problem], list[Problem]]:

        train = self._problems(self.cfg.split)
        if self.cfg.test_split:
            return train, self._problems(self.cfg.test_split)
        return split(train, self.cfg.pool_fraction, self.cfg.split_seed)

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
