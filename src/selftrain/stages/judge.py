"""The judge stages: the model writes prompts (self-instruction creation) and judges
responses (LLM-as-a-judge), as Self-Rewarding does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from selftrain.artifacts import fingerprint, read_jsonl, write_jsonl
from selftrain.config import SamplerConfig
from selftrain.instructions import PromptFilter, create_prompts
from selftrain.records import Problem
from selftrain.samplers.base import SamplingParams
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.verifiers.judge import TEMPLATES, JudgeTemplate, LLMJudge


def write_prompts(ctx: RunContext, group: str, model: Artifact, pool: Sequence[str], n: int, shots: int,
                  params: SamplingParams, keep: PromptFilter, to_problem: Callable[[str, str], Problem],
                  header: str = "", numbered: bool = False, sampler: SamplerConfig | None = None) -> Artifact:
    """`n` new prompts written by `model`, few-shot from `pool` (`shots` shown per request)
    and filtered by `keep` -> RUN/<group>/prompts.jsonl, one Problem each (`to_problem(text, id)`)."""
    out = ctx.path(group, "prompts.jsonl")
    fp = fingerprint("prompts", model.fp, list(pool), n, shots, params, header, numbered, keep.describe(), ctx.cfg.seed, group)

    def work() -> dict[str, Any]:
        made, counts = create_prompts(ctx.sampler(model, sampler), pool, n, params, ctx.seed(f"{group}/prompts"), shots=shots,
                                      keep_filter=keep, header=header, numbered=numbered)
        write_jsonl(out, (to_problem(p, f"{group}-{i}").to_json() for i, p in enumerate(made)))
        return counts

    ctx.stage(f"{group}/prompts", fp, work)
    return Artifact(out, fp)


def load_problems(prompts: Artifact) -> list[Problem]:
    return [Problem.from_json(r) for r in read_jsonl(prompts.path)]


def judge(ctx: RunContext, group: str, model: Artifact, problems: Sequence[Problem], samples: Artifact,
          template: JudgeTemplate | str, samples_per_response: int, params: SamplingParams, finish: bool = False,
          sampler: SamplerConfig | None = None) -> Artifact:
    """`model` judges every sample `samples_per_response` times with `template`; the mean of
    the readable scores is its score -> RUN/<group>/judgements.jsonl and scores.jsonl."""
    folder = samples.path.parent
    out = folder / "scores.jsonl"
    name = template if isinstance(template, str) else template.name
    fp = fingerprint("judge", samples.fp, model.fp, name, samples_per_response, params, finish)

    def work() -> dict[str, Any]:
        rows = load_samples(samples.path)
        by_id = {p.id: p for p in problems}
        asks = TEMPLATES[template] if isinstance(template, str) else template
        llm = asks.judge(ctx.sampler(model, sampler), samples_per_response, params, ctx.seed(f"{group}/judge"), finish=finish)
        outputs = llm.judgements([by_id[s.problem_id] for s in rows], [s.completion for s in rows])
        scores = llm.scores(outputs)
        write_jsonl(folder / "judgements.jsonl", ({"problem_id": s.problem_id, "index": s.index, "outputs": o}
                                                  for s, o in zip(rows, outputs)))
        write_jsonl(out, (sc.to_json() for sc in scores))
        read = [s.value for s in scores if s.value is not None]
        return {"judged": len(scores), "unreadable": len(scores) - len(read),
                "mean": round(sum(read) / len(read), 4) if read else None, "finished": llm.finished}

    ctx.stage(f"{group}/judge", fp, work)
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
    from selftrain.artifacts import write_json

    out = ctx.path(group, "judge_eval.json")
    fp = fingerprint("judge-eval", model.fp, pairs.fp, template.name, params)

    def work() -> dict[str, Any]:
        judged = judge_accuracy(template.judge(ctx.sampler(model), samples=1, params=params), read_jsonl(pairs.path))
        write_json(out, judged)
        return judged

    ctx.stage(f"{group}/judge-eval", fp, work)
    return Artifact(out, fp)
