"""The score stage: one verdict per sample from a verifier (or the task's grader)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selftrain.artifacts import fingerprint, read_jsonl, write_jsonl
from selftrain.config import RayConfig
from selftrain.records import Problem, Sample, Score
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.verifiers.base import Verifier


def score_samples(verifier: Verifier, problems: Sequence[Problem], samples: Sequence[Sample], out: Path,
                  ray: RayConfig | None = None) -> list[Score]:
    """One Score per sample into `out` (JSONL), aligned with the samples; in batches of Ray
    tasks when `ray` is given (not for a verifier that judges a problem's samples together:
    `whole_groups`)."""
    by_id = {p.id: p for p in problems}
    matched, completions = [by_id[s.problem_id] for s in samples], [s.completion for s in samples]
    if ray is not None and not getattr(verifier, "whole_groups", False):
        from selftrain.cluster import verify

        scores = verify(ray, verifier, matched, completions)
    else:
        scores = verifier(matched, completions)
    write_jsonl(out, ({"problem_id": s.problem_id, "index": s.index, **sc.to_json()} for s, sc in zip(samples, scores)))
    return scores


def load_scores(path: Path) -> list[Score]:
    return [Score(value=r["value"], reason=r["reason"], answer=r.get("answer")) for r in read_jsonl(path)]


def score(ctx: RunContext, group: str, samples: Artifact, problems: Sequence[Problem], verifier: Verifier,
          verifier_fp: str | None = None) -> Artifact:
    """The verifier's verdict on every sample -> RUN/<group>/scores.jsonl. The fingerprint
    holds every setting of the task (`verifier_fp` for a verifier that is not the task's),
    so a changed verifier setting redoes this stage and what follows it."""
    out = samples.path.with_name("scores.jsonl")
    fp = fingerprint("score", samples.fp, type(verifier).__name__, verifier_fp or ctx.grading_fp)

    def work() -> dict[str, Any]:
        rows = load_samples(samples.path)
        if ctx.cfg.ray.address:
            ctx.release_sampler()  # the sampler workers hold cluster resources the verifier's tasks need
        scores = score_samples(verifier, problems, rows, out, ctx.cfg.ray if ctx.cfg.ray.address else None)
        return {
            "samples": len(rows),
            "correct": sum(sc.accepted for sc in scores),
            "unjudged": sum(sc.value is None for sc in scores),
            "problems_solved": len({s.problem_id for s, sc in zip(rows, scores) if sc.accepted}),
        }

    ctx.stage(f"{group}/score", fp, work)
    return Artifact(out, fp)
