"""Tasks by name. Each is built from its config section; nothing is loaded at import."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selftrain.config import TaskConfig
    from selftrain.tasks.base import Task


def build_task(cfg: TaskConfig) -> Task:
    if cfg.name == "arithmetic":
        from selftrain.tasks.arithmetic import ArithmeticTask

        return ArithmeticTask(cfg.arithmetic)
    from selftrain.tasks import real

    tasks = {"gsm8k": real.GSM8KTask, "math500": real.Math500Task, "humaneval": real.HumanEvalTask, "jsonl": real.JsonlTask}
    if cfg.name in tasks:
        return tasks[cfg.name](getattr(cfg, cfg.name))
    raise ValueError(f"unknown task {cfg.name!r}")  # unreachable: the config validates the name
