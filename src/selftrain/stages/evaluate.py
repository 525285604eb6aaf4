"""The evaluate stage: greedy test accuracy per bucket; pass@k and maj@k from K samples."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selftrain.artifacts import RunDir, derive_seed, describe, fingerprint, read_json, write_json
from selftrain.config import EvalConfig
from selftrain.metrics import accuracy_by_bucket, maj_at_k, mean, pass_at_k
from selftrain.records import Problem, Sample, SamplingParams, Score
from selftrain.samplers.base import Sampler
from selftrain.stages.context import Artifact, RunContext
from selftrain.stages.generate import sample_shards
from selftrain.stages.score import score_samples
from selftrain.verifiers.base import Verifier


def summarize_samples(
    problems: Sequence[Problem], samples: Sequence[Sample], scores: Sequence[Score], k: int
) -> dict[str, float]:
    """Mean unbiased pass@1 and pass@k, and maj@k (when the verifier reads answers), over
    problems with k samples each."""
    by_problem: dict[str, list[Score]] = defaultdict(list)
    for s, sc in zip(samples, scores, strict=True):
        by_problem[s.problem_id].append(sc)
    p1, pk, mk = [], [], []
    for p in problems:
        scs = by_problem[p.id]
        n, c = len(scs), sum(sc.accepted for sc in scs)
        p1.append(pass_at_k(n, c, 1))
        pk.append(pass_at_k(n, c, min(k, n)))
        mk.append(maj_at_k([sc.answer for sc in scs], [sc.accepted for sc in scs]))
    out = {"pass@1": mean(p1), f"pass@{k}": mean(pk)}
    if any(sc.answer is not None for sc in scores):  # maj@k needs the answers a verifier read (a function's rewards have none)
        out[f"maj@{k}"] = mean(mk)
    return {name: round(v, 5) for name, v in out.items()}


EVAL_FILES = {"eval": "eval.json", "greedy": "eval_greedy.jsonl", "greedy_scores": "eval_greedy_scores.jsonl",
              "samples": "eval_samples.jsonl", "scores": "eval_scores.jsonl"}
"""The files an evaluation writes in its group, by name."""


def greedy_accuracy(buckets: Sequence[str], scores: Sequence[Score], top: int = 3) -> dict[str, Any]:
    """Accuracy over the items the grader judged, overall and by bucket; the items it could
    not judge (None) counted apart, with their most common reasons, never as wrong.

    >>> r = greedy_accuracy(["1", "1", "2", "2"], [Score(1.0, "ok"), Score(0.0, "no"), Score(None, "timed out"), Score(1.0, "ok")])
    >>> r["accuracy"], r["by_bucket"], r["unjudged"], r["unjudged_share"], r["unjudged_reasons"]
    (0.66667, {'1': 0.5, '2': 1.0}, 1, 0.25, {'timed out': 1})
    """
    judged = [(b, sc.accepted) for b, sc in zip(buckets, scores, strict=True) if sc.value is not None]
    reasons = Counter(sc.reason.split(" (")[0][:80] for sc in scores if sc.value is None)
    out: dict[str, Any] = {
        "accuracy": round(mean([float(ok) for _, ok in judged]), 5) if judged else 0.0,
        "by_bucket": {b: round(a, 5) for b, a in accuracy_by_bucket([b for b, _ in judged], [ok for _, ok in judged]).items()},
    }
    if reasons:
        n = len(scores)
        out.update(unjudged=sum(reasons.values()), unjudged_share=round(sum(reasons.values()) / max(n, 1), 5),
                   accuracy_counting_unjudged_wrong=round(sum(ok for _, ok in judged) / max(n, 1), 5),
                   unjudged_reasons=dict(reasons.most_common(top)))
    return out


def evaluate_model(
    sampler: Sampler,
    problems: Sequence[Problem],
    verifier: Verifier,
    cfg: EvalConfig,
    out_dir: Path,
    seed: int,
    desc: str = "eval",
    key: str = "",
) -> dict[str, Any]:
    """Write the evaluation's files (`EVAL_FILES`) under `out_dir`; returns what eval.json holds."""
    greedy = sample_shards(
        sampler,
        problems,
        1,
        SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop)),
        out_dir / EVAL_FILES["greedy"],
        seed,
        desc=f"{desc} greedy",
        key=key,
    )
    by_id = {p.id: p for p in problems}
    g_scores = score_samples(verifier, problems, greedy, out_dir / EVAL_FILES["greedy_scores"])
    result: dict[str, Any] = {"n_problems": len(problems), **greedy_accuracy([by_id[s.problem_id].bucket for s in greedy], g_scores)}
    sampled = sample_shards(
        sampler,
        problems,
        cfg.k,
        cfg.params(),
        out_dir / EVAL_FILES["samples"],
        derive_seed(seed, "sampled"),
        desc=f"{desc} pass@{cfg.k}",
        key=key,
    )
    s_scores = score_samples(verifier, problems, sampled, out_dir / EVAL_FILES["scores"])
    result.update(summarize_samples(problems, sampled, s_scores, cfg.k))
    write_json(out_dir / EVAL_FILES["eval"], result)
    return result


def evaluate(ctx: RunContext, group: str, model: Artifact, cfg: EvalConfig) -> Artifact:
    """Greedy test accuracy, pass@k and maj@k of `model` on the task's test split, graded by
    the task's grader -> RUN/<group>/eval.json (the artifact's `eval`; the samples and their
    scores beside it)."""
    seed = ctx.seed(f"{group}/evaluate")
    fp = fingerprint("eval", model.fp, cfg.model_dump(exclude={"max_unjudged_share"}), ctx.policy.model_dump(), ctx.data_fp,
                     describe(ctx.grader), seed, describe(summarize_samples), describe(greedy_accuracy))
    files = {role: ctx.path(group, name) for role, name in EVAL_FILES.items()}
    record = ctx.stage(f"{group}/evaluate", fp, lambda: evaluate_model(
        ctx.sampler(model), ctx.test, ctx.grader, cfg, ctx.path(group), seed, desc=f"{group} eval", key=fp), outputs=files)
    if record.info.get("unjudged_share", 0.0) > cfg.max_unjudged_share:
        from selftrain import ui

        reasons = ", ".join(f"{why} ({n})" for why, n in record.info["unjudged_reasons"].items())
        ui.say(f"  [bold red]warning[/bold red] {group}: the grader could not judge {record.info['unjudged']} of "
               f"{record.info['n_problems']} test answers ({record.info['unjudged_share']:.1%}); accuracy is over the rest. "
               f"Most common: {reasons}")
    return Artifact.of(fp, "eval", **files)


def evaluation(run: RunDir, group: str) -> dict[str, Any] | None:
    """What the evaluation of `group` measured (its eval.json), or None when it has not run:
    what reports read."""
    path = run.output(f"{group}/evaluate", "eval") or run.path(group, EVAL_FILES["eval"])
    return read_json(path) if path.is_file() else None
