"""Stages that only Self-Rewarding's remedies and measurements use (the loop's shared
vocabulary is the rest of `selftrain.stages`): anchored pairs (Temporal Self-Rewarding), the
consistency of two judges' rankings (CREAM), judge pairs (a meta-judge's, an EFT refresh's)
and their mix into the update, and the judge's own measurements (pairwise comparison,
accuracy on held-out pairs)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from selftrain.artifacts import RunDir, describe, fingerprint, read_json, read_jsonl, write_json, write_jsonl
from selftrain.config import SamplerConfig
from selftrain.records import Pair, Problem, Sample, SamplingParams, Score
from selftrain.samplers.base import Sampler
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.stages.pairs import best_against_worst, best_vs_worst, judged_by_prompt, tally
from selftrain.stages.score import load_scores
from selftrain.verifiers.llm_judge import JudgeTemplate, LLMJudge


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
    own, anchor = judged_by_prompt(samples, scores), judged_by_prompt(anchor_samples, anchor_scores)
    pairs = []
    for pid, judged in own.items():
        pair = best_against_worst(pid, judged, anchor.get(pid, []), min_chosen, max_rejected)
        if pair is not None:
            pairs.append(pair)
    return pairs


def anchored_pairs(ctx: RunContext, group: str, scores: Artifact, anchor: Artifact, min_chosen: float | None = None,
                   max_rejected: float | None = None, check: Callable[[list[Pair]], dict[str, Any]] | None = None) -> Artifact:
    """`stages.pairs` with the rejected taken from an anchor model's responses (`anchor`: their
    scores by the same judge, beside them) -> RUN/<group>/pairs.jsonl; the record also counts
    the pairs the responses alone would have made (`own_pairs`)."""
    out = ctx.path(group, "pairs.jsonl")
    fp = fingerprint("pairs", scores.fp, min_chosen, max_rejected, anchor.fp, describe(anchored))

    def work() -> dict[str, Any]:
        samples, judged = load_samples(scores["samples"]), load_scores(scores["scores"])
        made = anchored(samples, judged, load_samples(anchor["samples"]), load_scores(anchor["scores"]), min_chosen,
                        max_rejected)
        write_jsonl(out, (p.to_json() for p in made))
        return {"pairs": len(made), "anchored": len(made), "own_pairs": len(best_vs_worst(samples, judged, min_chosen, max_rejected)),
                **tally(samples, judged), **(check(made) if check else {})}

    ctx.stage(f"{group}/pairs", fp, work, outputs={"pairs": out})
    return Artifact.of(fp, "pairs", pairs=out)


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


def consistency_of(ctx: RunContext, group: str, pairs_made: Artifact, scores: Artifact, previous: Artifact | None) -> Artifact:
    """CREAM's consistency rate (arXiv 2410.12735) over the prompts of `pairs_made`: Kendall's
    tau between the current judge's scores (`scores`) and the previous model's of the same
    responses (`previous`), as (tau + 1) / 2, averaged; a prompt either judge scores all alike
    counts 0.5 (no agreement to read). No previous model: 1 (plain DPO) ->
    RUN/<group>/consistency.json, read by the update (`stages.dpo`)."""
    out = ctx.path(group, "consistency.json")
    fp = fingerprint("consistency", pairs_made.fp, scores.fp, previous.fp if previous else None, describe(kendall_tau))

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

    ctx.stage(f"{group}/consistency", fp, work, outputs={"consistency": out})
    return Artifact.of(fp, "consistency", consistency=out)


def _by_response(scores: Artifact) -> dict[tuple[str, int], float | None]:
    return {(r["problem_id"], r["index"]): r["value"] for r in read_jsonl(scores["scores"])}


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

    ctx.stage(f"{group}/mix", fp, work, outputs={"pairs": out})
    return Artifact.of(fp, "pairs", pairs=out)


def pairwise(ctx: RunContext, group: str, model: Artifact, problems: Sequence[Problem], first: Artifact, second: Artifact,
             params: SamplingParams, sampler: SamplerConfig | None = None) -> Artifact:
    """`model` compares two samples of each problem in both orders (`LLMJudge.pairwise`: a
    win only when both orders agree) -> RUN/<group>/pairwise.jsonl; the record counts the
    wins of `first`, its losses, and the undecided."""
    out = ctx.path(group, "pairwise.jsonl")
    seed = ctx.seed(f"{group}/pairwise")
    fp = fingerprint("pairwise", model.fp, first.fp, second.fp, params, seed, (sampler or ctx.policy).model_dump())

    def work() -> dict[str, Any]:
        a, b = load_samples(first["samples"]), load_samples(second["samples"])
        by_id = {p.id: p for p in problems}
        wins = LLMJudge(ctx.sampler(model, sampler), "additive-5", 1, params, seed).pairwise(
            [by_id[s.problem_id] for s in a], [s.completion for s in a], [s.completion for s in b])
        write_jsonl(out, ({"problem_id": s.problem_id, "winner": {0: "first", 1: "second", None: None}[w]} for s, w in zip(a, wins)))
        return {"wins": wins.count(0), "losses": wins.count(1), "undecided": wins.count(None)}

    ctx.stage(f"{group}/pairwise", fp, work, outputs={"pairwise": out})
    return Artifact.of(fp, "pairwise", pairwise=out)


def judge_accuracy(judge: LLMJudge, pairs: list[dict[str, Any]]) -> dict[str, float]:
    """How often the judge scores the better response of each held-out pair higher (ties
    and unreadable judgements count as misses)."""
    problems = [Problem(p["id"], p["prompt"], "") for p in pairs for _ in (0, 1)]
    responses = [r for p in pairs for r in (p["better"], p["worse"])]
    scores = judge(problems, responses)
    right = ties = unread = 0
    for i in range(len(pairs)):
        hi, lo = scores[2 * i].value, scores[2 * i + 1].value
        if hi is None or lo is None:
            unread += 1
        elif hi > lo:
            right += 1
        elif hi == lo:
            ties += 1
    n = max(len(pairs), 1)
    return {"judge_accuracy": round(right / n, 5), "judge_ties": round(ties / n, 5), "judge_unreadable": round(unread / n, 5)}


def evaluate_judge(ctx: RunContext, group: str, model: Artifact, pairs: Artifact, template: JudgeTemplate,
                   params: SamplingParams) -> Artifact:
    """The model's pairwise accuracy as a judge on fixed held-out pairs -> RUN/<group>/judge_eval.json."""
    out = ctx.path(group, "judge_eval.json")
    fp = fingerprint("judge-eval", model.fp, pairs.fp, template.name, params)

    def work() -> dict[str, Any]:
        judged = judge_accuracy(template.judge(ctx.sampler(model), samples=1, params=params), read_jsonl(pairs.path))
        write_json(out, judged)
        return judged

    ctx.stage(f"{group}/judge-eval", fp, work, outputs={"judge_eval": out})
    return Artifact.of(fp, "judge_eval", judge_eval=out)


