"""selftrain: a language model improves itself on data it generates.

    import selftrain

    run = selftrain.run("configs/arithmetic-rest-em.yaml", out="runs/demo", seed=1)
    run.metrics["rows"][-1]["test"]["accuracy"], run.model, run.data, run.report

The config classes are importable from here too (`selftrain.RestEMConfig(...)`), and so is
what a task, verifier or method of your own needs (docs/python-api.md, docs/your-task.md).
Importing the package does no work: no model is built, nothing is read or written, and the
heavy libraries load only when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "run": "selftrain.api", "config": "selftrain.api", "load_run": "selftrain.api", "Run": "selftrain.api",
    "RestEMConfig": "selftrain.methods.rest_em", "SelfRewardingConfig": "selftrain.methods.self_rewarding",
    "SelfInstructConfig": "selftrain.methods.self_instruct", "GroundedQAConfig": "selftrain.methods.grounded_qa",
    "DistillConfig": "selftrain.methods.distill",
    "TaskConfig": "selftrain.config", "ModelConfig": "selftrain.config", "SamplerConfig": "selftrain.config",
    "TeacherConfig": "selftrain.config", "TrainConfig": "selftrain.config", "DPOConfig": "selftrain.config",
    "Generation": "selftrain.config", "Sampling": "selftrain.config", "EvalConfig": "selftrain.config",
    "TrackingConfig": "selftrain.config", "DatasetConfig": "selftrain.tasks.dataset", "ArithmeticConfig": "selftrain.tasks.arithmetic",
    "TinyModelConfig": "selftrain.config",
    "Task": "selftrain.tasks.base", "register_task": "selftrain.tasks", "Method": "selftrain.methods",
    "register": "selftrain.methods", "Problem": "selftrain.records", "Score": "selftrain.records",
    "SamplingParams": "selftrain.records", "SelftrainError": "selftrain.errors", "ConfigError": "selftrain.errors",
}

__all__ = ["__version__", *_PUBLIC]


RENAMED = {"open_run": "load_run"}
"""Public names that changed: the old one says the new one."""


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in RENAMED:
        raise AttributeError(f"selftrain.{name} is now selftrain.{RENAMED[name]}")
    raise AttributeError(f"module 'selftrain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
