"""The pairs stage: Self-Rewarding's preference pairs, best against worst (`best_vs_worst`, a
pure function, and `pairs`, the stage around it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from selftrain.artifacts import fingerprint, write_jsonl
from selftrain.records import Pair, Sample, Score
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.stages.score import load_scores


def best_vs_worst(samples: Sequence[Sample], scores: Sequence[Score], min_chosen: float | None = None,
                  max_rejected: float | None = None) -> list[Pair]:
    """Self-Rewarding's preference pairs: for each prompt, its highest-scored response
    against its lowest-scored one. A prompt is dropped when the two scores tie (the paper
    discards such pairs), when fewer than two responses have a score (None: unjudged), or
    (not in the paper) with `min_chosen`, when its best response scored below that, and with
    `max_rejected`, when its worst scored above that.
    The first sample wins a tie within the highest (or lowest) score, so pairs are stable.

    >>> s = [Sample("p", i, "q", c) for i, c in enumerate(["a", "b", "c"])]
    >>> [(x.chosen, x.rejected) for x in best_vs_worst(s, [Score(3, ""), Score(5, ""), Score(3, "")])]
    [('b', 'a')]
    >>> best_vs_worst(s, [Score(4, ""), Score(4, ""), Score(None, "")])
    []
    >>> best_vs_worst(s, [Score(3, ""), Score(4, ""), Score(1, "")], min_chosen=5)
    []
    >>> best_vs_worst(s, [Score(5, ""), Score(4, ""), Score(5, "")], max_rejected=3)
    []
    """
    if len(samples) != len(scores):
        raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
    by_problem: dict[str, list[tuple[Sample, float]]] = {}
    for sample, score in zip(samples, scores):
        if score.value is not None:
            by_problem.setdefault(sample.problem_id, []).append((sample, score.value))
    pairs = []
    for pid, judged in by_problem.items():
        if len(judged) < 2:
            continue
        best = max(judged, key=lambda x: x[1])  # max/min keep the first of equals
        worst = min(judged, key=lambda x: x[1])
        if best[1] == worst[1] or (min_chosen is not None and best[1] < min_chosen) or \
                (max_rejected is not None and worst[1] > max_rejected):
            continue
        pairs.append(Pair(pid, best[0].prompt, best[0].completion, worst[0].completion, best[1], worst[1]))
    return pairs


def pairs(ctx: RunContext, group: str, scores: Artifact, min_chosen: float | None = None,
          max_rejected: float | None = None, check: Callable[[list[Pair]], dict[str, Any]] | None = None) -> Artifact:
    """For each prompt its highest-scored response against its lowest; ties and unjudged
    dropped, and those outside `min_chosen` / `max_rejected` -> RUN/<group>/pairs.jsonl.
    `check(pairs)` adds counts to the stage's record (e.g. how many the task's grader agrees
    with); it decides nothing."""
    folder = scores.path.parent
    out = folder / "pairs.jsonl"
    fp = fingerprint("pairs", scores.fp, min_chosen, max_rejected)

    def work() -> dict[str, Any]:
        made = best_vs_worst(load_samples(folder / "samples.jsonl"), load_scores(scores.path), min_chosen, max_rejected)
        write_jsonl(out, (p.to_json() for p in made))
        return {"pairs": len(made), **(check(made) if check else {})}

    ctx.stage(f"{group}/pairs", fp, work)
    return Artifact(out, fp)
