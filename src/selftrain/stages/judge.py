"""The judge stage: a model judges responses (LLM-as-a-judge) with a judge template, each
response `samples_per_response` times, the mean of the readable scores its score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selftrain.artifacts import describe, fingerprint, write_jsonl
from selftrain.config import SamplerConfig
from selftrain.records import Problem, SamplingParams
from selftrain.samplers.base import Failed
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import load_samples
from selftrain.verifiers.llm_judge import TEMPLATES, JudgeTemplate, mean_of_readable


def judge(ctx: RunContext, group: str, model: Artifact, problems: Sequence[Problem], samples: Artifact,
          template: JudgeTemplate | str, samples_per_response: int, params: SamplingParams, finish: bool = False,
          sampler: SamplerConfig | None = None, name: str = "judge") -> Artifact:
    """`model` judges every sample of `samples` `samples_per_response` times with `template`;
    the mean of the readable scores is its score -> RUN/<group>/scores.jsonl and
    judgements.jsonl (`<name>-scores.jsonl`, `<name>-judgements.jsonl` for a stage of
    another name): the artifact's `scores` and `judgements`, beside the `samples` they judge.
    A judgement a remote judge failed reads as no score, and is counted."""
    prefix = "" if name == "judge" else f"{name}-"
    out, said = ctx.path(group, f"{prefix}scores.jsonl"), ctx.path(group, f"{prefix}judgements.jsonl")
    asks = TEMPLATES[template] if isinstance(template, str) else template
    seed = ctx.seed(f"{group}/{name}")
    llm = asks.judge(None, samples_per_response, params, seed, finish=finish)
    fp = fingerprint("judge", samples.fp, model.fp, describe(llm), (sampler or ctx.policy).model_dump())

    def work() -> dict[str, Any]:
        rows = load_samples(samples.rows("samples"))
        by_id = {p.id: p for p in problems}
        llm.sampler = ctx.sampler(model, sampler)
        outputs = llm.judgements([by_id[s.problem_id] for s in rows], [s.completion for s in rows])
        scores = llm.scores(outputs)
        write_jsonl(said, ({"problem_id": s.problem_id, "index": s.index, "outputs": [
            o if isinstance(o, str) else {"failed": o.error, "attempts": o.attempts} for o in outs]}
            for s, outs in zip(rows, outputs)))
        write_jsonl(out, ({"problem_id": s.problem_id, "index": s.index, **sc.to_json()} for s, sc in zip(rows, scores)))
        mean = mean_of_readable(s.value for s in scores)
        return {"model": ctx.relative(model.path), "judged": len(scores), "unreadable": sum(s.value is None for s in scores),
                "failed": sum(isinstance(o, Failed) for outs in outputs for o in outs),
                "mean": None if mean is None else round(mean, 4), "finished": llm.finished}

    ctx.stage(f"{group}/{name}" if group else name, fp, work, outputs={"scores": out, "judgements": said})
    return Artifact.of(fp, "scores", scores=out, judgements=said, samples=samples.rows("samples"))
