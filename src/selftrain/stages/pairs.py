"""The pairs stage: preference pairs, each prompt's best-scored response against its worst
(`best_vs_worst`, a pure function, and `pairs`, the stage around it), as Self-Rewarding
makes them for DPO."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from selftrain.artifacts import describe, fingerprint, write_jsonl
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
    pairs = []
    for pid, judged in judged_by_prompt(samples, scores).items():
        if len(judged) < 2:
            continue
        pair = best_against_worst(pid, judged, judged, min_chosen, max_rejected)
        if pair is not None:
            pairs.append(pair)
    return pairs


def judged_by_prompt(samples: Sequence[Sample], scores: Sequence[Score]) -> dict[str, list[tuple[Sample, float]]]:
    if len(samples) != len(scores):
        raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
    by_problem: dict[str, list[tuple[Sample, float]]] = {}
    for sample, score in zip(samples, scores):
        if score.value is not None:
            by_problem.setdefault(sample.problem_id, []).append((sample, score.value))
    return by_problem


def best_against_worst(pid: str, chosen_from: list[tuple[Sample, float]], rejected_from: list[tuple[Sample, float]],
          min_chosen: float | None, max_rejected: float | None) -> Pair | None:
    if not chosen_from or not rejected_from:
        return None
    best = max(chosen_from, key=lambda x: x[1])  # max/min keep the first of equals
    worst = min(rejected_from, key=lambda x: x[1])
    if best[1] <= worst[1] or (min_chosen is not None and best[1] < min_chosen) or \
            (max_rejected is not None and worst[1] > max_rejected):
        return None
    return Pair(pid, best[0].prompt, best[0].completion, worst[0].completion, best[1], worst[1])


def tally(samples: Sequence[Sample], scores: Sequence[Score]) -> dict[str, Any]:
    """How many prompts could not make a pair: every response unjudged, or all scored alike."""
    judged = judged_by_prompt(samples, scores)
    prompts = {s.problem_id for s in samples}
    equal = sum(len({v for _, v in got}) == 1 for got in judged.values() if len(got) >= 2)
    return {"prompts_judged": len(judged), "unjudged_prompts": len(prompts) - len(judged),
            "all_equal_share": round(equal / max(len(judged), 1), 5),
            "unreadable_share": round(sum(s.value is None for s in scores) / max(len(scores), 1), 5)}


def pairs(ctx: RunContext, group: str, scores: Artifact, min_chosen: float | None = None,
          max_rejected: float | None = None, check: Callable[[list[Pair]], dict[str, Any]] | None = None) -> Artifact:
    """For each prompt its highest-scored response against its lowest; ties and unjudged
    dropped, and those outside `min_chosen` / `max_rejected` -> RUN/<group>/pairs.jsonl (the
    artifact's `pairs`). `check(pairs)` adds counts to the stage's record (e.g. how many the
    task's grader agrees with); it decides nothing. The record also says how many prompts
    could make no pair (unjudged, or all responses scored alike)."""
    out = ctx.path(group, "pairs.jsonl")
    fp = fingerprint("pairs", scores.fp, min_chosen, max_rejected, describe(best_vs_worst))

    def work() -> dict[str, Any]:
        samples, judged = load_samples(scores["samples"]), load_scores(scores["scores"])
        made = best_vs_worst(samples, judged, min_chosen, max_rejected)
        write_jsonl(out, (p.to_json() for p in made))
        return {"pairs": len(made), **tally(samples, judged), **(check(made) if check else {})}

    ctx.stage(f"{group}/pairs", fp, work, outputs={"pairs": out})
    return Artifact.of(fp, "pairs", pairs=out)
