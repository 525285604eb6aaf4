"""The curriculum stages (Lee et al. 2025): which pool problems an iteration samples, and
whether the next level joins after its E-step. The schedule is a stage record, so a
resumed run takes up the same schedule and the report can draw it."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from selftrain.artifacts import describe, fingerprint
from selftrain.config import _Section
from selftrain.errors import ConfigError
from selftrain.records import Problem, Sample, Score
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.stages.score import load_scores


class CurriculumConfig(_Section):
    """Easy to hard (Lee et al. 2025): the pool starts at the levels the human data covers;
    when the E-step's solve rate at the hardest level in it reaches `threshold`, the next
    level's problems join. Levels come from the task (`Task.level`: digits for arithmetic,
    `level` for MATH, `columns.level` for a dataset task)."""

    threshold: float = Field(0.8, gt=0, le=1)
    """Share of the hardest level's samples the E-step accepts that adds the next level."""
    start: int | None = None
    """The hardest level at the start; None: the hardest level of the human data."""
    max_level: int | None = None
    """No level past this joins; None: up to the pool's hardest."""
    mastered_share: float = Field(1.0, gt=0, le=1)
    """Share of each easier (mastered) level's pool problems kept in the E-step; the
    hardest level keeps all its problems."""
    control: bool = False
    """Also run ReST-EM without the curriculum (the whole pool every iteration) from the
    same SFT model, for the report's comparison."""


def levels(ctx: RunContext, problems: Sequence[Problem], what: str) -> dict[str, int]:
    """Each problem's level (`Task.level`), by id; a clear error when the task has none."""
    out = {}
    for p in problems:
        level = ctx.task.level(p)
        if level is None:
            raise ConfigError(f"rest_em.curriculum: {what} problem {p.id!r} has no level; the task "
                              f"{ctx.task.name!r} must give one (a dataset task: `columns.level`)")
        out[p.id] = level
    return out


def first_level(ctx: RunContext, human: Sequence[Problem], cfg: CurriculumConfig) -> int:
    """The hardest level at the start: `cfg.start`, else the human data's hardest."""
    if cfg.start is not None:
        return cfg.start
    if not human:
        raise ConfigError("rest_em.curriculum: the task has no human data to start from; set curriculum.start")
    return max(levels(ctx, human, "human").values())


def curriculum_pool(ctx: RunContext, group: str, pool: Sequence[Problem], hardest: int,
                    cfg: CurriculumConfig) -> list[Problem]:
    """The pool problems of levels up to `hardest`: all of the hardest level, a seeded
    `mastered_share` of each easier one (drawn afresh each iteration)."""
    level_of = levels(ctx, pool, "pool")
    rng = random.Random(ctx.seed("curriculum", group))
    by_level: dict[int, list[Problem]] = defaultdict(list)
    for p in pool:
        if level_of[p.id] <= hardest:
            by_level[level_of[p.id]].append(p)
    out: list[Problem] = []
    for level in sorted(by_level):
        problems = by_level[level]
        if level < hardest and cfg.mastered_share < 1:
            problems = rng.sample(problems, max(1, round(cfg.mastered_share * len(problems))))
        out += problems
    return out


def solve_rates(level_of: dict[str, int], samples: Sequence[Sample], scores: Sequence[Score]) -> dict[int, float]:
    """The share of samples accepted, per level.

    >>> solve_rates({"a": 1, "b": 2}, [Sample("a", 0, "", ""), Sample("b", 0, "", ""), Sample("b", 1, "", "")],
    ...             [Score(1.0, ""), Score(0.0, ""), Score(1.0, "")])
    {1: 1.0, 2: 0.5}
    """
    accepted: dict[int, int] = defaultdict(int)
    seen: dict[int, int] = defaultdict(int)
    for sample, score in zip(samples, scores, strict=True):
        level = level_of[sample.problem_id]
        seen[level] += 1
        accepted[level] += score.accepted
    return {level: accepted[level] / seen[level] for level in sorted(seen)}


def next_level(ctx: RunContext, group: str, scores: Artifact, problems: Sequence[Problem], hardest: int,
               cfg: CurriculumConfig, pool: Sequence[Problem]) -> int:
    """The E-step's solve rate (accepted samples / samples) per level -> RUN/<group>'s
    `curriculum` record; the hardest level after this iteration: one more when its rate
    reached `cfg.threshold` and the pool has that level (and `cfg.max_level` allows it)."""
    fp = fingerprint("curriculum", scores.fp, cfg.model_dump(exclude={"control"}), hardest, describe(solve_rates))

    def work() -> dict[str, Any]:
        rates = solve_rates(levels(ctx, problems, "pool"), load_samples(scores["samples"]), load_scores(scores["scores"]))
        allowed = hardest + 1 in levels(ctx, pool, "pool").values() and (cfg.max_level is None or hardest + 1 <= cfg.max_level)
        step = allowed and rates.get(hardest, 0.0) >= cfg.threshold
        return {"hardest": hardest, "solve_rate": {str(k): round(v, 4) for k, v in rates.items()},
                "problems": len(problems), "next": hardest + 1 if step else hardest}

    return int(ctx.stage(f"{group}/curriculum", fp, work).info["next"])
