"""A task owns its problems, its prompt format and its grading; where it can, an oracle that
computes the answer of a problem the model writes (`Task.oracle`)."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

from pydantic import Field

from selftrain.config import _Section
from selftrain.records import Problem
from selftrain.verifiers.base import Verifier


class TaskSettings(_Section):
    """What every task of real data is limited and judged by (its config extends this)."""

    human_size: int | None = Field(None, ge=1)
    """At most this many problems with worked solutions (None: all)."""
    pool_size: int | None = Field(None, ge=0)
    """At most this many pool problems (None: all; 0: none, for `own-problems`)."""
    test_size: int | None = Field(None, ge=1)
    """At most this many test problems (None: all)."""
    timeout: float = Field(5.0, gt=0)
    """Seconds for judging one answer (math) or running one program's tests (code); for a
    verifier of your own, one call (a batch of `verifier_batch_size`)."""
    units: list[str] | None = None
    """Math: unit words dropped after a number on both sides ("9 apples" reads 9); None:
    `selftrain.verifiers.math.UNITS`."""


class NotAProblem(ValueError):
    """What an oracle raises for a text that is not a well-formed problem of its task (or one
    out of its bounds), with the reason: `raise NotAProblem("9 digits: more than 8")`."""


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

    def written(self, problem: Problem) -> str:
        """A problem as the model writes one when it makes its own (`own-problems`): the few-shot
        examples the proposer is shown. By default its prompt."""
        return problem.prompt

    def oracle(self, written: str, id: str) -> Problem | None:
        """The problem the model wrote (`written`, as `written()` writes one), with its answer
        computed, never voted: a Problem whose prompt the solver sees and whose answer the
        verifier checks against; None, or `NotAProblem(reason)`, when the text is not a
        well-formed problem of this task within its bounds. A task without one says so."""
        raise NotImplementedError(f"the task {self.name!r} has no oracle: it cannot compute the answer of a problem "
                                  "the model writes (implement Task.oracle)")

    @classmethod
    def has_oracle(cls) -> bool:
        return cls.oracle is not Task.oracle

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
    """The verifier a task's settings name (`cfg.verifier`: math, exact, code, one registered,
    or a function of your own by import path), built from the settings (`selftrain.verifiers`)."""
    from selftrain.verifiers import build_verifier

    return build_verifier(cfg.verifier, cfg, setting)
