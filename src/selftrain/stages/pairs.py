"""The pairs stages: Self-Rewarding's preference pairs, best against worst (`best_vs_worst`,
a pure function, and `pairs`, the stage around it; `anchored` for a fixed earlier model's
worst as the rejected), the consistency of two judges' rankings (CREAM), and the update's
pairs with judge pairs mixed in (`mix`)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from selftrain.artifacts import fingerprint, read_jsonl, write_json, write_jsonl
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
    for pid, judged in _judged(samples, scores).items():
        if len(judged) < 2:
            continue
        pair = _pair(pid, judged, judged, min_chosen, max_rejected)
        if pair is not None:
            pairs.append(pair)
    return pairs


def anchored(samples: Sequence[Sample], scores: Sequence[Score], anchor_samples: Sequence[Sample],
             anchor_scores: Sequence[Score], min_chosen: float | None = None, max_rejected: float | None = None) -> list[Pair]:
    """Anchored rejection (Temporal Self-Rewarding, arXiv 2508.06026): for each prompt, its
    highest-scored response against the lowest-scored response of a fixed earlier model
    (the anchor) to the same prompt, both judged by the current model; the same rules as
    `best_vs_worst` otherwise.

    >>> s = [Sample("p", i, "q", c) for i, c in enumerate(["a", "b"])]
    >>> old = [Sample("p", 0, "q", "z")]
    >>> [(x.chosen, x.rejected) for x in anchored(s, [Score(5, ""), Score(5, "")], old, [Score(2, "")], 5, 3)]
    [('a', 'z')]
    """
    own, anchor = _judged(samples, scores), _judged(anchor_samples, anchor_scores)
    pairs = []
    for pid, judged in own.items():
        pair = _pair(pid, judged, anchor.get(pid, []), min_chosen, max_rejected)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _judged(samples: Sequence[Sample], scores: Sequence[Score]) -> dict[str, list[tuple[Sample, float]]]:
    if len(samples) != len(scores):
        raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
    by_problem: dict[str, list[tuple[Sample, float]]] = {}
    for sample, score in zip(samples, scores):
        if score.value is not None:
            by_problem.setdefault(sample.problem_id, []).append((sample, score.value))
    return by_problem


def _pair(pid: str, chosen_from: list[tuple[Sample, float]], rejected_from: list[tuple[Sample, float]],
          min_chosen: float | None, max_rejected: float | None) -> Pair | None:
    if not chosen_from or not rejected_from:
        return None
    best = max(chosen_from, key=lambda x: x[1])  # max/min keep the first of equals
    worst = min(rejected_from, key=lambda x: x[1])
    if best[1] <= worst[1] or (min_chosen is not None and best[1] < min_chosen) or \
            (max_rejected is not None and worst[1] > max_rejected):
        return None
    return Pair(pid, best[0].prompt, best[0].completion, worst[0].completion, best[1], worst[1])


def _tally(samples: Sequence[Sample], scores: Sequence[Score]) -> dict[str, Any]:
    """How many prompts could not make a pair: every response unjudged, or all scored alike."""
    judged = _judged(samples, scores)
    prompts = {s.problem_id for s in samples}
    equal = sum(len({v for _, v in got}) == 1 for got in judged.values() if len(got) >= 2)
    return {"prompts_judged": len(judged), "unjudged_prompts": len(prompts) - len(judged),
            "all_equal_share": round(equal / max(len(judged), 1), 5),
            "unreadable_share": round(sum(s.value is None for s in scores) / max(len(scores), 1), 5)}


def pairs(ctx: RunContext, group: str, scores: Artifact, min_chosen: float | None = None,
          max_rejected: float | None = None, check: Callable[[list[Pair]], dict[str, Any]] | None = None,
          anchor: tuple[Artifact, Artifact] | None = None) -> Artifact:
    """For each prompt its highest-scored response against its lowest; ties and unjudged
    dropped, and those outside `min_chosen` / `max_rejected` -> RUN/<group>/pairs.jsonl.
    With `anchor` (an anchor model's samples and their scores), the rejected is the anchor's
    lowest-scored response (`anchored`). `check(pairs)` adds counts to the stage's record
    (e.g. how many the task's grader agrees with); it decides nothing. The record also says
    how many prompts could make no pair (unjudged, or all responses scored alike)."""
    folder = scores.path.parent
    out = folder / "pairs.jsonl"
    fp = fingerprint("pairs", scores.fp, min_chosen, max_rejected, *([a.fp for a in anchor] if anchor else []))

    def work() -> dict[str, Any]:
        samples, judged = load_samples(folder / "samples.jsonl"), load_scores(scores.path)
        if anchor is None:
            made, extra = best_vs_worst(samples, judged, min_chosen, max_rejected), {}
        else:
            made = anchored(samples, judged, load_samples(anchor[0].path), load_scores(anchor[1].path), min_chosen, max_rejected)
            extra = {"anchored": len(made), "own_pairs": len(best_vs_worst(samples, judged, min_chosen, max_rejected))}
        write_jsonl(out, (p.to_json() for p in made))
        return {"pairs": len(made), **extra, **_tally(samples, judged), **(check(made) if check else {})}

    ctx.stage(f"{group}/pairs", fp, work)
    return Artifact(out, fp)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b of two scorings of the same responses; None when either scores all alike.

    >>> kendall_tau([1, 2, 3], [1, 2, 3]), kendall_tau([1, 2, 3], [3, 2, 1]), kendall_tau([1, 1], [1, 2])
    (1.0, -1.0, None)
    """
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    n_a, n_b = concordant + discordant + ties_b, concordant + discordant + ties_a
    if n_a == 0 or n_b == 0:
        return None
    return (concordant - discordant) / math.sqrt(n_a * n_b)


def consistency(ctx: RunContext, group: str, pairs_made: Artifact, scores: Artifact, previous: Artifact | None) -> Artifact:
    """CREAM's consistency rate (arXiv 2410.12735) over the prompts of `pairs_made`: Kendall's
    tau between the current judge's scores (`scores`) and the previous model's of the same
    responses (`previous`), as (tau + 1) / 2, averaged; a prompt either judge scores all alike
    counts 0.5 (no agreement to read). No previous model: 1 (plain DPO) ->
    RUN/<group>/consistency.json, read by the update (`stages.dpo`)."""
    out = ctx.path(group, "consistency.json")
    fp = fingerprint("consistency", pairs_made.fp, scores.fp, previous.fp if previous else None)

    def work() -> dict[str, Any]:
        if previous is None:
            result = {"consistency": 1.0, "prompts": 0, "note": "no previous model: hard labels"}
        else:
            wanted = {r["problem_id"] for r in read_jsonl(pairs_made.path)}
            now, before = _by_response(scores), _by_response(previous)
            rates, undefined = [], 0
            for pid in sorted(wanted):
                keys = sorted(k for k in now if k[0] == pid and k in before and now[k] is not None and before[k] is not None)
                tau = kendall_tau([now[k] for k in keys], [before[k] for k in keys])
                undefined += tau is None
                rates.append(0.5 if tau is None else (tau + 1) / 2)
            c = sum(rates) / len(rates) if rates else 1.0
            result = {"consistency": round(c, 5), "prompts": len(rates), "all_equal_prompts": undefined,
                      "soft_label_share": round(1 - c, 5)}
        write_json(out, result)
        return result

    ctx.stage(f"{group}/consistency", fp, work)
    return Artifact(out, fp)


def _by_response(scores: Artifact) -> dict[tuple[str, int], float | None]:
    return {(r["problem_id"], r["index"]): r["value"] for r in read_jsonl(scores.path)}


def mix(ctx: RunContext, group: str, answer_pairs: Artifact, meta: Artifact | None = None, share: float = 1.0,
        grounded: Artifact | None = None) -> Artifact:
    """The update's pairs: the answer pairs, the meta-judge's judge pairs (a seeded draw, at
    most `share` of all pairs) and the grounded judge pairs (EFT refresh, all) ->
    RUN/<group>/update-pairs.jsonl; the record counts each kind."""
    out = ctx.path(group, "update-pairs.jsonl")
    fp = fingerprint("mix", answer_pairs.fp, meta.fp if meta else None, share, grounded.fp if grounded else None)

    def work() -> dict[str, Any]:
        rows = read_jsonl(answer_pairs.path)
        judged = read_jsonl(meta.path) if meta else []
        extra = read_jsonl(grounded.path) if grounded else []
        cap = len(judged) if share >= 1.0 else int(share / (1 - share) * (len(rows) + len(extra)))
        kept = random.Random(ctx.seed(f"{group}/mix")).sample(judged, min(cap, len(judged)))
        write_jsonl(out, rows + kept + extra)
        total = max(len(rows) + len(kept) + len(extra), 1)
        return {"answer_pairs": len(rows), "meta_judge_pairs_made": len(judged), "meta_judge_pairs": len(kept),
                "eft_pairs": len(extra), "judge_share": round((len(kept) + len(extra)) / total, 5)}

    ctx.stage(f"{group}/mix", fp, work)
    return Artifact(out, fp)
