"""The pairs stage: Self-Rewarding's preference pairs, best against worst."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selftrain.artifacts import fingerprint, write_jsonl
from selftrain.records import Pair
from selftrain.selection import best_vs_worst
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.stages.score import load_scores


def pairs(ctx: RunContext, group: str, scores: Artifact, min_chosen: float | None = None,
          check: Callable[[list[Pair]], dict[str, Any]] | None = None, max_rejected: float | None = None) -> Artifact:
    """For each prompt its highest-scored response against its lowest; ties and unjudged
    dropped, and those outside `min_chosen` / `max_rejected` -> RUN/<group>/pairs.jsonl. `check(pairs)` adds counts to the stage's record
    (e.g. how many the task's grader agrees with)."""
    folder = scores.path.parent
    out = folder / "pairs.jsonl"
    fp = fingerprint("pairs", scores.fp, min_chosen, *([max_rejected] if max_rejected is not None else []))

    def work() -> dict[str, Any]:
        made = best_vs_worst(load_samples(folder / "samples.jsonl"), load_scores(scores.path), min_chosen, max_rejected)
        write_jsonl(out, (p.to_json() for p in made))
        return {"pairs": len(made), **(check(made) if check else {})}

    ctx.stage(f"{group}/pairs", fp, work)
    return Artifact(out, fp)
