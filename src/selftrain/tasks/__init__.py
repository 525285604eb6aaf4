"""The task registry (`TASKS`, `selftrain.plugins.Registry`): built-in tasks by name, a task of
your own by registration, by an installed package's entry point (group `selftrain.tasks`)
or by import path. A task is a `Task` subclass with a `name` and the config class of its
settings (`config`), declared beside its code; nothing is loaded at import."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from selftrain.errors import ConfigError
from selftrain.plugins import Registry

if TYPE_CHECKING:
    from selftrain.config import TaskConfig
    from selftrain.data.decontamination import EvalItem
    from selftrain.tasks.base import Task


def _task_class(obj: Any, name: str) -> type[Task]:
    from selftrain.tasks.base import Task

    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise ConfigError(f"task.name: {name} is not a selftrain.tasks.base.Task subclass")
    return obj


TASKS: Registry[type[Task]] = Registry("task", {
    "arithmetic": "selftrain.tasks.arithmetic:ArithmeticTask",
    "gsm8k": "selftrain.tasks.real:GSM8KTask",
    "math500": "selftrain.tasks.real:Math500Task",
    "humaneval": "selftrain.tasks.real:HumanEvalTask",
    "dataset": "selftrain.tasks.dataset:DatasetTask",
    "deduction": "selftrain.tasks.deduction:DeductionTask",
}, setting="task.name", check=_task_class, aliases={"jsonl": "dataset"})
"""`jsonl` is the `dataset` task: JSON lines are one of the files it reads."""


def register_task(cls: type[Task]) -> type[Task]:
    """Make a task class available by its `name` (usable as a decorator)."""
    return TASKS.register(cls.name, cls)


def unregister_task(name: str) -> None:
    TASKS.unregister(name)


def task_class(name: str) -> type[Task]:
    """The task class `name` stands for (built-in, registered, an entry point, an import path)."""
    return TASKS.get(name)


def task_settings(cfg: TaskConfig):
    """The settings the task is built from: `cfg.settings` checked against the task's `config`
    (errors name `task.<name>.<field>`); None for a task that takes none."""
    from pydantic import ValidationError

    from selftrain.errors import format_validation_error

    cls = task_class(cfg.name)
    where = f"task.{cfg.name}" if cfg.name in TASKS.names() else f"task.settings of {cfg.name}"
    if cls.config is None:
        if cfg.settings:
            raise ConfigError(f"{where}: the task {cfg.name} takes no settings (it declares no `config`)")
        return None
    try:
        return cls.config.model_validate(cfg.settings)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where, cls.config)) from None


def build_task(cfg: TaskConfig) -> Task:
    """The task `cfg.name` names, built from its settings."""
    return task_class(cfg.name)(task_settings(cfg))


def eval_set(name: str, data: str | None = None) -> list[EvalItem]:
    """A public evaluation set's items, for decontamination (`decontaminate.against`): all of
    GSM8K's test split, MATH-500 or HumanEval, as their texts. `data`: a folder with local
    copies (`gsm8k/test.jsonl`, `math500/test.jsonl`); None: the hub (HumanEval: its package)."""
    from pathlib import Path

    from selftrain.config import TaskConfig
    from selftrain.data.decontamination import EvalItem

    local = {"gsm8k": {"test_path": str(Path(data) / "gsm8k" / "test.jsonl")},
             "math500": {"path": str(Path(data) / "math500" / "test.jsonl")}}
    if name not in ("gsm8k", "math500", "humaneval"):
        raise ConfigError(f"decontaminate.against: unknown evaluation set {name!r} (gsm8k, math500, humaneval)")
    task = build_task(TaskConfig(name=name, settings=local.get(name, {}) if data else {}))
    return [EvalItem(name, pid, text) for pid, text in task.eval_texts()]


def oracle_batches(name: str, settings: dict) -> Callable[[list[tuple[str, str]]], list[dict]]:
    """The oracle of task `name` over batches of (written, id), for a worker process
    (`selftrain.plugins.Guarded`): per item the Problem's JSON, or {"not": reason} for a text
    that is not a problem of the task, or {"garbage": what} for a value that is no Problem.
    Anything else the oracle raises fails the batch (the worker halves it to the item)."""
    from selftrain.config import TaskConfig
    from selftrain.records import Problem
    from selftrain.tasks.base import NotAProblem

    task = build_task(TaskConfig(name=name, settings=settings))

    def batch(items: list[tuple[str, str]]) -> list[dict]:
        out: list[dict] = []
        for written, pid in items:
            try:
                found = task.oracle(written, pid)
            except NotAProblem as err:
                out.append({"not": str(err)})
                continue
            if found is None:
                out.append({"not": "not a well-formed problem of the task"})
            elif not isinstance(found, Problem) or not isinstance(found.answer, str) or not isinstance(found.prompt, str):
                out.append({"garbage": f"{found!r:.80}"})
            else:
                out.append({"problem": found.to_json()})
        return out

    return batch
