"""The judge stages: a model judges responses (LLM-as-a-judge), and its pairwise accuracy as
a judge is measured on fixed held-out pairs, as Self-Rewarding does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from selftrain.artifacts import describe, fingerprint, read_jsonl, write_json, write_jsonl
from selftrain.config import SamplerConfig
from selftrain.records import Pair, Problem, SamplingParams
from selftrain.samplers.base import Failed, Sampler
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.verifiers.judge import TEMPLATES, JudgeTemplate, LLMJudge, mean_of_readable


def judge(ctx: RunContext, group: str, model: Artifact, problems: Sequence[Problem], samples: Artifact,
          template: JudgeTemplate | str, samples_per_response: int, params: SamplingParams, finish: bool = False,
          sampler: SamplerConfig | None = None, name: str = "judge") -> Artifact:
    """`model` judges every sample `samples_per_response` times with `template`; the mean of
    the readable scores is its score -> judgements.jsonl and scores.jsonl beside the samples
    (`<name>-judgements.jsonl`, `<name>-scores.jsonl` for a second judge of the same
    samples). A judgement a remote judge failed reads as no score, and is counted."""
    folder = samples.path.parent
    prefix = "" if name == "judge" else f"{name}-"
    out = folder / f"{prefix}scores.jsonl"
    asks = TEMPLATES[template] if isinstance(template, str) else template
    seed = ctx.seed(f"{group}/{name}")
    llm = asks.judge(None, samples_per_response, params, seed, finish=finish)
    fp = fingerprint("judge", samples.fp, model.fp, describe(llm), (sampler or ctx.policy).model_dump())

    def work() -> dict[str, Any]:
        rows = load_samples(samples.path)
        by_id = {p.id: p for p in problems}
        llm.sampler = ctx.sampler(model, sampler)
        outputs = llm.judgements([by_id[s.problem_id] for s in rows], [s.completion for s in rows])
        scores = llm.scores(outputs)
        write_jsonl(folder / f"{prefix}judgements.jsonl", ({"problem_id": s.problem_id, "index": s.index, "outputs": [
            o if isinstance(o, str) else {"failed": o.error, "attempts": o.attempts} for o in outs]}
            for s, outs in zip(rows, outputs)))
        write_jsonl(out, ({"problem_id": s.problem_id, "index": s.index, **sc.to_json()} for s, sc in zip(rows, scores)))
        mean = mean_of_readable(s.value for s in scores)
        return {"model": ctx.relative(model.path), "judged": len(scores), "unreadable": sum(s.value is None for s in scores),
                "failed": sum(isinstance(o, Failed) for outs in outputs for o in outs),
                "mean": None if mean is None else round(mean, 4), "finished": llm.finished}

    ctx.stage(f"{group}/{name}" if group else name, fp, work)
    return Artifact(out, fp)


def pairwise(ctx: RunContext, group: str, model: Artifact, problems: Sequence[Problem], first: Artifact, second: Artifact,
             params: SamplingParams, sampler: SamplerConfig | None = None) -> Artifact:
    """`model` compares two samples of each problem in both orders (`LLMJudge.pairwise`: a
    win only when both orders agree) -> RUN/<group>/pairwise.jsonl; the record counts the
    wins of `first`, its losses, and the undecided."""
    out = ctx.path(group, "pairwise.jsonl")
    seed = ctx.seed(f"{group}/pairwise")
    fp = fingerprint("pairwise", model.fp, first.fp, second.fp, params, seed, (sampler or ctx.policy).model_dump())

    def work() -> dict[str, Any]:
        a, b = load_samples(first.path), load_samples(second.path)
        by_id = {p.id: p for p in problems}
        wins = LLMJudge(ctx.sampler(model, sampler), "additive-5", 1, params, seed).pairwise(
            [by_id[s.problem_id] for s in a], [s.completion for s in a], [s.completion for s in b])
        write_jsonl(out, ({"problem_id": s.problem_id, "winner": {0: "first", 1: "second", None: None}[w]} for s, w in zip(a, wins)))
        return {"wins": wins.count(0), "losses": wins.count(1), "undecided": wins.count(None)}

    ctx.stage(f"{group}/pairwise", fp, work)
    return Artifact(out, fp)


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

    ctx.stage(f"{group}/judge-eval", fp, work)
    return Artifact(out, fp)


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

    ctx.stage(f"{group}/{name}", fp, work)
    return Artifact(out, fp)
