"""A task owns its problems, its prompt format and its grading."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

from selftrain.records import Problem
from selftrain.verifiers.base import Verifier


class Task(ABC):
    """Three splits and a verifier.

    - `human()`: problems with worked solutions (`Problem.solution`), the "human data";
    - `pool()`: problems with final answers only, the prompts that self-training samples on;
    - `test()`: held-out problems, each with a difficulty `bucket`.
    """

    name: str = "task"
    config: type | None = None
    """The config section the task is built from (`Task(settings)`); a task of your own reads
    it from `task.settings`. None: the task takes no settings."""

    def __init__(self, cfg=None):
        self.cfg = cfg

    @abstractmethod
    def human(self) -> list[Problem]: ...

    @abstractmethod
    def pool(self) -> list[Problem]: ...

    @abstractmethod
    def test(self) -> list[Problem]: ...

    @abstractmethod
    def verifier(self) -> Verifier:
        """What decides which samples are kept for training."""

    def level(self, problem: Problem) -> int | None:
        """A problem's difficulty level, for a curriculum (`rest_em.curriculum`): its
        `meta["level"]` when the task sets one, else None (the task has no levels)."""
        level = problem.meta.get("level")
        return None if level is None else int(level)

    def eval_texts(self) -> list[tuple[str, str]]:
        """(id, text) of the items other runs must not train on when they decontaminate
        against this task (`decontaminate.against`): its test prompts by default."""
        return [(p.id, p.prompt) for p in self.test()]

    def grader(self) -> Verifier:
        """What evaluation counts as correct; the verifier unless a task says otherwise.
        Tasks whose verifier holds worker processes return the same instance from both."""
        return self.verifier()


# ---------------------------------------------------------------- helpers every task may use


def units(cfg) -> dict:
    """The math verifier's unit words: the task's `units` if set, else its default list."""
    return {} if cfg.units is None else {"units": tuple(cfg.units)}


def split(problems: list[Problem], pool_fraction: float, seed: int) -> tuple[list[Problem], list[Problem]]:
    """A seeded division into (a `pool_fraction` share, the rest), each in the original order."""
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * pool_fraction)
    return [problems[i] for i in sorted(order[:cut])], [problems[i] for i in sorted(order[cut:])]


def limit(problems: list[Problem], n: int | None) -> list[Problem]:
    """The first `n` problems (all of them for None)."""
    return problems if n is None else problems[:n]


def make_verifier(cfg, setting: str) -> Verifier:
    """The verifier a JSON-lines or dataset task names: `math`, `exact`, `code`, or a function
    of your own by import path (`selftrain.verifiers.function`)."""
    if cfg.verifier == "math":
        from selftrain.verifiers.math import MathVerifier

        return MathVerifier(timeout=cfg.timeout, **units(cfg))
    if cfg.verifier == "code":
        from selftrain.verifiers.code import CodeVerifier
        from selftrain.verifiers.sandbox import Limits

        return CodeVerifier(limits=Limits(wall_seconds=cfg.timeout, cpu_seconds=max(1, int(cfg.timeout))))
    if cfg.verifier == "exact":
        from selftrain.verifiers.exact import ExactAnswerVerifier, text_answer

        return ExactAnswerVerifier(marker=cfg.marker, normalize=text_answer)
    from selftrain.verifiers.function import FunctionVerifier

    return FunctionVerifier(cfg.verifier, threshold=cfg.threshold, timeout=cfg.timeout, setting=setting)
