"""The task registry: built-in tasks by name, a task of your own by registration, by an
installed package's entry point (group `selftrain.tasks`) or by import path. A task is a
`Task` subclass with a `name` and the config section it is built from (`config`); nothing
is loaded at import."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from selftrain.errors import ConfigError

if TYPE_CHECKING:
    from selftrain.config import TaskConfig
    from selftrain.data.decontamination import EvalItem
    from selftrain.tasks.base import Task

BUILTIN = {
    "arithmetic": "selftrain.tasks.arithmetic:ArithmeticTask",
    "gsm8k": "selftrain.tasks.real:GSM8KTask",
    "math500": "selftrain.tasks.real:Math500Task",
    "humaneval": "selftrain.tasks.real:HumanEvalTask",
    "jsonl": "selftrain.tasks.real:JsonlTask",
    "dataset": "selftrain.tasks.dataset:DatasetTask",
}
ENTRY_POINTS = "selftrain.tasks"

_REGISTRY: dict[str, type] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Make a task class available by its `name` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def unregister_task(name: str) -> None:
    _REGISTRY.pop(name, None)


def _installed() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def task_class(name: str) -> type[Task]:
    """The task class `name` stands for (built-in, registered, an entry point, an import path)."""
    from selftrain.plugins import is_import_path, load_object
    from selftrain.tasks.base import Task

    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    installed = _installed()
    if name in installed:
        cls = installed[name].load()
    elif is_import_path(name):
        cls = load_object(name, "task.name")
    else:
        known = sorted(set(BUILTIN) | set(_REGISTRY) | set(installed))
        raise ConfigError(f"task.name: unknown task {name!r} (known: {', '.join(known)}; or a task of your own by "
                          "import path: `my_tasks:MyTask`, `path/to/tasks.py:MyTask`)")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task.name: {name} is not a selftrain.tasks.base.Task subclass")
    return cls


def task_settings(cfg: TaskConfig):
    """The settings the task is built from: a built-in's section, or a task of your own's
    `settings` checked against its `config` (errors name `task.settings.<field>`)."""
    from pydantic import ValidationError

    from selftrain.config import BUILTIN_TASKS, format_validation_error

    if cfg.name in BUILTIN_TASKS:
        return cfg.section
    cls = task_class(cfg.name)
    if cls.config is None:
        if cfg.settings:
            raise ConfigError(f"task.settings: the task {cfg.name} takes no settings (it declares no `config`)")
        return None
    try:
        return cls.config.model_validate(cfg.settings)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"task.settings of {cfg.name}")) from None


def build_task(cfg: TaskConfig) -> Task:
    """The task `cfg.name` names, built from its settings."""
    return task_class(cfg.name)(task_settings(cfg))


def eval_set(name: str, data: str | None = None) -> list[EvalItem]:
    """A public evaluation set's items, for decontamination (`decontaminate.against`): all of
    GSM8K's test split, MATH-500 or HumanEval, as their texts. `data`: a folder with local
    copies (`gsm8k/test.jsonl`, `math500/test.jsonl`); None: the hub (HumanEval: its package)."""
    from pathlib import Path

    from selftrain.config import GSM8KConfig, Math500Config, TaskConfig
    from selftrain.data.decontamination import EvalItem

    local = {"gsm8k": {"gsm8k": GSM8KConfig(test_path=str(Path(data) / "gsm8k" / "test.jsonl"))},
             "math500": {"math500": Math500Config(path=str(Path(data) / "math500" / "test.jsonl"))}}
    if name not in ("gsm8k", "math500", "humaneval"):
        raise ConfigError(f"decontaminate.against: unknown evaluation set {name!r} (gsm8k, math500, humaneval)")
    task = build_task(TaskConfig(name=name, **(local.get(name, {}) if data else {})))
    return [EvalItem(name, pid, text) for pid, text in task.eval_texts()]
