"""The select stage: which scored samples become training data.

ReST-EM keeps only samples the verifier accepts, at most N per problem (the paper caps
MATH at 10 per problem, so that easy problems do not swamp the data), with exact
duplicates removed: `select_correct`, a pure function, and `select`, the stage around it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from selftrain.artifacts import describe, fingerprint, read_jsonl, write_jsonl
from selftrain.config import SelectConfig
from selftrain.errors import StageFailed
from selftrain.records import Problem, Sample, Score
from selftrain.stages.context import Artifact, Rows, RunContext
from selftrain.stages.generate import load_samples
from selftrain.stages.score import load_scores
from selftrain.verifiers.base import Verifier


def select_correct(
    samples: Sequence[Sample],
    scores: Sequence[Score],
    max_per_problem: int | None,
    dedupe: bool = True,
) -> list[Sample]:
    """Accepted samples, duplicates removed, at most `max_per_problem` per problem.

    Keeps the first samples in their given order, so the choice is deterministic.

    >>> s = [Sample("p", i, "q", c) for i, c in enumerate(["a", "a", "b", "c", "x"])]
    >>> ok, bad = Score(1.0, "ok"), Score(0.0, "wrong")
    >>> [x.completion for x in select_correct(s, [ok, ok, ok, ok, bad], max_per_problem=2)]
    ['a', 'b']
    >>> [x.completion for x in select_correct(s, [ok, ok, ok, ok, bad], None, dedupe=False)]
    ['a', 'a', 'b', 'c']
    """
    if len(samples) != len(scores):
        raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
    if max_per_problem is not None and max_per_problem < 1:
        raise ValueError("max_per_problem must be >= 1 or None")
    kept: list[Sample] = []
    per_problem: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for sample, score in zip(samples, scores):
        if not score.accepted:
            continue
        key = (sample.problem_id, sample.completion)
        if dedupe and key in seen:
            continue
        n = per_problem.get(sample.problem_id, 0)
        if max_per_problem is not None and n >= max_per_problem:
            continue
        seen.add(key)
        per_problem[sample.problem_id] = n + 1
        kept.append(sample)
    return kept


def select(ctx: RunContext, group: str, scores: Artifact, problems: Sequence[Problem], cfg: SelectConfig,
           lineage: dict[str, Any] | None = None, audit: Verifier | None = None, previous: Rows | None = None) -> Rows:
    """Correct samples of `problems` only (the others scored beside them are left out),
    deduplicated, at most `cfg.max_per_problem` per problem ->
    RUN/<group>/selected.jsonl, each row with its `lineage` (method, iteration, model, the
    problem and sample) when given. Returns them as training rows.

    `audit`: a grader that knows the answers, for samples accepted without it (majority
    voting): the record counts how many kept samples it accepts (`truly_right`), and how
    many of them per bucket; it decides nothing. `previous`: the last iteration's kept rows;
    keeping none after it kept some stops the run (a broken verifier or format, more often
    than a model that forgot everything), unless the run allows empty stages."""
    out = ctx.path(group, "selected.jsonl")
    fp = fingerprint("select", scores.fp, cfg.model_dump(), lineage, describe(audit), describe(select_correct),
                     [p.id for p in problems])

    def work() -> dict[str, Any]:
        ids = {p.id for p in problems}
        pairs = [(s, sc) for s, sc in zip(load_samples(scores["samples"]), load_scores(scores["scores"]), strict=True)
                 if s.problem_id in ids]
        kept = select_correct([s for s, _ in pairs], [sc for _, sc in pairs], cfg.max_per_problem, cfg.dedupe)

        def row(s: Sample) -> dict[str, Any]:
            if lineage is None:
                return s.to_json()
            return {**s.to_json(), "lineage": {**lineage, "prompt_id": s.problem_id, "sample": s.index, "score": 1.0}}

        if not kept and previous is not None and previous.path is not None and previous.path.is_file() and \
                read_jsonl(previous.path) and not ctx.allow_empty:
            rates = load_scores(scores["scores"])
            raise StageFailed(f"{group}/select: this iteration kept no sample, the last kept {len(read_jsonl(previous.path))}; "
                              f"of {len(rates)} samples {sum(s.value is None for s in rates)} were not judged and "
                              f"{sum(s.value is not None and not s.accepted for s in rates)} rejected "
                              "(to go on anyway: allow_empty_stages: true)")
        write_jsonl(out, (row(s) for s in kept))
        buckets = {p.id: p.bucket for p in problems}
        by_bucket = Counter(buckets[s.problem_id] for s in kept)
        info: dict[str, Any] = {"kept": len(kept), "kept_by_bucket": dict(sorted(by_bucket.items()))}
        if audit is not None:
            by_id = {p.id: p for p in problems}
            right = [sc.accepted for sc in audit([by_id[s.problem_id] for s in kept], [s.completion for s in kept])]
            info["truly_right"] = sum(right)
            info["truly_right_by_bucket"] = dict(sorted(Counter(buckets[s.problem_id] for s, ok in zip(kept, right) if ok).items()))
        return info

    ctx.stage(f"{group}/select", fp, work, outputs={"selected": out})
    return Rows(fp, lambda: [{"prompt": s.prompt, "completion": s.completion} for s in load_samples(out)],
                out, (ctx.relative(out),))
