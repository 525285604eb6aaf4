"""The score stage: one verdict per sample from a verifier (or the task's grader)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selftrain.artifacts import describe, fingerprint, read_jsonl, write_jsonl
from selftrain.errors import StageFailed
from selftrain.records import Problem, Sample, Score
from selftrain.stages.context import Artifact, RunContext, file_of
from selftrain.stages.generate import load_samples
from selftrain.verifiers.base import Verifier


def score_samples(verifier: Verifier, problems: Sequence[Problem], samples: Sequence[Sample], out: Path,
                  run: Callable[..., list[Score]] | None = None) -> list[Score]:
    """One Score per sample into `out` (JSONL), aligned with the samples; `run(verifier,
    problems, completions)` runs the verifier elsewhere (the run's Ray cluster:
    `RunContext.verify`), else it is called here."""
    by_id = {p.id: p for p in problems}
    matched, completions = [by_id[s.problem_id] for s in samples], [s.completion for s in samples]
    scores = run(verifier, matched, completions) if run is not None else verifier(matched, completions)
    write_jsonl(out, ({"problem_id": s.problem_id, "index": s.index, **sc.to_json()} for s, sc in zip(samples, scores)))
    return scores


def verifier_errors(scores: Sequence[Score]) -> dict[str, int]:
    """The unjudged verdicts that a checker's own failure left (`math-verify failed:
    RecursionError`, a timeout), counted by what failed: for the run's records and report."""
    out: dict[str, int] = {}
    for sc in scores:
        if sc.value is None and ("failed: " in sc.reason or sc.reason.startswith("timed out")):
            name = "timed out" if sc.reason.startswith("timed out") else sc.reason.split("failed: ", 1)[1].split()[0]
            out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items()))


def unjudged_reasons(samples: Sequence[Sample], scores: Sequence[Score], top: int = 3) -> str:
    """The most common reasons samples were not judged, each with one example.

    >>> s = [Sample("p", i, "q", c) for i, c in enumerate(["A:4", "A:5"])]
    >>> unjudged_reasons(s, [Score(None, "raised KeyError: 'target' (checks.py:3)"), Score(None, "raised KeyError: 'target' (checks.py:3)")])
    "Most common: 2 x raised KeyError: 'target' (checks.py:3) (e.g. 'A:4')"
    """
    counts: dict[str, list] = {}
    for s, sc in zip(samples, scores):
        if sc.value is None:
            counts.setdefault(sc.reason, []).append(s.completion)
    common = sorted(counts.items(), key=lambda kv: -len(kv[1]))[:top]
    return "Most common: " + "; ".join(f"{len(ex)} x {why} (e.g. {ex[0][:60]!r})" for why, ex in common)


def load_scores(path: Path) -> list[Score]:
    return [Score(value=r["value"], reason=r["reason"], answer=r.get("answer")) for r in read_jsonl(path)]


def score(ctx: RunContext, group: str, samples: Artifact, problems: Sequence[Problem], verifier: Verifier,
          name: str = "score") -> Artifact:
    """The verifier's verdict on every sample of `samples` -> RUN/<group>/scores.jsonl
    (`<name>.jsonl` for a stage of another name): the artifact's `scores`, beside the
    `samples` they judge. The fingerprint holds what the verifier declares of itself and its
    code (`describe`), so a changed verifier redoes this stage and what follows it."""
    out = ctx.path(group, file_of(name, "score", "scores.jsonl"))
    fp = fingerprint("score", samples.fp, describe(verifier))

    def work() -> dict[str, Any]:
        rows = load_samples(samples.rows("samples"))
        scores = score_samples(verifier, problems, rows, out, ctx.verify)
        info = {
            "samples": len(rows),
            "correct": sum(sc.accepted for sc in scores),
            "unjudged": sum(sc.value is None for sc in scores),
            "problems_solved": len({s.problem_id for s, sc in zip(rows, scores) if sc.accepted}),
        }
        failed = verifier_errors(scores)
        if rows and info["unjudged"] == len(rows) and not ctx.allow_empty:
            raise StageFailed(f"{group}/{name}: the verifier judged none of the {len(rows)} samples, so nothing can be "
                              f"kept or learned. {unjudged_reasons(rows, scores)} (to go on anyway: allow_empty_stages: true)")
        return info | ({"verifier_errors": failed} if failed else {})

    ctx.stage(f"{group}/{name}", fp, work, outputs={"scores": out})
    return Artifact.of(fp, "scores", scores=out, samples=samples.rows("samples"))
