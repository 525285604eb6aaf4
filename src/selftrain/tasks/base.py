"""A task owns its problems, its prompt format and its grading."""

from __future__ import annotations

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