def judge_evaluation(run: RunDir, group: str) -> dict[str, Any] | None:
    """The judge's accuracy on the held-out pairs measured in `group` (None: not measured):
    what reports read."""
    path = run.output(f"{group}/judge-eval", "judge_eval") or run.path(group, "judge_eval.json")
    return read_json(path) if path.is_file() else None


def judge_pairs(ctx: RunContext, group: str, name: str, model: Artifact,
                make: Callable[[Sampler], tuple[list[Pair], dict[str, Any]]], *inputs: Artifact | Any,
                sampler: SamplerConfig | None = None) -> Artifact:
    """Judge-preference pairs (prompt: what the judge is asked; chosen and rejected: two
    judgements) that `make(model's sampler)` builds from earlier stages' files, a
    meta-judge's or an EFT refresh's -> RUN/<group>/<name>.jsonl; `make` returns the pairs
    and counts for the record. The fingerprint holds the model's, `make`'s (its source)
    and the `inputs`' (artifacts, settings)."""
    out = ctx.path(group, f"{name}.jsonl")
    parts = [i.fp if isinstance(i, Artifact) else i for i in inputs]
    fp = fingerprint("judge-pairs", model.fp, describe(make), parts, (sampler or ctx.policy).model_dump())

    def work() -> dict[str, Any]:
        made, counts = make(ctx.sampler(model, sampler))
        write_jsonl(out, (p.to_json() for p in made))
        return {"model": ctx.relative(model.path), "pairs": len(made), **counts}

    ctx.stage(f"{group}/{name}", fp, work, outputs={"pairs": out})
    return Artifact.of(fp, "pairs", pairs=out)
